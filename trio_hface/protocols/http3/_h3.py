"""An aioquic H3Connection adjusted to what trio_hface needs.

aioquic's :class:`~aioquic.h3.connection.H3Connection` is used as is for
framing, QPACK and the control streams. :class:`HFaceH3Connection` changes it
where its behaviour does not fit:

* A malformed message (``MessageError``: bad header names, a missing
  pseudo-header, a content-length mismatch, ...) makes aioquic close the whole
  connection; RFC 9114 section 4.1.2 asks only for a stream error. The error
  is caught per stream and recorded in :attr:`HFaceH3Connection.rejected`; the
  protocol resets that stream and never feeds it to this object again
  (:meth:`HFaceH3Connection.abandon_stream`).
* aioquic skips GOAWAY frames on the peer's control stream; they are parsed
  here and reported as :class:`GoawayFrameReceived` events.
* GOAWAY can be sent (:meth:`HFaceH3Connection.send_goaway`) and a stream can
  be ended without an empty DATA frame (:meth:`HFaceH3Connection.send_fin`),
  which takes no flow-control credit.
* Server push is never allowed (no MAX_PUSH_ID is sent), and the
  ENABLE_CONNECT_PROTOCOL setting is sent only when asked for.
* Field sections are limited (RFC 9114 section 4.2.2) and the limit is
  advertised in SETTINGS_MAX_FIELD_SECTION_SIZE. A HEADERS frame longer than
  the limit is refused as soon as its frame header arrives: a field line
  never encodes to more than it counts for when decoded (32 bytes per field
  cover its representation's overhead), unless its encoder chose Huffman
  codes longer than the plain string. A shorter frame is refused undecoded
  when even its bound (:func:`~._qpack.field_section_bound`) is over
  :data:`DECODE_BOUND_FACTOR` times the limit; otherwise it is decoded and
  measured exactly. Refused streams are in :attr:`HFaceH3Connection.rejected`
  and in :attr:`HFaceH3Connection.oversized`.

Internals of aioquic used here (checked against aioquic 1.7.2):
``H3Connection._stream`` and ``H3Stream`` (``buffer``, ``stream_type``,
``sending_ended``, ``receiving_ended``, ``headers_recv_state``),
``_handle_request_or_push_frame``, ``_handle_request_or_push_end``,
``_receive_request_or_push_data``, ``_receive_stream_data_uni``,
``_get_local_settings``, ``_init_connection``, ``_max_push_id``,
``_local_control_stream_id``, ``_decoder``, ``_local_decoder_stream_id``,
``_get_or_create_stream``, ``_max_table_capacity``, ``H3Stream.blocked``.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import cast

import aioquic.h3.connection as aioquic_h3
import pylsqpack
from aioquic._buffer import Buffer, BufferReadError
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import (
    FrameError,
    FrameType,
    H3Connection,
    H3Stream,
    IdError,
    MessageError,
    QpackDecompressionFailed,
    Setting,
    StreamType,
    encode_frame,
)
from aioquic.h3.events import H3Event, HeadersReceived
from aioquic.quic.connection import QuicConnection, stream_is_client_initiated, stream_is_unidirectional

from ._qpack import EncoderScanner, field_section_bound, field_section_bound_cap, field_section_size
from ._quic import PacedQuicConnection

__all__ = ["HFaceH3Connection", "GoawayFrameReceived"]

# RFC 9114 section 7.2.6: the GOAWAY payload is one variable-length integer,
# at most 8 bytes (RFC 9000 section 16).
MAX_GOAWAY_PAYLOAD = 8

#: A header block whose size bound (see :mod:`._qpack`) is over this many times
#: the field section limit is refused without decoding it. The bound counts
#: every dynamic-table reference as the largest entry inserted, so an honest
#: block can exceed the limit by that; the factor keeps the work of decoding
#: a block that is then refused within four limits (256 KiB by default).
DECODE_BOUND_FACTOR = 4


# aioquic checks every received field name and value byte by byte in Python
# (validate_header_name, validate_header_value: RFC 9113 section 8.2.1), which
# is a good part of the cost of a small request. The same rules as one
# precompiled pattern each; only a field that breaks them goes through
# aioquic's own check, which raises its usual MessageError.
# A name: no byte <= 0x20, no upper case, nothing >= 0x7f; a colon only first.
_FIELD_NAME = re.compile(rb":?[\x21-\x39\x3b-\x40\x5b-\x7e]*\Z")
# A value: no NUL, LF or CR, and no space or tab first or last.
_BAD_FIELD_VALUE = re.compile(rb"[\x00\n\r]|\A[ \t]|[ \t]\Z")
_check_name_by_byte = aioquic_h3.validate_header_name
_check_value_by_byte = aioquic_h3.validate_header_value


def validate_header_name(key: bytes) -> None:
    """aioquic's check of a field name, by pattern (RFC 9113 section 8.2.1)."""
    if _FIELD_NAME.match(key) is None:
        _check_name_by_byte(key)


def validate_header_value(key: bytes, value: bytes) -> None:
    """aioquic's check of a field value, by pattern (RFC 9113 section 8.2.1)."""
    if _BAD_FIELD_VALUE.search(value) is not None:
        _check_value_by_byte(key, value)


# aioquic's validate_headers looks both up in its module when it runs.
aioquic_h3.validate_header_name = validate_header_name
aioquic_h3.validate_header_value = validate_header_value


@dataclass
class GoawayFrameReceived(H3Event):
    """The peer sent GOAWAY with this stream ID (from a server) or push ID (from a client)."""

    identifier: int


class _StreamScope:
    """What aioquic's ``_get_or_create_stream`` yields, without a generator.

    aioquic enters that context manager for every frame handled and every
    HEADERS or DATA sent (six times per small request): as a class of two
    slots it costs a fraction of ``contextlib.contextmanager``. On exit it
    forgets a stream that ended, as aioquic's does.
    """

    __slots__ = ("_stream", "_streams")

    def __init__(self, streams: dict[int, H3Stream], stream: H3Stream) -> None:
        self._streams = streams
        self._stream = stream

    def __enter__(self) -> H3Stream:
        return self._stream

    def __exit__(self, *exc_info: object) -> None:
        stream = self._stream
        if stream.is_ended():
            self._streams.pop(stream.stream_id)


class _ControlScanner:
    """Follows the frames of the peer's control stream to find GOAWAY."""

    def __init__(self) -> None:
        self.buffer = b""
        self.frame_type: int | None = None
        self.remaining = 0

    def feed(self, data: bytes) -> list[int]:
        """Return the identifiers of the GOAWAY frames completed by *data*."""
        found: list[int] = []
        self.buffer += data
        while self.buffer:
            if self.frame_type is None:
                buf = Buffer(data=self.buffer)
                try:
                    frame_type = buf.pull_uint_var()
                    length = buf.pull_uint_var()
                except BufferReadError:
                    break
                self.buffer = self.buffer[buf.tell() :]
                if frame_type == FrameType.GOAWAY and length > MAX_GOAWAY_PAYLOAD:
                    raise FrameError("GOAWAY frame is too long")
                self.frame_type = frame_type
                self.remaining = length
            if self.frame_type == FrameType.GOAWAY:
                if len(self.buffer) < self.remaining:
                    break
                payload = Buffer(data=self.buffer[: self.remaining])
                try:
                    identifier = payload.pull_uint_var()
                except BufferReadError:
                    raise FrameError("Could not parse GOAWAY frame") from None
                if not payload.eof():
                    raise FrameError("GOAWAY frame has trailing data")
                found.append(identifier)
                self.buffer = self.buffer[self.remaining :]
            else:
                # Any other frame: skip its payload without keeping it.
                skip = min(self.remaining, len(self.buffer))
                self.buffer = self.buffer[skip:]
                self.remaining -= skip
                if self.remaining:
                    break
            self.frame_type = None
            self.remaining = 0
        return found


def _is_control(stream: H3Stream) -> bool:
    return stream.stream_type == StreamType.CONTROL


class HFaceH3Connection(H3Connection):
    """An :class:`~aioquic.h3.connection.H3Connection` with per-stream message errors and GOAWAY.

    :param quic: the QUIC connection
    :param enable_connect_protocol: whether to send SETTINGS_ENABLE_CONNECT_PROTOCOL
    :param max_headers_frame: the largest HEADERS frame accepted on a request
        stream; a larger one could never complete, since the bytes of a frame
        are credited only once it is parsed
    :param max_field_section_size: the largest field section accepted, in
        decoded bytes as RFC 9114 section 4.2.2 counts them
    """

    def __init__(
        self,
        quic: PacedQuicConnection,
        *,
        enable_connect_protocol: bool,
        max_headers_frame: int,
        max_field_section_size: int,
    ) -> None:
        self._enable_connect_protocol = enable_connect_protocol
        self._max_headers_frame = max_headers_frame
        self._max_field_section_size = max_field_section_size
        #: Streams refused because a field section is too large (also in :attr:`rejected`).
        self.oversized: set[int] = set()
        # Header blocks blocked on the QPACK encoder stream, kept to bound
        # them again once they can be decoded (at most QPACK_BLOCKED_STREAMS).
        self._blocked_blocks: dict[int, bytes] = {}
        self._control_scanner: _ControlScanner | None = None
        self._last_goaway: int | None = None
        #: Streams whose message was malformed, with the reason; the protocol
        #: takes them out after each :meth:`handle_event`.
        self.rejected: dict[int, str] = {}
        # Streams of our HEAD requests: their responses have no content, whatever
        # their content-length says (RFC 9110 section 9.3.2), which aioquic checks.
        self._head_requests: weakref.WeakSet[H3Stream] = weakref.WeakSet()
        # H3Connection calls only methods that every stack's QuicConnection
        # has (aioquic's forks keep them): see PacedQuicConnection.
        super().__init__(cast(QuicConnection, quic))
        self._encoder_scanner = EncoderScanner(self._max_table_capacity)

    # -- settings and push ---------------------------------------------------

    def _init_connection(self) -> None:
        # No MAX_PUSH_ID: a server must not push (RFC 9114 section 4.6).
        self._max_push_id = None
        super()._init_connection()

    def _get_local_settings(self) -> dict[int, int]:
        settings = super()._get_local_settings()
        settings[Setting.MAX_FIELD_SECTION_SIZE] = self._max_field_section_size
        if self._enable_connect_protocol:
            settings[Setting.ENABLE_CONNECT_PROTOCOL] = 1
        else:
            settings.pop(Setting.ENABLE_CONNECT_PROTOCOL, None)
        return settings

    @property
    def peer_enables_connect_protocol(self) -> bool:
        """Whether the peer's SETTINGS allow extended CONNECT (RFC 9220)."""
        settings = self.received_settings
        return settings is not None and settings.get(Setting.ENABLE_CONNECT_PROTOCOL) == 1

    # -- malformed messages ----------------------------------------------------

    def send_headers(
        self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool = False
    ) -> None:
        super().send_headers(stream_id, headers, end_stream)
        if self._is_client and (b":method", b"HEAD") in headers:
            self._head_requests.add(self._stream[stream_id])

    def _check_content_length(self, stream: H3Stream) -> None:
        # (A server has no HEAD requests of its own: no weak reference to make.)
        if not self._head_requests or stream not in self._head_requests:
            super()._check_content_length(stream)

    def _handle_request_or_push_frame(
        self,
        frame_type: int,
        frame_data: bytes | None,
        stream: H3Stream,
        stream_ended: bool,
    ) -> list[H3Event]:
        stream_id = stream.stream_id
        if stream_id in self.rejected:
            return []
        if frame_type == FrameType.HEADERS:
            block = frame_data if frame_data is not None else self._blocked_blocks.pop(stream_id, None)
            largest = self._encoder_scanner.largest
            refuse_over = DECODE_BOUND_FACTOR * self._max_field_section_size
            # A block too short to reach the limit whatever its lines (the usual
            # case) needs no walk.
            if (
                block is not None
                and field_section_bound_cap(len(block), dynamic_entry_max=largest) > refuse_over
            ):
                bound = field_section_bound(block, dynamic_entry_max=largest)
                if bound is not None and bound > refuse_over:
                    self._refuse_oversized(stream_id, f"a field section of up to {bound} bytes is too large")
                    return []
        try:
            events = super()._handle_request_or_push_frame(
                frame_type=frame_type, frame_data=frame_data, stream=stream, stream_ended=stream_ended
            )
        except MessageError as exc:
            self.rejected[stream_id] = exc.reason_phrase or "malformed message"
            return []
        except pylsqpack.StreamBlocked:
            if frame_type == FrameType.HEADERS and frame_data is not None:
                self._blocked_blocks[stream_id] = frame_data
            raise
        for event in events:
            if isinstance(event, HeadersReceived):
                size = field_section_size(event.headers)
                if size > self._max_field_section_size:
                    self._refuse_oversized(stream_id, f"a field section of {size} bytes is too large")
                    return []
        return events

    def _refuse_oversized(self, stream_id: int, reason: str) -> None:
        self.rejected[stream_id] = reason
        self.oversized.add(stream_id)

    def _handle_request_or_push_end(self, stream: H3Stream) -> list[H3Event]:
        if stream.stream_id in self.rejected:
            return []
        try:
            return super()._handle_request_or_push_end(stream)
        except MessageError as exc:
            self.rejected[stream.stream_id] = exc.reason_phrase or "malformed message"
            return []

    def _check_request_or_push_frame_type(self, frame_type: int, stream: H3Stream) -> None:
        super()._check_request_or_push_frame_type(frame_type, stream)
        if frame_type == FrameType.HEADERS and (stream.frame_size or 0) > self._max_field_section_size:
            self._refuse_oversized(
                stream.stream_id,
                f"HEADERS frame of {stream.frame_size} bytes is over the field section limit",
            )
        elif frame_type == FrameType.HEADERS and (stream.frame_size or 0) > self._max_headers_frame:
            self.rejected[stream.stream_id] = f"HEADERS frame of {stream.frame_size} bytes is too large"

    def _receive_request_or_push_data(
        self, stream: H3Stream, data: bytes, stream_ended: bool
    ) -> list[H3Event]:
        if stream.stream_id in self.rejected:
            stream.buffer = b""
            return []
        return super()._receive_request_or_push_data(stream, data, stream_ended)

    def buffered(self, stream_id: int) -> int:
        """Return how many received bytes of a stream wait in this object, unparsed."""
        stream = self._stream.get(stream_id)
        return 0 if stream is None else len(stream.buffer)

    def is_blocked(self, stream_id: int) -> bool:
        """Whether a stream's header block waits for the peer's QPACK encoder stream."""
        stream = self._stream.get(stream_id)
        return stream is not None and stream.blocked

    def blocked_buffers(self) -> dict[int, int]:
        """Return the unparsed bytes held by each stream blocked on QPACK."""
        return {stream_id: len(stream.buffer) for stream_id, stream in self._stream.items() if stream.blocked}

    def abandon_stream(self, stream_id: int) -> None:
        """Forget a stream that the protocol reset; it must not be fed again."""
        self._stream.pop(stream_id, None)
        if not stream_is_unidirectional(stream_id):
            # Header blocks on the stream will not be decoded; tell the peer's
            # encoder (RFC 9204 section 4.4.2), as aioquic does for a reset.
            decoder = self._decoder.cancel_stream(stream_id)
            if decoder and self._local_decoder_stream_id is not None:
                self._quic.send_stream_data(self._local_decoder_stream_id, decoder)
        self.rejected.pop(stream_id, None)
        self.oversized.discard(stream_id)
        self._blocked_blocks.pop(stream_id, None)

    # -- GOAWAY ----------------------------------------------------------------

    def _receive_stream_data_uni(self, stream: H3Stream, data: bytes, stream_ended: bool) -> list[H3Event]:
        type_was_known = stream.stream_type is not None
        pending = stream.buffer + data
        self._scan_encoder_stream(stream, pending, data)
        events = super()._receive_stream_data_uni(stream, data, stream_ended)
        if not _is_control(stream):
            return events
        if not type_was_known:
            # The type just became known: scan what follows it.
            buf = Buffer(data=pending)
            buf.pull_uint_var()
            data = pending[buf.tell() :]
            self._control_scanner = _ControlScanner()
        assert self._control_scanner is not None
        for identifier in self._control_scanner.feed(data):
            # RFC 9114 section 5.2: a server's GOAWAY names a client-initiated
            # bidirectional stream, and the identifier never increases.
            if self._is_client and identifier % 4 != 0:
                raise IdError("GOAWAY does not name a client-initiated bidirectional stream")
            if self._last_goaway is not None and identifier > self._last_goaway:
                raise IdError("GOAWAY identifier increased")
            self._last_goaway = identifier
            events.append(GoawayFrameReceived(identifier=identifier))
        return events

    def _scan_encoder_stream(self, stream: H3Stream, pending: bytes, data: bytes) -> None:
        """Follow the peer's encoder stream before aioquic feeds it to the decoder."""
        if stream.stream_type is None:
            buf = Buffer(data=pending)
            try:
                stream_type = buf.pull_uint_var()
            except BufferReadError:
                return
            if stream_type == StreamType.QPACK_ENCODER and self._peer_encoder_stream_id is None:
                self._encoder_scanner.feed(pending[buf.tell() :])
        elif stream.stream_id == self._peer_encoder_stream_id:
            self._encoder_scanner.feed(data)

    def send_goaway(self, identifier: int) -> None:
        """Send a GOAWAY frame on our control stream.

        :param identifier: for a server, the lowest request stream ID it will
            not process; for a client, the lowest push ID it will not accept
        """
        assert self._local_control_stream_id is not None
        self._quic.send_stream_data(
            self._local_control_stream_id, encode_frame(FrameType.GOAWAY, encode_uint_var(identifier))
        )

    # -- streams ---------------------------------------------------------------

    def _get_or_create_stream(self, stream_id: int) -> _StreamScope:  # type: ignore[override]
        streams = self._stream
        stream = streams.get(stream_id)
        if stream is None:
            stream = H3Stream(stream_id)
            if stream_is_unidirectional(stream_id):
                # As aioquic: a unidirectional stream has one half; the other is ended.
                if stream_is_client_initiated(stream_id) == self._is_client:
                    stream.receiving_ended = True
                else:
                    stream.sending_ended = True
            streams[stream_id] = stream
        return _StreamScope(streams, stream)

    # -- QPACK streams ---------------------------------------------------------

    def _encode_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        # As aioquic, without writing nothing to the encoder stream when the
        # block adds no dynamic-table entry (most blocks).
        encoder, frame_data = self._encoder.encode(stream_id, headers)
        if encoder:
            self._encoder_bytes_sent += len(encoder)
            assert self._local_encoder_stream_id is not None
            self._quic.send_stream_data(self._local_encoder_stream_id, encoder)
        return frame_data

    def _decode_headers(self, stream_id: int, frame_data: bytes | None) -> list[tuple[bytes, bytes]]:
        # As aioquic, without writing nothing to the decoder stream when there
        # is nothing to acknowledge (a block that refers to no dynamic entry).
        try:
            if frame_data is None:
                decoder, headers = self._decoder.resume_header(stream_id)
            else:
                decoder, headers = self._decoder.feed_header(stream_id, frame_data)
        except pylsqpack.DecompressionFailed as exc:
            raise QpackDecompressionFailed() from exc
        if decoder:
            self._decoder_bytes_sent += len(decoder)
            assert self._local_decoder_stream_id is not None
            self._quic.send_stream_data(self._local_decoder_stream_id, decoder)
        return headers

    # -- sending ---------------------------------------------------------------

    def send_fin(self, stream_id: int) -> None:
        """End our side of a request stream without a DATA frame."""
        with self._get_or_create_stream(stream_id) as stream:
            stream.finish_sending()
        self._quic.send_stream_data(stream_id, b"", end_stream=True)
