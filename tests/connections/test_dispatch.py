"""StreamDispatcher, the one receive loop of servers and clients, and the capabilities the connection layer asks of
protocols and listeners (PING, admission, stop_accepting) instead of checking their types."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from tests.conftest import Certs
from trio_hface.connections import (
    ConnectionLimit,
    DispatchEnd,
    HTTPOverQUICListener,
    HTTPOverTCPConnection,
    StreamDispatcher,
)
from trio_hface.events import DataReceived, GoawayReceived, HeadersReceived, PingAckReceived
from trio_hface.networking import QUICStream, QUICStreamListener
from trio_hface.protocols import HTTPOverTCPFactory
from trio_hface.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from trio_hface.protocols.http3 import HTTP3ServerFactory

EXTRA = {"local_address": None, "remote_address": None}
REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")]


def pair(client: HTTPOverTCPFactory, server: HTTPOverTCPFactory) -> tuple[HTTPOverTCPConnection, ...]:
    left, right = trio.testing.memory_stream_pair()
    return HTTPOverTCPConnection(client(), left, EXTRA), HTTPOverTCPConnection(server(), right, EXTRA)


async def test_routes_new_streams_inboxes_goaway_and_ping_acks() -> None:
    """A server-side hook opens an inbox per request; the client's inbox gets the response;
    data of a stream whose inbox closed is credited; GOAWAY and PING acks reach their hooks."""
    client, server = pair(HTTP2ClientFactory(), HTTP2ServerFactory())
    requests: trio.MemorySendChannel[HeadersReceived]
    requests, arrived = trio.open_memory_channel[HeadersReceived](1)
    seen: list[object] = []
    both = trio.Event()

    def note(event: object) -> None:
        seen.append(event)
        if len(seen) == 2:
            both.set()

    async def new_stream(event: HeadersReceived) -> None:
        await requests.send(event)

    async with client, server, trio.open_nursery() as nursery:
        served = StreamDispatcher(server, on_new_stream=new_stream)
        asking = StreamDispatcher(client, on_goaway=note, on_ping_ack=note)
        nursery.start_soon(served.run)
        nursery.start_soon(asking.run)
        stream_id = client.get_available_stream_id()
        mine = asking.open_inbox(stream_id)
        await client.send_headers(stream_id, REQUEST)
        with trio.fail_after(10):
            assert (await arrived.receive()).stream_id == stream_id
            # Nobody serves the stream: its data is dropped and credited, so three
            # stream windows (1 MiB each) go through only if that credit comes back.
            await client.send_data(stream_id, b"x" * (3 * 1024 * 1024), end_stream=True)
            await server.send_headers(stream_id, [(b":status", b"200")])
            await server.send_data(stream_id, b"ok", end_stream=True)
            assert isinstance(await mine.receive(), HeadersReceived)
            assert await mine.receive() == DataReceived(stream_id, b"ok", end_stream=True)
            await client.send_ping(b"12345678")
            await server.send_goaway()
            await both.wait()
        assert {type(e) for e in seen} == {PingAckReceived, GoawayReceived}
        nursery.cancel_scope.cancel()


async def test_run_stops_at_the_receive_deadline() -> None:
    """run() stops at its receive deadline, which may move while it runs (a server's keep-alive clock)."""
    client, server = pair(HTTP1ClientFactory(), HTTP1ServerFactory())
    async with client, server:
        served = StreamDispatcher(server)
        served.receive_deadline = math.inf
        start = trio.current_time()
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep, 0)
                served.receive_deadline = start + 0.1
                assert await served.run() is DispatchEnd.DEADLINE
        assert trio.current_time() - start >= 0.1


async def test_http1_connection_that_must_close_ends_after_its_exchange() -> None:
    """Once an HTTP/1.1 exchange with Connection: close is done, the server's run() returns EXPIRED."""
    client, server = pair(HTTP1ClientFactory(), HTTP1ServerFactory())
    async with client, server:

        async def answer(event: HeadersReceived) -> None:
            await server.send_headers(event.stream_id, [(b":status", b"200")], end_stream=True)

        served = StreamDispatcher(server, on_new_stream=answer)
        stream_id = client.get_available_stream_id()
        headers = [*REQUEST[:3], (b":path", b"/"), (b"connection", b"close")]
        await client.send_headers(stream_id, headers, end_stream=True)
        with trio.fail_after(5):
            assert await served.run() is DispatchEnd.EXPIRED
        assert served.terminated is None and not served.inboxes


async def test_ping_is_a_capability_of_the_protocol() -> None:
    """send_ping asks the protocol (supports_ping / submit_ping), not its type: a custom protocol
    may offer PING, and one without it says so with LocalProtocolError."""
    from trio_hface.errors import LocalProtocolError
    from trio_hface.protocols.http1 import HTTP1ProtocolImpl

    class PingingHTTP1(HTTP1ProtocolImpl):
        def __init__(self) -> None:
            super().__init__(client=True)
            self.pings: list[bytes] = []

        @property
        def supports_ping(self) -> bool:
            return True

        def submit_ping(self, data: bytes) -> None:
            self.pings.append(data)

    assert HTTP2ClientFactory()().supports_ping and not HTTP1ClientFactory()().supports_ping
    left, _ = trio.testing.memory_stream_pair()
    plain = HTTPOverTCPConnection(HTTP1ClientFactory()(), left, EXTRA)
    async with plain:
        with pytest.raises(LocalProtocolError, match="PING"):
            await plain.send_ping(b"12345678")
    left, _ = trio.testing.memory_stream_pair()
    custom = PingingHTTP1()
    async with HTTPOverTCPConnection(custom, left, EXTRA) as connection:
        await connection.send_ping(b"abcdefgh")
    assert custom.pings == [b"abcdefgh"]


class BareQUICListener(QUICStreamListener):
    """A QUIC listener of a custom networking object that offers neither admission nor a soft stop."""

    def __init__(self) -> None:
        self.closed = False

    async def accept(self) -> QUICStream:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


async def test_quic_listener_capabilities_are_asked_not_assumed(
    certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    """Admission control and stop_accepting are methods of the interface with defaults: a listener
    without them is warned about (the limit cannot hold QUIC back) and closed instead of stopped."""
    bare = BareQUICListener()
    listener = HTTPOverQUICListener(
        HTTP3ServerFactory(), [bare], tls_config=certs.server, connection_limit=ConnectionLimit(4)
    )
    assert "no admission control" in caplog.text
    await listener.aclose()
    assert bare.closed


async def test_a_router_takes_events_where_they_are_made_and_leaves_the_rest_in_order() -> None:
    """set_event_router: events the router takes never reach receive_event (nobody waiting there
    wakes for them); one it declines comes from receive_event first, then every event after it,
    in order, and only once none waits are events offered to the router again."""
    client, server = pair(HTTP2ClientFactory(), HTTP2ServerFactory())
    offered: list[object] = []
    received: list[object] = []
    changed = trio.Event()

    def note(into: list[object], event: object) -> None:
        nonlocal changed
        into.append(event)
        changed.set()
        changed = trio.Event()

    async def until(into: list[object], count: int) -> None:
        while len(into) < count:
            await changed.wait()

    def router(event: object) -> bool:
        note(offered, event)
        return not (isinstance(event, HeadersReceived) and event.stream_id == 3)  # those need a task

    async def receive(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            note(received, await client.receive_event())

    async with client, server, trio.open_nursery() as nursery:
        client.set_event_router(router)
        await nursery.start(receive)
        for _ in range(2):
            stream_id = client.get_available_stream_id()
            await client.send_headers(stream_id, REQUEST, end_stream=True)
        with trio.fail_after(5):
            for stream_id in (1, 3):
                while not isinstance(event := await server.receive_event(), HeadersReceived):
                    pass
                assert event.stream_id == stream_id
            # Stream 1 is answered: the router takes it all, and receive() sleeps on.
            server.submit_headers(1, [(b":status", b"200")])
            await server.send_data(1, b"one", end_stream=True)
            await until(offered, 2)
            await trio.testing.wait_all_tasks_blocked()
            assert [type(e) for e in offered] == [HeadersReceived, DataReceived]
            assert received == []
            # Stream 3's headers are declined: they and the data behind them come to receive().
            server.submit_headers(3, [(b":status", b"200")])
            await server.send_data(3, b"three", end_stream=True)
            await until(received, 2)
            assert [type(e) for e in received] == [HeadersReceived, DataReceived]
            assert received[1] == DataReceived(3, b"three", end_stream=True)
            assert len(offered) == 3  # the data behind the declined headers was not offered
            # Nothing waits any more: the router is offered what comes next (a GOAWAY).
            await server.send_goaway()
            await until(offered, 4)
            assert isinstance(offered[3], GoawayReceived) and len(received) == 2
        nursery.cancel_scope.cancel()


async def test_a_full_http1_inbox_still_holds_the_reading_back() -> None:
    """With the dispatcher routing in the reader, an HTTP/1.1 response nobody reads fills its inbox
    to its bound and no further (the reader stops: TCP pushes back), and all of it arrives once read."""
    client, server = pair(HTTP1ClientFactory(), HTTP1ServerFactory())
    body = bytes(range(256)) * (4 * 4096)  # 4 MiB
    async with client, server, trio.open_nursery() as nursery:

        async def answer(event: HeadersReceived) -> None:
            async def respond() -> None:
                await server.send_headers(event.stream_id, [(b":status", b"200")])
                for start in range(0, len(body), 65536):
                    await server.send_data(event.stream_id, body[start : start + 65536])
                await server.send_data(event.stream_id, b"", end_stream=True)

            nursery.start_soon(respond)

        served = StreamDispatcher(server, on_new_stream=answer)
        asking = StreamDispatcher(client)
        nursery.start_soon(served.run)
        nursery.start_soon(asking.run)
        stream_id = client.get_available_stream_id()
        inbox = asking.open_inbox(stream_id)
        await client.send_headers(stream_id, [(b":method", b"GET"), *REQUEST[1:]], end_stream=True)
        with trio.fail_after(10):
            assert isinstance(await inbox.receive(), HeadersReceived)
            for _ in range(20):
                await trio.testing.wait_all_tasks_blocked()
                await trio.sleep(0.01)
            assert 0 < inbox.buffered <= 1024 * 1024  # its bound (256 KiB) and a read or so more
            received = bytearray()
            while True:
                event = await inbox.receive()
                assert isinstance(event, DataReceived)
                received += event.data
                if event.end_stream:
                    break
        assert received == body
        nursery.cancel_scope.cancel()


class _TaskSteps(trio.abc.Instrument):
    """Counts the steps one task takes."""

    def __init__(self) -> None:
        self.task: trio.lowlevel.Task | None = None
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_the_router_starts_new_streams_and_run_sleeps_on(version: str) -> None:
    """A new stream that start_stream takes is started by the task that read its request (the
    router), and run()'s task does not even wake; one it leaves (False) goes to on_new_stream in
    run()'s task, followed by the events behind it, in order."""
    factories = {
        "1.1": (HTTP1ClientFactory, HTTP1ServerFactory),
        "2": (HTTP2ClientFactory, HTTP2ServerFactory),
    }
    client_factory, server_factory = factories[version]
    client, server = pair(client_factory(), server_factory())
    run_steps = _TaskSteps()
    started: list[tuple[int, trio.lowlevel.Task]] = []
    waited: list[tuple[int, trio.lowlevel.Task]] = []

    def start(event: HeadersReceived) -> bool:
        if event.stream_id == 3:
            return False  # as a server that must refuse it
        served.open_inbox(event.stream_id)
        started.append((event.stream_id, trio.lowlevel.current_task()))
        return True

    async def new_stream(event: HeadersReceived) -> None:
        served.open_inbox(event.stream_id)
        waited.append((event.stream_id, trio.lowlevel.current_task()))

    served = StreamDispatcher(server, on_new_stream=new_stream, start_stream=start)

    async def run_served() -> None:
        run_steps.task = trio.lowlevel.current_task()
        await served.run()

    async with client, server, trio.open_nursery() as nursery:
        nursery.start_soon(run_served)
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.add_instrument(run_steps)
        try:
            run_steps.steps = 0
            stream_id = client.get_available_stream_id()
            await client.send_headers(stream_id, REQUEST)
            await client.send_data(stream_id, b"body")
            with trio.fail_after(5):
                while not started:
                    await trio.testing.wait_all_tasks_blocked()
                assert await served.inboxes[stream_id].receive() == DataReceived(stream_id, b"body")
            await trio.testing.wait_all_tasks_blocked()
            assert started[0] == (stream_id, started[0][1]) and started[0][1] is not run_steps.task
            assert run_steps.steps == 0 and waited == []
        finally:
            trio.lowlevel.remove_instrument(run_steps)
        if version == "2":
            stream_id = client.get_available_stream_id()
            assert stream_id == 3
            await client.send_headers(stream_id, REQUEST)
            await client.send_data(stream_id, b"three", end_stream=True)
            with trio.fail_after(5):
                while not waited:
                    await trio.testing.wait_all_tasks_blocked()
                assert waited == [(3, run_steps.task)]
                assert await served.inboxes[3].receive() == DataReceived(3, b"three", end_stream=True)
        nursery.cancel_scope.cancel()


async def test_a_later_receive_deadline_holds_over_the_earlier_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Moving the receive deadline later while run() waits (to infinity as a request starts, then to
    the end of the next keep-alive period once it ends) is what counts, even after the earlier
    deadline passed: run() stops at the later one."""
    client, server = pair(HTTP1ClientFactory(), HTTP1ServerFactory())
    async with client, server, trio.open_nursery() as nursery:
        served = StreamDispatcher(server)
        start = trio.current_time()
        served.receive_deadline = start + 1

        async def serve_a_long_request() -> None:
            await trio.sleep(0.5)
            served.receive_deadline = math.inf  # a request in progress
            await trio.sleep(2)  # past the first deadline
            served.receive_deadline = trio.current_time() + 1  # it ended: keep-alive again

        nursery.start_soon(serve_a_long_request)
        assert await served.run() is DispatchEnd.DEADLINE
        assert trio.current_time() - start == pytest.approx(3.5)
        # An earlier deadline moves the wait's at once.
        served.receive_deadline = trio.current_time() + 1
        moved_earlier = trio.current_time() + 0.25

        async def move_earlier() -> None:
            await trio.sleep(0.1)
            served.receive_deadline = moved_earlier

        nursery.start_soon(move_earlier)
        assert await served.run() is DispatchEnd.DEADLINE
        assert trio.current_time() == pytest.approx(moved_earlier)
