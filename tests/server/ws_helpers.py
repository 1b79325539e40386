"""What the WebSocket tests share: a running server, raw HTTP/1.1 WebSocket frames."""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from trio_hface.client import ClientProtocol
from trio_hface.server import ASGIServer, Endpoint

VERSIONS = {"1.1": ClientProtocol.HTTP1, "2": ClientProtocol.HTTP2, "3": ClientProtocol.HTTP3}


@asynccontextmanager
async def running(server: ASGIServer, endpoint: str = "https://127.0.0.1:0") -> AsyncIterator[Endpoint]:
    async with trio.open_nursery() as nursery:
        (bound, *_) = await nursery.start(server.run, [endpoint])
        yield bound
        server.shutdown()


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """A WebSocket frame, as a client writes it (masked) unless told otherwise."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawWebSocket:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            data = await self.stream.receive_some()
            if not data:
                raise EOFError(bytes(self.buffer))
            self.buffer += data
        head, _, rest = bytes(self.buffer).partition(marker)
        self.buffer = bytearray(rest)
        return head

    async def read_frame(self) -> tuple[int, bytes]:
        while True:
            if len(self.buffer) >= 2:
                length = self.buffer[1] & 0x7F
                offset = 2
                if length == 126 and len(self.buffer) >= 4:
                    length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
                elif length == 127 and len(self.buffer) >= 10:
                    length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
                if length < 126 or offset > 2:
                    if len(self.buffer) >= offset + length:
                        opcode = self.buffer[0] & 0x0F
                        payload = bytes(self.buffer[offset : offset + length])
                        del self.buffer[: offset + length]
                        return opcode, payload
            data = await self.stream.receive_some()
            if not data:
                raise EOFError("the server closed before a whole frame")
            self.buffer += data

    async def read_close(self) -> int:
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 8:
                return int(struct.unpack("!H", payload[:2])[0])


async def raw_handshake(
    port: int, key: bytes = b"dGhlIHNhbXBsZSBub25jZQ==", path: str = "/echo"
) -> tuple[RawWebSocket, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    request = (
        (
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\n"
        ).encode()
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\n\r\n"
    )
    await stream.send_all(request)
    raw = RawWebSocket(stream)
    head = await raw.read_until(b"\r\n\r\n")
    return raw, head
