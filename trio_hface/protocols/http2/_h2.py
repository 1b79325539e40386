"""h2, adapted: what our HTTP/2 protocol changes in h2 4.x (internals pinned in ``setup.cfg``),
and the frame-header check in front of it.

* :class:`StrictH2Connection`: a graceful GOAWAY does not discard queued
  output; events parsed before a broken frame are kept; received header
  blocks are checked by the rules every version shares
  (:func:`~trio_hface.protocols._headers.validate_headers`); a malformed
  message resets only its stream (RFC 9113 section 8.1.1).
* :class:`FrameScanner`: follows frame boundaries as bytes arrive and refuses
  a frame header announcing more than our SETTINGS_MAX_FRAME_SIZE, or a first
  frame that is not SETTINGS, before h2 buffers the payload.
* :class:`OpenStreams`: the number of open streams each way, kept as streams
  change state, where h2 counts them by walking every stream each time it is
  asked (each request asks several times: with a hundred streams in flight
  that walk was the largest cost of a request).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hpack
import hyperframe.exceptions
import hyperframe.frame

from .._headers import HeaderError, HeaderKind, validate_headers

__all__ = ["FrameScanner", "HPACK_ERRORS", "OpenStreams", "PEER_ERRORS", "RefusedFrame", "StrictH2Connection"]


#: Errors of h2 and the libraries under it that mean "the peer sent garbage".
PEER_ERRORS = (
    h2.exceptions.H2Error,
    hyperframe.exceptions.HyperframeError,
    hpack.HPACKError,
)

#: What a failed header block decoding raises under h2's ProtocolError (the
#: errors h2 itself catches around the HPACK decoder).
HPACK_ERRORS = (hpack.HPACKError, IndexError, TypeError, UnicodeDecodeError)

#: The client connection preface (RFC 9113 section 3.4).
CLIENT_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: Length of a frame header: 3 bytes of length, type, flags, 4 bytes of stream ID (RFC 9113 section 4.1).
FRAME_HEADER_SIZE = 9
#: A frame header (RFC 9113 section 4.1): the 24-bit length as 16 + 8 bits, type,
#: flags, the reserved bit and stream ID; and its length alone.
FRAME_HEADER = struct.Struct(">HBBBL")
FRAME_LENGTH = struct.Struct(">HB")

#: The type of SETTINGS frames and their ACK flag (RFC 9113 section 6.5).
SETTINGS_FRAME_TYPE = 0x4
SETTINGS_ACK_FLAG = 0x1


#: What each h2 event of a received header block is (RFC 9113 section 8.1).
_HEADER_KINDS: dict[type[h2.events.Event], HeaderKind] = {
    h2.events.RequestReceived: HeaderKind.REQUEST,
    h2.events.ResponseReceived: HeaderKind.RESPONSE,
    h2.events.InformationalResponseReceived: HeaderKind.RESPONSE,
    h2.events.TrailersReceived: HeaderKind.TRAILERS,
}


class _DataFrame(hyperframe.frame.DataFrame):
    """A received DATA frame whose repr does not serialize and hex-encode its payload.

    h2 builds the repr of every frame it receives, for a trace log that is
    off: for DATA, hyperframe copies the payload and hex-encodes all of it
    (then shows 10 bytes), which cost a third of an HTTP/2 download.
    """

    def _body_repr(self) -> str:
        return f"<{len(self.data)} bytes>"


class StrictH2Connection(h2.connection.H2Connection):
    """``H2Connection`` with graceful GOAWAY, partial events on errors and
    frame headers checked as they arrive."""

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        self.scanner = FrameScanner(server=not config.client_side)
        #: The stream of the last DATA frame taken past h2 in this read (see :meth:`_take_data`).
        self._taking: h2.stream.H2Stream | None = None
        self.open_streams = OpenStreams()
        self._frame_dispatch_table[_DataFrame] = self._receive_data_frame
        # Output that goes before h2's own buffer: its earlier contents and
        # DATA frames framed by send_data_frames(), as pieces, joined once.
        self._pieces: list[bytes | bytearray | memoryview] = []

    # -- counting open streams without walking them all ---------------------

    def _begin_new_stream(
        self, stream_id: int, allowed_ids: h2.connection.AllowedStreamIDs
    ) -> h2.stream.H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        # Fresh (idle, no input yet): its state machine may be replaced by one that reports its moves.
        stream.state_machine = _CountedStateMachine(stream_id, self.open_streams)
        return stream

    def _open_streams(self, remainder: int) -> int:
        # h2 walks every stream here, counting the open ones and moving the
        # closed ones to _closed_streams. The same, from what changed since.
        for stream_id in self.open_streams.take_closed():
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                self._closed_streams[stream_id] = stream.closed_by
        return self.open_streams.count[remainder]

    def send_data_frames(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send *data* (within the send window) as DATA frames of the largest size the peer takes.

        h2 sends the first and the last frame itself: the first checks the
        states of the connection and the stream and the window, the last
        carries END_STREAM through the stream's state machine. The frames
        between them are framed here, a shared 9-byte header and a view of
        *data* each, and charged to both windows as h2 would: h2 copies each
        payload four times on its way out, this copies it once (in
        :meth:`data_to_send`). *data* must not change until it is sent (it is
        ``bytes``).
        """
        size = self.max_outbound_frame_size
        view = memoryview(data)
        length = len(view)
        last = size * ((length - 1) // size) if length else 0  # where the last frame starts
        if last <= size:  # at most two frames: h2 frames them all
            for start in range(0, max(length, 1), size):
                chunk = view[start : start + size].tobytes()
                self.send_data(stream_id, chunk, end_stream=end_stream and start + size >= length)
            return
        self.send_data(stream_id, view[:size].tobytes())
        stream = self.streams[stream_id]
        middle = last - size
        self.outbound_flow_control_window -= middle
        stream.outbound_flow_control_window -= middle
        pieces = self._pieces
        if self._data_to_send:
            pieces.append(self._data_to_send)
            self._data_to_send = bytearray()
        header = size.to_bytes(3, "big") + b"\x00\x00" + stream_id.to_bytes(4, "big")
        for start in range(size, last, size):
            pieces.append(header)
            pieces.append(view[start : start + size])
        self.send_data(stream_id, view[last:].tobytes(), end_stream=end_stream)

    def has_data_to_send(self) -> bool:
        """Whether :meth:`data_to_send` has something."""
        return bool(self._pieces) or bool(self._data_to_send)

    def data_to_send(self, amount: int | None = None) -> bytes:
        if self._pieces:
            # The pieces went out before h2's buffer: join them in front of it.
            self._pieces.append(self._data_to_send)
            joined = b"".join(self._pieces)
            self._pieces = []
            if amount is None:
                self._data_to_send = bytearray()
                return joined
            self._data_to_send = bytearray(joined)
        return super().data_to_send(amount)

    def clear_outbound_data_buffer(self) -> None:
        self._pieces = []
        super().clear_outbound_data_buffer()

    def _receive_goaway_frame(self, frame: hyperframe.frame.GoAwayFrame) -> tuple[list[Any], list[Any]]:
        if frame.error_code != 0:
            return cast(tuple[list[Any], list[Any]], super()._receive_goaway_frame(frame))
        event = h2.events.ConnectionTerminated()
        event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    # RFC 9113 section 8.1.1: a malformed message (invalid fields, a wrong
    # content-length, trailers without END_STREAM) is a stream error. h2
    # raises ProtocolError for these as for connection errors; the ones
    # below are turned into a reset of their stream when the stream survived
    # them (h2 closes a stream whose state machine refused a frame, which
    # stays a connection error, as do HPACK failures: the decoder state is lost).

    def _receive_headers_frame(self, frame: hyperframe.frame.HeadersFrame) -> tuple[list[Any], list[Any]]:
        try:
            frames, events = cast(tuple[list[Any], list[Any]], super()._receive_headers_frame(frame))
        except h2.exceptions.ProtocolError as exc:
            return self._malformed(frame.stream_id, exc)
        for event in events:
            kind = _HEADER_KINDS.get(type(event))
            if kind is None:
                continue
            # The fields are checked here, by the rules every version shares
            # (h2's own inbound check is off: it is slower and checks the same).
            try:
                validate_headers(
                    event.headers,
                    kind,
                    multiplexed=True,
                    allow_extended_connect=bool(self.local_settings.enable_connect_protocol),
                )
            except HeaderError as exc:
                return self._malformed(frame.stream_id, h2.exceptions.ProtocolError(str(exc)))
        return frames, events

    def _receive_data_frame(self, frame: hyperframe.frame.DataFrame) -> tuple[list[Any], list[Any]]:
        try:
            return cast(tuple[list[Any], list[Any]], super()._receive_data_frame(frame))
        except h2.exceptions.InvalidBodyLengthError as exc:
            result = self._malformed(frame.stream_id, exc)
            # The frame was charged to the connection's window: give it back.
            self.acknowledge_received_data(frame.flow_controlled_length, frame.stream_id)
            return result

    def _malformed(self, stream_id: int, exc: h2.exceptions.ProtocolError) -> tuple[list[Any], list[Any]]:
        stream = self.streams.get(stream_id)
        message_error = type(exc) in (h2.exceptions.ProtocolError, h2.exceptions.InvalidBodyLengthError)
        if (
            not message_error
            or isinstance(exc.__cause__, (hpack.HPACKError, IndexError, TypeError, UnicodeDecodeError))
            or stream is None
        ):
            raise exc
        if stream.open:
            self.reset_stream(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        elif stream.closed_by is not h2.stream.StreamClosedBy.RECV_END_STREAM:
            raise exc  # h2's state machine refused the frame
        # else: the frame's own END_STREAM closed the stream (a malformed final
        # response): nothing may be sent on it any more; the message is dropped.
        event = h2.events.StreamReset(
            stream_id=stream_id, error_code=h2.errors.ErrorCodes.PROTOCOL_ERROR, remote_reset=False
        )
        return [], [event]

    #: Whether DATA frames of open streams skip h2's frame parsing (see :meth:`_take_data`).
    fast_data = True

    def receive_frames(self, data: bytes) -> tuple[list[h2.events.Event], tuple[int, Exception] | None]:
        """Like ``receive_data``, but keep the events before a failure.

        Returns the events and, if the peer broke HTTP/2, the error code sent
        in GOAWAY with the error. Frame headers are checked by the scanner as
        soon as their 9 bytes arrive; only the bytes before a refused header
        reach h2.

        Frames are split here: a DATA frame that an open stream takes as it
        is (no padding, no END_STREAM, within both windows and the announced
        content-length) is accounted as h2 would and becomes its event at once
        (:meth:`_take_data`); every other frame goes through h2 whole, in
        order. In a download nearly every frame is such a DATA frame, and
        h2's parsing, state machines and event objects cost more than
        decrypting it.
        """
        events: list[h2.events.Event] = []
        # h2 checks frame lengths against this limit too (set once per read, as here).
        refused = self.scanner.scan(data, self.max_inbound_frame_size)
        buffer = self.incoming_buffer
        try:
            buffer.max_frame_size = self.max_inbound_frame_size
            usable = data if refused is None else data[: refused.offset]
            if self.fast_data:
                preface = buffer._preamble_len
                if preface:  # h2 checks the client's preface
                    buffer.add_data(usable[:preface])
                    usable = usable[preface:]
                self._split_frames(usable, events)
            else:
                buffer.add_data(usable)
                self._receive_buffered(events)
            if refused is not None:
                raise refused.error
        except h2.exceptions.ProtocolError as exc:
            code = exc.error_code
            if not isinstance(exc, h2.exceptions.DenialOfServiceError) and isinstance(
                exc.__cause__, HPACK_ERRORS
            ):
                # RFC 9113 section 4.3: a header block that cannot be decoded is COMPRESSION_ERROR
                # (h2 wraps the decoder's error in ProtocolError).
                code = h2.errors.ErrorCodes.COMPRESSION_ERROR
            self._terminate_connection(code)
            return events, (int(code), exc)
        except (*PEER_ERRORS, ValueError) as exc:
            code = (
                h2.errors.ErrorCodes.COMPRESSION_ERROR
                if isinstance(exc, hpack.HPACKError)
                else h2.errors.ErrorCodes.PROTOCOL_ERROR
            )
            self._terminate_connection(code)
            return events, (int(code), exc)
        return events, None

    def _receive_buffered(self, events: list[h2.events.Event]) -> None:
        """Let h2 parse and handle the whole frames in its buffer."""
        for frame in self.incoming_buffer:
            if type(frame) is hyperframe.frame.DataFrame:
                frame.__class__ = _DataFrame  # the same frame, with a cheap repr
            events.extend(self._receive_frame(frame))

    def _split_frames(self, data: bytes, events: list[h2.events.Event]) -> None:
        """Handle the whole frames of h2's buffered bytes and *data*, each DATA frame that
        :meth:`_take_data` takes here and the others through h2; leave the rest buffered.

        Consecutive DATA frames of one stream taken here become one event (their payloads
        joined: one copy, as slicing each would be).
        """
        buffer = self.incoming_buffer
        self._taking = None  # what we sent since the last read may have changed any state
        pending = buffer._data
        if pending:
            pending += data  # as h2 would buffer it (a frame that began in an earlier read)
            work: bytes | bytearray = pending
            buffer._data = bytearray()
        else:
            work = data
        view = memoryview(work)
        run: list[memoryview] = []  # payloads of the frames taken for run_stream, in order
        run_stream = 0
        position, size = 0, len(work)
        unpack = FRAME_HEADER.unpack_from
        while size - position >= FRAME_HEADER_SIZE:
            high, low, frame_type, flags, stream_id = unpack(work, position)
            length = high << 8 | low
            start = position + FRAME_HEADER_SIZE
            end = start + length
            if end > size:
                break  # the rest of this frame comes later
            if frame_type == DATA_FRAME_TYPE and not flags & DATA_SLOW_FLAGS:
                stream_id &= STREAM_ID_MASK
                if not buffer._headers_buffer and self._take_data(stream_id, length):
                    if stream_id != run_stream and run:
                        events.append(_data_event(run_stream, run))
                    run_stream = stream_id
                    run.append(view[start:end])
                    position = end
                    continue
            if run:
                events.append(_data_event(run_stream, run))
            buffer.add_data(view[position:end])
            position = end
            self._taking = None  # h2 may change any state now
            self._receive_buffered(events)
        if run:
            events.append(_data_event(run_stream, run))
        if position < size:
            buffer.add_data(view[position:])

    def _take_data(self, stream_id: int, length: int) -> bool:
        """Account for an unpadded DATA frame of *length* bytes without END_STREAM for
        *stream_id*, as h2's ``_receive_data_frame`` would, if nothing about it can fail:
        the connection and the stream are open for input, the stream had its headers, both
        windows hold the payload and the content-length allows it. Otherwise return False
        and leave the frame to h2 (which raises or resets as it should).

        The stream found open for the last frame taken is remembered until a frame goes
        through h2 (:attr:`_taking` is reset then): the frames taken here change no state,
        so the next frame of that stream needs only its windows checked."""
        if not length:
            return False
        taking = self._taking
        if taking is not None and taking.stream_id == stream_id:
            stream = taking
        else:
            if self.state_machine.state not in _OPEN_CONNECTION:
                return False
            found = self.streams.get(stream_id)
            if found is None:
                return False
            machine = found.state_machine
            if machine.state not in _RECEIVING_STREAM or not machine.headers_received:
                return False
            stream = self._taking = found
        connection_window = self._inbound_flow_control_window_manager
        stream_window = stream._inbound_window_manager
        expected = stream._expected_content_length
        if (
            connection_window.current_window_size < length
            or stream_window.current_window_size < length
            or (expected is not None and stream._actual_content_length + length > expected)
        ):
            return False
        connection_window.current_window_size -= length
        stream_window.current_window_size -= length
        stream._actual_content_length += length
        return True


def _data_event(stream_id: int, payloads: list[memoryview]) -> h2.events.DataReceived:
    """The event of consecutive DATA frames of *stream_id* taken past h2 (*payloads* is emptied)."""
    data = payloads[0].tobytes() if len(payloads) == 1 else b"".join(payloads)
    payloads.clear()
    return h2.events.DataReceived(stream_id=stream_id, data=data, flow_controlled_length=len(data))


#: The type of DATA frames (RFC 9113 section 6.1), and the flags that send one through
#: h2: END_STREAM (a state change) and PADDED.
DATA_FRAME_TYPE = 0x0
DATA_SLOW_FLAGS = 0x1 | 0x8
STREAM_ID_MASK = 0x7FFFFFFF

#: Connection states in which h2 takes DATA without a state change or an event.
_OPEN_CONNECTION = frozenset(
    {h2.connection.ConnectionState.CLIENT_OPEN, h2.connection.ConnectionState.SERVER_OPEN}
)
#: Stream states in which DATA changes nothing but the windows (h2 makes an event).
_RECEIVING_STREAM = frozenset({h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_LOCAL})


class OpenStreams:
    """Open streams by parity of their ID, and the streams that closed since last asked.

    "Open" as RFC 9113 section 5.1.2 counts streams against the concurrency
    limit (open or half closed), which is h2's ``H2Stream.open``.
    """

    def __init__(self) -> None:
        #: Open streams with an even ID (index 0) and with an odd one (index 1).
        self.count = [0, 0]
        self._closed: list[int] = []

    def moved(self, stream_id: int, before: h2.stream.StreamState, after: h2.stream.StreamState) -> None:
        """A stream's state machine took an input and went from *before* to *after*."""
        if after == before:
            return
        now_open = h2.stream.STREAM_OPEN[after]
        if now_open != h2.stream.STREAM_OPEN[before]:
            self.count[stream_id % 2] += 1 if now_open else -1
        if after == h2.stream.StreamState.CLOSED:
            self._closed.append(stream_id)  # once: a closed stream stays closed

    def take_closed(self) -> list[int]:
        """The streams that closed since the last call."""
        closed, self._closed = self._closed, []
        return closed


class _CountedStateMachine(h2.stream.H2StreamStateMachine):
    """h2's stream state machine, telling :class:`OpenStreams` of each move."""

    def __init__(self, stream_id: int, open_streams: OpenStreams) -> None:
        super().__init__(stream_id)
        self._open_streams = open_streams

    def process_input(self, input_: h2.stream.StreamInputs) -> list[Any]:
        before = self.state
        try:
            return cast(list[Any], super().process_input(input_))
        finally:
            self._open_streams.moved(self.stream_id, before, self.state)


@dataclass(frozen=True)
class RefusedFrame:
    """A frame header that breaks a rule: where it starts in the read, and the error to answer."""

    offset: int
    error: h2.exceptions.ProtocolError


class FrameScanner:
    """Follows the frame boundaries of the received byte stream, so that each
    frame header is checked as soon as its 9 bytes arrive, before h2 buffers
    the payload it announces.

    h2 checks a frame's length only once the whole announced payload has
    arrived: a peer announcing 2**24 - 1 bytes and trickling them would make
    it buffer 16 MiB per connection. RFC 9113 section 4.2: a frame longer than
    our SETTINGS_MAX_FRAME_SIZE is FRAME_SIZE_ERROR. Section 3.4: the first
    frame of each side, after the client's 24-byte preface, is SETTINGS.
    """

    def __init__(self, *, server: bool) -> None:
        # Preface bytes still to skip (h2 checks their value).
        self._preface = len(CLIENT_PREFACE) if server else 0
        # The part of the current frame header received so far.
        self._header = bytearray()
        # Payload bytes of the current frame still to come.
        self._payload = 0
        self._first = True

    def scan(self, data: bytes, max_frame_size: int) -> RefusedFrame | None:
        """Follow *data*; return the first frame header in it that breaks a rule, if any."""
        position = 0
        end = len(data)
        while position < end:
            if not (self._preface or self._payload or self._header or self._first):
                # The common case, a frame header that starts here whole: skip it and its
                # payload without copying the header, while no length breaks the limit.
                unpack = FRAME_LENGTH.unpack_from
                last = end - FRAME_HEADER_SIZE
                while position <= last:
                    high, low = unpack(data, position)
                    length = high << 8 | low
                    if length > max_frame_size:
                        break  # the slow path below refuses it
                    position += FRAME_HEADER_SIZE + length
                if position > end:  # a payload that goes on in the next read
                    self._payload = position - end
                    return None
                if position == end:
                    return None
            if self._preface:
                taken = min(self._preface, end - position)
                self._preface -= taken
                position += taken
            elif self._payload:
                taken = min(self._payload, end - position)
                self._payload -= taken
                position += taken
            else:
                start = max(0, position - len(self._header))  # 0 if it began in an earlier read
                taken = min(FRAME_HEADER_SIZE - len(self._header), end - position)
                self._header += data[position : position + taken]
                position += taken
                if len(self._header) < FRAME_HEADER_SIZE:
                    break
                error = self._check(max_frame_size)
                if error is not None:
                    return RefusedFrame(start, error)
        return None

    def _check(self, max_frame_size: int) -> h2.exceptions.ProtocolError | None:
        header = self._header
        length = int.from_bytes(header[:3], "big")
        frame_type, flags = header[3], header[4]
        self._header = bytearray()
        self._payload = length
        if self._first:
            self._first = False
            if frame_type != SETTINGS_FRAME_TYPE or flags & SETTINGS_ACK_FLAG:
                return h2.exceptions.ProtocolError(
                    f"the first frame is of type {frame_type:#x} (flags {flags:#x}), not SETTINGS"
                )
        if length > max_frame_size:
            return h2.exceptions.FrameTooLargeError(
                f"a frame of type {frame_type:#x} announces {length} bytes, over our"
                f" SETTINGS_MAX_FRAME_SIZE of {max_frame_size}"
            )
        return None
