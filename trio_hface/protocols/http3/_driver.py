"""The QUIC side of an HTTP/3 connection: time, datagrams, connection IDs, and QUIC's events.

:class:`QuicDriver` owns the QUIC connection and the HTTP/3 layer on it. It
takes the inputs of :class:`~trio_hface.protocols.HTTPOverQUICProtocol` (the
clock, datagrams, the loss of the transport), creates a server's connection
from the client's first Initial packet, and hands the QUIC events of streams
to :class:`~._streams.RequestStreams`; the events of the connection itself
(new and retired connection IDs, the close) it handles here.
:class:`~._protocol.HTTP3ProtocolImpl` adds what the application submits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

from aioquic.h3.connection import ErrorCode
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import stream_is_unidirectional
from aioquic.quic.packet import QuicErrorCode

from ..._typing import AddressType, DatagramType
from ...errors import LocalProtocolError
from .._cids import ConnectionIDRouting
from ._h3 import HFaceH3Connection
from ._header import parse_quic_header
from ._quic import FlowControlledQuicConnection, PacedQuicConnection
from ._streams import RequestStreams

__all__ = ["QuicDriver"]

log = logging.getLogger(__name__)

# RFC 9114 section 7.1: a frame header is two variable-length integers of at
# most 8 bytes each (RFC 9000 section 16).
MAX_FRAME_HEADER_SIZE = 16


class QuicDriver:
    """The QUIC connection under an HTTP/3 protocol (see the module's documentation).

    Call :meth:`clock` before anything else.
    """

    def __init__(
        self,
        configuration: QuicConfiguration | Any,
        *,
        max_concurrent_streams: int,
        enable_connect_protocol: bool,
        max_field_section_size: int,
        remote_address: AddressType | None = None,
        stateless_reset_key: bytes | None = None,
        connection_id_routing: ConnectionIDRouting | None = None,
        connection_class: Callable[..., PacedQuicConnection] = FlowControlledQuicConnection,
        max_probed_datagram_size: int | None = None,
    ) -> None:
        self._configuration = configuration
        self._connection_class = connection_class
        self._max_probed_datagram_size = max_probed_datagram_size
        self._connection_id_routing = connection_id_routing
        self._is_client = configuration.is_client
        self._max_concurrent_streams = max_concurrent_streams
        self._enable_connect_protocol = enable_connect_protocol
        self._max_field_section_size = max_field_section_size
        self._remote_address = remote_address
        self._stateless_reset_key = stateless_reset_key
        self._now: float | None = None
        self._connected = False
        self._quic: PacedQuicConnection | None = None
        self._h3: HFaceH3Connection | None = None
        self._original_cid: bytes | None = None
        # After a Retry: (original destination CID, retry source CID).
        self._validated: tuple[bytes, bytes] | None = None
        self._cids: list[bytes] = []
        self._requests = RequestStreams(
            client=self._is_client, enable_connect_protocol=enable_connect_protocol
        )
        self._streams = self._requests.streams
        self._end = self._requests.end
        self._lost = False
        self._idle_timeout_fired = False
        self._outbox: list[DatagramType] = []
        if self._is_client:
            if remote_address is None:
                raise ValueError("a client needs a remote address")
            self._create_connection()

    def _create_connection(self, original_cid: bytes | None = None) -> None:
        self._quic = self._connection_class(
            configuration=self._configuration,
            max_streams_bidi=self._max_concurrent_streams,
            original_destination_connection_id=(
                self._validated[0] if self._validated is not None else original_cid
            ),
            retry_source_connection_id=self._validated[1] if self._validated is not None else None,
            stateless_reset_key=self._stateless_reset_key,
            connection_id_routing=self._connection_id_routing,
            max_probed_datagram_size=self._max_probed_datagram_size,
        )
        self._original_cid = original_cid
        self._cids = [self._quic.host_cid]
        self._h3 = HFaceH3Connection(
            self._quic,
            enable_connect_protocol=self._enable_connect_protocol,
            max_headers_frame=self._configuration.max_stream_data - MAX_FRAME_HEADER_SIZE,
            max_field_section_size=self._max_field_section_size,
        )
        self._requests.attach(self._quic, self._h3)

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
        self._terminate(ErrorCode.H3_INTERNAL_ERROR, "connection lost")

    def _require_now(self) -> float:
        if self._now is None:
            raise LocalProtocolError("call clock() before any other method of an HTTP/3 protocol")
        return self._now

    @property
    def handshake_completed(self) -> bool:
        """Whether the QUIC handshake is complete (1-RTT keys and the peer's limits are known)."""
        quic = self._quic
        return quic is not None and quic._handshake_complete

    def _terminate(self, error_code: int, message: str | None) -> None:
        self._requests.terminate(error_code, message)

    def _internal_error(self, what: str) -> None:
        log.exception("HTTP/3 connection failed: %s", what)
        quic = self._quic
        if quic is not None:
            try:
                quic.close(error_code=QuicErrorCode.INTERNAL_ERROR, reason_phrase=what)
            except Exception:
                log.debug("cannot close the QUIC connection", exc_info=True)
        self._terminate(ErrorCode.H3_INTERNAL_ERROR, what)

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
        if close is not None and not self._end.terminated:
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
        requests = self._requests
        if isinstance(event, quic_events.StreamDataReceived):
            if stream_is_unidirectional(event.stream_id):
                requests.uni_stream_data(event)
            else:
                requests.request_stream_data(event)
        elif isinstance(event, quic_events.StreamReset):
            requests.peer_reset(event)
        elif isinstance(event, quic_events.StopSendingReceived):
            requests.peer_stop_sending(event)
        elif isinstance(event, quic_events.ConnectionIdIssued):
            self._cids.append(event.connection_id)
        elif isinstance(event, quic_events.ConnectionIdRetired):
            if event.connection_id in self._cids:
                self._cids.remove(event.connection_id)
        elif isinstance(event, quic_events.ConnectionTerminated):
            self._terminate_with(event)
