"""Connection behaviour under trouble: timeouts, cancellation, vanishing peers, closing."""

from __future__ import annotations

import hashlib
from functools import partial

import pytest
import trio
import trio.testing

from trio_hface.connections import (
    HTTPConnection,
    HTTPOverTCPConnection,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
)
from trio_hface.errors import UsageError
from trio_hface.events import ConnectionTerminated, DataReceived, Event, GoawayReceived, HeadersReceived
from trio_hface.protocols import HTTPOverTCPProtocol
from trio_hface.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory

POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")]
EXTRA = {"local_address": ("mem", 0), "remote_address": ("mem", 1)}


def memory_pair(
    version: str, *, idle_timeout: float | None = None, window: int = 65536, lockstep: bool = False
) -> tuple[HTTPOverTCPConnection, HTTPOverTCPConnection]:
    left, right = trio.testing.lockstep_stream_pair() if lockstep else trio.testing.memory_stream_pair()
    client_protocol: HTTPOverTCPProtocol
    server_protocol: HTTPOverTCPProtocol
    if version == "2":
        client_protocol = HTTP2ClientFactory(stream_window=window, connection_window=window)()
        server_protocol = HTTP2ServerFactory(stream_window=window, connection_window=window)()
    else:
        client_protocol, server_protocol = HTTP1ClientFactory()(), HTTP1ServerFactory()()
    client = HTTPOverTCPConnection(client_protocol, left, EXTRA)
    server = HTTPOverTCPConnection(server_protocol, right, EXTRA, idle_timeout=idle_timeout)
    return client, server


@pytest.mark.parametrize("version", ["1", "2"])
async def test_idle_timeout_fires_exactly(version: str, autojump_clock: trio.testing.MockClock) -> None:
    """A server connection without traffic for idle_timeout seconds ends at that very moment."""
    client, server = memory_pair(version, idle_timeout=30)
    async with client, server:
        start = trio.current_time()
        event = await server.receive_event()
        assert isinstance(event, ConnectionTerminated)
        assert trio.current_time() - start == pytest.approx(30, abs=0.01)
        if version == "2":
            assert isinstance(await client.receive_event(), GoawayReceived)


async def test_traffic_postpones_idle_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """Each request moves the idle deadline."""
    client, server = memory_pair("2", idle_timeout=10)
    async with client, server, trio.open_nursery() as nursery:
        start = trio.current_time()

        async def serve() -> None:
            while True:
                event = await server.receive_event()
                if isinstance(event, HeadersReceived):
                    await server.send_headers(event.stream_id, [(b":status", b"204")], end_stream=True)
                if isinstance(event, ConnectionTerminated):
                    return

        nursery.start_soon(serve)
        for _ in range(3):
            await trio.sleep(8)
            sid = client.get_available_stream_id()
            await client.send_headers(sid, POST, end_stream=True)
            assert isinstance(await client.receive_event(), HeadersReceived)
        event = await client.receive_event()
        assert isinstance(event, GoawayReceived), event
        assert trio.current_time() - start == pytest.approx(34, abs=0.01)


async def test_streaming_echo_cannot_deadlock() -> None:
    """Sending 4 MiB while the peer echoes it back through 64 KiB windows completes (no deadlock)."""
    client, server = memory_pair("2", window=65536, lockstep=True)
    payload = bytes(range(256)) * 16384
    echoed = hashlib.sha256()
    with trio.fail_after(60):
        async with client, server, trio.open_nursery() as nursery:

            async def echo() -> None:
                while True:
                    event = await server.receive_event()
                    if isinstance(event, HeadersReceived):
                        await server.send_headers(event.stream_id, [(b":status", b"200")])
                    elif isinstance(event, DataReceived):
                        await server.send_data(event.stream_id, event.data, end_stream=event.end_stream)
                    elif isinstance(event, ConnectionTerminated):
                        return

            nursery.start_soon(echo)
            sid = client.get_available_stream_id()
            await client.send_headers(sid, POST)

            async def receive() -> None:
                while True:
                    event = await client.receive_event()
                    if isinstance(event, DataReceived):
                        echoed.update(event.data)
                        if event.end_stream:
                            return

            async with trio.open_nursery() as inner:
                inner.start_soon(receive)
                await client.send_data(sid, payload, end_stream=True)
            nursery.cancel_scope.cancel()
    assert echoed.hexdigest() == hashlib.sha256(payload).hexdigest()


async def test_many_tasks_open_streams_at_once() -> None:
    """get_available_stream_id + send_headers from many tasks never hands out one ID twice."""
    client, server = memory_pair("2")
    seen: list[int] = []
    async with client, server, trio.open_nursery() as nursery:

        async def open_one() -> None:
            sid = client.get_available_stream_id()
            await client.send_headers(sid, POST, end_stream=True)

        for _ in range(50):
            nursery.start_soon(open_one)
        while len(seen) < 50:
            event = await server.receive_event()
            assert isinstance(event, HeadersReceived)
            seen.append(event.stream_id)
    assert sorted(seen) == list(range(1, 100, 2))


async def test_cancelled_handler_closes_only_its_connection() -> None:
    """A handler that fails mid-stream ends its connection; the listener serves the next one."""
    calls = 0

    async def handler(connection: HTTPConnection) -> None:
        nonlocal calls
        calls += 1
        event = await connection.receive_event()
        assert isinstance(event, HeadersReceived)
        if calls == 1:
            await connection.send_headers(event.stream_id, [(b":status", b"200")])
            raise RuntimeError("handler bug (expected by the test)")
        await connection.send_headers(event.stream_id, [(b":status", b"204")], end_stream=True)
        await connection.receive_event()

    async with trio.open_nursery() as nursery:
        listener = await HTTPOverTCPListener.create(HTTP2ServerFactory(), local_address=("127.0.0.1", 0))
        (address, *_) = await nursery.start(listener.serve, handler)
        opener = HTTPOverTCPOpener(HTTP2ClientFactory())
        events: list[Event] = []
        async with await opener(address) as first:
            sid = first.get_available_stream_id()
            await first.send_headers(sid, POST, end_stream=True)
            with trio.fail_after(10):
                while not events or not isinstance(events[-1], ConnectionTerminated):
                    events.append(await first.receive_event())
        assert isinstance(events[0], HeadersReceived)
        async with await opener(address) as second:
            sid = second.get_available_stream_id()
            await second.send_headers(sid, POST, end_stream=True)
            with trio.fail_after(10):
                event = await second.receive_event()
            assert isinstance(event, HeadersReceived) and (b":status", b"204") in event.headers
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_peer_vanishing_mid_request_ends_the_handler() -> None:
    """When the client disappears mid-request, the server's handler sees ConnectionTerminated."""
    ended = trio.Event()

    async def handler(connection: HTTPConnection) -> None:
        while True:
            event = await connection.receive_event()
            if isinstance(event, ConnectionTerminated):
                ended.set()
                return

    async with trio.open_nursery() as nursery:
        listener = await HTTPOverTCPListener.create(HTTP1ServerFactory(), local_address=("127.0.0.1", 0))
        (address, *_) = await nursery.start(listener.serve, handler)
        stream = await trio.open_tcp_stream(*address)
        await stream.send_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhalf")
        await trio.aclose_forcefully(stream)
        with trio.fail_after(10):
            await ended.wait()
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_closed_listener_keeps_running_connections() -> None:
    """Closing a listener stops accepting; a connection that is already open goes on."""

    async def handler(connection: HTTPConnection) -> None:
        while True:
            event = await connection.receive_event()
            if isinstance(event, HeadersReceived):
                await connection.send_headers(event.stream_id, [(b":status", b"204")], end_stream=True)
            elif isinstance(event, ConnectionTerminated):
                return

    async with trio.open_nursery() as nursery:
        listener = await HTTPOverTCPListener.create(HTTP2ServerFactory(), local_address=("127.0.0.1", 0))
        (address, *_) = await nursery.start(listener.serve, handler)
        opener = HTTPOverTCPOpener(HTTP2ClientFactory())
        async with await opener(address) as connection:
            await listener.aclose()
            await listener.aclose()  # idempotent
            with pytest.raises(OSError):
                await trio.open_tcp_stream(*address)
            for _ in range(3):
                sid = connection.get_available_stream_id()
                await connection.send_headers(sid, POST, end_stream=True)
                with trio.fail_after(10):
                    assert isinstance(await connection.receive_event(), HeadersReceived)
        nursery.cancel_scope.cancel()


async def test_tls_handshake_timeout_drops_silent_client(autojump_clock: trio.testing.MockClock) -> None:
    """A client that connects to a TLS listener and says nothing is dropped after the handshake timeout."""
    import trustme

    from trio_hface import ServerTLSConfig

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    tls = ServerTLSConfig(
        certdata=b"".join(b.bytes() for b in cert.cert_chain_pems), keydata=cert.private_key_pem.bytes()
    )

    async def handler(connection: HTTPConnection) -> None:
        raise AssertionError("no connection should reach the handler")

    async with trio.open_nursery() as nursery:
        listener = await HTTPOverTCPListener.create(
            HTTP1ServerFactory(), local_address=("127.0.0.1", 0), tls_config=tls, handshake_timeout=0.5
        )
        (address, *_) = await nursery.start(listener.serve, handler)
        stream = await trio.open_tcp_stream(*address)
        start = trio.current_time()
        with trio.fail_after(10):
            assert await stream.receive_some(100) == b""
        assert trio.current_time() - start == pytest.approx(0.5, abs=0.01)
        await stream.aclose()
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_connection_use_outside_async_with_is_an_error() -> None:
    """Sending on a connection that was not entered says how to use it."""
    client, _ = memory_pair("2")
    with pytest.raises(UsageError, match="async with") as caught:
        await client.send_headers(1, POST)
    assert isinstance(caught.value, RuntimeError)  # what it was before UsageError existed


async def test_aclose_is_idempotent_and_final() -> None:
    """aclose twice is fine; afterwards sending raises ClosedResourceError."""
    client, server = memory_pair("2")
    async with server:
        async with client:
            await client.aclose()
            await client.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await client.send_headers(1, POST)
        event = await server.receive_event()
        assert isinstance(event, GoawayReceived), event


async def test_handler_cancelled_mid_response_leaves_nothing_behind() -> None:
    """Cancelling a handler mid-response closes its connection and ends its tasks; others go on."""
    scopes: list[trio.CancelScope] = []
    sending = trio.Event()

    async def handler(connection: HTTPConnection) -> None:
        event = await connection.receive_event()
        assert isinstance(event, HeadersReceived)
        with trio.CancelScope() as scope:
            scopes.append(scope)
            await connection.send_headers(event.stream_id, [(b":status", b"200")])
            sending.set()
            await connection.send_data(event.stream_id, b"x" * (50 * 1024 * 1024), end_stream=True)
        assert scope.cancelled_caught

    async with trio.open_nursery() as nursery, trio.open_nursery() as handlers:
        listener = await HTTPOverTCPListener.create(HTTP2ServerFactory(), local_address=("127.0.0.1", 0))
        (address, *_) = await nursery.start(partial(listener.serve, handler, handler_nursery=handlers))
        opener = HTTPOverTCPOpener(HTTP2ClientFactory())
        async with await opener(address) as connection:
            sid = connection.get_available_stream_id()
            await connection.send_headers(sid, POST, end_stream=True)
            with trio.fail_after(10):
                await sending.wait()
                scopes[0].cancel()  # the client reads nothing: the server is stuck in send_data
                events: list[Event] = []
                while not events or not isinstance(events[-1], ConnectionTerminated):
                    events.append(await connection.receive_event())
            assert any(isinstance(e, GoawayReceived) for e in events)
        with trio.fail_after(10):
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert not handlers.child_tasks, "the connection task outlived its connection"
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_cancelled_user_still_says_goodbye(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling the code around `async with connection` still sends GOAWAY and closes the transport at once."""
    client, server = memory_pair("2")
    async with server:
        start = trio.current_time()
        with trio.CancelScope() as scope:
            async with client:
                scope.cancel()
                await trio.sleep_forever()
        assert trio.current_time() == start  # no wait for a close timeout
        first = await server.receive_event()
        assert isinstance(first, GoawayReceived)
        last = await server.receive_event()
        assert isinstance(last, ConnectionTerminated)  # the transport reached EOF


async def test_http1_pipelined_requests_are_all_answered() -> None:
    """Requests pipelined in one write are answered one after the other, with no new input needed."""
    left, right = trio.testing.memory_stream_pair()
    server = HTTPOverTCPConnection(HTTP1ServerFactory()(), right, EXTRA)
    async with server:
        await left.send_all(b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % n for n in range(3)))
        with trio.fail_after(5):
            for n in range(3):
                event = await server.receive_event()
                assert isinstance(event, HeadersReceived) and (b":path", b"/%d" % n) in event.headers
                await server.send_headers(event.stream_id, [(b":status", b"200"), (b"content-length", b"1")])
                await server.send_data(event.stream_id, b"%d" % n, end_stream=True)
        received = b""
        with trio.fail_after(5):
            while received.count(b"HTTP/1.1 200") < 3 or not received.endswith(b"2"):
                received += await left.receive_some()


def frame_types(data: bytes) -> list[int]:
    """The types of the HTTP/2 frames in *data* (whole frames only)."""
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        types.append(data[3])
        data = data[9 + length :]
    return types


@pytest.mark.parametrize("version", ["1", "2"])
async def test_submitted_headers_go_out_with_the_data_in_one_write(version: str) -> None:
    """submit_headers does not flush: a response head and its body reach the transport in one send."""
    client, server = memory_pair(version)
    writes: list[bytes] = []
    stream = server._stream
    send_all = stream.send_all

    async def recording_send_all(data: bytes | bytearray | memoryview) -> None:
        writes.append(bytes(data))
        await send_all(data)

    async with client, server:
        with trio.fail_after(5):
            sid = client.get_available_stream_id()
            await client.send_headers(sid, POST, end_stream=True)
            event = await server.receive_event()
            while not isinstance(event, HeadersReceived):
                event = await server.receive_event()
            stream.send_all = recording_send_all  # type: ignore[method-assign]
            server.submit_headers(sid, [(b":status", b"200"), (b"content-length", b"5")])
            await server.send_data(sid, b"hello", end_stream=True)
            body = b""
            while not body:
                got = await client.receive_event()
                if isinstance(got, DataReceived):
                    body = got.data
    assert body == b"hello"
    (write,) = [w for w in writes if b"hello" in w]
    if version == "1":
        assert write.startswith(b"HTTP/1.1 200 ") and write.endswith(b"\r\n\r\nhello")
    else:
        assert frame_types(write)[-2:] == [0x1, 0x0]  # HEADERS, then DATA
