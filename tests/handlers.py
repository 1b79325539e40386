"""HTTP handlers and a small client over a bare HTTPConnection, shared by the connection and server tests."""

from __future__ import annotations

import hashlib

import trio

from tests.conftest import Certs
from trio_hface.connections import HTTPConnection, HTTPOverQUICListener
from trio_hface.events import (
    ConnectionTerminated,
    DataReceived,
    HeadersReceived,
    StreamReset,
    StreamResetReceived,
)
from trio_hface.protocols.http3 import HTTP3ServerFactory


async def echo_handler(connection: HTTPConnection) -> None:
    """Answer each request with the sha256 and length of its body, then the body itself."""
    bodies: dict[int, hashlib._Hash] = {}
    sizes: dict[int, int] = {}
    requests: dict[int, dict[bytes, bytes]] = {}
    async with trio.open_nursery() as nursery:
        while True:
            event = await connection.receive_event()
            if isinstance(event, ConnectionTerminated):
                return
            if isinstance(event, HeadersReceived) and event.stream_id not in bodies:
                bodies[event.stream_id] = hashlib.sha256()
                sizes[event.stream_id] = 0
                requests[event.stream_id] = dict(event.headers)
                if not event.end_stream:
                    continue
            if isinstance(event, DataReceived):
                bodies[event.stream_id].update(event.data)
                sizes[event.stream_id] += len(event.data)
                if not event.end_stream:
                    continue
            if isinstance(event, (HeadersReceived, DataReceived)) and event.end_stream:
                nursery.start_soon(
                    respond,
                    connection,
                    event.stream_id,
                    bodies.pop(event.stream_id).hexdigest(),
                    sizes.pop(event.stream_id),
                    requests.pop(event.stream_id),
                )


async def respond(
    connection: HTTPConnection, stream_id: int, digest: str, size: int, headers: dict[bytes, bytes]
) -> None:
    reply_size = int(headers.get(b"x-reply-size", b"0"))
    response = [(b":status", b"200"), (b"x-sha256", digest.encode()), (b"x-size", b"%d" % size)]
    if reply_size:
        await connection.send_headers(stream_id, response)
        block = bytes(range(256)) * 4096
        sent = 0
        while sent < reply_size:
            piece = block[: reply_size - sent]
            sent += len(piece)
            await connection.send_data(stream_id, piece, end_stream=sent == reply_size)
    else:
        await connection.send_headers(stream_id, response, end_stream=True)


class Client:
    """Routes events of one connection to the tasks waiting for their streams."""

    def __init__(self, connection: HTTPConnection) -> None:
        self.connection = connection
        self.channels: dict[int, trio.MemorySendChannel[object]] = {}

    async def run(self) -> None:
        while True:
            event = await self.connection.receive_event()
            if isinstance(event, ConnectionTerminated):
                for channel in self.channels.values():
                    await channel.send(event)
                return
            target = self.channels.get(getattr(event, "stream_id", -1))
            if target is not None:
                await target.send(event)

    async def fetch(
        self, path: bytes, body: bytes = b"", reply_size: int = 0
    ) -> tuple[dict[bytes, bytes], bytes]:
        sid = self.connection.get_available_stream_id()
        send, receive = trio.open_memory_channel[object](100)
        self.channels[sid] = send
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path),
        ]
        headers.append((b"x-reply-size", b"%d" % reply_size))
        await self.connection.send_headers(sid, headers, end_stream=not body)
        if body:
            await self.connection.send_data(sid, body, end_stream=True)
        response: dict[bytes, bytes] = {}
        data = bytearray()
        async for event in receive:
            if isinstance(event, HeadersReceived):
                response.update(event.headers)
            elif isinstance(event, DataReceived):
                data += event.data
            elif isinstance(event, (ConnectionTerminated, StreamResetReceived)):
                raise AssertionError(f"request failed: {event!r}")
            if getattr(event, "end_stream", False):
                break
        del self.channels[sid]
        return response, bytes(data)


async def hello_handler(connection: HTTPConnection) -> None:
    """Answer every request with the sha256 of its body, once the body is complete."""
    digests: dict[int, hashlib._Hash] = {}
    while True:
        event = await connection.receive_event()
        if isinstance(event, ConnectionTerminated):
            return
        if isinstance(event, HeadersReceived) and event.stream_id not in digests:
            digests[event.stream_id] = hashlib.sha256()
        if isinstance(event, DataReceived):
            digests[event.stream_id].update(event.data)
        if isinstance(event, (HeadersReceived, DataReceived)) and event.end_stream:
            digest = digests.pop(event.stream_id).hexdigest().encode()
            await connection.send_headers(
                event.stream_id, [(b":status", b"200"), (b"content-type", b"text/plain")]
            )
            await connection.send_data(event.stream_id, digest + b"\n", end_stream=True)
        if isinstance(event, StreamReset):
            digests.pop(event.stream_id, None)


async def start_quic(
    nursery: trio.Nursery, certs: Certs, handler: object = echo_handler
) -> tuple[HTTPOverQUICListener, tuple[str, int]]:
    listener = await HTTPOverQUICListener.create(
        HTTP3ServerFactory(), local_address=("127.0.0.1", 0), tls_config=certs.server
    )
    addresses = await nursery.start(listener.serve, handler)
    return listener, addresses[0]
