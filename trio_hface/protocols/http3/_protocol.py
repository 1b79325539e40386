"""The HTTP/3 protocol on aioquic.

Theory of operation
-------------------

:class:`HTTP3ProtocolImpl` owns a QUIC connection
(:class:`~._quic.FlowControlledQuicConnection`) and an HTTP/3 connection on
top of it (:class:`~._h3.HFaceH3Connection`). Every input (a datagram, the
clock) is fed to QUIC, and the QUIC events that result are translated at once,
through the HTTP/3 layer, into trio_hface events in one queue. The queue holds
events and *credit markers*; :meth:`HTTP3ProtocolImpl.next_event` applies the
markers it passes, which is how flow-control credit follows consumption:

* Bytes of a request stream are credited once every event made from them has
  been handed out. For each chunk of stream data, the credit is the chunk's
  size minus what the HTTP/3 layer kept unparsed (a partial frame header, a
  HEADERS frame not complete yet, a header block blocked on QPACK), plus what
  it released from earlier chunks. Frame headers and HEADERS frames are
  credited like body bytes, since QUIC counts every byte of a stream.
* Bytes of the control and QPACK streams are credited as soon as HTTP/3 has
  parsed them; the application never sees them.
* Bytes that will never reach the application (a stream reset by either side,
  data after STOP_SENDING, a malformed message) are credited at once.

Send credit is visible: :meth:`HTTP3ProtocolImpl.get_send_window` is the room
left under the peer's stream and connection limits after everything already
queued, less the DATA frame header. Headers are not limited by it, but they
use credit like everything else on the stream.

Per-stream state lives in :attr:`HTTP3ProtocolImpl._streams` until both
directions are done (our side ended or reset, and the peer's side delivered to
the end or reset); QUIC cannot deliver anything for the stream after that.
At most the peer's and our stream limits of streams exist at once.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from aioquic.h3.connection import ErrorCode
from aioquic.h3.events import DataReceived as H3DataReceived
from aioquic.h3.events import H3Event
from aioquic.h3.events import HeadersReceived as H3HeadersReceived
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnectionState, stream_is_unidirectional
from aioquic.quic.packet import QuicErrorCode

from ..._typing import AddressType, DatagramType, HeadersType
from ...errors import FlowControlError, LocalProtocolError, StreamResetByPeerError
from ...events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    StreamResetReceived,
    StreamResetSent,
)
from .._headers import HeaderError, HeaderKind, validate_headers
from .._protocols import HTTP3Protocol
from .._resets import PeerResets
from ._h3 import GoawayFrameReceived, HFaceH3Connection
from ._header import parse_quic_header
from ._quic import FlowControlledQuicConnection

__all__ = ["HTTP3ProtocolImpl"]

log = logging.getLogger(__name__)

# RFC 9114 section 7.2.1: a DATA frame header is the frame type (0x00, one
# byte) and the payload length (a variable-length integer, RFC 9000 section 16).
DATA_FRAME_TYPE_SIZE = 1
# RFC 9000 section 16: the largest value of each size of variable-length integer.
VARINT_LIMITS = ((1, 2**6 - 1), (2, 2**14 - 1), (4, 2**30 - 1), (8, 2**62 - 1))

# RFC 9114 section 7.1: a frame header is two variable-length integers of at
# most 8 bytes each (RFC 9000 section 16).
MAX_FRAME_HEADER_SIZE = 16

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

# RFC 9114 section 4.2.2 (RFC 6585 section 5): a request whose field section
# is too large is answered 431.
TOO_LARGE_RESPONSE = [(b":status", b"431"), (b"content-length", b"0")]

_END_STATES = frozenset(
    {QuicConnectionState.CLOSING, QuicConnectionState.DRAINING, QuicConnectionState.TERMINATED}
)


def _data_payload_room(credit: int) -> int:
    """Return the largest DATA payload whose frame fits in *credit* bytes."""
    best = 0
    for length_size, largest in VARINT_LIMITS:
        payload = min(credit - DATA_FRAME_TYPE_SIZE - length_size, largest)
        best = max(best, payload)
    return best


@dataclass
class _Credit:
    """A queue entry: credit *count* bytes of *stream_id* when handed past."""

    stream_id: int
    count: int


@dataclass
class _Stream:
    """What we know about one request stream."""

    stream_id: int
    #: A HeadersReceived was queued for the application.
    announced: bool = False
    #: Final (non-informational) headers were received.
    received_final: bool = False
    #: Trailers received without the end of the stream yet.
    held_trailers: list[tuple[bytes, bytes]] | None = None
    #: The end of the peer's side was queued for the application.
    received_end: bool = False
    #: QUIC will deliver nothing more on the stream (FIN delivered or reset).
    quic_receive_done: bool = False
    #: 0: nothing sent, 1: final headers sent, 2: trailers sent.
    sent_headers: int = 0
    #: Our side is ended.
    sent_end: bool = False
    #: Reset by either side (or rejected as malformed): dead to the application.
    reset: bool = False
    #: The peer asked us to stop sending, without error.
    stopped_by_peer: bool = False


class HTTP3ProtocolImpl(HTTP3Protocol):
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

    def __init__(
        self,
        configuration: QuicConfiguration,
        *,
        max_concurrent_streams: int,
        enable_connect_protocol: bool,
        max_field_section_size: int,
        remote_address: AddressType | None = None,
        stateless_reset_key: bytes | None = None,
    ) -> None:
        self._configuration = configuration
        self._is_client = configuration.is_client
        self._max_concurrent_streams = max_concurrent_streams
        self._enable_connect_protocol = enable_connect_protocol
        self._max_field_section_size = max_field_section_size
        self._remote_address = remote_address
        self._stateless_reset_key = stateless_reset_key
        self._now: float | None = None
        self._connected = False
        self._quic: FlowControlledQuicConnection | None = None
        self._h3: HFaceH3Connection | None = None
        self._original_cid: bytes | None = None
        # After a Retry: (original destination CID, retry source CID).
        self._validated: tuple[bytes, bytes] | None = None
        self._cids: list[bytes] = []
        self._events: deque[Event | _Credit] = deque()
        # With manual acknowledgement: credit held per stream, and data
        # handed out per stream that was not acknowledged yet.
        self._held: dict[int, int] = {}
        self._unacked: dict[int, int] = {}
        self._streams: dict[int, _Stream] = {}
        self._highest_peer_stream = -4
        self._resets = PeerResets()
        self._goaway_sent: int | None = None
        self._goaway_received: int | None = None
        self._terminated = False
        self._lost = False
        self._idle_timeout_fired = False
        self._outbox: list[DatagramType] = []
        if self._is_client:
            if remote_address is None:
                raise ValueError("a client needs a remote address")
            self._create_connection()

    def _create_connection(self, original_cid: bytes | None = None) -> None:
        self._quic = FlowControlledQuicConnection(
            configuration=self._configuration,
            max_streams_bidi=self._max_concurrent_streams,
            original_destination_connection_id=(
                self._validated[0] if self._validated is not None else original_cid
            ),
            retry_source_connection_id=self._validated[1] if self._validated is not None else None,
            stateless_reset_key=self._stateless_reset_key,
        )
        self._original_cid = original_cid
        self._cids = [self._quic.host_cid]
        self._h3 = HFaceH3Connection(
            self._quic,
            enable_connect_protocol=self._enable_connect_protocol,
            max_headers_frame=self._configuration.max_stream_data - MAX_FRAME_HEADER_SIZE,
            max_field_section_size=self._max_field_section_size,
        )

    # -- properties --------------------------------------------------------

    @property
    def connection_ids(self) -> Sequence[bytes]:
        """The connection IDs that route datagrams to this connection now.

        On a server this includes the client's original destination connection
        ID, which its Initial packets carry until it learns ours.
        """
        if self._original_cid is not None:
            return [self._original_cid, *self._cids]
        return list(self._cids)

    def address_validated(self, original_destination_cid: bytes, retry_source_cid: bytes) -> None:
        """Tell a server connection that its client's address was validated with a Retry.

        Call it before the first datagram. The handshake then carries both
        IDs, as RFC 9000 section 7.3 requires, so the client can check them.

        :raises LocalProtocolError: on a client, or after the first datagram
        """
        if self._is_client or self._quic is not None:
            raise LocalProtocolError("address validation applies to a server before its first datagram")
        self._validated = (original_destination_cid, retry_source_cid)

    # -- time and datagrams -----------------------------------------------

    def clock(self, now: float) -> None:
        """Tell the protocol the current time; handle timers that are due.

        The first call of a client starts its handshake.
        """
        self._now = now
        quic = self._quic
        if quic is None or self._lost:
            return
        try:
            if self._is_client and not self._connected:
                self._connected = True
                assert self._remote_address is not None
                quic.connect(self._remote_address, now=now)
            timer = quic.get_timer()
            if timer is not None and now >= timer:
                had_close = quic._close_event is not None
                quic.handle_timer(now=now)
                if not had_close and quic._close_event is not None:
                    self._idle_timeout_fired = True
        except Exception:
            self._internal_error("timer handling failed")
        self._process_quic_events()

    def get_timer(self) -> float | None:
        """Return when :meth:`clock` must next be called, or ``None``."""
        if self._quic is None or self._lost:
            return None
        if self._is_client and not self._connected:
            # The handshake starts at the first clock() call.
            return self._now if self._now is not None else None
        try:
            return self._quic.get_timer()
        except Exception:  # aioquic compares None timers in a few corner states
            return None

    def datagram_received(self, datagram: DatagramType) -> None:
        """Feed one datagram received from the network.

        Never raises because of its content: a datagram that is not QUIC is
        dropped, as the network might have done.
        """
        now = self._require_now()
        data, address = datagram
        if self._lost:
            return
        if self._quic is None:
            # A server creates its QUIC connection from the client's first
            # Initial packet, whose destination ID the handshake must echo.
            header = parse_quic_header(data, self._configuration.connection_id_length)
            if header is None or not header.is_initial or len(header.destination_cid) < 8:
                return
            self._create_connection(original_cid=header.destination_cid)
        assert self._quic is not None
        try:
            self._quic.receive_datagram(data, address, now=now)
        except Exception:
            self._internal_error("datagram handling failed")
        self._process_quic_events()

    def datagrams_to_send(self) -> Sequence[DatagramType]:
        """Take the datagrams to send, each with its destination address."""
        out, self._outbox = self._outbox, []
        out.extend(self._flush())
        self._process_quic_events()
        return out

    def _flush(self) -> list[DatagramType]:
        quic = self._quic
        if quic is None or self._now is None or self._lost:
            return []
        if not quic._network_paths:
            return []  # a client before clock(), a server before its first datagram
        try:
            datagrams = quic.datagrams_to_send(now=self._now)
        except Exception:
            self._internal_error("sending failed")
            return []
        return [(data, cast(AddressType, address)) for data, address in datagrams]

    def connection_lost(self) -> None:
        """Tell the protocol that the transport is gone; nothing more is sent."""
        self._lost = True
        self._outbox = []
        self._terminate(self.error_codes.internal_error, "connection lost")

    def _require_now(self) -> float:
        if self._now is None:
            raise LocalProtocolError("call clock() before any other method of an HTTP/3 protocol")
        return self._now

    # -- state ---------------------------------------------------------------

    @property
    def handshake_completed(self) -> bool:
        """Whether the QUIC handshake is complete (1-RTT keys and the peer's limits are known)."""
        quic = self._quic
        return quic is not None and quic._handshake_complete

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
        if self._terminated or self._lost:
            return True
        if self._goaway_sent is not None or self._goaway_received is not None:
            return True
        quic = self._quic
        return quic is not None and (quic._state in _END_STATES or quic._close_event is not None)

    def get_available_stream_id(self) -> int:
        """Return the ID of the next stream a client opens.

        :raises LocalProtocolError: on a server, or if no stream can be opened now
        """
        if not self._is_client:
            raise LocalProtocolError("an HTTP/3 server cannot open streams")
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
        if stream is None:
            if not self._is_client:
                raise LocalProtocolError(f"stream {stream_id} is not an open request stream")
            if not self.is_available() or stream_id != self._quic_next_stream_id():
                raise LocalProtocolError(
                    f"cannot open stream {stream_id}: use get_available_stream_id() when is_available()"
                )
            kind = HeaderKind.REQUEST
            allow_connect = h3.peer_enables_connect_protocol
        else:
            self._check_sendable(stream)
            if stream.sent_headers == 0 and not self._is_client:
                kind = HeaderKind.RESPONSE
                allow_connect = False
            elif stream.sent_headers == 1:
                kind = HeaderKind.TRAILERS
                allow_connect = False
                if not end_stream:
                    raise LocalProtocolError(f"trailers must end the stream (stream {stream_id})")
            else:
                raise LocalProtocolError(f"stream {stream_id} cannot take more headers")
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
            if informational and end_stream:
                raise LocalProtocolError("an informational (1xx) response cannot end the stream")
        try:
            h3.send_headers(stream_id, list(headers), end_stream=end_stream)
        except Exception as exc:  # pylsqpack or aioquic refusing what we checked
            raise LocalProtocolError(f"cannot send headers on stream {stream_id}: {exc}") from exc
        if stream is None:
            stream = self._streams[stream_id] = _Stream(stream_id, announced=True)
        if kind is HeaderKind.TRAILERS:
            stream.sent_headers = 2
        elif not informational:
            stream.sent_headers = 1
        if end_stream:
            stream.sent_end = True
            self._maybe_forget(stream)

    def submit_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Submit body data; at most :meth:`get_send_window` bytes.

        :raises FlowControlError: if *data* is larger than the send window
        :raises LocalProtocolError: if the stream cannot take data
        """
        h3 = self._usable_h3()
        stream = self._known_stream(stream_id)
        self._check_sendable(stream)
        if stream.sent_headers != 1:
            raise LocalProtocolError(
                f"stream {stream_id} cannot take data before its final headers or after trailers"
            )
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
        if end_stream:
            stream.sent_end = True
            self._maybe_forget(stream)

    def get_send_window(self, stream_id: int) -> int:
        """Return how many bytes of DATA may be submitted on a stream now.

        The smaller of the peer's stream and connection limits, after what is
        already queued, less the DATA frame header. Before the handshake
        completes, the peer's limits are unknown: what is left of
        ``PRE_HANDSHAKE_SEND_LIMIT`` bytes over all request streams.

        :raises LocalProtocolError: if the stream cannot take data
        """
        self._usable_h3()
        stream = self._known_stream(stream_id)
        self._check_sendable(stream)
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
        stream = self._known_stream(stream_id)
        if stream.reset:
            return
        code = error_code or ErrorCode.H3_NO_ERROR
        self._reset_stream(stream, code)
        self._queue(StreamResetSent(stream_id, code))

    def submit_close(self, error_code: int = 0) -> None:
        """Send GOAWAY, then close the QUIC connection with CONNECTION_CLOSE.

        A :class:`~trio_hface.events.ConnectionTerminated` event follows at
        once. Closing a closed connection does nothing.

        :param error_code: the HTTP/3 error code (0 sends H3_NO_ERROR)
        """
        if self._terminated or self._lost:
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
        if h3 is None or self._goaway_sent is not None:
            return
        # RFC 9114 section 5.2: a server names the first request stream it
        # will not process; a client names a push ID, and we accept no push.
        identifier = 0 if self._is_client else self._highest_peer_stream + 4
        try:
            h3.send_goaway(identifier)
        except Exception:  # the control stream is gone with the connection
            log.debug("cannot send GOAWAY", exc_info=True)
            return
        self._goaway_sent = identifier

    def next_event(self) -> Event | None:
        """Take the next event, or ``None``.

        Handing out events returns the flow-control credit of the data they
        came from; call :meth:`datagrams_to_send` afterwards to send it.
        """
        while self._events:
            item = self._events.popleft()
            if isinstance(item, _Credit):
                if self.manual_acknowledgement:
                    # Held until the caller acknowledges the data it came with.
                    self._held[item.stream_id] = self._held.get(item.stream_id, 0) + item.count
                    self._release(item.stream_id, 0)
                elif self._quic is not None:
                    self._quic.consume(item.stream_id, item.count)
                continue
            if self.manual_acknowledgement and isinstance(item, DataReceived) and item.data:
                self._unacked[item.stream_id] = self._unacked.get(item.stream_id, 0) + len(item.data)
            return item
        return None

    def acknowledge_data(self, stream_id: int, length: int) -> None:
        if self.manual_acknowledgement and length > 0:
            self._release(stream_id, length)

    def _release(self, stream_id: int, acknowledged: int) -> None:
        """Credit what the caller acknowledged; all that is held once it has acknowledged everything.

        The credit counts QUIC stream bytes (HTTP/3 framing included), the
        acknowledgements data bytes, and the credit of some data may come
        after its acknowledgement: so what is held goes at the latest when no
        data handed out is waiting for its acknowledgement.
        """
        unacked = max(self._unacked.get(stream_id, 0) - acknowledged, 0)
        held = self._held.get(stream_id, 0)
        count = held if unacked == 0 else min(acknowledged, held)
        if count and self._quic is not None:
            self._quic.consume(stream_id, count)
        held -= count
        for table, value in ((self._unacked, unacked), (self._held, held)):
            if value:
                table[stream_id] = value
            else:
                table.pop(stream_id, None)

    # -- helpers for submit_* -------------------------------------------------------

    def _usable_h3(self) -> HFaceH3Connection:
        if self._terminated or self._lost or self._h3 is None:
            raise LocalProtocolError("the connection is not open")
        quic = self._quic
        assert quic is not None
        if quic._close_event is not None or quic._state in _END_STATES:
            raise LocalProtocolError("the connection is closing")
        return self._h3

    def _quic_next_stream_id(self) -> int:
        assert self._quic is not None
        return self._quic.get_next_available_stream_id()

    def _known_stream(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            code = self._resets.code(stream_id)
            if code is not None:
                raise StreamResetByPeerError(stream_id, code)
            raise LocalProtocolError(f"stream {stream_id} is unknown or closed")
        return stream

    def _check_sendable(self, stream: _Stream) -> None:
        if stream.reset:
            code = self._resets.code(stream.stream_id)
            if code is not None:
                raise StreamResetByPeerError(stream.stream_id, code)
            raise LocalProtocolError(f"stream {stream.stream_id} was reset")
        if stream.stopped_by_peer:
            raise LocalProtocolError(f"the peer stopped reading stream {stream.stream_id} (STOP_SENDING)")
        if stream.sent_end:
            raise LocalProtocolError(f"stream {stream.stream_id} is already ended")

    # -- events ----------------------------------------------------------------------

    def _queue(self, item: Event | _Credit) -> None:
        if not self._terminated:
            self._events.append(item)

    def _credit(self, stream_id: int, count: int, *, later: bool) -> None:
        if count <= 0 or self._quic is None:
            return
        if later:
            self._queue(_Credit(stream_id, count))
        else:
            self._quic.consume(stream_id, count)

    def _terminate(self, error_code: int, message: str | None) -> None:
        if self._terminated:
            return
        self._events.append(ConnectionTerminated(error_code, message))
        self._terminated = True

    def _internal_error(self, what: str) -> None:
        log.exception("HTTP/3 connection failed: %s", what)
        quic = self._quic
        if quic is not None:
            try:
                quic.close(error_code=QuicErrorCode.INTERNAL_ERROR, reason_phrase=what)
            except Exception:
                log.debug("cannot close the QUIC connection", exc_info=True)
        self._terminate(self.error_codes.internal_error, what)

    def _process_quic_events(self) -> None:
        quic = self._quic
        if quic is None:
            return
        try:
            while (event := quic.next_event()) is not None:
                self._handle_quic_event(event)
        except Exception:
            self._internal_error("event handling failed")
        close = quic._close_event
        if close is not None and not self._terminated:
            self._terminate_with(close)

    def _terminate_with(self, close: quic_events.ConnectionTerminated) -> None:
        if self._idle_timeout_fired:
            self._terminate(0, "idle timeout")
            return
        # Application closes have no frame type; transport closes have one.
        graceful = (close.frame_type is None and close.error_code == ErrorCode.H3_NO_ERROR) or (
            close.frame_type is not None and close.error_code == QuicErrorCode.NO_ERROR
        )
        self._terminate(0 if graceful else close.error_code, close.reason_phrase or None)

    def _handle_quic_event(self, event: quic_events.QuicEvent) -> None:
        if isinstance(event, quic_events.StreamDataReceived):
            if stream_is_unidirectional(event.stream_id):
                self._uni_stream_data(event)
            else:
                self._request_stream_data(event)
        elif isinstance(event, quic_events.StreamReset):
            self._peer_reset(event.stream_id, event.error_code, event)
        elif isinstance(event, quic_events.StopSendingReceived):
            self._peer_stop_sending(event)
        elif isinstance(event, quic_events.ConnectionIdIssued):
            self._cids.append(event.connection_id)
        elif isinstance(event, quic_events.ConnectionIdRetired):
            if event.connection_id in self._cids:
                self._cids.remove(event.connection_id)
        elif isinstance(event, quic_events.ConnectionTerminated):
            self._terminate_with(event)

    def _feed_h3(self, event: quic_events.QuicEvent) -> list[H3Event]:
        assert self._h3 is not None
        return self._h3.handle_event(event)

    def _uni_stream_data(self, event: quic_events.StreamDataReceived) -> None:
        h3 = self._h3
        assert h3 is not None
        # The QPACK encoder stream may unblock request streams: remember what
        # they hold now to credit what they release.
        blocked = h3.blocked_buffers()
        before = h3.buffered(event.stream_id)
        h3_events = self._feed_h3(event)
        self._credit(event.stream_id, len(event.data) + before - h3.buffered(event.stream_id), later=False)
        released = {stream_id: size - h3.buffered(stream_id) for stream_id, size in blocked.items()}
        self._translate(h3_events)
        for stream_id, count in released.items():
            stream = self._streams.get(stream_id)
            self._credit(stream_id, count, later=stream is not None and not stream.reset)

    def _request_stream_data(self, event: quic_events.StreamDataReceived) -> None:
        h3 = self._h3
        assert h3 is not None
        stream_id = event.stream_id
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._peer_opened(stream_id)
            if stream is None:
                return
        if event.end_stream:
            stream.quic_receive_done = True
        if stream.reset:
            self._credit(stream_id, len(event.data), later=False)
            self._maybe_forget(stream)
            return
        before = h3.buffered(stream_id)
        h3_events = self._feed_h3(event)
        count = len(event.data) + before - h3.buffered(stream_id)
        self._translate(h3_events)
        self._credit(stream_id, count, later=not stream.reset)
        if (
            stream.quic_receive_done
            and not stream.announced
            and not stream.reset
            and not h3.is_blocked(stream_id)
        ):
            # The peer ended a request before its headers (not headers that
            # wait for the QPACK encoder stream): aioquic answers
            # H3_REQUEST_INCOMPLETE; nothing reaches the application.
            stream.reset = True
            h3.abandon_stream(stream_id)
        self._maybe_forget(stream)

    def _peer_opened(self, stream_id: int) -> _Stream | None:
        """Create the state of a request stream that the peer opened."""
        if self._is_client or stream_id % 4 != 0:
            # RFC 9114 section 6.1: only clients open bidirectional streams.
            assert self._quic is not None
            self._quic.close(
                error_code=ErrorCode.H3_STREAM_CREATION_ERROR,
                reason_phrase="server-initiated bidirectional stream",
            )
            return None
        stream = self._streams[stream_id] = _Stream(stream_id)
        self._resets.opened += 1
        if self._goaway_sent is not None and stream_id >= self._goaway_sent:
            # RFC 9114 section 5.2: refuse requests after our GOAWAY.
            self._reset_stream(stream, ErrorCode.H3_REQUEST_REJECTED)
        else:
            self._highest_peer_stream = max(self._highest_peer_stream, stream_id)
        return stream

    def _translate(self, h3_events: list[H3Event]) -> None:
        h3 = self._h3
        assert h3 is not None
        rejected = dict(h3.rejected)
        for h3_event in h3_events:
            if isinstance(h3_event, GoawayFrameReceived):
                self._goaway(h3_event.identifier)
                continue
            if not isinstance(h3_event, (H3HeadersReceived, H3DataReceived)) or h3_event.push_id is not None:
                continue  # no push, datagrams or WebTransport are enabled
            stream = self._streams.get(h3_event.stream_id)
            if stream is None or stream.reset or h3_event.stream_id in rejected:
                continue
            if isinstance(h3_event, H3HeadersReceived):
                self._headers_received(stream, h3_event)
            else:
                self._data_received(stream, h3_event)
        for stream_id, reason in rejected.items():
            stream = self._streams.get(stream_id)
            if stream is None or stream.reset:
                h3.abandon_stream(stream_id)
                continue
            if stream_id in h3.oversized:
                log.debug("stream %d is refused: %s", stream_id, reason)
                self._refuse_oversized(stream)
                continue
            log.debug("stream %d is malformed: %s", stream_id, reason)
            self._reject(stream, reason)

    def _headers_received(self, stream: _Stream, event: H3HeadersReceived) -> None:
        headers = list(event.headers)
        if stream.received_final:
            kind = HeaderKind.TRAILERS
        elif self._is_client:
            kind = HeaderKind.RESPONSE
        else:
            kind = HeaderKind.REQUEST
        try:
            pseudo, _ = validate_headers(
                headers,
                kind,
                multiplexed=True,
                allow_extended_connect=self._enable_connect_protocol and not self._is_client,
            )
        except HeaderError as exc:
            self._reject(stream, str(exc))
            return
        if kind is HeaderKind.TRAILERS:
            if event.stream_ended:
                self._queue(HeadersReceived(stream.stream_id, headers, end_stream=True))
                stream.received_end = True
            else:
                # Trailers end the message; the FIN may come later on its own.
                stream.held_trailers = headers
            return
        if kind is HeaderKind.RESPONSE and pseudo[b":status"].startswith(b"1"):
            pass  # informational: a final response follows
        else:
            stream.received_final = True
        stream.announced = True
        stream.received_end = event.stream_ended
        self._queue(HeadersReceived(stream.stream_id, headers, end_stream=event.stream_ended))

    def _data_received(self, stream: _Stream, event: H3DataReceived) -> None:
        if stream.held_trailers is not None:
            if event.data:  # aioquic refuses DATA after trailers; be safe
                self._reject(stream, "data after trailers")
            elif event.stream_ended:
                self._queue(HeadersReceived(stream.stream_id, stream.held_trailers, end_stream=True))
                stream.held_trailers = None
                stream.received_end = True
            return
        if event.data or event.stream_ended:
            self._queue(DataReceived(stream.stream_id, event.data, end_stream=event.stream_ended))
            stream.received_end = event.stream_ended

    def _reject(self, stream: _Stream, reason: str) -> None:
        """Reset a stream whose message is malformed (RFC 9114 section 4.1.2)."""
        code = ErrorCode.H3_MESSAGE_ERROR
        self._reset_stream(stream, code)
        self._queue(StreamResetSent(stream.stream_id, code))

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
        if self._is_client or stream.announced or stream.sent_headers or stream.sent_end:
            code = ErrorCode.H3_EXCESSIVE_LOAD
            self._reset_stream(stream, code)
            self._queue(StreamResetSent(stream.stream_id, code))
            return
        stream_id = stream.stream_id
        h3.send_headers(stream_id, TOO_LARGE_RESPONSE, end_stream=True)
        stream.sent_headers = 1
        stream.sent_end = True
        stream.reset = True
        if not stream.quic_receive_done and stream_id in quic._streams:
            quic.stop_stream(stream_id, ErrorCode.H3_NO_ERROR)
        self._credit(stream_id, h3.buffered(stream_id), later=False)
        h3.abandon_stream(stream_id)
        self._maybe_forget(stream)

    def _reset_stream(self, stream: _Stream, code: int) -> None:
        """Abort both directions of a stream and credit what it holds."""
        quic = self._quic
        h3 = self._h3
        assert quic is not None and h3 is not None
        stream.reset = True
        stream.held_trailers = None
        stream_id = stream.stream_id
        try:
            if not stream.sent_end:
                quic.reset_stream(stream_id, code)
            if not stream.quic_receive_done and stream_id in quic._streams:
                quic.stop_stream(stream_id, code)
        except ValueError:  # aioquic already forgot the stream
            log.debug("stream %d is gone from QUIC", stream_id, exc_info=True)
        self._credit(stream_id, h3.buffered(stream_id), later=False)
        h3.abandon_stream(stream_id)
        self._maybe_forget(stream)

    def _peer_reset(self, stream_id: int, error_code: int, event: quic_events.StreamReset) -> None:
        """The peer sent RESET_STREAM."""
        quic = self._quic
        h3 = self._h3
        assert quic is not None and h3 is not None
        # Bytes up to the final size count against our limits but will never
        # be delivered: credit them now.
        quic_stream = quic._streams.get(stream_id)
        if quic_stream is not None:
            receiver = quic_stream.receiver
            self._credit(stream_id, receiver.highest_offset - receiver.starting_offset(), later=False)
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.quic_receive_done = True
            if not self._is_client and self._resets.count_reset():
                # CVE-2023-44487 (rapid reset), as for HTTP/2.
                quic.close(
                    error_code=ErrorCode.H3_EXCESSIVE_LOAD,
                    reason_phrase=f"the peer reset {self._resets.reset} of its {self._resets.opened} streams",
                )
        if stream is None or not stream.announced:
            # A critical stream, or a request the application never saw:
            # aioquic closes the connection or answers H3_REQUEST_INCOMPLETE.
            before = h3.buffered(stream_id)
            if stream is None or not stream.reset:
                self._feed_h3(event)
            self._credit(stream_id, before - h3.buffered(stream_id), later=False)
            if stream is not None:
                stream.reset = True
                h3.abandon_stream(stream_id)
                self._maybe_forget(stream)
            return
        if stream.reset:
            self._maybe_forget(stream)  # its held bytes were credited when it was reset
            return
        self._peer_aborted(stream, error_code)

    def _peer_stop_sending(self, event: quic_events.StopSendingReceived) -> None:
        """The peer sent STOP_SENDING; aioquic has reset our side already."""
        stream_id = event.stream_id
        if stream_is_unidirectional(stream_id):
            self._feed_h3(event)  # a critical stream closes the connection
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            self._feed_h3(event)
            return
        if stream.reset:
            return
        if event.error_code == ErrorCode.H3_NO_ERROR:
            # RFC 9114 section 4.1.1: a server that does not need the rest of
            # a request stops it with H3_NO_ERROR and sends a complete
            # response, which is not an error; only our side ends.
            self._feed_h3(event)
            stream.sent_end = True
            stream.stopped_by_peer = True
            self._maybe_forget(stream)
            return
        self._peer_aborted(stream, event.error_code)

    def _peer_aborted(self, stream: _Stream, error_code: int) -> None:
        """Report a reset from the peer once, and abort what is left of the stream."""
        self._resets.remember(stream.stream_id, error_code)
        self._reset_stream(stream, ErrorCode.H3_REQUEST_CANCELLED)
        self._queue(StreamResetReceived(stream.stream_id, error_code))

    def _goaway(self, identifier: int) -> None:
        """The peer sent GOAWAY."""
        first = self._goaway_received is None
        self._goaway_received = identifier
        if not self._is_client:
            # A client's GOAWAY names a push ID; it opens no more streams.
            if first:
                self._queue(GoawayReceived(self._highest_peer_stream, 0))
            return
        # The server will not process streams from *identifier* on: they are
        # refused, and may be retried on another connection.
        self._queue(GoawayReceived(identifier - 4, 0))
        for stream in list(self._streams.values()):
            if stream.stream_id >= identifier and not stream.reset:
                self._resets.remember(stream.stream_id, ErrorCode.H3_REQUEST_REJECTED)
                self._reset_stream(stream, ErrorCode.H3_REQUEST_CANCELLED)
                self._queue(StreamResetReceived(stream.stream_id, ErrorCode.H3_REQUEST_REJECTED))

    def _maybe_forget(self, stream: _Stream) -> None:
        if (stream.sent_end or stream.reset) and stream.quic_receive_done:
            self._streams.pop(stream.stream_id, None)
