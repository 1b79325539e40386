"""A QUIC connection whose flow control follows the application.

Theory of operation
-------------------

aioquic's :class:`~aioquic.quic.connection.QuicConnection` grants the peer more
credit (MAX_DATA, MAX_STREAM_DATA) by doubling a limit as soon as half of it has
*arrived*, whether or not anybody read the data. A peer can then make us buffer
without bound when the application stops reading. :class:`FlowControlledQuicConnection`
replaces that policy: credit is extended only for bytes that the layer above
reports as *consumed* through :meth:`FlowControlledQuicConnection.consume`.

For every stream, and for the connection as a whole, the limit we advertise is
``consumed + window``, where *window* is the configured ``max_stream_data`` or
``max_data``. A new limit is sent only once it grows the old one by at least half
a window, so a reader that consumes byte by byte does not cause a frame per byte.
The peer can therefore have at most one window in flight beyond what the
application consumed, per stream and per connection.

What counts as consumed is decided by the HTTP/3 layer (see ``_protocol.py``):
bytes of request streams count once the events made from them have been handed
to the application (HTTP/3 frame headers included, since QUIC counts every byte
of the stream); bytes of the control and QPACK streams count as soon as the
HTTP/3 layer has parsed them; bytes that will never reach the application (a
reset stream, data after STOP_SENDING) count at once.

The send side is left to aioquic; :meth:`FlowControlledQuicConnection.stream_send_credit`
and :meth:`FlowControlledQuicConnection.connection_send_credit` compute how many
more bytes may be queued without aioquic holding them for flow-control reasons.
The connection's figure is kept as two running totals, so that asking costs
the same with one stream as with a hundred (it is asked before every body
piece): the bytes ever queued on streams (:meth:`~FlowControlledQuicConnection.send_stream_data`)
and the bytes abandoned unsent when a stream's sending part was reset (by us,
or by the peer's STOP_SENDING). Every other queued byte is sent or will be, and
uses the peer's MAX_DATA: the credit is that limit less the difference.

Internals of aioquic used here (checked against aioquic 1.7.2):
``_handle_padding_frame``, ``_local_max_data`` (a ``Limit`` with ``value``, ``used``, ``sent``),
``_local_max_streams_bidi``, ``_write_connection_limits``, ``_write_stream_limits``,
``_streams``, ``_remote_max_data``, ``_remote_max_data_used``, ``_handshake_complete``,
``_remote_max_streams_bidi``,
``QuicStream.max_stream_data_local`` / ``max_stream_data_remote``,
``QuicStreamReceiver.highest_offset`` / ``is_finished`` and
``QuicStreamSender.highest_offset`` / ``write``,
``_handle_stop_sending_frame``,
``_host_cids``, ``_host_cid_seq``, ``_local_initial_source_connection_id`` and
``_replenish_connection_ids`` (stateless reset tokens, connection IDs that name a worker),
``_handle_ack_frame`` and ``_packet_number`` (one counter for every packet
number space: the next packet number we send), ``_write_stream_frame`` and
``QuicPacketBuilder.remaining_flight_space``; for path MTU discovery
(``_pmtu.py``): ``_max_datagram_size``, ``_parse_transport_parameters``,
``_flush_builder``, ``_network_paths``, ``_cryptos``, ``_handshake_confirmed``,
``_close_pending``, ``_peer_cid``, ``_peer_token``, ``_spin_bit``, ``_version``,
``_quic_logger``, the recovery's ``_pto_count``, ``_pacer._max_datagram_size``
and its congestion control's ``_max_datagram_size`` (and cubic's
``additive_increase_factor``), and ``QuicSentPacket.in_flight``.

Speed
-----

aioquic offers every stream with data a STREAM frame in every packet it
builds, and a full packet has no room left: with ten busy streams, nine of
every ten offers built nothing at the cost of a frame size computation each.
:meth:`FlowControlledQuicConnection._write_stream_frame` answers such an offer
at once when the packet has no room even for the smallest frame header.

Hostile peers
-------------

aioquic bounds most of what a peer can make it hold or do (checked against
aioquic 1.7.2): ACK ranges are parsed within the frame and matched against
sent packets by bisection, CRYPTO data beyond 512 KiB past what the TLS layer
consumed is CRYPTO_BUFFER_EXCEEDED, at most 32 PATH_CHALLENGEs wait for their
PATH_RESPONSE per path, and STREAM data beyond a stream's or the connection's
limit is FLOW_CONTROL_ERROR (so sparse data allocates at most the windows).
One check is added here: an ACK frame acknowledging a packet number we never
sent is a PROTOCOL_VIOLATION (RFC 9000 section 13.1), where aioquic ignored it;
this also stops a peer from flooding us with ACKs of made-up packets.
"""

from __future__ import annotations

from typing import Any, Protocol

from aioquic import tls
from aioquic._buffer import Buffer
from aioquic.quic import events as quic_events
from aioquic.quic.connection import (
    NetworkAddress,
    QuicConnection,
    QuicConnectionError,
    QuicConnectionState,
    QuicNetworkPath,
    QuicReceiveContext,
)
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicFrameType,
    QuicPacketType,
    pull_quic_transport_parameters,
)
from aioquic.quic.packet_builder import QuicDeliveryState, QuicPacketBuilder, QuicSentPacket
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream

from .._cids import ConnectionIDRouting
from ._header import stateless_reset_token
from ._pmtu import BLACK_HOLE_PTOS, PathMTUSearch

__all__ = ["FlowControlledQuicConnection", "PacedCredit", "PacedQuicConnection"]

#: The smallest STREAM frame header aioquic writes: type, a one-byte stream
#: ID and a two-byte length (no offset field at offset 0); aioquic builds no
#: frame, not even a bare FIN, in a packet with less room than this.
MIN_STREAM_FRAME_OVERHEAD = 4


class PacedQuicConnection(Protocol):
    """What the HTTP/3 layer uses of a QUIC connection, whichever stack it is on:
    the stack's public methods, the few internals named in the module's
    documentation, and what :class:`PacedCredit` adds."""

    host_cid: bytes
    _close_event: Any
    _handshake_complete: bool
    _network_paths: Any
    _remote_max_streams_bidi: int
    _streams: Any

    @property
    def ending(self) -> bool: ...
    @property
    def consumed_total(self) -> int: ...
    @property
    def received_total(self) -> int: ...
    @property
    def connection_window(self) -> int: ...
    def connect(self, addr: Any, now: float) -> None: ...
    def close(
        self, error_code: int = ..., frame_type: int | None = ..., reason_phrase: str = ...
    ) -> None: ...
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...
    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None: ...
    def datagrams_to_send(self, now: float) -> Any: ...
    def next_event(self) -> quic_events.QuicEvent | None: ...
    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int: ...
    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None: ...
    def reset_stream(self, stream_id: int, error_code: int) -> None: ...
    def stop_stream(self, stream_id: int, error_code: int) -> None: ...
    def consume(self, stream_id: int, count: int) -> None: ...
    def stream_send_credit(self, stream_id: int) -> int: ...
    def connection_send_credit(self) -> int: ...
    def connection_send_credit_by_streams(self) -> int: ...
    def request_bytes_queued(self) -> int: ...


class PacedCredit:
    """What the QUIC connection classes of every stack share (mixed in before
    the stack's ``QuicConnection``): receive credit that follows consumption,
    the send-credit figures, stateless reset tokens derived from the server's
    key, and connection IDs that name a worker.

    The names it uses are those of aioquic's ``QuicConnection``, which
    aioquic's forks keep; see the module's documentation for the list. How the
    limits computed here reach the wire is the stack's own (its ``_write_*``
    methods).
    """

    # Attributes of the stack's QuicConnection (typed loosely: stacks differ).
    _configuration: Any
    _host_cids: Any
    _host_cid_seq: int
    _local_initial_source_connection_id: bytes
    _local_max_data: Any
    _local_max_streams_bidi: Any
    _local_max_streams_uni: Any
    _remote_max_data: int
    _remote_max_data_used: int
    _streams: Any
    _is_client: bool
    _state: Any
    host_cid: bytes

    #: The stack's closing, draining and terminated states (its own enum).
    _end_states: frozenset[Any] = frozenset()

    def __init__(
        self,
        *,
        configuration: Any,
        max_streams_bidi: int,
        stateless_reset_key: bytes | None = None,
        connection_id_routing: ConnectionIDRouting | None = None,
        max_probed_datagram_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        """The stack's constructor takes *configuration* and *kwargs*; then what it did not set up.

        *max_probed_datagram_size* is the ceiling of path MTU discovery (``None``: none), on
        the stacks that implement it (``_pmtu.py``); the others send every datagram at
        the configuration's ``max_datagram_size``.
        """
        super().__init__(configuration=configuration, **kwargs)  # type: ignore[call-arg]
        self._pmtu: PathMTUSearch | None = None
        self._pmtu_path: Any = None  # the network path the search is about
        if (
            max_probed_datagram_size is not None
            and max_probed_datagram_size > configuration.max_datagram_size
        ):
            self._pmtu = PathMTUSearch(configuration.max_datagram_size, max_probed_datagram_size)
        self._stateless_reset_key = None if configuration.is_client else stateless_reset_key
        self._routing = None if configuration.is_client else connection_id_routing
        if self._routing is not None:
            # Our first connection ID (the Source CID of our Initial) names
            # this worker too, before anything is sent.
            first = self._host_cids[0]
            first.cid = self._routing.issue(configuration.connection_id_length)
            self.host_cid = self._local_initial_source_connection_id = first.cid
            self._connection_ids_replaced()
        self._derive_reset_tokens()
        self._connection_window: int = configuration.max_data
        self._stream_window: int = configuration.max_stream_data
        # The stacks hard-code 128; the transport parameters are serialized
        # during the handshake, after this.
        self._local_max_streams_bidi.value = max_streams_bidi
        self._local_max_streams_bidi.sent = max_streams_bidi
        self._consumed_total = 0
        # Send side: bytes queued on all streams, and bytes of reset streams never to be sent.
        self._queued_total = 0
        self._abandoned_total = 0
        # Bytes queued per stream, and the streams whose sending part was
        # reset, kept here since stacks keep them where Python cannot see
        # (pruned as _consumed is).
        self._queued: dict[int, int] = {}
        self._reset_ids: set[int] = set()
        # Bytes consumed per stream ID (IDs are never reused), pruned of the
        # streams the stack discarded once they outnumber the live ones (a
        # stack's stream objects may not take weak references).
        self._consumed: dict[int, int] = {}
        # Streams consumed from since their limit was last worked out (at most
        # one more than the streams the stack holds: see consume()).
        self._credit_due: set[int] = set()

    @property
    def ending(self) -> bool:
        """Whether the connection is closing, draining or terminated."""
        return self._state in self._end_states

    # -- connection IDs and stateless reset --------------------------------

    def _connection_ids_replaced(self) -> None:
        """Hook: the IDs of ``_host_cids`` were changed (a stack that indexes them reindexes)."""

    def _derive_reset_tokens(self) -> None:
        """Give our connection IDs tokens derived from the server's key, so the
        server can reset connections it has forgotten (RFC 9000 section 10.3.2)."""
        if self._stateless_reset_key is None:
            return
        for host_cid in self._host_cids:
            host_cid.stateless_reset_token = stateless_reset_token(self._stateless_reset_key, host_cid.cid)

    def _replenish_connection_ids(self) -> None:
        issued = self._host_cid_seq
        super()._replenish_connection_ids()  # type: ignore[misc]
        if self._routing is not None:
            # The stack's new connection IDs are random: make them name this
            # worker (they are sent later, in NEW_CONNECTION_ID frames).
            for host_cid in self._host_cids:
                if host_cid.sequence_number >= issued:
                    host_cid.cid = self._routing.issue(self._configuration.connection_id_length)
            self._connection_ids_replaced()
        self._derive_reset_tokens()

    # -- receive side ------------------------------------------------------

    def consume(self, stream_id: int, count: int) -> None:
        """Report that *count* more bytes of a stream have been consumed.

        :param stream_id: the stream (it may already be gone from the QUIC
            connection, in which case only the connection credit grows)
        :param count: the number of bytes, counted on the QUIC stream
        """
        if count <= 0:
            return
        self._consumed_total += count
        stream = self._streams.get(stream_id)
        if stream is not None:
            streams = self._streams
            consumed = self._consumed
            consumed[stream_id] = consumed.get(stream_id, 0) + count
            if len(consumed) > 2 * len(streams) + 8:
                self._consumed = {sid: n for sid, n in consumed.items() if sid in streams}
            due = self._credit_due
            due.add(stream_id)
            if len(due) > len(self._streams):  # forget streams the stack discarded meanwhile
                due.intersection_update(self._streams)

    @property
    def consumed_total(self) -> int:
        """Bytes consumed on all streams since the connection started."""
        return self._consumed_total

    @property
    def received_total(self) -> int:
        """Bytes received on all streams (what counts against our MAX_DATA)."""
        return int(self._local_max_data.used)

    @property
    def connection_window(self) -> int:
        """The connection-level receive window."""
        return self._connection_window

    def _grow_connection_limit(self) -> None:
        """Raise our MAX_DATA to consumed + window, once that grows it by half a window."""
        max_data = self._local_max_data
        target = self._consumed_total + self._connection_window
        if target - max_data.value >= self._connection_window // 2:
            max_data.value = target

    def _grow_stream_limit(self, stream: Any) -> None:
        """Raise a stream's MAX_STREAM_DATA likewise, if it was consumed from since last asked."""
        due = self._credit_due
        if due and stream.stream_id in due:
            due.discard(stream.stream_id)
            if stream.max_stream_data_local and not stream.receiver.is_finished:
                target = self._consumed.get(stream.stream_id, 0) + self._stream_window
                if target - stream.max_stream_data_local >= self._stream_window // 2:
                    stream.max_stream_data_local = target

    # -- send side ---------------------------------------------------------

    def stream_send_credit(self, stream_id: int) -> int:
        """Return how many more bytes may be queued on a stream for the peer's
        stream limit (not counting the connection limit).

        :param stream_id: a stream that exists in the QUIC connection
        """
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        return max(0, int(stream.max_stream_data_remote) - self._queued.get(stream_id, 0))

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        stream = self._streams.get(stream_id)
        # A stream that exists is not discarded, and we can send on it unless
        # it is the peer's unidirectional one: then the stack's lookup and
        # checks (twice per response) would find it as it is.
        if stream is not None and (not stream_id & 2 or (stream_id & 1) == (not self._is_client)):
            stream.sender.write(data, end_stream=end_stream)
        else:
            super().send_stream_data(stream_id, data, end_stream)  # type: ignore[misc]
        size = len(data)
        self._queued_total += size
        queued = self._queued
        queued[stream_id] = queued.get(stream_id, 0) + size
        if len(queued) > 2 * len(self._streams) + 8:
            streams = self._streams
            self._queued = {sid: n for sid, n in queued.items() if sid in streams}
            self._reset_ids.intersection_update(streams)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        stream = self._streams.get(stream_id)
        unsent = self._unsent(stream)
        super().reset_stream(stream_id, error_code)  # type: ignore[misc]
        self._abandon(stream, unsent)

    def _handle_stop_sending_frame(self, context: Any, frame_type: int, buf: Any) -> None:
        # The stack resets the stream's sending part when STOP_SENDING arrives.
        start = buf.tell()
        stream_id = buf.pull_uint_var()
        buf.seek(start)
        stream = self._streams.get(stream_id)
        unsent = self._unsent(stream)
        super()._handle_stop_sending_frame(context, frame_type, buf)  # type: ignore[misc]
        self._abandon(stream, unsent)

    def _unsent(self, stream: Any) -> int | None:
        """Bytes queued on a stream but never sent yet, or ``None`` if it is gone or already reset."""
        if stream is None or stream.stream_id in self._reset_ids:
            return None
        return max(0, self._queued.get(stream.stream_id, 0) - int(stream.sender.highest_offset))

    def _abandon(self, stream: Any, unsent: int | None) -> None:
        """Count a stream's unsent bytes as never to be sent: it was reset just now."""
        if stream is not None and unsent is not None:
            self._abandoned_total += unsent
            self._reset_ids.add(stream.stream_id)

    def request_bytes_queued(self) -> int:
        """Return how many bytes were queued on bidirectional streams so far (sent or not)."""
        queued = self._queued
        return sum(queued.get(stream_id, 0) for stream_id in self._streams if not stream_id & 2)

    def connection_send_credit(self) -> int:
        """Return how many more bytes may be queued on all streams for the
        peer's connection limit.

        Bytes already queued but not sent yet are subtracted: they will use
        the credit when the stack sends them.
        """
        # The unsent bytes are queued - abandoned - sent, and the sent ones are
        # _remote_max_data_used: what is left is the limit less what will use it.
        return max(0, self._remote_max_data - self._queued_total + self._abandoned_total)

    def connection_send_credit_by_streams(self) -> int:
        """:meth:`connection_send_credit` computed stream by stream (for tests: the totals must agree)."""
        unsent = 0
        for stream in self._streams.values():
            unsent += self._unsent(stream) or 0
        return max(0, self._remote_max_data - self._remote_max_data_used - unsent)


class FlowControlledQuicConnection(PacedCredit, QuicConnection):
    """A :class:`~aioquic.quic.connection.QuicConnection` that extends receive
    credit only for consumed data.

    :param configuration: the QUIC configuration; its ``max_data`` and
        ``max_stream_data`` are the connection and stream windows
    :param max_streams_bidi: how many bidirectional streams the peer may have
        open at once
    :param kwargs: passed on to :class:`~aioquic.quic.connection.QuicConnection`
    """

    _end_states = frozenset(
        {QuicConnectionState.CLOSING, QuicConnectionState.DRAINING, QuicConnectionState.TERMINATED}
    )

    # -- hostile peers -----------------------------------------------------

    def _handle_ack_frame(self, context: QuicReceiveContext, frame_type: int, buf: Buffer) -> None:
        start = buf.tell()
        largest_acknowledged = buf.pull_uint_var()
        buf.seek(start)
        if largest_acknowledged >= self._packet_number:
            # RFC 9000 section 13.1: acknowledging a packet we did not send.
            raise QuicConnectionError(
                error_code=QuicErrorCode.PROTOCOL_VIOLATION,
                frame_type=frame_type,
                reason_phrase=f"packet {largest_acknowledged} acknowledged but never sent",
            )
        super()._handle_ack_frame(context, frame_type, buf)

    def _handle_padding_frame(self, context: QuicReceiveContext, frame_type: int, buf: Buffer) -> None:
        # aioquic steps over padding one byte at a time in Python: a datagram of
        # it (every client Initial is padded to 1200 bytes, a path MTU probe to
        # up to 16 KiB, and a hostile peer can send nothing else) cost a loop
        # round per byte. The bytes' own lstrip finds the end in C.
        start = buf.tell()
        rest = buf.data_slice(start, buf.capacity)
        buf.seek(start + len(rest) - len(rest.lstrip(b"\x00")))
        logged = context.quic_logger_frames
        if self._quic_logger is not None and logged is not None:
            logged.append(self._quic_logger.encode_padding_frame())

    # -- our limits on the wire ----------------------------------------------

    def _write_connection_limits(self, builder: QuicPacketBuilder, space: QuicPacketSpace) -> None:
        self._grow_connection_limit()
        max_data = self._local_max_data
        if (
            max_data.value == max_data.sent
            and self._local_max_streams_bidi.value == self._local_max_streams_bidi.sent
            and self._local_max_streams_uni.value == self._local_max_streams_uni.sent
        ):
            return  # nothing to announce: this runs for every packet, so skip aioquic's checks
        # aioquic doubles the limit when max_data.used * 2 > max_data.value;
        # hide *used* while it writes the frames so that only our policy applies.
        used = max_data.used
        max_data.used = 0
        try:
            super()._write_connection_limits(builder=builder, space=space)
        finally:
            max_data.used = used

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: QuicStream
    ) -> None:
        # This runs for every stream in every packet: the new limit is worked
        # out only for a stream consumed from since, and nothing else is done
        # when there is nothing to announce.
        self._grow_stream_limit(stream)
        if stream.max_stream_data_local == stream.max_stream_data_local_sent:
            return
        receiver = stream.receiver
        # aioquic doubles the limit when highest_offset * 2 > max_stream_data_local;
        # hide highest_offset while it writes the frame.
        highest = receiver.highest_offset
        receiver.highest_offset = 0
        try:
            super()._write_stream_limits(builder=builder, space=space, stream=stream)
        finally:
            receiver.highest_offset = highest

    # -- send side ---------------------------------------------------------

    def _write_stream_frame(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: QuicStream, max_offset: int
    ) -> int:
        if builder.remaining_flight_space < MIN_STREAM_FRAME_OVERHEAD:
            return 0  # the packet is full: aioquic would find no room for a frame either
        return int(super()._write_stream_frame(builder, space, stream, max_offset))

    # -- path MTU discovery (see _pmtu.py) ---------------------------------------

    def _parse_transport_parameters(self, data: bytes, from_session_ticket: bool = False) -> None:
        super()._parse_transport_parameters(data, from_session_ticket)
        if self._pmtu is not None and not from_session_ticket:
            # (aioquic checked the parameters, and keeps no max_udp_payload_size.)
            peer_max = pull_quic_transport_parameters(Buffer(data=data)).max_udp_payload_size
            if peer_max is not None:
                self._pmtu.limit(peer_max)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, NetworkAddress]]:
        datagrams = super().datagrams_to_send(now)
        search = self._pmtu
        # Probes go with other traffic (an idle connection is not probed), after it,
        # so that a batch of equal datagrams stays one GSO send.
        if datagrams and search is not None and not (search.done and search.size == search.base):
            datagrams += self._discover_path_mtu(search, now)
        return datagrams

    def _discover_path_mtu(self, search: PathMTUSearch, now: float) -> list[tuple[bytes, NetworkAddress]]:
        path = self._network_paths[0]
        if path is not self._pmtu_path:
            if self._pmtu_path is not None:  # the peer moved: a new path starts from the base
                search.restart()
                self._use_datagram_size(search.size)
            self._pmtu_path = path
        if search.size > search.base and self._loss._pto_count >= BLACK_HOLE_PTOS:
            if search.black_hole():
                self._use_datagram_size(search.size)
            return []
        if self._close_pending or not (self._handshake_confirmed and path.is_validated):
            return []
        crypto = self._cryptos[tls.Epoch.ONE_RTT]
        if not crypto.send.is_valid() or self._version is None:
            return []
        size = search.next_probe()
        if size is None:
            return []
        builder = _ProbeBuilder(
            host_cid=self.host_cid,
            is_client=self._is_client,
            max_datagram_size=size,
            packet_number=self._packet_number,
            peer_cid=self._peer_cid.cid,
            peer_token=self._peer_token,
            quic_logger=self._quic_logger,
            spin_bit=self._spin_bit,
            version=self._version,
        )
        # A probe is a PING padded to the size: nothing in it is sent again if it is lost.
        builder.start_packet(QuicPacketType.ONE_RTT, crypto)
        builder.start_frame(QuicFrameType.PING, handler=self._path_mtu_probed, handler_args=(size, path))
        padding = builder.remaining_buffer_space
        builder.start_frame(QuicFrameType.PADDING, capacity=padding).push_bytes(bytes(padding - 1))
        return self._flush_builder(builder=builder, network_path=path, peer_cid=self._peer_cid.cid, now=now)

    def _path_mtu_probed(self, delivery: QuicDeliveryState, size: int, path: QuicNetworkPath) -> None:
        search = self._pmtu
        if search is None or path is not self._pmtu_path:
            return
        if delivery == QuicDeliveryState.ACKED:
            if search.acknowledged(size):
                self._use_datagram_size(size)
        else:
            search.lost(size)

    def _use_datagram_size(self, size: int) -> None:
        """Send datagrams of up to *size* bytes from now on; congestion control and pacing count in them."""
        self._max_datagram_size = size
        recovery = self._loss
        recovery._pacer._max_datagram_size = size
        control = recovery._cc
        if hasattr(control, "_max_datagram_size"):  # reno and cubic: their minimum window and growth
            control._max_datagram_size = size
        if hasattr(control, "additive_increase_factor"):
            control.additive_increase_factor = size


class _ProbeBuilder(QuicPacketBuilder):
    """Builds path MTU probes: packets that are not counted in flight, so that
    congestion control neither waits for nor reacts to them (RFC 9000 section 14.4)."""

    def flush(self) -> tuple[list[bytes], list[QuicSentPacket]]:
        datagrams, packets = super().flush()
        for packet in packets:
            packet.in_flight = False
        return datagrams, packets
