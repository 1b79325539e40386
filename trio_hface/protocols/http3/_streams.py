"""HTTP/3 request streams: their state, what QUIC delivers on them, and their resets.

Theory of operation
-------------------

:class:`RequestStreams` owns the state of every request stream
(:class:`_Stream`: the shared :class:`~.._message.StreamState` and what QUIC
adds), the queue of events for the application, and the credit markers among
them (:class:`~._credit.StreamCredit`). The protocol feeds it the QUIC events
of streams; it passes them through the HTTP/3 layer, translates what comes out
and credits the stream bytes:

* bytes of a request stream are credited once every event made from them has
  been handed out: the chunk's size minus what the HTTP/3 layer kept
  unparsed, plus what it released from earlier chunks;
* bytes of the control and QPACK streams are credited as soon as HTTP/3 has
  parsed them;
* bytes that will never reach the application (a stream reset by either side,
  data after STOP_SENDING, a malformed message) are credited at once.

A stream's state lives until both directions are done (our side ended or
reset, and the peer's side delivered to the end or reset); QUIC cannot
deliver anything for the stream after that.
"""

from __future__ import annotations

import logging
from collections import deque

from aioquic.h3.connection import ErrorCode
from aioquic.h3.events import DataReceived as H3DataReceived
from aioquic.h3.events import H3Event
from aioquic.h3.events import HeadersReceived as H3HeadersReceived
from aioquic.quic import events as quic_events
from aioquic.quic.connection import stream_is_unidirectional

from ...errors import LocalProtocolError, StreamResetByPeerError
from ...events import (
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    StreamResetReceived,
    StreamResetSent,
)
from .._headers import HeaderError, HeaderKind, validate_headers
from .._message import Phase, StreamState, Termination
from .._resets import PeerResets
from ._credit import Credit, StreamCredit
from ._h3 import GoawayFrameReceived, HFaceH3Connection
from ._quic import PacedQuicConnection

__all__ = ["RequestStreams"]

log = logging.getLogger(__name__)

# RFC 9114 section 4.2.2 (RFC 6585 section 5): a request whose field section
# is too large is answered 431.
TOO_LARGE_RESPONSE = [(b":status", b"431"), (b"content-length", b"0")]

# No stream rejected (the usual case): nothing to copy.
_NONE_REJECTED: dict[int, str] = {}


class _Stream(StreamState):
    """What we know about one request stream.

    A reset (by either side, or of a malformed message) resets the receiving
    side: nothing more reaches the application. A sending side reset while the
    receiving side is not means the peer stopped it (STOP_SENDING without error).
    """

    __slots__ = ("announced", "held_trailers", "quic_receive_done")

    def __init__(self, stream_id: int, *, announced: bool = False) -> None:
        super().__init__(stream_id)
        #: A HeadersReceived was queued for the application (or we opened it).
        self.announced = announced
        #: Trailers received without the end of the stream yet.
        self.held_trailers: list[tuple[bytes, bytes]] | None = None
        #: QUIC will deliver nothing more on the stream (FIN delivered or reset).
        self.quic_receive_done = False

    @property
    def finished(self) -> bool:
        """Whether the state can go: our side done, and QUIC delivers nothing more."""
        return (self.send.ended or self.is_reset) and self.quic_receive_done


class RequestStreams:
    """The request streams of one HTTP/3 connection and the queue of their events.

    :param client: whether this is the client side
    :param enable_connect_protocol: whether a server accepts extended CONNECT
    """

    def __init__(self, *, client: bool, enable_connect_protocol: bool) -> None:
        self._client = client
        self._enable_connect_protocol = enable_connect_protocol
        self._quic: PacedQuicConnection | None = None
        self._h3: HFaceH3Connection | None = None
        self.streams: dict[int, _Stream] = {}
        self.events: deque[Event | Credit] = deque()
        self.credit = StreamCredit()
        self.end = Termination()
        self.resets = PeerResets()
        #: The highest request stream the peer opened and we process.
        self.highest_peer_stream = -4
        #: The identifier of the GOAWAY we sent or received, if any.
        self.goaway_sent: int | None = None
        self.goaway_received: int | None = None

    def attach(self, quic: PacedQuicConnection, h3: HFaceH3Connection) -> None:
        """Work on this QUIC connection and its HTTP/3 layer (created with the first datagram on a server)."""
        self._quic = quic
        self._h3 = h3
        self.credit.quic = quic

    # -- the queue ----------------------------------------------------------

    def queue(self, item: Event | Credit) -> None:
        """Queue an event or a credit marker; nothing after the connection's end."""
        if not self.end.terminated:
            self.events.append(item)

    def terminate(self, error_code: int, message: str | None) -> None:
        """Report the end of the connection (once)."""
        event = self.end.terminate(error_code, message)
        if event is not None:
            self.events.append(event)

    def next_event(self, *, manual: bool) -> Event | None:
        """Take the next event, applying the credit markers passed on the way."""
        events = self.events
        while events:
            item = events.popleft()
            if isinstance(item, Credit):
                self.credit.passed(item, manual=manual)
                continue
            if manual and isinstance(item, DataReceived):
                self.credit.handed_out(item)
            return item
        return None

    def _credit(self, stream_id: int, count: int, *, later: bool) -> None:
        marker = self.credit.give(stream_id, count, later=later)
        if marker is not None:
            self.queue(marker)

    # -- streams the application submits on ------------------------------------

    def opened(self, stream_id: int) -> _Stream:
        """Create the state of a stream we open (a client's request)."""
        stream = self.streams[stream_id] = _Stream(stream_id, announced=True)
        return stream

    def known(self, stream_id: int) -> _Stream:
        """Return the state of an open stream.

        :raises StreamResetByPeerError: if the peer reset it and it is gone
        :raises LocalProtocolError: if it is unknown or gone
        """
        stream = self.streams.get(stream_id)
        if stream is None:
            code = self.resets.code(stream_id)
            if code is not None:
                raise StreamResetByPeerError(stream_id, code)
            raise LocalProtocolError(f"stream {stream_id} is unknown or closed")
        return stream

    def check_sendable(self, stream: _Stream) -> None:
        """:raises LocalProtocolError: if our side of *stream* cannot take anything more"""
        if stream.is_reset:
            code = self.resets.code(stream.stream_id)
            if code is not None:
                raise StreamResetByPeerError(stream.stream_id, code)
            raise LocalProtocolError(f"stream {stream.stream_id} was reset")
        if stream.send.phase is Phase.RESET:
            raise LocalProtocolError(f"the peer stopped reading stream {stream.stream_id} (STOP_SENDING)")
        if stream.send.ended:
            raise LocalProtocolError(f"stream {stream.stream_id} is already ended")

    def forget_if_finished(self, stream: _Stream) -> None:
        """Drop the state of a stream once nothing more can happen on it."""
        if stream.finished:
            self.streams.pop(stream.stream_id, None)

    # -- QUIC events of streams ------------------------------------------------

    def uni_stream_data(self, event: quic_events.StreamDataReceived) -> None:
        """Data on a control or QPACK stream (which may unblock request streams)."""
        h3 = self._h3
        assert h3 is not None
        # The QPACK encoder stream may unblock request streams: remember what
        # they hold now to credit what they release.
        blocked = h3.blocked_buffers()
        before = h3.buffered(event.stream_id)
        h3_events = h3.handle_event(event)
        self._credit(event.stream_id, len(event.data) + before - h3.buffered(event.stream_id), later=False)
        released = {stream_id: size - h3.buffered(stream_id) for stream_id, size in blocked.items()}
        self._translate(h3_events)
        for stream_id, count in released.items():
            stream = self.streams.get(stream_id)
            self._credit(stream_id, count, later=stream is not None and not stream.is_reset)

    def request_stream_data(self, event: quic_events.StreamDataReceived) -> None:
        """Data on a request stream."""
        h3 = self._h3
        assert h3 is not None
        stream_id = event.stream_id
        stream = self.streams.get(stream_id)
        if stream is None:
            stream = self._peer_opened(stream_id)
            if stream is None:
                return
        if event.end_stream:
            stream.quic_receive_done = True
        if stream.is_reset:
            self._credit(stream_id, len(event.data), later=False)
            self.forget_if_finished(stream)
            return
        before = h3.buffered(stream_id)
        h3_events = h3.handle_event(event)
        count = len(event.data) + before - h3.buffered(stream_id)
        self._translate(h3_events)
        self._credit(stream_id, count, later=not stream.is_reset)
        if (
            stream.quic_receive_done
            and not stream.announced
            and not stream.is_reset
            and not h3.is_blocked(stream_id)
        ):
            # The peer ended a request before its headers (not headers that
            # wait for the QPACK encoder stream): aioquic answers
            # H3_REQUEST_INCOMPLETE; nothing reaches the application.
            stream.receive.reset()
            h3.abandon_stream(stream_id)
        self.forget_if_finished(stream)

    def _peer_opened(self, stream_id: int) -> _Stream | None:
        """Create the state of a request stream that the peer opened."""
        if self._client or stream_id % 4 != 0:
            # RFC 9114 section 6.1: only clients open bidirectional streams.
            assert self._quic is not None
            self._quic.close(
                error_code=ErrorCode.H3_STREAM_CREATION_ERROR,
                reason_phrase="server-initiated bidirectional stream",
            )
            return None
        stream = self.streams[stream_id] = _Stream(stream_id)
        self.resets.opened += 1
        if self.goaway_sent is not None and stream_id >= self.goaway_sent:
            # RFC 9114 section 5.2: refuse requests after our GOAWAY.
            self.reset_stream(stream, ErrorCode.H3_REQUEST_REJECTED)
        else:
            self.highest_peer_stream = max(self.highest_peer_stream, stream_id)
        return stream

    def _translate(self, h3_events: list[H3Event]) -> None:
        h3 = self._h3
        assert h3 is not None
        rejected = dict(h3.rejected) if h3.rejected else _NONE_REJECTED
        for h3_event in h3_events:
            if isinstance(h3_event, GoawayFrameReceived):
                self._goaway(h3_event.identifier)
                continue
            if not isinstance(h3_event, (H3HeadersReceived, H3DataReceived)) or h3_event.push_id is not None:
                continue  # no push, datagrams or WebTransport are enabled
            stream = self.streams.get(h3_event.stream_id)
            if stream is None or stream.is_reset or h3_event.stream_id in rejected:
                continue
            if isinstance(h3_event, H3HeadersReceived):
                self._headers_received(stream, h3_event)
            else:
                self._data_received(stream, h3_event)
        for stream_id, reason in rejected.items():
            stream = self.streams.get(stream_id)
            if stream is None or stream.is_reset:
                h3.abandon_stream(stream_id)
                continue
            if stream_id in h3.oversized:
                log.debug("stream %d is refused: %s", stream_id, reason)
                self._refuse_oversized(stream)
                continue
            log.debug("stream %d is malformed: %s", stream_id, reason)
            self._reject(stream)

    def _headers_received(self, stream: _Stream, event: H3HeadersReceived) -> None:
        headers = list(event.headers)
        try:
            kind = stream.receive.next_block(HeaderKind.RESPONSE if self._client else HeaderKind.REQUEST)
            pseudo, _ = validate_headers(
                headers,
                kind,
                multiplexed=True,
                allow_extended_connect=self._enable_connect_protocol and not self._client,
            )
        except (HeaderError, LocalProtocolError):
            self._reject(stream)
            return
        if kind is HeaderKind.TRAILERS:
            if event.stream_ended:
                self.queue(HeadersReceived(stream.stream_id, headers, end_stream=True))
                stream.receive.end()
            else:
                # Trailers end the message; the FIN may come later on its own.
                stream.held_trailers = headers
                stream.receive.hold_trailers()
            return
        informational = kind is HeaderKind.RESPONSE and pseudo[b":status"].startswith(b"1")
        try:
            stream.receive.headers(kind, end_stream=event.stream_ended, informational=informational)
        except LocalProtocolError:  # a 1xx that ends the stream
            self._reject(stream)
            return
        stream.announced = True
        self.queue(HeadersReceived(stream.stream_id, headers, end_stream=event.stream_ended))

    def _data_received(self, stream: _Stream, event: H3DataReceived) -> None:
        if stream.held_trailers is not None:
            if event.data:  # aioquic refuses DATA after trailers; be safe
                self._reject(stream)
            elif event.stream_ended:
                self.queue(HeadersReceived(stream.stream_id, stream.held_trailers, end_stream=True))
                stream.held_trailers = None
                stream.receive.end()
            return
        if event.data or event.stream_ended:
            self.queue(DataReceived(stream.stream_id, event.data, end_stream=event.stream_ended))
            if event.stream_ended:
                stream.receive.end()

    def _reject(self, stream: _Stream) -> None:
        """Reset a stream whose message is malformed (RFC 9114 section 4.1.2)."""
        code = ErrorCode.H3_MESSAGE_ERROR
        self.reset_stream(stream, code)
        self.queue(StreamResetSent(stream.stream_id, code))

    def _refuse_oversized(self, stream: _Stream) -> None:
        """Refuse a field section larger than ours (RFC 9114 section 4.2.2).

        A server answers a request it has not announced with 431 and stops
        reading it with H3_NO_ERROR (RFC 9114 section 4.1.1); the
        application never sees it. Anything else (a response on a client,
        trailers) is reset with H3_EXCESSIVE_LOAD.
        """
        quic = self._quic
        h3 = self._h3
        assert quic is not None and h3 is not None
        if self._client or stream.announced or stream.send.phase is not Phase.IDLE:
            code = ErrorCode.H3_EXCESSIVE_LOAD
            self.reset_stream(stream, code)
            self.queue(StreamResetSent(stream.stream_id, code))
            return
        stream_id = stream.stream_id
        h3.send_headers(stream_id, TOO_LARGE_RESPONSE, end_stream=True)
        stream.reset()
        if not stream.quic_receive_done and stream_id in quic._streams:
            quic.stop_stream(stream_id, ErrorCode.H3_NO_ERROR)
        self._credit(stream_id, h3.buffered(stream_id), later=False)
        h3.abandon_stream(stream_id)
        self.forget_if_finished(stream)

    def reset_stream(self, stream: _Stream, code: int) -> None:
        """Abort both directions of a stream and credit what it holds."""
        quic = self._quic
        h3 = self._h3
        assert quic is not None and h3 is not None
        send_ended = stream.send.ended
        stream.reset()
        stream.held_trailers = None
        stream_id = stream.stream_id
        try:
            if not send_ended:
                quic.reset_stream(stream_id, code)
            if not stream.quic_receive_done and stream_id in quic._streams:
                quic.stop_stream(stream_id, code)
        except ValueError:  # aioquic already forgot the stream
            log.debug("stream %d is gone from QUIC", stream_id, exc_info=True)
        self._credit(stream_id, h3.buffered(stream_id), later=False)
        h3.abandon_stream(stream_id)
        self.forget_if_finished(stream)

    def peer_reset(self, event: quic_events.StreamReset) -> None:
        """The peer sent RESET_STREAM."""
        quic = self._quic
        h3 = self._h3
        assert quic is not None and h3 is not None
        stream_id = event.stream_id
        # Bytes up to the final size count against our limits but will never
        # be delivered: credit them now.
        quic_stream = quic._streams.get(stream_id)
        if quic_stream is not None:
            receiver = quic_stream.receiver
            self._credit(stream_id, receiver.highest_offset - receiver.starting_offset(), later=False)
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.quic_receive_done = True
            if not self._client and self.resets.count_reset():
                # CVE-2023-44487 (rapid reset), as for HTTP/2.
                quic.close(
                    error_code=ErrorCode.H3_EXCESSIVE_LOAD,
                    reason_phrase=f"the peer reset {self.resets.reset} of its {self.resets.opened} streams",
                )
        if stream is None or not stream.announced:
            # A critical stream, or a request the application never saw:
            # aioquic closes the connection or answers H3_REQUEST_INCOMPLETE.
            before = h3.buffered(stream_id)
            if stream is None or not stream.is_reset:
                h3.handle_event(event)
            self._credit(stream_id, before - h3.buffered(stream_id), later=False)
            if stream is not None:
                stream.receive.reset()
                h3.abandon_stream(stream_id)
                self.forget_if_finished(stream)
            return
        if stream.is_reset:
            self.forget_if_finished(stream)  # its held bytes were credited when it was reset
            return
        self._peer_aborted(stream, event.error_code)

    def peer_stop_sending(self, event: quic_events.StopSendingReceived) -> None:
        """The peer sent STOP_SENDING; aioquic has reset our side already."""
        h3 = self._h3
        assert h3 is not None
        stream_id = event.stream_id
        stream = None if stream_is_unidirectional(stream_id) else self.streams.get(stream_id)
        if stream is None:
            h3.handle_event(event)  # a critical stream closes the connection
            return
        if stream.is_reset:
            return
        if event.error_code == ErrorCode.H3_NO_ERROR:
            # RFC 9114 section 4.1.1: a server that does not need the rest of
            # a request stops it with H3_NO_ERROR and sends a complete
            # response, which is not an error; only our side ends.
            h3.handle_event(event)
            stream.send.reset()
            self.forget_if_finished(stream)
            return
        self._peer_aborted(stream, event.error_code)

    def _peer_aborted(self, stream: _Stream, error_code: int) -> None:
        """Report a reset from the peer once, and abort what is left of the stream."""
        self.resets.remember(stream.stream_id, error_code)
        self.reset_stream(stream, ErrorCode.H3_REQUEST_CANCELLED)
        self.queue(StreamResetReceived(stream.stream_id, error_code))

    def _goaway(self, identifier: int) -> None:
        """The peer sent GOAWAY."""
        first = self.goaway_received is None
        self.goaway_received = identifier
        if not self._client:
            # A client's GOAWAY names a push ID; it opens no more streams.
            if first:
                self.queue(GoawayReceived(self.highest_peer_stream, 0))
            return
        # The server will not process streams from *identifier* on: they are
        # refused, and may be retried on another connection.
        self.queue(GoawayReceived(identifier - 4, 0))
        for stream in list(self.streams.values()):
            if stream.stream_id >= identifier and not stream.is_reset:
                self.resets.remember(stream.stream_id, ErrorCode.H3_REQUEST_REJECTED)
                self.reset_stream(stream, ErrorCode.H3_REQUEST_CANCELLED)
                self.queue(StreamResetReceived(stream.stream_id, ErrorCode.H3_REQUEST_REJECTED))
