"""HTTP/1.1 on h11, translated to and from the common HTTP/2-style event model.

Theory of operation
-------------------

h11 parses lazily: ``bytes_received`` only appends to h11's buffer, and
:meth:`HTTP1ProtocolImpl.next_event` pulls h11 events and translates them.
Each request/response exchange is one "stream", numbered 1, 3, 5, ... as
HTTP/2 numbers client streams, so code written for multiplexed versions
works unchanged (one stream at a time).

Translation:

* a request line and ``Host`` become ``:method``, ``:scheme``,
  ``:authority``, ``:path`` (absolute-form targets are split; a CONNECT
  target is the ``:authority``); a status line becomes ``:status``;
* h11's ``Data`` followed at once by ``EndOfMessage`` becomes one
  :class:`~trio_hface.events.DataReceived` with ``end_stream``; an
  ``EndOfMessage`` with trailers becomes a
  :class:`~trio_hface.events.HeadersReceived` with ``end_stream``;
* a successful CONNECT (2xx) or Upgrade (101) turns the stream into a
  tunnel: raw bytes in both directions are DATA of that stream, and our
  ``end_stream`` asks the transport for a half-close (:meth:`eof_to_send`).

Framing is strict (``_framing.py``): a message whose length two parsers
could read differently (``Content-Length`` with ``Transfer-Encoding``,
obs-fold, bare LF, oversized or malformed chunk lines) is refused before the
application sees it, so no request can be smuggled past a proxy in front.

Errors: what the peer breaks ends the connection with
:class:`~trio_hface.events.ConnectionTerminated` (its ``error_code`` is the
status h11 suggests); a server also queues that error response when h11 still
lets it. A peer that closes or loses the connection early, mid-message
included, ends it with error code 0: nothing it sent was wrong. HTTP/1.1 cannot reset a stream, so a reset closes the connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import h11
from h11 import _readers  # ContentLengthReader: its count is kept by _body_received

from ..._typing import HeadersType
from ...errors import FlowControlError, LocalProtocolError
from ...events import DataReceived, HeadersReceived
from .._headers import HeaderError, HeaderKind, validate_headers
from ._common import (
    DEFAULT_MAX_BUFFER_SIZE,
    DEFAULT_MAX_HEADER_SIZE,
    UNLIMITED_WINDOW,
    Exchange,
    HTTP1Base,
    check_sent_values,
    reason_phrase,
    request_headers,
    request_parts,
    response_fields,
)
from ._framing import StrictChunkedReader, StrictConnection

#: Events of body data that bytes_received queues past h11 while the
#: application has not taken them; beyond that, data goes through h11 (and
#: its buffer limit) again.
MAX_QUEUED_PIECES = 16

__all__ = ["DEFAULT_MAX_BUFFER_SIZE", "DEFAULT_MAX_HEADER_SIZE", "UNLIMITED_WINDOW", "HTTP1ProtocolImpl"]


class HTTP1ProtocolImpl(HTTP1Base):
    """HTTP/1.1 on h11.

    Create instances with :class:`.HTTP1ClientFactory` or :class:`.HTTP1ServerFactory`.

    Implements :class:`.HTTP1Protocol`.

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
        self._h11 = StrictConnection(
            h11.CLIENT if client else h11.SERVER, max_incomplete_event_size=max_header_size
        )
        # Whether h11 may have an event to give: not after it said it needs
        # data (or is paused), until it is given data or its states change
        # (we send, a cycle starts). Asking it again before that costs a
        # parse attempt and gives nothing.
        self._h11_changed = True

    # -- state ------------------------------------------------------------

    def is_available(self) -> bool:
        return (
            self._client
            and not self.has_expired()
            and self._exchange is None
            and self._h11.our_state is h11.IDLE
        )

    def has_expired(self) -> bool:
        return (
            self._end.terminated
            or self._closing
            or self._h11.our_state in (h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)
            or self._h11.their_state in (h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)
        )

    # -- application -> protocol -----------------------------------------

    def _send_request(self, stream_id: int, headers: HeadersType, end_stream: bool) -> None:
        request = _request_to_h11(headers, end_stream)
        method = bytes(request.method)
        self._h11_send(request)
        self._exchange = exchange = Exchange(stream_id, method)
        self._next_stream_id += 2
        if method == b"CONNECT" or end_stream:
            # A CONNECT request itself has no body; the tunnel opens with a 2xx.
            self._h11_send(h11.EndOfMessage())
        exchange.send.headers(HeaderKind.REQUEST, end_stream=end_stream)

    def _send_response(self, exchange: Exchange, headers: HeadersType, end_stream: bool) -> None:
        try:
            pseudo, regular = validate_headers(headers, HeaderKind.RESPONSE, multiplexed=False)
        except HeaderError as exc:
            raise LocalProtocolError(str(exc)) from None
        status = int(pseudo[b":status"])
        reason = reason_phrase(status)
        if status < 200:
            exchange.send.check_headers(HeaderKind.RESPONSE, end_stream=end_stream, informational=True)
            if status == 101 and self._h11.their_state is not h11._state.MIGHT_SWITCH_PROTOCOL:
                raise LocalProtocolError("101 Switching Protocols needs a request with Upgrade")
            check_sent_values(regular)
            # _parsed: validate_headers and check_sent_values checked what h11 would.
            self._h11_send(
                h11.InformationalResponse(status_code=status, headers=regular, reason=reason, _parsed=True)
            )
            if status == 101:
                # The exchange ends in its switch: our bytes from now on are the tunnel's.
                exchange.send.headers(HeaderKind.RESPONSE, end_stream=False)
                self._enter_tunnel()
            return
        regular = response_fields(
            exchange.method, status, regular, end_stream=end_stream, closing=self._closing
        )
        check_sent_values(regular)
        # _parsed: validate_headers and check_sent_values checked what h11 would
        # (its framing rules for Content-Length and Transfer-Encoding still run).
        self._h11_send(h11.Response(status_code=status, headers=regular, reason=reason, _parsed=True))
        if self._h11.our_state is h11.SWITCHED_PROTOCOL:
            exchange.send.headers(HeaderKind.RESPONSE, end_stream=False)
            self._enter_tunnel()
            if end_stream:
                self._end_tunnel_send(exchange)
            return
        if end_stream:
            self._h11_send(h11.EndOfMessage())
        exchange.send.headers(HeaderKind.RESPONSE, end_stream=end_stream)
        if end_stream:
            self._maybe_next_cycle()

    def _write_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self._h11_send(h11.EndOfMessage(headers=trailers))

    def submit_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        exchange = self._check_stream(stream_id)
        exchange.send.check_data()
        if self._tunnel:
            if data:
                self._out.append(bytes(data))
            if end_stream:
                self._end_tunnel_send(exchange)
            return
        if self._client and exchange.method == b"CONNECT":
            raise FlowControlError("a CONNECT tunnel takes data once the proxy accepted it")
        if data:
            self._h11_send(h11.Data(data=data))
        if end_stream:
            self._h11_send(h11.EndOfMessage())
        exchange.send.data(end_stream=end_stream)
        if end_stream:
            self._maybe_next_cycle()

    # -- network -> protocol --------------------------------------------

    def bytes_received(self, data: bytes) -> None:
        if self._end.terminated or not data:
            return
        if self._tunnel:
            exchange = self._exchange
            if exchange is not None and not exchange.receive.ended:
                self._events.append(DataReceived(exchange.stream_id, bytes(data)))
            return
        if self._body_received(data):
            return
        buffered = len(self._h11._receive_buffer)  # (trailing_data would copy it)
        if buffered + len(data) > self._max_buffer_size:
            self._terminate(
                self.error_codes.protocol_error,
                f"the peer sent more than {self._max_buffer_size} bytes ahead of the application",
            )
            return
        self._h11_changed = True
        try:
            self._h11.receive_data(data)
        except h11.RemoteProtocolError as exc:
            self._remote_error(exc)

    def eof_received(self) -> None:
        if self._end.terminated or self._eof_received:
            return
        self._eof_received = True
        if self._tunnel:
            self._tunnel_eof()
            return
        self._h11_changed = True
        try:
            self._h11.receive_data(b"")
        except h11.RemoteProtocolError as exc:
            self._remote_error(exc)

    # -- internals --------------------------------------------------------

    def _input_buffered(self) -> bool:
        return bool(len(self._h11._receive_buffer))

    def _body_received(self, data: bytes) -> bool:
        """Take *data* as body bytes, past h11, if all of it is body that does not end the message.

        h11 would copy it into its buffer, out of it, and into bytes again;
        this hands the very object on. Only where h11 has nothing buffered,
        reads a body (of known length, or a chunk of ours) and would return
        all of *data* as one ``Data``: then the result is the same, and the
        reader's count is kept as h11 would. What ends the body (the last
        bytes, a chunk's CRLF) still goes through h11. Returns whether it did.
        """
        exchange = self._exchange
        if (
            exchange is None
            or len(self._events) >= MAX_QUEUED_PIECES
            or self._h11.their_state is not h11.SEND_BODY
            or len(self._h11._receive_buffer)
        ):
            return False
        reader = self._h11._reader
        if isinstance(reader, _readers.ContentLengthReader):
            if len(data) >= reader._remaining:
                return False
            reader._remaining -= len(data)
        elif isinstance(reader, StrictChunkedReader):
            if not reader.takes_whole(len(data)):
                return False
        else:
            return False
        self._events.append(DataReceived(exchange.stream_id, data))
        exchange.receive.data(end_stream=False)
        self._mergeable = True
        return True

    def _h11_send(self, event: h11.Event) -> None:
        self._h11_changed = True
        try:
            # The pieces as h11 writes them: a body stays the object it was
            # handed (h11's send() would join it with the chunk framing).
            pieces = self._h11.send_with_data_passthrough(event)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(str(exc)) from None
        if pieces:
            self._out.extend(piece for piece in pieces if piece)

    def _pull(self) -> None:
        """Translate what h11 has buffered into our events.

        Pulls until h11 needs data, so that an ``EndOfMessage`` right after
        headers or data folds into that event's ``end_stream``. What is
        pulled is bounded by h11's buffer, which ``bytes_received`` bounds.
        Nothing is asked of h11 while nothing changed since it last needed data.
        """
        if not self._h11_changed:
            return
        while not self._end.terminated and not self._tunnel:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._remote_error(exc)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                self._h11_changed = False
            if event is h11.NEED_DATA:
                if self._eof_received and self._h11.their_state is not h11.CLOSED:
                    self._terminate(0, "connection closed by the peer")
                return
            if event is h11.PAUSED:
                if h11.SWITCHED_PROTOCOL in (self._h11.their_state, self._h11.our_state):
                    self._enter_tunnel()
                return
            self._translate(cast(h11.Event, event))

    def _translate(self, event: h11.Event) -> None:
        # h11's events are exact classes under an ABC: the type is compared, not
        # isinstance()d (each isinstance() against an ABC subclass is a slow check).
        kind = type(event)
        if kind in _EVENTS_WITH_FIELDS:
            size = _fields_size(cast(_EventWithFields, event).headers)
            if size > self._max_header_size:
                # h11 checks only blocks that arrive in pieces; check complete ones too.
                status = 431 if kind is h11.Request else 400
                if not self._client:
                    self._try_error_response(status)
                self._terminate(
                    status, f"the peer sent {size} bytes of headers, over {self._max_header_size}"
                )
                return
        if kind is h11.Request:
            self._on_request(cast(h11.Request, event))
            return
        if kind is h11.ConnectionClosed:
            self._terminate(0, "connection closed by the peer")
            return
        exchange = self._exchange
        if exchange is None:
            # h11 lets a server answer before any request (with an error); our client asked nothing.
            self._terminate(400, "the peer broke HTTP/1.1: a response without a request")
            return
        if kind is h11.Data:
            data = cast(h11.Data, event).data
            self._events.append(DataReceived(exchange.stream_id, bytes(data)))
            exchange.receive.data(end_stream=False)
            self._mergeable = True
        elif kind is h11.EndOfMessage:
            self._on_end_of_message(exchange, cast(h11.EndOfMessage, event))
        elif kind is h11.InformationalResponse:
            informational = cast(h11.InformationalResponse, event)
            headers = [(b":status", str(informational.status_code).encode()), *_fields(informational.headers)]
            self._events.append(HeadersReceived(exchange.stream_id, headers))
            self._mergeable = False
            if informational.status_code == 101 and self._h11.our_state is h11.SWITCHED_PROTOCOL:
                self._enter_tunnel()
        elif kind is h11.Response:
            response = cast(h11.Response, event)
            headers = [(b":status", str(response.status_code).encode()), *_fields(response.headers)]
            self._events.append(HeadersReceived(exchange.stream_id, headers))
            exchange.receive.headers(HeaderKind.RESPONSE, end_stream=False)
            self._mergeable = True
            if self._h11.our_state is h11.SWITCHED_PROTOCOL:
                self._mergeable = False
                self._enter_tunnel()

    def _on_request(self, event: h11.Request) -> None:
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        method = bytes(event.method)
        self._exchange = exchange = Exchange(stream_id, method)
        exchange.receive.headers(HeaderKind.REQUEST, end_stream=False)
        self._events.append(HeadersReceived(stream_id, _request_from_h11(event, self._scheme)))
        # A CONNECT stream stays open for the tunnel after its empty body.
        self._mergeable = method != b"CONNECT"

    def _on_end_of_message(self, exchange: Exchange, event: h11.EndOfMessage) -> None:
        self._queue_end_of_message(exchange, _fields(event.headers))
        self._maybe_next_cycle()

    def _maybe_next_cycle(self) -> None:
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._exchange = None
            if not self._closing:
                self._h11_changed = True
                try:
                    self._h11.start_next_cycle()
                except h11.LocalProtocolError:  # keep-alive is off
                    pass

    def _enter_tunnel(self) -> None:
        if self._tunnel:
            return
        self._tunnel = True
        exchange = self._exchange
        if exchange is not None:
            exchange.receive.reopen()
            if self._client:
                exchange.send.reopen()  # after an Upgrade request ended: the tunnel's bytes are ours to send
        data, closed = self._h11.trailing_data
        if data and exchange is not None:
            self._events.append(DataReceived(exchange.stream_id, bytes(data)))
        if closed:
            self.eof_received()

    def _try_error_response(self, status: int) -> None:
        self._h11_changed = True
        try:
            data = self._h11.send(
                h11.Response(
                    status_code=status,
                    headers=[(b"content-length", b"0"), (b"connection", b"close")],
                    reason=reason_phrase(status),
                )
            )
            data2 = self._h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return
        self._out.append((data or b"") + (data2 or b""))

    def _remote_error(self, exc: h11.RemoteProtocolError) -> None:
        if self._eof_received and not self._h11.trailing_data[0]:
            # Not what the peer sent, but that it stopped: the connection was
            # closed early (error code 0, as for a connection lost).
            self._terminate(0, f"connection closed by the peer: {exc}")
            return
        status = exc.error_status_hint
        if not self._client:
            self._try_error_response(status)
        self._terminate(status, f"the peer broke HTTP/1.1: {exc}")


def _request_to_h11(headers: HeadersType, end_stream: bool) -> h11.Request:
    """Translate a request's HTTP/2-style headers into h11's request line and fields."""
    method, target, fields = request_parts(headers, end_stream)
    check_sent_values(fields)
    # _parsed: the fields were checked as h11 would (its method, target, Host and
    # framing checks still run).
    return h11.Request(method=method, target=target, headers=fields, _parsed=True)


def _request_from_h11(event: h11.Request, scheme: bytes) -> list[tuple[bytes, bytes]]:
    """Translate h11's request line and fields into HTTP/2-style headers."""
    return request_headers(bytes(event.method), bytes(event.target), _fields(event.headers), scheme)


#: The h11 events that carry fields (a head, or a chunked body's trailers).
_EVENTS_WITH_FIELDS = frozenset({h11.Request, h11.InformationalResponse, h11.Response, h11.EndOfMessage})
_EventWithFields = h11.Request | h11.InformationalResponse | h11.Response | h11.EndOfMessage


def _fields_size(headers: Sequence[tuple[bytes, bytes]]) -> int:
    """The size of h11's fields as the limit counts it: name, value and 4 bytes of framing each."""
    full: list[tuple[bytes, bytes, bytes]] | None = getattr(headers, "_full_items", None)
    if full is None:
        return sum(len(n) + len(v) + 4 for n, v in headers)
    return sum([len(name) + len(value) for _, name, value in full]) + 4 * len(full)


def _fields(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    # h11 lower-cases names (RFC 9110 section 5.1: names are case-insensitive).
    full: list[tuple[bytes, bytes, bytes]] | None = getattr(headers, "_full_items", None)
    if full is None:
        return [(bytes(n), bytes(v)) for n, v in headers]
    return [(bytes(n), bytes(v)) for _, n, v in full]
