"""The HTTP/3 protocol on aioquic.

Theory of operation
-------------------

:class:`HTTP3ProtocolImpl` owns a QUIC connection
(:class:`~._quic.FlowControlledQuicConnection`) and an HTTP/3 connection on
top of it (:class:`~._h3.HFaceH3Connection`). Every input (a datagram, the
clock) is fed to QUIC, and the QUIC events that result are dispatched at
once: those of the connection (connection IDs, its close) here, those of
streams to :class:`~._streams.RequestStreams`, which passes them through the
HTTP/3 layer into trio_hface events in one queue. The queue holds events and
*credit markers* (``_credit.py``); :meth:`HTTP3ProtocolImpl.next_event`
applies the markers it passes, which is how flow-control credit follows
consumption (``_streams.py`` tells which bytes are credited when).

What the application submits is checked against the stream's shared message
state (``protocols/_message.py``: headers, data, trailers, the end, resets),
then handed to aioquic. Send credit is visible:
:meth:`HTTP3ProtocolImpl.get_send_window` is the room left under the peer's
stream and connection limits after everything already queued, less the DATA
frame header. Headers are not limited by it, but they use credit like
everything else on the stream.

Per-stream state lives until both directions are done (our side ended or
reset, and the peer's side delivered to the end or reset); QUIC cannot
deliver anything for the stream after that. At most the peer's and our
stream limits of streams exist at once.
"""

from __future__ import annotations

import logging

from aioquic.h3.connection import ErrorCode

from ..._typing import HeadersType
from ...errors import FlowControlError, LocalProtocolError
from ...events import Event, StreamResetSent
from .._headers import HeaderError, HeaderKind, validate_headers
from .._message import MessageState, server_cannot_open
from .._protocols import HTTP3Protocol
from ._driver import QuicDriver
from ._h3 import HFaceH3Connection

# RFC 9220 section 3: the HTTP/3 setting that allows extended CONNECT.
_ENABLE_CONNECT_PROTOCOL = 0x08

__all__ = ["HTTP3ProtocolImpl"]

log = logging.getLogger(__name__)

# RFC 9114 section 7.2.1: a DATA frame header is the frame type (0x00, one
# byte) and the payload length (a variable-length integer, RFC 9000 section 16).
DATA_FRAME_TYPE_SIZE = 1
# RFC 9000 section 16: the largest value of each size of variable-length integer.
VARINT_LIMITS = ((1, 2**6 - 1), (2, 2**14 - 1), (4, 2**30 - 1), (8, 2**62 - 1))

# Before the server's transport parameters arrive, a client knows none of its
# limits (RFC 9000 section 7.4: they are 0 until then), yet it may submit
# requests at once, as in hface and aioquic: aioquic holds their streams
# blocked and their bytes queued until the handshake gives 1-RTT keys and the
# real limits. These two bound what is queued meanwhile.
#: Streams a client may open before the handshake. RFC 9113 section 6.5.2
#: recommends that servers allow at least 100 concurrent streams; streams
#: beyond the server's actual limit wait in aioquic for MAX_STREAMS.
PRE_HANDSHAKE_STREAMS = 100
#: Bytes of requests (headers and bodies, all streams together) queued before
#: the handshake: RFC 9002 section 7.2's initial congestion window, ten
#: datagrams of 1472 bytes, which is what the first flight can carry anyway.
PRE_HANDSHAKE_SEND_LIMIT = 14720


def _data_payload_room(credit: int) -> int:
    """Return the largest DATA payload whose frame fits in *credit* bytes.

    The payload's length takes the first varint size whose largest value
    holds what is left after it; if none, the payload is the largest value
    of the size before (asked before every body piece: no loop).
    """
    best = 0
    for length_size, largest in VARINT_LIMITS:
        payload = credit - DATA_FRAME_TYPE_SIZE - length_size
        if payload <= largest:
            return max(best, payload)
        best = largest
    return best


class HTTP3ProtocolImpl(QuicDriver, HTTP3Protocol):
    """An HTTP/3 connection on aioquic.

    Obtain instances from :class:`.HTTP3ClientFactory` or
    :class:`.HTTP3ServerFactory`; the constructor is not public.

    Implements :class:`.HTTP3Protocol`. Call :meth:`clock` before anything
    else, and :meth:`datagrams_to_send` after every call that may have changed
    something (including :meth:`next_event`, which returns flow-control credit).

    A server's GOAWAY names the first stream it will not process; it is
    reported as :class:`~trio_hface.events.GoawayReceived` with
    ``last_stream_id`` four less (negative when no stream will be processed),
    and the client's open streams from that ID on get
    :class:`~trio_hface.events.StreamResetReceived` with H3_REQUEST_REJECTED,
    so they may be retried. A client's GOAWAY (which names a push ID) is
    reported with the highest request stream the server has seen.
    """

    # -- state ---------------------------------------------------------------

    def is_available(self) -> bool:
        """Whether a client may open a new stream now.

        A fresh client is available at once: requests submitted before the
        handshake completes are queued and go out as soon as it does (at most
        ``PRE_HANDSHAKE_STREAMS`` streams and ``PRE_HANDSHAKE_SEND_LIMIT``
        bytes of them). ``False`` on a server, while the server's limit of
        concurrent streams is reached, and after GOAWAY or close.
        """
        if not self._is_client or self.has_expired():
            return False
        quic = self._quic
        assert quic is not None
        stream_id = quic.get_next_available_stream_id()
        limit = quic._remote_max_streams_bidi if quic._handshake_complete else PRE_HANDSHAKE_STREAMS
        return stream_id // 4 < limit

    def has_expired(self) -> bool:
        """Whether the connection is closing or closed, or GOAWAY was sent or received."""
        if self._end.terminated or self._lost:
            return True
        requests = self._requests
        if requests.goaway_sent is not None or requests.goaway_received is not None:
            return True
        quic = self._quic
        return quic is not None and (quic.ending or quic._close_event is not None)

    def get_available_stream_id(self) -> int:
        """Return the ID of the next stream a client opens.

        :raises LocalProtocolError: on a server, or if no stream can be opened now
        """
        if not self._is_client:
            raise server_cannot_open("3")
        if not self.is_available():
            raise LocalProtocolError("no stream can be opened now: check is_available()")
        assert self._quic is not None
        return self._quic.get_next_available_stream_id()

    # -- submitting -------------------------------------------------------------

    def submit_headers(self, stream_id: int, headers: HeadersType, end_stream: bool = False) -> None:
        """Submit a header block: a request, a (1xx or final) response, or trailers.

        :raises LocalProtocolError: if the headers are invalid or the stream
            cannot take them
        """
        h3 = self._usable_h3()
        stream = self._streams.get(stream_id)
        informational = False
        allow_connect = False
        if stream is None:
            if not self._is_client:
                raise LocalProtocolError(f"stream {stream_id} is not an open request stream")
            if not self.is_available() or stream_id != self._quic_next_stream_id():
                raise LocalProtocolError(
                    f"cannot open stream {stream_id}: use get_available_stream_id() when is_available()"
                )
            kind = HeaderKind.REQUEST
            allow_connect = h3.peer_enables_connect_protocol
            send = MessageState(stream_id)
        else:
            self._requests.check_sendable(stream)
            send = stream.send
            # A client's stream starts with its request: it is past that.
            kind = send.next_block(HeaderKind.TRAILERS if self._is_client else HeaderKind.RESPONSE)
        try:
            pseudo, _ = validate_headers(
                headers, kind, multiplexed=True, allow_extended_connect=allow_connect
            )
        except HeaderError as exc:
            if kind is HeaderKind.REQUEST and b":protocol" in dict(headers) and not allow_connect:
                raise LocalProtocolError(f"the server does not allow extended CONNECT (yet): {exc}") from exc
            raise LocalProtocolError(f"invalid headers on stream {stream_id}: {exc}") from exc
        if kind is HeaderKind.RESPONSE:
            status = pseudo[b":status"]
            if status == b"101":
                # RFC 9114 section 4.5: no 101 Switching Protocols in HTTP/3.
                raise LocalProtocolError("HTTP/3 does not allow the status 101")
            informational = status.startswith(b"1")
        send.check_headers(kind, end_stream=end_stream, informational=informational)
        try:
            h3.send_headers(stream_id, list(headers), end_stream=end_stream)
        except Exception as exc:  # pylsqpack or aioquic refusing what we checked
            raise LocalProtocolError(f"cannot send headers on stream {stream_id}: {exc}") from exc
        if stream is None:
            stream = self._requests.opened(stream_id)
        stream.send.headers(kind, end_stream=end_stream, informational=informational)
        if end_stream:
            self._requests.forget_if_finished(stream)

    def submit_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Submit body data; at most :meth:`get_send_window` bytes.

        :raises FlowControlError: if *data* is larger than the send window
        :raises LocalProtocolError: if the stream cannot take data
        """
        h3 = self._usable_h3()
        stream = self._requests.known(stream_id)
        self._requests.check_sendable(stream)
        stream.send.check_data()
        window = self._send_window(stream_id)
        if len(data) > window:
            raise FlowControlError(
                f"{len(data)} bytes submitted on stream {stream_id}, but its send window is {window} bytes"
            )
        try:
            if data:
                h3.send_data(stream_id, bytes(data), end_stream=end_stream)
            elif end_stream:
                h3.send_fin(stream_id)
        except Exception as exc:
            raise LocalProtocolError(f"cannot send data on stream {stream_id}: {exc}") from exc
        stream.send.data(end_stream=end_stream)
        if end_stream:
            self._requests.forget_if_finished(stream)

    def get_send_window(self, stream_id: int) -> int:
        """Return how many bytes of DATA may be submitted on a stream now.

        The smaller of the peer's stream and connection limits, after what is
        already queued, less the DATA frame header. Before the handshake
        completes, the peer's limits are unknown: what is left of
        ``PRE_HANDSHAKE_SEND_LIMIT`` bytes over all request streams.

        :raises LocalProtocolError: if the stream cannot take data
        """
        self._usable_h3()
        stream = self._requests.known(stream_id)
        self._requests.check_sendable(stream)
        return self._send_window(stream_id)

    def _send_window(self, stream_id: int) -> int:
        quic = self._quic
        assert quic is not None
        if not quic._handshake_complete:
            # The peer's limits are not known yet: a bounded allowance, which
            # aioquic sends under the real limits once they are.
            return _data_payload_room(PRE_HANDSHAKE_SEND_LIMIT - quic.request_bytes_queued())
        credit = min(quic.stream_send_credit(stream_id), quic.connection_send_credit())
        return _data_payload_room(credit)

    def submit_stream_reset(self, stream_id: int, error_code: int = 0) -> None:
        """Reset a stream in both directions (RESET_STREAM and STOP_SENDING).

        A :class:`~trio_hface.events.StreamResetSent` event follows. Resetting
        a stream that is already reset does nothing.

        :param error_code: the HTTP/3 error code (0 sends H3_NO_ERROR)
        :raises LocalProtocolError: if the stream is unknown
        """
        self._usable_h3()
        stream = self._requests.known(stream_id)
        if stream.is_reset:
            return
        code = error_code or ErrorCode.H3_NO_ERROR
        self._requests.reset_stream(stream, code)
        self._requests.queue(StreamResetSent(stream_id, code))

    def submit_close(self, error_code: int = 0) -> None:
        """Send GOAWAY, then close the QUIC connection with CONNECTION_CLOSE.

        A :class:`~trio_hface.events.ConnectionTerminated` event follows at
        once. Closing a closed connection does nothing.

        :param error_code: the HTTP/3 error code (0 sends H3_NO_ERROR)
        """
        if self._end.terminated or self._lost:
            return
        code = error_code or ErrorCode.H3_NO_ERROR
        quic = self._quic
        if quic is not None and quic._close_event is None and self._now is not None:
            self._send_goaway()
            # Flush the GOAWAY first: once closing, aioquic sends only
            # CONNECTION_CLOSE.
            self._outbox.extend(self._flush())
            quic.close(error_code=code, reason_phrase="closed by the application")
            self._outbox.extend(self._flush())
        self._terminate(0 if code == ErrorCode.H3_NO_ERROR else code, "closed by the application")

    def submit_goaway(self) -> None:
        """Send GOAWAY without closing: a graceful shutdown.

        A server will process the streams opened so far and refuse newer
        ones; the connection expires (:meth:`has_expired`) and may be closed
        with :meth:`submit_close` once they are done.
        """
        self._usable_h3()
        self._send_goaway()

    def _send_goaway(self) -> None:
        h3 = self._h3
        requests = self._requests
        if h3 is None or requests.goaway_sent is not None:
            return
        # RFC 9114 section 5.2: a server names the first request stream it
        # will not process; a client names a push ID, and we accept no push.
        identifier = 0 if self._is_client else requests.highest_peer_stream + 4
        try:
            h3.send_goaway(identifier)
        except Exception:  # the control stream is gone with the connection
            log.debug("cannot send GOAWAY", exc_info=True)
            return
        requests.goaway_sent = identifier

    @property
    def peer_allows_extended_connect(self) -> bool:
        settings = self._h3.received_settings if self._h3 is not None else None
        return bool(settings and settings.get(_ENABLE_CONNECT_PROTOCOL))

    @property
    def peer_settings_received(self) -> bool:
        return self._h3 is not None and self._h3.received_settings is not None

    def next_event(self) -> Event | None:
        """Take the next event, or ``None``.

        Handing out events returns the flow-control credit of the data they
        came from; call :meth:`datagrams_to_send` afterwards to send it.
        """
        return self._requests.next_event(manual=self.manual_acknowledgement)

    def acknowledge_data(self, stream_id: int, length: int) -> None:
        if self.manual_acknowledgement:
            self._requests.credit.acknowledge(stream_id, length)

    # -- helpers for submit_* -------------------------------------------------------

    def _usable_h3(self) -> HFaceH3Connection:
        if self._end.terminated or self._lost or self._h3 is None:
            raise LocalProtocolError("the connection is not open")
        quic = self._quic
        assert quic is not None
        if quic._close_event is not None or quic.ending:
            raise LocalProtocolError("the connection is closing")
        return self._h3

    def _quic_next_stream_id(self) -> int:
        assert self._quic is not None
        return self._quic.get_next_available_stream_id()
