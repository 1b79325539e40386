"""The bulk byte path: large bodies reach the transport uncopied, and cancelled writes leave no mess."""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import pytest
import trio
import trio.testing
import trustme

from tests.helpers import HTTP1_IMPLEMENTATIONS, http1_factories
from trio_hface.connections import HTTPOverTCPConnection
from trio_hface.connections._tcp_connection import COALESCE_SIZE
from trio_hface.events import DataReceived, HeadersReceived
from trio_hface.networking import can_receive_without_waiting
from trio_hface.protocols import HTTPOverTCPProtocol

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")]
EXTRA = {"local_address": ("mem", 0), "remote_address": ("mem", 1)}
MIB = 1024 * 1024


class RecordingStream(trio.abc.Stream):
    """A memory stream that remembers every object handed to :meth:`send_all`."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.sent: list[bytes | bytearray | memoryview] = []

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(data)
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


def http1_pair(impl: str) -> tuple[HTTPOverTCPConnection, HTTPOverTCPConnection, RecordingStream]:
    client_factory, server_factory = http1_factories(impl)
    left, right = trio.testing.memory_stream_pair()
    recording = RecordingStream(right)
    client_protocol: HTTPOverTCPProtocol = client_factory()()
    server_protocol: HTTPOverTCPProtocol = server_factory()()
    client = HTTPOverTCPConnection(client_protocol, left, EXTRA)
    server = HTTPOverTCPConnection(server_protocol, recording, EXTRA)
    return client, server, recording


async def serve_one(
    client: HTTPOverTCPConnection,
    server: HTTPOverTCPConnection,
    head: Sequence[tuple[bytes, bytes]],
    body: bytes,
) -> bytes:
    """Send one request, answer it with *head* and *body* in one send_data; return the body received."""
    received = bytearray()

    async def read() -> None:
        while True:
            event = await client.receive_event()
            if isinstance(event, DataReceived):
                received.extend(event.data)
                if event.end_stream:
                    return

    async with trio.open_nursery() as nursery:
        sid = client.get_available_stream_id()
        await client.send_headers(sid, GET, end_stream=True)
        event = await server.receive_event()
        while not isinstance(event, HeadersReceived):
            event = await server.receive_event()
        nursery.start_soon(read)
        server.submit_headers(sid, head)
        await server.send_data(sid, body, end_stream=True)
    return bytes(received)


@pytest.mark.parametrize("impl", HTTP1_IMPLEMENTATIONS)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_http1_large_body_reaches_the_transport_uncopied(impl: str, framing: str) -> None:
    """A large HTTP/1.1 body goes to the transport's send_all as the very object the application passed."""
    client, server, recording = http1_pair(impl)
    body = bytes(range(256)) * (MIB // 256)
    head = [(b":status", b"200")]
    if framing == "content-length":
        head.append((b"content-length", b"%d" % len(body)))
    async with client, server:
        with trio.fail_after(10):
            assert await serve_one(client, server, head, body) == body
    assert any(sent is body for sent in recording.sent)
    # The small pieces around it (the head, the chunk framing) were joined, not sent one by one.
    small = [sent for sent in recording.sent if sent is not body]
    assert 1 <= len(small) <= 3
    assert all(len(sent) < COALESCE_SIZE for sent in small)


@pytest.mark.parametrize("impl", HTTP1_IMPLEMENTATIONS)
async def test_http1_small_response_is_one_write(impl: str) -> None:
    """A small response (head and body) still reaches the transport in one write."""
    client, server, recording = http1_pair(impl)
    async with client, server:
        with trio.fail_after(10):
            head = [(b":status", b"200"), (b"content-length", b"5")]
            assert await serve_one(client, server, head, b"hello") == b"hello"
    (write,) = [sent for sent in recording.sent if b"hello" in bytes(sent)]
    assert bytes(write).startswith(b"HTTP/1.1 200 ")


async def tls_pair() -> tuple[trio.SSLStream[trio.abc.Stream], trio.SSLStream[trio.abc.Stream]]:
    """A client and a server TLS stream over an in-memory stream pair, handshaken."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    left, right = trio.testing.memory_stream_pair()
    client = trio.SSLStream[trio.abc.Stream](left, client_context, server_hostname="localhost")
    server = trio.SSLStream[trio.abc.Stream](right, server_context, server_side=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)
    return client, server


async def test_can_receive_without_waiting_sees_whole_records() -> None:
    """True while a TLS stream holds a whole record already received; False once it would wait, and for plain streams."""
    client, server = await tls_pair()
    assert not can_receive_without_waiting(client)
    await server.send_all(bytes(3 * 16384))  # three records, all in the memory stream now
    received = len(await client.receive_some(65536))  # one network read, one record decrypted
    assert received == 16384 and can_receive_without_waiting(client)
    while can_receive_without_waiting(client):
        received += len(await client.receive_some(65536))
    # It stops once less than the largest record waits (the last one is whole, but it cannot tell).
    assert received == 2 * 16384
    assert len(await client.receive_some(65536)) == 16384
    assert not can_receive_without_waiting(client)
    plain, _ = trio.testing.memory_stream_pair()
    assert not can_receive_without_waiting(plain)


async def test_can_receive_without_waiting_sees_records_the_kernel_holds() -> None:
    """Over TCP, records still in the kernel's socket buffer count: trio reads 64 KiB at a time."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(10):
        async with listeners[0], await trio.open_tcp_stream("127.0.0.1", port) as tcp:
            accepted = await listeners[0].accept()
            client = trio.SSLStream(tcp, client_context, server_hostname="localhost")
            server = trio.SSLStream(accepted, server_context, server_side=True)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.do_handshake)
                nursery.start_soon(server.do_handshake)
            records = 6  # about 96 KiB: more than one of trio's socket reads
            await server.send_all(bytes(records * 16384))
            await trio.sleep(0.2)  # on loopback it is all in the client's socket buffer by then
            received = len(await client.receive_some(65536))
            while can_receive_without_waiting(client):
                received += len(await client.receive_some(65536))
            # Only the last record is left: the kernel holds less than the largest record.
            assert received == (records - 1) * 16384
            await accepted.aclose()


async def test_records_of_one_read_wake_the_receiver_once() -> None:
    """A body whose records arrived together reaches a waiting receiver in a few wake-ups, not one per record."""
    client_stream, server_stream = await tls_pair()
    client_factory, server_factory = http1_factories("h11")
    client = HTTPOverTCPConnection(client_factory()(), client_stream, EXTRA)
    server = HTTPOverTCPConnection(server_factory()(), server_stream, EXTRA)
    body = bytes(16 * 16384)
    waits = 0
    wait_input = client._wait_input

    async def counted_wait_input() -> None:
        nonlocal waits
        waits += 1
        await wait_input()

    async with client, server:
        with trio.fail_after(10):
            sid = client.get_available_stream_id()
            await client.send_headers(sid, GET, end_stream=True)
            event = await server.receive_event()
            while not isinstance(event, HeadersReceived):
                event = await server.receive_event()
            server.submit_headers(sid, [(b":status", b"200"), (b"content-length", b"%d" % len(body))])
            await server.send_data(sid, body, end_stream=True)  # all of it in the memory stream now
            event = await client.receive_event()
            assert isinstance(event, HeadersReceived)
            client._wait_input = counted_wait_input  # type: ignore[method-assign]
            size = 0
            while True:
                event = await client.receive_event()
                assert isinstance(event, DataReceived)
                size += len(event.data)
                if event.end_stream:
                    break
    assert size == len(body)
    assert waits <= 2  # 16 records, taken in runs of up to RECEIVE_BATCH (256 KiB)
