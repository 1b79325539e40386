"""The QUIC connection on qh3 (see ``_qh3.py``): imported with the first qh3 connection.

What differs from aioquic, and is handled here (checked against qh3 1.9.4):

* qh3 writes every frame of a 1-RTT packet in one method,
  ``_write_application``, where aioquic has ``_write_connection_limits`` and
  ``_write_stream_limits``: the new limits are set before it runs, and the
  figures it doubles limits by (``_local_max_data.used``,
  ``receiver.highest_offset`` of the streams in ``_streams_dirty_limits``) are
  hidden while it runs, so only our policy applies.
* qh3 doubles a limit when the peer says DATA_BLOCKED or STREAM_DATA_BLOCKED
  at it; a peer could so make us buffer without bound. The limit is put back.
* qh3 indexes its connection IDs (``_host_cid_seq_map``); it is rebuilt when
  the IDs are made to name a worker.
* qh3's events are its own classes: :meth:`Qh3QuicConnection.next_event`
  hands out aioquic's, which the HTTP/3 layer dispatches on.
* qh3 checks by itself that an ACK acknowledges only packets that were sent.
* qh3 delivers a STREAM frame that the peer retransmitted after the stream's
  data was all delivered (its ACK was late) as a second end of the stream,
  with no data, and a RESET_STREAM after the end (or a second one) as a
  reset; on a request whose state is gone the first read as a new request
  ended before its headers, and the server reset it with
  H3_REQUEST_INCOMPLETE, dropping the answer not yet acknowledged. Such
  frames deliver nothing here, as in aioquic.
* qh3 took a FIN below data already received as the final size (and the
  stream never ended); it is a FINAL_SIZE_ERROR here, as in aioquic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aioquic.quic import events as quic_events
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from qh3.quic import events as qh3_events
from qh3.quic.connection import END_STATES as QH3_END_STATES
from qh3.quic.connection import QuicConnection as Qh3Connection
from qh3.quic.connection import QuicConnectionError
from qh3.quic.packet import QuicErrorCode
from qh3.tls import load_pem_private_key, load_pem_x509_certificates

from ...errors import TLSConfigError
from ._quic import PacedCredit

__all__ = ["Qh3QuicConnection", "qh3_credentials"]

# RFC 9000 section 19.8: the flags in a STREAM frame's type.
_STREAM_FIN, _STREAM_LEN, _STREAM_OFF = 0x01, 0x02, 0x04


class Qh3QuicConnection(PacedCredit, Qh3Connection):
    """A qh3 ``QuicConnection`` that extends receive credit only for consumed data.

    :param configuration: a qh3 ``QuicConfiguration``; its ``max_data`` and
        ``max_stream_data`` are the connection and stream windows
    :param max_streams_bidi: how many bidirectional streams the peer may have
        open at once
    :param kwargs: passed on to qh3's ``QuicConnection``
    """

    _end_states = QH3_END_STATES

    def next_event(self) -> quic_events.QuicEvent | None:  # type: ignore[override]
        """The next event, as aioquic's class of it."""
        event = Qh3Connection.next_event(self)
        if event is None:
            return None
        if type(event) is qh3_events.StreamDataReceived:
            return quic_events.StreamDataReceived(
                data=event.data, end_stream=event.end_stream, stream_id=event.stream_id
            )
        translated: quic_events.QuicEvent = getattr(quic_events, type(event).__name__)(**vars(event))
        return translated

    def _connection_ids_replaced(self) -> None:
        self._host_cid_seq_map = {host_cid.cid: host_cid.sequence_number for host_cid in self._host_cids}

    # -- our limits on the wire ----------------------------------------------

    def _write_application(self, builder: Any, network_path: Any, now: float) -> None:
        self._grow_connection_limit()
        dirty = self._streams_dirty_limits
        due = self._credit_due
        if due:
            streams = self._streams
            for stream_id in list(due):
                stream = streams.get(stream_id)
                if stream is None:
                    due.discard(stream_id)
                    continue
                self._grow_stream_limit(stream)
                if stream.max_stream_data_local != stream.max_stream_data_local_sent:
                    dirty.add(stream)
        # qh3 doubles MAX_DATA when used * 2 > value, and a stream's limit when
        # highest_offset * 2 > its limit: hide both while it writes the frames.
        max_data = self._local_max_data
        used = max_data.used
        hidden = [(stream.receiver, stream.receiver.highest_offset) for stream in dirty]
        max_data.used = 0
        for receiver, _ in hidden:
            receiver.highest_offset = 0
        try:
            Qh3Connection._write_application(self, builder, network_path, now)
        finally:
            max_data.used = used
            for receiver, highest in hidden:
                receiver.highest_offset = highest

    def _handle_data_blocked_frame(self, context: Any, frame_type: int, buf: Any) -> None:
        # Credit follows consumption, not the peer's wish for more.
        max_data = self._local_max_data
        value = max_data.value
        Qh3Connection._handle_data_blocked_frame(self, context, frame_type, buf)
        max_data.value = value

    @staticmethod
    def _frame_stream_id(buf: Any) -> int:
        """The stream ID that the frame at *buf*'s position starts with, the position kept."""
        start = buf.tell()
        stream_id: int = buf.pull_uint_var()
        buf.seek(start)
        return stream_id

    def _handle_stream_frame(self, context: Any, frame_type: int, buf: Any) -> None:
        stream = self._streams.get(self._frame_stream_id(buf))
        if stream is not None and frame_type & _STREAM_FIN:
            self._check_final_size(stream, frame_type, buf)
        self._unless_received(stream, Qh3Connection._handle_stream_frame, context, frame_type, buf)

    @staticmethod
    def _check_final_size(stream: Any, frame_type: int, buf: Any) -> None:
        """RFC 9000 section 4.5: a STREAM frame with FIN may not end the stream below data
        already received (qh3 took the smaller size, and the stream never ended)."""
        start = buf.tell()
        buf.pull_uint_var()  # the stream ID
        offset = buf.pull_uint_var() if frame_type & _STREAM_OFF else 0
        length = buf.pull_uint_var() if frame_type & _STREAM_LEN else buf.capacity - buf.tell()
        buf.seek(start)
        if offset + length < stream.receiver.highest_offset:
            raise QuicConnectionError(
                error_code=QuicErrorCode.FINAL_SIZE_ERROR,
                frame_type=frame_type,
                reason_phrase="final size below data already received",
            )

    def _handle_reset_stream_frame(self, context: Any, frame_type: int, buf: Any) -> None:
        stream = self._streams.get(self._frame_stream_id(buf))
        self._unless_received(stream, Qh3Connection._handle_reset_stream_frame, context, frame_type, buf)

    def _unless_received(self, stream: Any, handle: Any, context: Any, frame_type: int, buf: Any) -> None:
        """Handle a STREAM or RESET_STREAM frame of *stream* (``None`` if it is new or gone),
        whose events are dropped if the stream's receiving side was already done (all
        delivered up to the FIN, or reset): a frame the peer sent again delivers nothing
        more, as in aioquic."""
        done = stream is not None and stream.receiver.is_finished
        queued = len(self._events)
        handle(self, context, frame_type, buf)
        if done:
            while len(self._events) > queued:
                self._events.pop()

    def _handle_stream_data_blocked_frame(self, context: Any, frame_type: int, buf: Any) -> None:
        stream_id = self._frame_stream_id(buf)
        stream = self._streams.get(stream_id)
        before = None if stream is None else stream.max_stream_data_local
        Qh3Connection._handle_stream_data_blocked_frame(self, context, frame_type, buf)
        stream = self._streams.get(stream_id)
        if stream is not None:
            # A stream this frame created starts at the limit it was created with.
            stream.max_stream_data_local = stream.max_stream_data_local_sent if before is None else before


def qh3_credentials(certificates: Sequence[x509.Certificate], private_key: Any) -> tuple[Any, Any, Any]:
    """The chain and key as qh3's own (Rust) objects, by way of PEM.

    :raises TLSConfigError: if qh3 cannot use them (an Ed448 key, for one)
    """
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        chain = load_pem_x509_certificates(chain_pem)
        key = load_pem_private_key(key_pem)
    except Exception as exc:
        raise TLSConfigError(f"qh3 cannot use this certificate or key: {exc}") from exc
    return chain[0], chain[1:], key
