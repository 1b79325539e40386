"""What every HTTP/1.1 implementation shares: limits, the exchange, the event rules, translations.

Theory of operation
-------------------

An HTTP/1.1 implementation (h11 in ``_protocol.py``, httptools in
``_httptools.py``) differs only in how it reads and writes the wire. What the
application sees is the same, and lives here:

* :class:`Exchange` is the one stream at a time, numbered 1, 3, 5, ...;
* :class:`HTTP1Base` holds the state every implementation keeps (the event
  queue, the outgoing bytes, the tunnel, the end of the connection) and the
  methods that never touch the wire: stream checks, resets, draining, the
  send window, the tunnel's half-close, and folding an end of message into
  the event before it (:meth:`HTTP1Base._queue_end_of_message`);
* :func:`request_parts` and :func:`request_headers` translate between
  HTTP/2-style headers and the request line with ``Host``;
  :func:`response_fields` adds what a response needs for its framing.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from http import HTTPStatus
from typing import cast
from urllib.parse import urlsplit

from ..._typing import HeadersType
from ...errors import LocalProtocolError
from ...events import DataReceived, Event, HeadersReceived, StreamResetSent
from .._headers import HeaderError, HeaderKind, validate_headers
from .._message import StreamState, Termination, server_cannot_open
from .._protocols import HTTP1Protocol

__all__ = [
    "DEFAULT_MAX_BUFFER_SIZE",
    "DEFAULT_MAX_HEADER_SIZE",
    "UNLIMITED_WINDOW",
    "Exchange",
    "check_sent_values",
    "HTTP1Base",
    "reason_phrase",
    "request_headers",
    "request_parts",
    "response_fields",
]

#: Largest request or status line plus header block we accept, in bytes
#: (h11's default; the same order as common servers' 8-16 KiB limits).
DEFAULT_MAX_HEADER_SIZE = 16 * 1024

#: Most unparsed input kept while the application has not taken events, in
#: bytes. More means the peer sends far ahead of us (for example pipelining
#: requests without end); the connection is then closed rather than buffered.
DEFAULT_MAX_BUFFER_SIZE = 1024 * 1024

#: HTTP/1.1 has no flow control: the send window is reported as this.
UNLIMITED_WINDOW = 2**62

FIRST_STREAM_ID = 1


class Exchange(StreamState):
    """The request/response exchange in progress: HTTP/1.1's one stream at a time."""

    __slots__ = ("method",)

    def __init__(self, stream_id: int, method: bytes) -> None:
        super().__init__(stream_id)
        #: The request method, which decides how the response is framed.
        self.method = method


class HTTP1Base(HTTP1Protocol):
    """The wire-independent half of an HTTP/1.1 protocol; subclasses read and write the wire."""

    def __init__(self, *, client: bool, scheme: str, max_header_size: int, max_buffer_size: int) -> None:
        self._client = client
        self._scheme = scheme.encode("ascii")
        self._max_buffer_size = max_buffer_size
        self._max_header_size = max_header_size
        self._events: deque[Event] = deque()
        # Output waiting to be taken, as the pieces made: a body piece of known
        # length goes out as the same bytes object, never copied here.
        self._out: list[bytes | bytearray] = []
        self._next_stream_id = FIRST_STREAM_ID
        # The exchange in progress, if any; it goes when both messages are done.
        self._exchange: Exchange | None = None
        # Whether the last queued event may take a following end of message.
        self._mergeable = False
        self._tunnel = False
        self._eof_to_send = False
        self._eof_received = False
        self._end = Termination()
        self._closing = False

    @abstractmethod
    def _pull(self) -> None:
        """Translate what is buffered into events (called when the queue is empty)."""

    @abstractmethod
    def _try_error_response(self, status: int) -> None:
        """Queue an error response with *status* if no response has started."""

    @abstractmethod
    def _send_request(self, stream_id: int, headers: HeadersType, end_stream: bool) -> None:
        """Write a client's request head (and its end, with *end_stream*) and open the exchange."""

    @abstractmethod
    def _send_response(self, exchange: Exchange, headers: HeadersType, end_stream: bool) -> None:
        """Write a server's response head, informational or final."""

    @abstractmethod
    def _write_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        """Write the end of our message with these (checked) trailers."""

    @abstractmethod
    def _maybe_next_cycle(self) -> None:
        """Forget the exchange once both messages are done, and get ready for the next."""

    def get_available_stream_id(self) -> int:
        if not self._client:
            raise server_cannot_open("1")
        if not self.is_available():
            raise LocalProtocolError("this HTTP/1 connection cannot start a request now")
        return self._next_stream_id

    def submit_headers(self, stream_id: int, headers: HeadersType, end_stream: bool = False) -> None:
        if self._client and self._exchange is None:
            self._end.check_open()
            if stream_id != self._next_stream_id or not self.is_available():
                raise LocalProtocolError(
                    f"cannot open stream {stream_id}; get an ID from get_available_stream_id()"
                )
            self._send_request(stream_id, headers, end_stream)
            return
        exchange = self._check_stream(stream_id)
        if exchange.send.next_block(HeaderKind.RESPONSE) is HeaderKind.TRAILERS:
            self._send_trailers(exchange, headers, end_stream)
        else:
            # A client's exchange starts with its request: it is past that.
            assert not self._client
            self._send_response(exchange, headers, end_stream)

    def _send_trailers(self, exchange: Exchange, headers: HeadersType, end_stream: bool) -> None:
        exchange.send.check_headers(HeaderKind.TRAILERS, end_stream=end_stream)
        if self._tunnel:
            raise LocalProtocolError("a tunnel has no trailers")
        try:
            _, regular = validate_headers(headers, HeaderKind.TRAILERS, multiplexed=False)
        except HeaderError as exc:
            raise LocalProtocolError(str(exc)) from None
        self._write_trailers(regular)
        exchange.send.headers(HeaderKind.TRAILERS, end_stream=True)
        self._maybe_next_cycle()

    def eof_to_send(self) -> bool:
        """Whether the transport should now send EOF (a tunnel's half-close).

        Returns ``True`` once, after the application ended its side of a
        CONNECT or Upgrade tunnel.
        """
        if self._eof_to_send:
            self._eof_to_send = False
            return True
        return False

    def _check_stream(self, stream_id: int) -> Exchange:
        self._end.check_open()
        exchange = self._exchange
        if exchange is None or stream_id != exchange.stream_id:
            raise LocalProtocolError(f"stream {stream_id} is not open on this HTTP/1 connection")
        return exchange

    def get_send_window(self, stream_id: int) -> int:
        exchange = self._check_stream(stream_id)
        if not exchange.send.in_body:
            raise LocalProtocolError(f"stream {stream_id} cannot take data now")
        if self._client and exchange.method == b"CONNECT" and not self._tunnel:
            return 0  # until the proxy's 2xx opens the tunnel
        return UNLIMITED_WINDOW

    def submit_stream_reset(self, stream_id: int, error_code: int = 0) -> None:
        self._check_stream(stream_id)
        self._events.append(StreamResetSent(stream_id, error_code))
        self._terminate(error_code, "an HTTP/1 stream reset closes the connection")

    def submit_close(self, error_code: int = 0) -> None:
        if self._end.terminated:
            return
        exchange = self._exchange
        if exchange is not None and not self._client and not exchange.send.started and error_code:
            # A server closing on error answers the request it has (RFC 9110 section 15.6).
            self._try_error_response(error_code if 400 <= error_code < 600 else 500)
        self._terminate(error_code, "closed by the application")

    def submit_goaway(self) -> None:
        """HTTP/1.1 has no GOAWAY: close after the exchange in progress (see :meth:`start_draining`)."""
        self.start_draining()

    def start_draining(self) -> None:
        """Ask to close the connection after the exchange in progress.

        A server adds ``Connection: close`` to its next response; the
        connection then reports :meth:`~.HTTPProtocol.has_expired`.
        """
        self._closing = True

    def connection_lost(self) -> None:
        if not self._end.terminated:
            complete = self._exchange is None
            self._terminate(0, "connection lost" if complete else "connection lost during an exchange")

    def has_output(self) -> bool:
        return bool(self._out) or self._eof_to_send

    def output_may_release_events(self) -> bool:
        # An event comes from input only: one queued, input buffered behind
        # the exchange in progress (pipelined), or the peer's end. Finishing
        # our message with none of them makes none.
        return bool(self._events) or self._eof_received or self._end.terminated or self._input_buffered()

    @abstractmethod
    def _input_buffered(self) -> bool:
        """Whether received bytes wait unparsed (behind the exchange in progress)."""

    def bytes_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        self._out = []
        if len(out) == 1 and type(out[0]) is bytes:
            return out[0]
        return b"".join(out)

    def buffers_to_send(self) -> list[bytes | bytearray]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        if not self._events and not self._end.terminated and not self._tunnel:
            self._pull()
        if self._events:
            return self._events.popleft()
        return None

    def _tunnel_received(self, data: bytes) -> None:
        exchange = self._exchange
        if exchange is not None and not exchange.receive.ended:
            self._events.append(DataReceived(exchange.stream_id, bytes(data)))

    def _tunnel_eof(self) -> None:
        exchange = self._exchange
        if exchange is not None and not exchange.receive.ended:
            exchange.receive.end()
            self._events.append(DataReceived(exchange.stream_id, b"", end_stream=True))
        if exchange is not None and exchange.send.ended:
            self._terminate(0, "tunnel closed")

    def _queue_end_of_message(self, exchange: Exchange, trailers: list[tuple[bytes, bytes]]) -> None:
        """Report the end of the peer's message: as trailers, folded into the event before, or as empty data."""
        exchange.receive.end()
        if trailers:
            self._events.append(HeadersReceived(exchange.stream_id, trailers, end_stream=True))
        elif (
            self._mergeable and self._events and isinstance(self._events[-1], (HeadersReceived, DataReceived))
        ):
            last = cast("HeadersReceived | DataReceived", self._events.pop())
            # Built anew where the class is known (dataclasses.replace costs several times more).
            if type(last) is HeadersReceived:
                self._events.append(HeadersReceived(last.stream_id, last.headers, end_stream=True))
            elif type(last) is DataReceived:
                self._events.append(DataReceived(last.stream_id, last.data, end_stream=True))
            else:
                self._events.append(replace(last, end_stream=True))
        elif exchange.method != b"CONNECT" or self._client:
            self._events.append(DataReceived(exchange.stream_id, b"", end_stream=True))
        self._mergeable = False

    def _end_tunnel_send(self, exchange: Exchange) -> None:
        exchange.send.end()
        self._eof_to_send = True
        if exchange.receive.ended:
            self._terminate(0, "tunnel closed")

    def _terminate(self, error_code: int, message: str) -> None:
        event = self._end.terminate(error_code, message)
        if event is not None:
            self._events.append(event)


def request_parts(headers: HeadersType, end_stream: bool) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    """Translate a request's HTTP/2-style headers into its method, target and fields (``Host`` first).

    :raises LocalProtocolError: if the headers are not a valid HTTP/1.1 request
    """
    try:
        pseudo, regular = validate_headers(headers, HeaderKind.REQUEST, multiplexed=False)
    except HeaderError as exc:
        raise LocalProtocolError(str(exc)) from None
    method = pseudo[b":method"]
    authority = pseudo.get(b":authority")
    if method == b"CONNECT" and b":protocol" not in pseudo:
        assert authority is not None  # validate_headers requires it
        target = authority
    else:
        if b":protocol" in pseudo:
            raise LocalProtocolError("extended CONNECT (:protocol) is not available in HTTP/1.1")
        target = pseudo[b":path"]
    fields: list[tuple[bytes, bytes]] = []
    if authority is not None:
        fields.append((b"host", authority))
        regular = [(n, v) for n, v in regular if n.lower() != b"host"]
    fields.extend(regular)
    names = {n.lower() for n, _ in regular}
    if (
        not end_stream
        and method != b"CONNECT"
        and b"content-length" not in names
        and b"transfer-encoding" not in names
    ):
        # A body of unknown length needs chunked framing (RFC 9112 section 6).
        fields.append((b"transfer-encoding", b"chunked"))
    return method, target, fields


def request_headers(
    method: bytes, target: bytes, fields: list[tuple[bytes, bytes]], scheme: bytes
) -> list[tuple[bytes, bytes]]:
    """Translate a request line and its (lower-case) fields into HTTP/2-style headers."""
    host = next((v for n, v in fields if n == b"host"), None)
    fields = [(n, v) for n, v in fields if n != b"host"]
    headers: list[tuple[bytes, bytes]] = [(b":method", method)]
    if method == b"CONNECT":
        headers.append((b":authority", target))
    else:
        authority, path = host, target
        if not target.startswith(b"/") and target != b"*" and b"://" in target:
            # absolute-form (RFC 9112 section 3.2.2): the target wins over Host
            parts = urlsplit(target)
            scheme, authority = parts.scheme, parts.netloc
            path = (parts.path or b"/") + (b"?" + parts.query if parts.query else b"")
        headers.append((b":scheme", scheme))
        if authority is not None:
            headers.append((b":authority", authority))
        headers.append((b":path", path))
    headers.extend(fields)
    return headers


def response_fields(
    method: bytes, status: int, regular: list[tuple[bytes, bytes]], *, end_stream: bool, closing: bool
) -> list[tuple[bytes, bytes]]:
    """The fields of a final response: ``Content-Length: 0`` for one that ends at once, ``Connection: close`` when draining."""
    connect_ok = method == b"CONNECT" and 200 <= status < 300
    if end_stream and not connect_ok and method != b"HEAD" and status not in (204, 304):
        names = {n.lower() for n, _ in regular}
        if b"content-length" not in names and b"transfer-encoding" not in names:
            regular = [*regular, (b"content-length", b"0")]
    if closing:
        regular = [*regular, (b"connection", b"close")]
    return regular


#: The standard reason phrase of each status code (an enum lookup per response cost more).
_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}

#: What HTTP/1.1 refuses in a field value we send beyond what validate_headers
#: refuses (CR, LF, NUL, surrounding whitespace): the other white space
#: controls, VT and FF (RFC 9110 section 5.5 allows neither; h11 refuses them).
_VT_FF = re.compile(rb"[\x0b\x0c]")


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase of *status*, or nothing."""
    return _REASONS.get(status, b"")


def check_sent_values(fields: Sequence[tuple[bytes, bytes]]) -> None:
    """Refuse fields to send whose values hold VT or FF (every other rule is validate_headers').

    :raises LocalProtocolError: naming the field
    """
    search = _VT_FF.search
    for name, value in fields:
        if search(value):
            raise LocalProtocolError(f"illegal character in the value of header {name!r}")
