"""A connection limit shared by TCP and QUIC listeners holds back connections beyond it."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.conftest import Certs
from trio_hface.connections import (
    ConnectionLimit,
    HTTPConnection,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
)
from trio_hface.errors import ConnectError
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


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ConnectionLimit(0)


async def test_tcp_connections_beyond_the_limit_wait() -> None:
    """With room for 2 busy connections, a third TCP connection is accepted only once one of the first ends."""
    limit = ConnectionLimit(2)
    handlers = Handlers()
    listener = await HTTPOverTCPListener.create(
        HTTP1ServerFactory(), local_address=("127.0.0.1", 0), connection_limit=limit
    )
    async with trio.open_nursery() as nursery:
        (address, *_) = await nursery.start(listener.serve, handlers)
        with trio.fail_after(10):
            clients = [
                await trio.open_tcp_stream(*address) for _ in range(3)
            ]  # the kernel's backlog takes the third
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


async def test_quic_refuses_new_connections_while_a_shared_limit_is_full(certs: Certs) -> None:
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
            client = await trio.open_tcp_stream(*tcp_address)
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
