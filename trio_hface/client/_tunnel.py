"""CONNECT tunnels as Trio streams: any TCP protocol (TLS included) over an HTTP stream."""

from __future__ import annotations

import operator

import trio

from ..connections import CLOSE_TIMEOUT
from ..errors import ConnectionLost, HFaceError, ProxyError, StreamResetError
from ..events import DataReceived, HeadersReceived, StreamReset
from ._connection import Exchange

__all__ = ["TunnelStream"]


class TunnelStream(trio.abc.HalfCloseableStream):
    """The byte stream of a CONNECT tunnel through an HTTP proxy.

    What is sent goes out as DATA of the CONNECT request's stream, waiting for
    the proxy's flow-control credit; what is received is the DATA of the
    response. :meth:`send_eof` ends our side of the stream (a half-close).
    Obtain tunnels from :meth:`.ProxyClientSession.connect_tcp`.

    Implements :class:`trio.abc.HalfCloseableStream`.
    """

    def __init__(self, exchange: Exchange, read_timeout: float | None) -> None:
        self._exchange = exchange
        self._read_timeout = read_timeout
        self._buffer = b""
        self._eof_received = False
        self._eof_sent = False
        self._closed = False
        self._sending = False
        self._receiving = False

    @property
    def http_version(self) -> str:
        """The HTTP version spoken with the proxy."""
        return self._exchange.http_version

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the tunnel is closed")
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this tunnel")
        if self._eof_sent:
            raise trio.ClosedResourceError("send_eof() was called: the tunnel takes no more data")
        self._sending = True
        try:
            await self._exchange.send_data(bytes(data))
        except (HFaceError, trio.ClosedResourceError) as exc:
            raise trio.BrokenResourceError(f"the tunnel broke: {exc}") from exc
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the tunnel is closed")
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the tunnel is closed")
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this tunnel")
        if self._eof_sent:
            await trio.lowlevel.checkpoint()
            return
        self._eof_sent = True
        try:
            await self._exchange.send_data(b"", end_stream=True)
        except (HFaceError, trio.ClosedResourceError) as exc:
            raise trio.BrokenResourceError(f"the tunnel broke: {exc}") from exc

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("the tunnel is closed")
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this tunnel")
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)  # TypeError for anything but an integer
            if max_bytes < 1:
                raise ValueError(f"max_bytes must be positive, not {max_bytes!r}")
        self._receiving = True
        try:
            while not self._buffer and not self._eof_received:
                try:
                    event = await self._exchange.next_event(self._read_timeout)
                except HFaceError as exc:
                    if self._closed:
                        # aclose() while we waited; its reset may have ended the
                        # connection (HTTP/1.1) before we woke: closed all the same.
                        raise trio.ClosedResourceError("the tunnel was closed") from None
                    if isinstance(exc, ConnectionLost):
                        raise trio.BrokenResourceError(str(exc)) from exc
                    raise
                if isinstance(event, DataReceived):
                    self._buffer += event.data
                    self._eof_received = event.end_stream
                elif isinstance(event, HeadersReceived) and event.end_stream:
                    self._eof_received = True
                elif isinstance(event, StreamReset):
                    raise trio.BrokenResourceError(
                        f"the proxy reset the tunnel (error {event.error_code:#x})"
                    )
            if not self._buffer:
                await trio.lowlevel.checkpoint()
                return b""
            size = len(self._buffer) if max_bytes is None else max_bytes
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            if not data:
                await trio.lowlevel.checkpoint()
            return data
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        self._exchange.response_complete = self._exchange.response_complete or (
            self._eof_received and self._eof_sent
        )
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
            await self._exchange.aclose()
        await trio.lowlevel.checkpoint()  # trio streams' aclose is always a checkpoint


async def establish(exchange: Exchange, read_timeout: float | None, target: str) -> TunnelStream:
    """Wait for the proxy's answer to a CONNECT; return the tunnel on 2xx.

    :raises ProxyError: if the proxy answered with another status
    """
    try:
        head = await exchange.receive_head(read_timeout)
    except (StreamResetError, ConnectionLost) as exc:
        raise ProxyError(f"the proxy dropped the CONNECT to {target}: {exc}") from exc
    if not 200 <= head.status < 300:
        body = b""
        try:
            async for chunk in exchange.receive_body(read_timeout):
                body += chunk
                if len(body) > 4096:
                    break
        except (HFaceError, trio.TooSlowError):
            pass
        reason = body.decode("utf-8", "replace").strip()[:200]
        raise ProxyError(f"the proxy refused CONNECT {target}: {head.status} {reason}".rstrip(), head.status)
    # A tunnel is a transport: waiting long for data on it is normal, so it has
    # no read timeout of its own (the requests carried inside it have theirs).
    return TunnelStream(exchange, None)
