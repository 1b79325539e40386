"""A connection limit shared by TCP and QUIC listeners holds back connections beyond it."""

from __future__ import annotations

import functools
import ssl

import pytest
import trio
import trio.testing

from tests.conftest import Certs
from trio_hface.connections import (
    ConnectionLimit,
    ConnectionSlot,
    HTTPConnection,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
)
from trio_hface.errors import ConnectError
from trio_hface.events import ConnectionTerminated
from trio_hface.networking import QUICListener
from trio_hface.protocols.http1 import HTTP1ServerFactory
from trio_hface.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory


class Handlers:
    """Handlers that stay until released, so tests control how many connections live.

    With *busy*, they mark their connection busy (as a server does while a
    request is in flight), so the limit never evicts it.
    """

    def __init__(self, *, busy: bool = True) -> None:
        self.busy = busy
        self.connections: list[HTTPConnection] = []
        self.running = 0
        self.started = 0
        self.changed = trio.Event()
        self.release = trio.Event()

    async def __call__(self, connection: HTTPConnection) -> None:
        if self.busy and connection.connection_slot is not None:
            connection.connection_slot.set_busy()
        self.connections.append(connection)
        self.running += 1
        self.started += 1
        self._changed()
        try:
            await self.release.wait()
        finally:
            self.running -= 1
            self._changed()

    def _changed(self) -> None:
        changed, self.changed = self.changed, trio.Event()
        changed.set()

    async def wait_for(self, started: int) -> None:
        while self.started < started:
            await self.changed.wait()


async def open_and_send(address: tuple[str, int]) -> trio.SocketStream:
    """A TCP connection that has sent the start of a request."""
    stream = await trio.open_tcp_stream(*address)
    await stream.send_all(b"GET")
    return stream


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ConnectionLimit(0)


async def test_tcp_connections_beyond_the_limit_wait(autojump_clock: trio.testing.MockClock) -> None:
    """With room for 2 busy connections, a third TCP connection is accepted only once one of the first ends."""
    limit = ConnectionLimit(2)
    handlers = Handlers()
    listener = await HTTPOverTCPListener.create(
        HTTP1ServerFactory(), local_address=("127.0.0.1", 0), connection_limit=limit
    )
    async with trio.open_nursery() as nursery:
        (address, *_) = await nursery.start(listener.serve, handlers)
        with trio.fail_after(10):
            # The kernel's backlog takes the third. Each sends a byte: the
            # listener sets a cleartext connection up when its first bytes come.
            clients = [await open_and_send(address) for _ in range(3)]
            await handlers.wait_for(2)
            await trio.sleep(0.2)
            assert handlers.running == 2 and limit.count == 2 and limit.full
            handlers.release.set()  # the first two end...
            handlers.release = trio.Event()
            await handlers.wait_for(3)  # ...and the third is served
            assert handlers.running == 1
            handlers.release.set()
            await trio.testing.wait_all_tasks_blocked()  # the handlers ended, the transports closed
            assert limit.count == 0
        for client in clients:
            await client.aclose()
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_quic_refuses_new_connections_while_a_shared_limit_is_full(
    certs: Certs, autojump_clock: trio.testing.MockClock
) -> None:
    """One budget for a TCP and a QUIC listener: a busy TCP connection fills it, HTTP/3 is dropped, then admitted."""
    limit = ConnectionLimit(1)
    handlers = Handlers()
    tcp = await HTTPOverTCPListener.create(
        HTTP1ServerFactory(), local_address=("127.0.0.1", 0), connection_limit=limit
    )
    quic = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(), local_address=("127.0.0.1", 0), tls_config=certs.server, connection_limit=limit
    )
    async with trio.open_nursery() as nursery:
        (tcp_address, *_) = await nursery.start(tcp.serve, handlers)
        (quic_address, *_) = await nursery.start(quic.serve, handlers)
        with trio.fail_after(30):
            client = await open_and_send(tcp_address)
            await handlers.wait_for(1)
            opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client, handshake_timeout=1)
            with pytest.raises(ConnectError):
                await opener(quic_address, server_name="localhost")
            (router,) = [lst for lst in quic._listeners if isinstance(lst, QUICListener)]
            assert router.statistics().refused_busy >= 1 and router.statistics().connections == 0
            await client.aclose()
            handlers.release.set()
            handlers.release = trio.Event()
            await trio.testing.wait_all_tasks_blocked()  # the handlers ended, the transports closed
            assert limit.count == 0
            async with await opener(quic_address, server_name="localhost") as connection:
                assert connection.http_version == "3"
                await handlers.wait_for(2)
                assert limit.count == 1
            handlers.release.set()
        await tcp.aclose()
        await quic.aclose()
        nursery.cancel_scope.cancel()


async def test_eviction_takes_the_oldest_idle_and_never_a_busy_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When full, make_room evicts the slot idle longest (idle since its start or its last request),
    one at a time, and none while every slot is busy."""
    limit = ConnectionLimit(3)
    evicted: list[str] = []

    def take(name: str) -> ConnectionSlot:
        return limit.acquire_nowait(lambda: evicted.append(name))

    a = take("a")
    await trio.sleep(1)
    b = take("b")
    await trio.sleep(1)
    c = take("c")
    a.set_busy()
    c.set_busy()
    await trio.sleep(1)
    a.set_idle()  # a request ended: a is now the newest idle connection
    assert a.idle_since == 3 and b.idle_since == 1 and limit.full
    assert limit.make_room() and evicted == ["b"] and b.evicted
    assert limit.make_room() and evicted == ["b"], "one eviction in progress frees the place"
    b.release()
    assert limit.count == 2 and limit.make_room() and evicted == ["b"]
    await trio.sleep(1)
    d = take("d")
    assert limit.make_room() and evicted == ["b", "a"]  # a idle since 3, d since 4
    a.release()
    e = take("e")
    e.set_busy()
    assert limit.make_room() and evicted == ["b", "a", "d"]
    d.set_idle()  # an evicted slot stays out of the idle list
    d.release()
    f = take("f")
    f.set_busy()
    assert not limit.make_room() and evicted == ["b", "a", "d"], "busy connections are never evicted"
    assert limit.evictions == 3 and limit.count == 3 and limit.idle_count == 0
    for slot in (c, e, f):
        slot.release()
    assert limit.count == 0


async def test_acquire_waits_while_all_are_busy_then_evicts_the_first_to_go_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """acquire() waits while every place is busy; the first connection to become idle is evicted for it."""
    limit = ConnectionLimit(2)
    evicted: list[str] = []
    slots = [limit.acquire_nowait(functools.partial(evicted.append, name)) for name in ("a", "b")]
    for slot in slots:
        slot.set_busy()
    got: list[ConnectionSlot] = []
    async with trio.open_nursery() as nursery:

        async def newcomer() -> None:
            got.append(await limit.acquire(lambda: evicted.append("c")))

        nursery.start_soon(newcomer)
        await trio.sleep(10)
        assert not got and not evicted
        slots[1].set_idle()
        await trio.testing.wait_all_tasks_blocked()
        assert evicted == ["b"] and not got, "the place is taken once the evicted one has let go"
        slots[1].release()
    assert got and limit.count == 2 and evicted == ["b"]


async def test_per_address_bound_counts_places_by_host() -> None:
    """max_connections_per_address refuses a host's connections beyond the bound, not other hosts'."""
    with pytest.raises(ValueError):
        ConnectionLimit(10, max_connections_per_address=0)
    limit = ConnectionLimit(None, max_connections_per_address=2)
    first = limit.acquire_nowait(lambda: None, "10.0.0.1")
    limit.acquire_nowait(lambda: None, "10.0.0.1")
    assert not limit.admits_address("10.0.0.1") and limit.refusals == 1
    assert limit.admits_address("10.0.0.2") and limit.admits_address(None)
    assert not limit.full and limit.make_room()  # no overall bound: never full
    first.release()
    first.release()  # idempotent
    assert limit.admits_address("10.0.0.1") and limit.count == 1


async def test_tcp_listener_evicts_the_oldest_idle_connection_even_mid_handshake(
    certs: Certs, autojump_clock: trio.testing.MockClock
) -> None:
    """With room for 2 idle connections: a TLS client that never starts its handshake, then one that
    shook hands and sent nothing, are evicted in that order for the newcomers; the newest stays."""
    limit = ConnectionLimit(2)
    handlers = Handlers(busy=False)
    listener = await HTTPOverTCPListener.create(
        HTTP1ServerFactory(), local_address=("127.0.0.1", 0), tls_config=certs.server, connection_limit=limit
    )
    async with trio.open_nursery() as nursery:
        (address, *_) = await nursery.start(listener.serve, handlers)
        with trio.fail_after(20):
            # No ClientHello: the server waits in the handshake. Accepted first (the backlog is FIFO).
            silent = await trio.open_tcp_stream(*address)
            shaken = await tls_client(address, certs)
            await handlers.wait_for(1)
            newest = await tls_client(address, certs)  # full: the silent one goes
            assert await closed_by_server(silent)
            await handlers.wait_for(2)
            assert limit.count == 2 and limit.evictions == 1
            third = await tls_client(address, certs)  # full: the one idle longest goes
            assert await closed_by_server(shaken)
            await handlers.wait_for(3)
            assert limit.evictions == 2 and handlers.running == 2
            with trio.move_on_after(0.3) as still_open:
                await newest.receive_some()
            assert still_open.cancelled_caught, "the newer idle connection is kept"
        for stream in (silent, shaken, newest, third):
            await trio.aclose_forcefully(stream)
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def closed_by_server(stream: trio.abc.Stream) -> bool:
    """Read until the server closes the stream (EOF, or a TLS stream cut short)."""
    try:
        while await stream.receive_some():
            pass
    except trio.BrokenResourceError:
        pass
    return True


async def tls_client(address: tuple[str, int], certs: Certs) -> trio.SSLStream[trio.SocketStream]:
    """A TLS connection that shook hands and sends nothing."""
    context = ssl.create_default_context(cafile=certs.cafile)
    stream = trio.SSLStream(await trio.open_tcp_stream(*address), context, server_hostname="localhost")
    await stream.do_handshake()
    return stream


async def test_quic_listener_evicts_an_idle_connection_for_a_newcomer(
    certs: Certs, autojump_clock: trio.testing.MockClock
) -> None:
    """With room for 1 idle HTTP/3 connection, a second QUIC client gets in (its retransmitted
    Initial finds the place) and the first is closed."""
    limit = ConnectionLimit(1)
    handlers = Handlers(busy=False)
    quic = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(), local_address=("127.0.0.1", 0), tls_config=certs.server, connection_limit=limit
    )
    async with trio.open_nursery() as nursery:
        (address, *_) = await nursery.start(quic.serve, handlers)
        opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client, handshake_timeout=10)
        with trio.fail_after(30):
            async with await opener(address, server_name="localhost") as first:
                await handlers.wait_for(1)
                async with await opener(address, server_name="localhost") as second:
                    assert second.http_version == "3"
                    while not isinstance(await first.receive_event(), ConnectionTerminated):
                        pass
                    await handlers.wait_for(2)
                    assert limit.evictions == 1 and limit.count == 1 and handlers.running == 1
            handlers.release.set()
        await quic.aclose()
        nursery.cancel_scope.cancel()


async def test_cleartext_connection_is_set_up_when_its_first_bytes_come(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cleartext TCP connection that sends nothing holds a place but gets no HTTP connection (nor
    handler) until its first bytes arrive, and is closed after idle_timeout if none come."""
    limit = ConnectionLimit(10)
    handlers = Handlers(busy=False)
    listener = await HTTPOverTCPListener.create(
        HTTP1ServerFactory(), local_address=("127.0.0.1", 0), idle_timeout=1.0, connection_limit=limit
    )
    async with trio.open_nursery() as nursery:
        (address, *_) = await nursery.start(listener.serve, handlers)
        with trio.fail_after(20):
            opened = trio.current_time()
            silent = await trio.open_tcp_stream(*address)
            talker = await trio.open_tcp_stream(*address)
            await trio.sleep(0.3)
            assert limit.count == 2 and handlers.started == 0
            await talker.send_all(b"GET")
            await handlers.wait_for(1)
            assert await closed_by_server(silent)
            assert trio.current_time() - opened == pytest.approx(1.0, abs=0.01) and handlers.started == 1
            await trio.testing.wait_all_tasks_blocked()
            assert limit.count == 1
        handlers.release.set()
        for stream in (silent, talker):
            await stream.aclose()
        await listener.aclose()
        nursery.cancel_scope.cancel()
