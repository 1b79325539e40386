"""HTTP/2 on h2, translated to and from the common event model.

Theory of operation
-------------------

h2 parses eagerly: ``bytes_received`` feeds h2 at once and queues the
translated events; :meth:`HTTP2ProtocolImpl.next_event` hands them out.
Flow control follows the application, not the network: h2 counts received
DATA against our window, and only when ``next_event`` hands a
:class:`~trio_hface.events.DataReceived` out is its length acknowledged
(``acknowledge_received_data``), so the peer can have at most one window of
unread data outstanding and the queue of events stays bounded by the windows
and by ``MAX_CONCURRENT_STREAMS``.

Two of h2's behaviours do not fit a real server and are changed in a
subclass of ``H2Connection`` in ``_h2.py`` (h2 4.x internals, pinned in ``setup.cfg``):

* a graceful GOAWAY (error code 0) from the peer does not make h2 discard
  queued output and refuse the streams that the GOAWAY lets finish
  (RFC 9113 section 6.8); a GOAWAY with an error does;
* events of frames parsed before a broken frame in the same read are kept,
  so the application sees what arrived before the error.

A stream the peer resets while its request is still queued unseen is dropped
from the queue together with its events (the application never learns of
it), which keeps rapid-reset floods from growing the queue; a client that
goes on resetting more than half of the streams it opens is sent GOAWAY
ENHANCE_YOUR_CALM after ``RAPID_RESET_ALLOWANCE`` resets (``protocols/_resets.py``).

Before h2 sees received bytes, ``FrameScanner`` follows the frame
boundaries (after the client's preface) and checks each frame header as soon
as its 9 bytes arrive: a frame longer than our SETTINGS_MAX_FRAME_SIZE gets
GOAWAY FRAME_SIZE_ERROR before its payload is buffered (h2 would wait for all
of it, up to 16 MiB), and a first frame that is not SETTINGS gets GOAWAY
PROTOCOL_ERROR (RFC 9113 sections 4.2 and 3.4). A header block that cannot be
decoded is GOAWAY COMPRESSION_ERROR (section 4.3; h2 reports PROTOCOL_ERROR).

A malformed message (RFC 9113 section 8.1.1) resets its stream only; see
``StrictH2Connection``. With ``manual_acknowledgement``, ``next_event`` credits
only padding, and the caller acknowledges data as it consumes it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hyperframe.exceptions
import hyperframe.frame

from ..._typing import HeadersType
from ...errors import FlowControlError, LocalProtocolError, StreamResetByPeerError
from ...events import (
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    PingAckReceived,
    StreamResetReceived,
    StreamResetSent,
)
from .._headers import HeaderError, HeaderKind, validate_headers
from .._message import MessageState, Termination, server_cannot_open
from .._protocols import HTTP2Protocol
from .._resets import PeerResets
from ._h2 import PEER_ERRORS, StrictH2Connection

__all__ = ["HTTP2ProtocolImpl"]

#: Streams the peer may open at once (RFC 9113 section 6.5.2 recommends
#: no less than 100).
DEFAULT_MAX_CONCURRENT_STREAMS = 100

#: Our receive window per stream, in bytes: how much unread data a peer may
#: send on one stream. Larger than h2's 64 KiB default so a fast path is not
#: starved by round trips.
DEFAULT_STREAM_WINDOW = 1024 * 1024

#: Our receive window for the whole connection, in bytes: four stream
#: windows, so that a stream whose reader stalls (holding its window) leaves
#: the other streams room to go on. It also bounds what a connection buffers.
DEFAULT_CONNECTION_WINDOW = 4 * 1024 * 1024

#: The largest decoded header list we accept, in bytes (h2's default, 64 KiB).
DEFAULT_MAX_HEADER_LIST_SIZE = 64 * 1024

#: Frames the peer may provoke (PING and SETTINGS acknowledgements, resets of
#: streams it broke) while our output waits because it does not read: past
#: this many, GOAWAY ENHANCE_YOUR_CALM (nghttp2 allows 1000 acknowledgements).
MAX_UNSENT_ACKS = 1000


class HTTP2ProtocolImpl(HTTP2Protocol):
    """HTTP/2 on h2.

    Create instances with :class:`.HTTP2ClientFactory` or :class:`.HTTP2ServerFactory`.

    Implements :class:`.HTTP2Protocol`.

    :param client: whether this is the client side
    :param max_concurrent_streams: how many streams the peer may open at once
    :param stream_window: our receive window per stream, in bytes
    :param connection_window: our receive window for the connection, in bytes
    :param max_header_list_size: the largest header list accepted, in bytes
    :param enable_connect_protocol: advertise and accept extended CONNECT (RFC 8441), server only
    """

    def __init__(
        self,
        *,
        client: bool,
        max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
        stream_window: int = DEFAULT_STREAM_WINDOW,
        connection_window: int = DEFAULT_CONNECTION_WINDOW,
        max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE,
        enable_connect_protocol: bool = True,
    ) -> None:
        self._client = client
        config = h2.config.H2Configuration(
            client_side=client,
            header_encoding=None,
            # What we receive and what we send are validated once, by
            # validate_headers() (received: in StrictH2Connection; sent: in
            # submit_headers), the rules of every version: h2's own passes
            # cost a third of sending a response and more than ours to receive one.
            validate_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._h2 = StrictH2Connection(config=config)
        settings: dict[h2.settings.SettingCodes, int] = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: stream_window,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_size,
        }
        if client:
            settings[h2.settings.SettingCodes.ENABLE_PUSH] = 0
        elif enable_connect_protocol:
            settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        self._h2.local_settings = h2.settings.Settings(client=client, initial_values=settings)
        self._h2.initiate_connection()
        # The decoder limit follows our advertised setting.
        self._h2.decoder.max_header_list_size = max_header_list_size
        increment = connection_window - self._h2.inbound_flow_control_window
        if increment > 0:
            self._h2.increment_flow_control_window(increment)
        # Queued events, each with the flow-controlled length to acknowledge
        # when it is handed out (non-zero only for DataReceived).
        self._events: deque[tuple[Event, int]] = deque()
        # Our message on each stream we submitted headers on, until h2 closes
        # the stream (h2 itself checks what the peer sends).
        self._sent: dict[int, MessageState] = {}
        # Streams whose request headers are queued but not yet handed out.
        self._unseen: set[int] = set()
        self._end = Termination()
        self._goaway_received = False
        # PING and SETTINGS acknowledgements queued since output was last taken.
        self._unsent_acks = 0
        self._resets = PeerResets()
        self._goaway_sent = False
        # The peer's settings that each request asks for, read again when they change.
        self._peer_max_streams = 0
        self._peer_connect_protocol = False
        self._read_peer_settings()

    # -- state ------------------------------------------------------------

    def is_available(self) -> bool:
        if not self._client or self.has_expired():
            return False
        return bool(self._h2.open_outbound_streams < self._peer_max_streams)

    def has_expired(self) -> bool:
        return self._end.terminated or self._goaway_received or self._goaway_sent

    def get_available_stream_id(self) -> int:
        if not self._client:
            raise server_cannot_open("2")
        if not self.is_available():
            raise LocalProtocolError("this HTTP/2 connection cannot open a stream now")
        return int(self._h2.get_next_available_stream_id())

    # -- application -> protocol -----------------------------------------

    def submit_headers(self, stream_id: int, headers: HeadersType, end_stream: bool = False) -> None:
        self._end.check_open()
        state = self._sent.get(stream_id)
        if state is None:
            state = MessageState(stream_id)
            if self._client and stream_id not in self._h2.streams:
                if not self.is_available() or stream_id != self._h2.get_next_available_stream_id():
                    raise LocalProtocolError(
                        f"cannot open stream {stream_id}; get an ID from get_available_stream_id()"
                    )
                kind = HeaderKind.REQUEST
            elif not self._client and (
                stream_id % 2 == 0 or not 0 < stream_id <= self._h2.highest_inbound_stream_id
            ):
                raise server_cannot_open("2")
            else:
                kind = HeaderKind.RESPONSE
        else:
            kind = state.next_block(HeaderKind.RESPONSE)
        try:
            pseudo, _ = validate_headers(
                headers,
                kind,
                multiplexed=True,
                allow_extended_connect=self._peer_connect_protocol,
            )
        except HeaderError as exc:
            raise LocalProtocolError(str(exc)) from None
        informational = kind is HeaderKind.RESPONSE and pseudo[b":status"].startswith(b"1")
        state.check_headers(kind, end_stream=end_stream, informational=informational)
        try:
            self._h2.send_headers(stream_id, list(headers), end_stream=end_stream)
        except PEER_ERRORS as exc:
            raise self._stream_error(stream_id, f"cannot send headers on stream {stream_id}: {exc}") from None
        state.headers(kind, end_stream=end_stream, informational=informational)
        self._sent[stream_id] = state
        self._forget_closed(stream_id)

    def submit_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self._end.check_open()
        window = self.get_send_window(stream_id)  # checks that our message takes data now
        if len(data) > window:
            raise FlowControlError(
                f"{len(data)} bytes exceed the send window of stream {stream_id} ({window} bytes)"
            )
        if type(data) is not bytes:
            data = bytes(data)  # its frames refer to it until sent: it must not change
        try:
            self._h2.send_data_frames(stream_id, data, end_stream=end_stream)
        except PEER_ERRORS as exc:
            raise self._stream_error(stream_id, f"cannot send data on stream {stream_id}: {exc}") from None
        self._sent[stream_id].data(end_stream=end_stream)
        self._forget_closed(stream_id)

    def get_send_window(self, stream_id: int) -> int:
        self._end.check_open()
        if self._resets.code(stream_id) is not None:
            raise self._stream_error(stream_id, "")
        state = self._sent.get(stream_id)
        if state is None:
            raise LocalProtocolError(f"stream {stream_id} has no final headers yet, or is closed")
        state.check_data()  # before h2, which would close the stream on a refused frame
        try:
            return int(self._h2.local_flow_control_window(stream_id))
        except PEER_ERRORS as exc:
            raise self._stream_error(stream_id, f"stream {stream_id} cannot take data: {exc}") from None

    def submit_stream_reset(self, stream_id: int, error_code: int = 0) -> None:
        if self._end.terminated:
            return
        if stream_id <= 0 or stream_id > max(
            self._h2.highest_inbound_stream_id, self._h2.highest_outbound_stream_id
        ):
            raise LocalProtocolError(f"stream {stream_id} was never opened")
        stream = self._h2.streams.get(stream_id)
        if stream is None or stream.closed:
            return  # already closed: nothing to reset
        try:
            self._h2.reset_stream(stream_id, error_code)
        except PEER_ERRORS:
            return
        self._sent.pop(stream_id, None)
        self._queue(StreamResetSent(stream_id, error_code))

    def submit_close(self, error_code: int = 0) -> None:
        if self._end.terminated:
            return
        try:
            self._h2.close_connection(error_code)
        except PEER_ERRORS:
            pass
        self._goaway_sent = True
        self._terminate(error_code, "closed by the application")

    def submit_goaway(self, error_code: int = 0) -> None:
        """Send a graceful GOAWAY: no new streams, but those open may finish.

        The last stream ID is the highest one the peer opened. Close the
        connection with :meth:`~.HTTPProtocol.submit_close` once they are done.

        :param error_code: why; 0 for a graceful shutdown
        """
        self._end.check_open()
        if self._goaway_sent:
            return
        frame = hyperframe.frame.GoAwayFrame(0)
        frame.last_stream_id = self._h2.highest_inbound_stream_id
        frame.error_code = error_code
        self._h2._data_to_send += frame.serialize()
        self._goaway_sent = True

    @property
    def peer_allows_extended_connect(self) -> bool:
        return self._peer_connect_protocol

    def submit_ping(self, data: bytes) -> None:
        self._end.check_open()
        if not isinstance(data, bytes) or len(data) != 8:
            raise LocalProtocolError(f"PING data must be 8 bytes, not {data!r}")
        self._h2.ping(data)

    # -- network -> protocol --------------------------------------------

    def bytes_received(self, data: bytes) -> None:
        if self._end.terminated or not data:
            return
        events, failure = self._h2.receive_frames(data)
        self._translate(events)
        if failure is not None:
            error_code, error = failure
            self._terminate(error_code, f"the peer broke HTTP/2: {error}")

    def eof_received(self) -> None:
        self._terminate(0, "connection closed by the peer")

    def connection_lost(self) -> None:
        self._terminate(0, "connection lost")

    def has_output(self) -> bool:
        return self._h2.has_data_to_send()

    def bytes_to_send(self) -> bytes:
        self._unsent_acks = 0
        return bytes(self._h2.data_to_send())

    def next_event(self) -> Event | None:
        if not self._events:
            return None
        event, length = self._events.popleft()
        if length and isinstance(event, DataReceived):
            # Padding is ours to credit; the data, the caller's when it acknowledges by hand.
            self._acknowledge(
                event.stream_id, length - len(event.data) if self.manual_acknowledgement else length
            )
        elif isinstance(event, HeadersReceived):
            self._unseen.discard(event.stream_id)
        return event

    def acknowledge_data(self, stream_id: int, length: int) -> None:
        if self.manual_acknowledgement and length > 0:
            self._acknowledge(stream_id, length)

    # -- internals --------------------------------------------------------

    def _queue(self, event: Event, flow_controlled_length: int = 0) -> None:
        self._events.append((event, flow_controlled_length))

    def _stream_error(self, stream_id: int, message: str) -> LocalProtocolError:
        """The error for a stream that cannot take what was submitted: the peer's reset, if it was that."""
        code = self._resets.code(stream_id)
        if code is not None:
            return StreamResetByPeerError(stream_id, code)
        return LocalProtocolError(message)

    def _acknowledge(self, stream_id: int, length: int) -> None:
        if self._end.terminated or length <= 0:
            return
        try:
            self._h2.acknowledge_received_data(length, stream_id)
        except PEER_ERRORS:
            pass

    def _forget_closed(self, stream_id: int) -> None:
        stream = self._h2.streams.get(stream_id)
        if stream is None or stream.closed:
            self._sent.pop(stream_id, None)

    def _translate(self, events: Iterable[h2.events.Event]) -> None:
        for ev in events:
            if isinstance(ev, (h2.events.RequestReceived, h2.events.ResponseReceived)):
                assert ev.stream_id is not None and ev.headers is not None
                self._queue(
                    HeadersReceived(
                        ev.stream_id, _headers(ev.headers), end_stream=ev.stream_ended is not None
                    )
                )
                if isinstance(ev, h2.events.RequestReceived):
                    self._unseen.add(ev.stream_id)
                    self._resets.opened += 1
            elif isinstance(ev, h2.events.InformationalResponseReceived):
                assert ev.stream_id is not None and ev.headers is not None
                self._queue(HeadersReceived(ev.stream_id, _headers(ev.headers)))
            elif isinstance(ev, h2.events.TrailersReceived):
                assert ev.stream_id is not None and ev.headers is not None
                self._queue(HeadersReceived(ev.stream_id, _headers(ev.headers), end_stream=True))
            elif isinstance(ev, h2.events.DataReceived):
                assert ev.stream_id is not None and ev.data is not None
                if not ev.data and ev.stream_ended is None:
                    # An empty frame (padding at most) tells nothing: credit it, report
                    # nothing (a flood of them must not fill the queue, CVE-2019-9518).
                    self._acknowledge(ev.stream_id, ev.flow_controlled_length or 0)
                    continue
                event = DataReceived(ev.stream_id, bytes(ev.data), end_stream=ev.stream_ended is not None)
                self._queue(event, ev.flow_controlled_length or 0)
            elif isinstance(ev, h2.events.StreamReset):
                assert ev.stream_id is not None
                self._on_reset(ev.stream_id, int(ev.error_code or 0), ev.remote_reset)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self._on_goaway(ev)
            elif isinstance(ev, h2.events.PingAckReceived):
                assert ev.ping_data is not None
                self._queue(PingAckReceived(bytes(ev.ping_data)))
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self._read_peer_settings()  # h2 applied them already
                self._count_unsent_answer()
            elif isinstance(ev, h2.events.PingReceived):
                self._count_unsent_answer()
            elif isinstance(ev, h2.events.StreamEnded):
                assert ev.stream_id is not None
                self._forget_closed(ev.stream_id)
            # Other h2 events (settings, window updates, pings, priority,
            # unknown frames) are handled inside h2.

    def _read_peer_settings(self) -> None:
        settings = self._h2.remote_settings
        self._peer_max_streams = int(settings.max_concurrent_streams)
        self._peer_connect_protocol = bool(settings.enable_connect_protocol)

    def _on_reset(self, stream_id: int, error_code: int, remote: bool) -> None:
        self._sent.pop(stream_id, None)
        if remote:
            self._resets.remember(stream_id, error_code)
        if remote and stream_id in self._unseen:
            # The application never saw this stream: drop it quietly.
            self._unseen.discard(stream_id)
            kept: deque[tuple[Event, int]] = deque()
            for event, length in self._events:
                if isinstance(event, (DataReceived, HeadersReceived)) and event.stream_id == stream_id:
                    if length:
                        self._acknowledge(stream_id, length)
                else:
                    kept.append((event, length))
            self._events = kept
            self._count_peer_reset()
            return
        if remote:
            self._queue(StreamResetReceived(stream_id, error_code))
            self._count_peer_reset()
        else:
            # h2 reset the stream itself because the peer broke a stream rule.
            self._queue(StreamResetSent(stream_id, error_code))
            self._count_unsent_answer()

    def _count_unsent_answer(self) -> None:
        """Count a frame we send because the peer made us (PING and SETTINGS acknowledgements,
        resets of streams it broke): a peer that provokes them without reading the answers
        would grow our output without bound (CVE-2019-9512, 9514, 9515)."""
        self._unsent_acks += 1
        if self._unsent_acks > MAX_UNSENT_ACKS:
            self._calm_down(
                f"the peer provoked {self._unsent_acks} frames (acknowledgements, resets) without reading them"
            )

    def _count_peer_reset(self) -> None:
        # CVE-2023-44487: opening and resetting streams without end makes a
        # server work at the attacker's pace.
        if not self._client and self._resets.count_reset():
            resets = self._resets
            self._calm_down(f"the peer reset {resets.reset} of its {resets.opened} streams (rapid reset)")

    def _calm_down(self, reason: str) -> None:
        """End the connection with GOAWAY ENHANCE_YOUR_CALM: the peer abuses it."""
        if self._end.terminated:
            return
        self._h2.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, additional_data=reason.encode())
        self._goaway_sent = True
        self._terminate(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, reason)

    def _on_goaway(self, ev: h2.events.ConnectionTerminated) -> None:
        error_code = int(ev.error_code or 0)
        self._goaway_received = True
        self._queue(GoawayReceived(int(ev.last_stream_id or 0), error_code))
        if error_code:
            detail = ev.additional_data.decode("utf-8", "replace") if ev.additional_data else "no detail"
            self._terminate(error_code, f"the peer closed the connection: {detail}")

    def _terminate(self, error_code: int, message: str) -> None:
        event = self._end.terminate(error_code, message)
        if event is not None:
            self._queue(event)


def _headers(headers: Iterable[tuple[bytes | str, bytes | str]]) -> list[tuple[bytes, bytes]]:
    # header_encoding=None makes h2 return bytes (as hpack's tuples: made plain here).
    return cast("list[tuple[bytes, bytes]]", [(n, v) for n, v in headers])
