"""HTTP/1.1 on httptools (llhttp, the C parser uvicorn uses): the ``speedups`` extra.

Theory of operation
-------------------

The same events, translations and guarantees as the h11 implementation
(``_protocol.py``, whose theory of operation applies here word for word),
with a faster parser: what does not touch the wire is shared with it
(``_common.py``), and so is the strict chunked reader (``_framing.py``).
What differs is who reads and writes:

* input is kept in one bounded buffer; a head is cut at its empty line,
  checked, and parsed by httptools (``_httptools_wire.py``, which says why
  only heads); a body is sliced by its ``Content-Length``, read by the
  strict chunked reader, or (a response without framing) read until EOF;
* like h11, one message is read per exchange: a pipelined request waits in
  the buffer (bounded by ``max_buffer_size``) until the exchange before it
  is done, and a head that answers HEAD, CONNECT, 1xx, 204 or 304 has no
  body;
* output is joined bytes: a head in one piece, chunks framed by hand, with
  the checks and additions h11 makes (``Transfer-Encoding: chunked`` for a
  response of unknown length, ``Connection: close`` when either side ends
  keep-alive, the body of an HTTP/1.0 peer read until close).

httptools knows a fixed list of methods (RFC 9110's, WebDAV's and others,
as llhttp does); a request with any other method is refused with 400, where
h11 takes any token.
"""

from __future__ import annotations

from typing import Any

import h11
from h11._receivebuffer import ReceiveBuffer

from ..._typing import HeadersType
from ...errors import FlowControlError, LocalProtocolError
from ...events import DataReceived, HeadersReceived
from .._headers import HeaderError, HeaderKind, validate_headers
from ._common import (
    DEFAULT_MAX_BUFFER_SIZE,
    DEFAULT_MAX_HEADER_SIZE,
    Exchange,
    HTTP1Base,
    reason_phrase,
    request_headers,
    request_parts,
    response_fields,
)
from ._factories import HTTP1FactoryBase
from ._framing import StrictChunkedReader, block_complete
from ._httptools_wire import (
    CHUNKED,
    Head,
    Refused,
    check_fields,
    check_target,
    frame_response,
    parse_head,
    write_head,
)

__all__ = ["HTTPToolsClientFactory", "HTTPToolsProtocol", "HTTPToolsServerFactory"]

# What the receiving side reads now.
_HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE, _DONE = range(5)


class HTTPToolsProtocol(HTTP1Base):
    """HTTP/1.1 on httptools.

    Create instances with :class:`.HTTPToolsClientFactory` or :class:`.HTTPToolsServerFactory`.

    Implements :class:`.HTTP1Protocol`, with the events and limits of :class:`.HTTP1ProtocolImpl`.

    :param client: whether this is the client side
    :param scheme: the scheme reported in ``:scheme`` of received requests
        (``"https"`` over TLS)
    :param max_header_size: the largest header block accepted from the peer
    :param max_buffer_size: the most unparsed input held before giving up
    """

    def __init__(
        self,
        *,
        client: bool,
        scheme: str = "http",
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE,
    ) -> None:
        super().__init__(
            client=client, scheme=scheme, max_header_size=max_header_size, max_buffer_size=max_buffer_size
        )
        self._buf = ReceiveBuffer()
        self._reading = _HEAD
        self._remaining = 0  # of a Content-Length body being read
        self._chunks: StrictChunkedReader | None = None
        # The framing of our message: a length left, -1 chunked, None until close.
        self._send_length: int | None = 0
        self._sent_end = False
        self._received_end = False
        # Whether the exchange's request asked for an Upgrade (101 may switch).
        self._upgrade = False
        self._keep_alive = True
        self._their_version: bytes | None = None

    # -- state ------------------------------------------------------------

    def is_available(self) -> bool:
        return self._client and not self.has_expired() and self._exchange is None

    def has_expired(self) -> bool:
        return (
            self._end.terminated
            or self._closing
            or (not self._keep_alive and (self._sent_end or self._received_end))
        )

    # -- application -> protocol -----------------------------------------

    def _send_request(self, stream_id: int, headers: HeadersType, end_stream: bool) -> None:
        method, target, fields = request_parts(headers, end_stream)
        check_target(target)
        if not any(n.lower() == b"host" for n, _ in fields):
            raise LocalProtocolError("Missing mandatory Host: header")
        length, keep_alive, upgrade = check_fields(fields)
        self._out.append(write_head(b"%s %s HTTP/1.1\r\n" % (method, target), fields))
        self._send_length = 0 if length is None else length
        self._keep_alive = self._keep_alive and keep_alive
        self._upgrade = upgrade
        self._exchange = exchange = Exchange(stream_id, method)
        self._next_stream_id += 2
        if method == b"CONNECT" or end_stream:
            # A CONNECT request itself has no body; the tunnel opens with a 2xx.
            self._send_end([])
        exchange.send.headers(HeaderKind.REQUEST, end_stream=end_stream)

    def _send_response(self, exchange: Exchange, headers: HeadersType, end_stream: bool) -> None:
        try:
            pseudo, regular = validate_headers(headers, HeaderKind.RESPONSE, multiplexed=False)
        except HeaderError as exc:
            raise LocalProtocolError(str(exc)) from None
        status = int(pseudo[b":status"])
        status_line = b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status))
        if status < 200:
            exchange.send.check_headers(HeaderKind.RESPONSE, end_stream=end_stream, informational=True)
            if status == 101 and not (self._upgrade and self._received_end):
                raise LocalProtocolError("101 Switching Protocols needs a request with Upgrade")
            check_fields(regular)
            self._out.append(write_head(status_line, regular))
            if status == 101:
                # The exchange ends in its switch: our bytes from now on are the tunnel's.
                exchange.send.headers(HeaderKind.RESPONSE, end_stream=False)
                self._enter_tunnel()
            return
        exchange.send.check_headers(HeaderKind.RESPONSE, end_stream=end_stream)
        regular = response_fields(
            exchange.method, status, regular, end_stream=end_stream, closing=self._closing
        )
        length, keep_alive, _ = check_fields(regular)
        regular, length, self._keep_alive = frame_response(
            exchange.method, status, regular, length, self._keep_alive and keep_alive, self._their_version
        )
        self._out.append(write_head(status_line, regular))
        if exchange.method == b"CONNECT" and 200 <= status < 300:
            exchange.send.headers(HeaderKind.RESPONSE, end_stream=False)
            self._enter_tunnel()
            if end_stream:
                self._end_tunnel_send(exchange)
            return
        self._send_length = length
        self._upgrade = False
        if end_stream:
            self._send_end([])
        exchange.send.headers(HeaderKind.RESPONSE, end_stream=end_stream)
        if end_stream:
            self._maybe_next_cycle()

    def submit_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        exchange = self._check_stream(stream_id)
        exchange.send.check_data()
        if self._tunnel:
            self._out.append(data)
            if end_stream:
                self._end_tunnel_send(exchange)
            return
        if self._client and exchange.method == b"CONNECT":
            raise FlowControlError("a CONNECT tunnel takes data once the proxy accepted it")
        if data:
            length = self._send_length
            if length == CHUNKED:
                self._out.append(b"%x\r\n" % len(data))
                self._out.append(data)
                self._out.append(b"\r\n")
            elif length is None:
                self._out.append(data)
            elif len(data) > length:
                raise LocalProtocolError("Too much data for declared Content-Length")
            else:
                self._send_length = length - len(data)
                self._out.append(data)
        if end_stream:
            self._send_end([])
        exchange.send.data(end_stream=end_stream)
        if end_stream:
            self._maybe_next_cycle()

    def _write_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self._send_end(trailers)

    def _send_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        length = self._send_length
        if length == CHUNKED:
            check_fields(trailers)
            self._out.append(write_head(b"0\r\n", trailers))
        elif trailers:
            raise LocalProtocolError("trailers need chunked framing (no Content-Length, HTTP/1.1)")
        elif length:
            raise LocalProtocolError("Too little data for declared Content-Length")
        self._sent_end = True

    # -- network -> protocol --------------------------------------------

    def bytes_received(self, data: bytes) -> None:
        if self._end.terminated or not data or self._eof_received:
            return
        if self._tunnel:
            self._tunnel_received(data)
            return
        if len(self._buf) + len(data) > self._max_buffer_size:
            self._terminate(
                self.error_codes.protocol_error,
                f"the peer sent more than {self._max_buffer_size} bytes ahead of the application",
            )
            return
        self._buf += data

    def eof_received(self) -> None:
        if self._end.terminated or self._eof_received:
            return
        self._eof_received = True
        if self._tunnel:
            self._tunnel_eof()

    # -- internals --------------------------------------------------------

    def _input_buffered(self) -> bool:
        return bool(len(self._buf))

    def _pull(self) -> None:
        """Translate what is buffered into events, one message per exchange (as h11 reads)."""
        try:
            while not self._end.terminated and not self._tunnel:
                reading = self._reading
                if reading is _HEAD:
                    if not self._read_head():
                        break
                elif reading is _LENGTH or reading is _UNTIL_CLOSE:
                    if not self._read_body():
                        break
                elif reading is _CHUNKED:
                    if not self._read_chunks():
                        break
                else:
                    self._check_done()
                    break
        except Refused as exc:
            self._refuse(exc.status, str(exc))
        except h11.LocalProtocolError as exc:  # from the checks shared with the h11 implementation
            self._refuse(exc.error_status_hint, str(exc))

    def _read_head(self) -> bool:
        buf = self._buf
        data = buf._data
        if not self._client and self._exchange is not None:
            return False  # a request's head waits for the exchange before it
        if data[:1] and (data[0] < 0x21 if not self._client else data[:2] == b"\r\n"):
            raise Refused("illegal request line" if not self._client else "no response line received")
        if not block_complete(data, "head", may_be_empty=False):
            if len(data) > self._max_header_size:
                raise Refused("Receive buffer too long", 431)
            if self._eof_received:
                if data:
                    raise Refused("peer unexpectedly closed connection")
                self._terminate(0, "connection closed by the peer")
            elif self._client and data and self._exchange is None:
                raise Refused("the server sent data without a request")
            return False
        end = data.find(b"\r\n\r\n") + 4
        head = parse_head(bytes(data[:end]), client=self._client)
        buf._extract(end)
        # Each field took at least its name, value and four bytes of the head.
        size = sum(len(n) + len(v) + 4 for n, v in head.fields) if end > self._max_header_size else 0
        if size > self._max_header_size:
            raise Refused(
                f"the peer sent {size} bytes of headers, over {self._max_header_size}",
                431 if not self._client else 400,
            )
        if self._client:
            self._on_response(head)
        else:
            self._on_request(head)
        return True

    def _on_request(self, head: Head) -> None:
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        self._their_version = head.version
        self._keep_alive = self._keep_alive and head.keep_alive
        self._upgrade = head.upgrade
        self._exchange = exchange = Exchange(stream_id, head.method)
        headers = request_headers(head.method, head.target, head.fields, self._scheme)
        # A CONNECT stream stays open for the tunnel after its empty body.
        connect = head.method == b"CONNECT"
        if head.length == 0 and not connect:
            # Most requests: the end folds into the headers at once.
            exchange.receive.headers(HeaderKind.REQUEST, end_stream=True)
            self._events.append(HeadersReceived(stream_id, headers, end_stream=True))
            self._reading = _DONE
            self._received_end = True
            self._maybe_next_cycle()
            return
        exchange.receive.headers(HeaderKind.REQUEST, end_stream=False)
        self._events.append(HeadersReceived(stream_id, headers))
        self._mergeable = not connect
        assert head.length is not None  # a request has a length
        self._start_body(head.length)

    def _on_response(self, head: Head) -> None:
        exchange = self._exchange
        if exchange is None:
            raise Refused("the server sent a response without a request")
        status = head.status
        if status == 101 and not self._upgrade:
            raise Refused("the server switched protocols without Upgrade")
        headers = [(b":status", b"%d" % status), *head.fields]
        self._events.append(HeadersReceived(exchange.stream_id, headers))
        if status < 200:
            self._mergeable = False
            if status == 101:
                self._enter_tunnel()
            return
        self._keep_alive = self._keep_alive and head.keep_alive
        exchange.receive.headers(HeaderKind.RESPONSE, end_stream=False)
        self._mergeable = True
        if exchange.method == b"CONNECT" and 200 <= status < 300:
            self._mergeable = False
            self._enter_tunnel()
            return
        no_body = status in (204, 304) or exchange.method == b"HEAD"
        self._start_body(0 if no_body else head.length)

    def _start_body(self, length: int | None) -> None:
        if length == CHUNKED:
            self._reading = _CHUNKED
            self._chunks = StrictChunkedReader()
        elif length is None:
            self._reading = _UNTIL_CLOSE
            self._keep_alive = False
        elif length:
            self._reading = _LENGTH
            self._remaining = length
        else:
            self._end_of_message([])

    def _read_body(self) -> bool:
        exchange = self._exchange
        assert exchange is not None
        data = self._buf._data
        if data:
            count = self._remaining if self._reading is _LENGTH else len(data)
            with memoryview(data) as view:
                chunk = bytes(view[:count])
            self._buf._extract(len(chunk))
            self._events.append(DataReceived(exchange.stream_id, chunk))
            exchange.receive.data(end_stream=False)
            self._mergeable = True
            if self._reading is _LENGTH:
                self._remaining -= len(chunk)
                if not self._remaining:
                    self._end_of_message([])
            return True
        if self._eof_received:
            if self._reading is _UNTIL_CLOSE:
                self._end_of_message([])
                return True
            self._terminate(0, "connection closed by the peer: the body is incomplete")
        return False

    def _read_chunks(self) -> bool:
        exchange = self._exchange
        assert exchange is not None and self._chunks is not None
        try:
            event: Any = self._chunks(self._buf)
            if event is None and self._eof_received and not self._buf:
                self._chunks.read_eof()
        except h11.RemoteProtocolError:
            self._terminate(0, "connection closed by the peer: the chunked body is incomplete")
            return False
        if event is None:
            if len(self._buf) > self._max_header_size:
                raise Refused("Receive buffer too long", 431)
            if self._eof_received:
                raise Refused("peer unexpectedly closed connection")
            return False
        if isinstance(event, h11.Data):
            self._events.append(DataReceived(exchange.stream_id, bytes(event.data)))
            exchange.receive.data(end_stream=False)
            self._mergeable = True
            return True
        trailers = [(bytes(n), bytes(v)) for n, v in event.headers]
        size = sum(len(n) + len(v) + 4 for n, v in trailers)
        if size > self._max_header_size:
            raise Refused(f"the peer sent {size} bytes of headers, over {self._max_header_size}")
        self._end_of_message(trailers)
        return True

    def _end_of_message(self, trailers: list[tuple[bytes, bytes]]) -> None:
        exchange = self._exchange
        assert exchange is not None
        self._reading = _DONE
        self._chunks = None
        self._received_end = True
        self._queue_end_of_message(exchange, trailers)
        self._maybe_next_cycle()

    def _check_done(self) -> None:
        """In a finished message, with the exchange not yet done: only EOF may come (or data when keep-alive)."""
        if self._buf:
            if not self._keep_alive:
                raise Refused("Got data when expecting EOF")
        elif self._eof_received:
            self._terminate(0, "connection closed by the peer")

    def _maybe_next_cycle(self) -> None:
        if self._sent_end and self._received_end and self._keep_alive:
            self._exchange = None
            if not self._closing:
                self._reading = _HEAD
                self._sent_end = self._received_end = self._upgrade = False
                self._send_length = 0

    def _enter_tunnel(self) -> None:
        if self._tunnel:
            return
        self._tunnel = True
        exchange = self._exchange
        if exchange is not None:
            exchange.receive.reopen()
            if self._client:
                exchange.send.reopen()  # after an Upgrade request ended: the tunnel's bytes are ours to send
        data = bytes(self._buf)
        self._buf._extract(len(data))
        if data and exchange is not None:
            self._events.append(DataReceived(exchange.stream_id, data))
        if self._eof_received:
            self._tunnel_eof()

    def _try_error_response(self, status: int) -> None:
        exchange = self._exchange
        if self._client or (exchange is not None and exchange.send.started) or self._sent_end:
            return
        fields = [(b"content-length", b"0"), (b"Connection", b"close")]
        self._out.append(write_head(b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status)), fields))
        self._sent_end = True
        self._keep_alive = False

    def _refuse(self, status: int, message: str) -> None:
        if not self._client:
            self._try_error_response(status)
        self._terminate(status, f"the peer broke HTTP/1.1: {message}")


class _HTTPToolsFactory(HTTP1FactoryBase):
    _client: bool

    def __call__(
        self, *, tls_version: str | None = None, alpn_protocol: str | None = None
    ) -> HTTPToolsProtocol:
        return HTTPToolsProtocol(
            client=self._client,
            scheme="http" if tls_version is None else "https",
            max_header_size=self.max_header_size,
            max_buffer_size=self.max_buffer_size,
        )


class HTTPToolsClientFactory(_HTTPToolsFactory):
    """Creates client-side HTTP/1.1 protocols on httptools (the ``speedups`` extra).

    Registered as ``"httptools"`` in :data:`.protocol_registry` ``.http1_clients``.

    Implements :class:`.HTTPOverTCPFactory`.

    :param max_header_size: the largest status line and header block accepted, in bytes
    :param max_buffer_size: the most unparsed input held, in bytes
    """

    _client = True


class HTTPToolsServerFactory(_HTTPToolsFactory):
    """Creates server-side HTTP/1.1 protocols on httptools (the ``speedups`` extra).

    Registered as ``"httptools"`` in :data:`.protocol_registry` ``.http1_servers``;
    received requests carry ``:scheme`` ``https`` when the connection uses TLS.

    Implements :class:`.HTTPOverTCPFactory`.

    :param max_header_size: the largest request line and header block accepted, in bytes
    :param max_buffer_size: the most unparsed input held, in bytes
    """

    _client = False
