"""The sans-IO protocol interfaces.

A protocol object is the state machine of one HTTP connection. It performs
no I/O and never reads a clock: the caller hands it received bytes (TCP) or
datagrams and the time (QUIC), takes out what it has to send, submits HTTP
actions (``submit_*``) and takes out HTTP events (:meth:`HTTPProtocol.next_event`).

Contracts shared by every implementation:

* Input methods (``bytes_received``, ``eof_received``, ``datagram_received``,
  ``clock``) never raise because of what the peer sent. Broken input becomes
  a :class:`~trio_hface.events.ConnectionTerminated` or
  :class:`~trio_hface.events.StreamResetSent` event, and the matching close or
  reset is queued for sending.
* ``submit_*`` methods raise :class:`~trio_hface.errors.LocalProtocolError`
  when the caller misuses them, and leave the protocol usable.
* Flow control is visible: :meth:`HTTPProtocol.get_send_window` tells how many
  bytes of DATA may be submitted on a stream now; submitting more raises
  :class:`~trio_hface.errors.FlowControlError`. The window can only grow as a
  result of input, so a sender that waits for credit re-checks after input.
* Received DATA is credited back to the peer when :meth:`HTTPProtocol.next_event`
  hands it out, so a slow consumer slows the peer instead of filling a buffer.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence

from .._models import HTTPErrorCodes
from .._typing import DatagramType, HeadersType
from ..errors import LocalProtocolError
from ..events import Event

__all__ = [
    "HTTPProtocol",
    "HTTPOverTCPProtocol",
    "HTTPOverQUICProtocol",
    "HTTP1Protocol",
    "HTTP2Protocol",
    "HTTP3Protocol",
]


class HTTPProtocol(metaclass=ABCMeta):
    """Sans-IO state machine of one HTTP connection, of any version.

    Obtain instances from a factory (:class:`.HTTPOverTCPFactory`,
    :class:`.HTTPOverQUICClientFactory`, :class:`.HTTPOverQUICServerFactory`).
    """

    @property
    @abstractmethod
    def http_version(self) -> str:
        """The HTTP version: ``"1"``, ``"2"`` or ``"3"``."""

    @property
    @abstractmethod
    def multiplexed(self) -> bool:
        """Whether streams run in parallel (``True`` for HTTP/2 and HTTP/3).

        A multiplexed protocol makes no event of :meth:`submit_headers` (its
        events come from input), so the connection does not wake its
        receivers after each submitted header block.
        """

    @property
    @abstractmethod
    def error_codes(self) -> HTTPErrorCodes:
        """Error codes of this HTTP version, for resets and closes."""

    @abstractmethod
    def is_available(self) -> bool:
        """Whether a new stream can be opened now.

        ``False`` once the connection is closing or closed, while the peer's
        limit of concurrent streams is reached, and, for HTTP/1, while a
        request is in progress.
        """

    @abstractmethod
    def has_expired(self) -> bool:
        """Whether the connection is closed or should be closed (nothing new may start)."""

    @abstractmethod
    def get_available_stream_id(self) -> int:
        """Return the ID that the next new stream should use.

        The same ID is returned until :meth:`submit_headers` opens a stream with it.

        :raises LocalProtocolError: if no stream can be opened (see :meth:`is_available`)
        """

    @abstractmethod
    def submit_headers(self, stream_id: int, headers: HeadersType, end_stream: bool = False) -> None:
        """Submit a header block on a stream.

        On a client, the first block opens the stream with a request. On a
        server, it is the response, or an informational (1xx) response that a
        final one follows. A block submitted after data is trailers and must
        have *end_stream* set.

        :param stream_id: the stream
        :param headers: HTTP/2-style headers, pseudo-headers first
        :param end_stream: whether this ends our side of the stream
        :raises LocalProtocolError: if the headers are invalid or the stream
            cannot take them
        """

    @abstractmethod
    def submit_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Submit body data on a stream.

        Data larger than the peer's maximum frame size is split into frames.

        :param stream_id: the stream
        :param data: the bytes, at most :meth:`get_send_window` of them
        :param end_stream: whether this ends our side of the stream
        :raises FlowControlError: if *data* is larger than the send window
        :raises LocalProtocolError: if the stream cannot take data
        """

    @abstractmethod
    def get_send_window(self, stream_id: int) -> int:
        """Return how many bytes of DATA may be submitted on a stream now.

        This is the smaller of the stream's and the connection's flow-control
        window for HTTP/2 and HTTP/3. HTTP/1 has no flow control and returns a
        large number. The window grows only when input arrives from the peer.

        :raises LocalProtocolError: if the stream cannot take data
        """

    @abstractmethod
    def submit_stream_reset(self, stream_id: int, error_code: int = 0) -> None:
        """Reset a stream: abort it in both directions.

        For HTTP/1, where streams cannot be reset, the connection is closed.
        A :class:`~trio_hface.events.StreamResetSent` event follows.

        :param stream_id: the stream
        :param error_code: why (see :attr:`error_codes`)
        """

    @abstractmethod
    def submit_close(self, error_code: int = 0) -> None:
        """Close the connection: GOAWAY for HTTP/2 and HTTP/3, then the transport.

        A :class:`~trio_hface.events.ConnectionTerminated` event follows.

        :param error_code: why (0 for a graceful close)
        """

    def submit_goaway(self) -> None:
        """Start a graceful shutdown: no new streams, but those open may finish.

        HTTP/2 and HTTP/3 send GOAWAY; HTTP/1.1 closes the connection after
        the exchange in progress (a server says ``Connection: close``). The
        connection then reports :meth:`has_expired`; close it with
        :meth:`submit_close` once its streams are done. Implementations that
        cannot do this raise :class:`~trio_hface.errors.LocalProtocolError`.
        """
        raise LocalProtocolError(f"{type(self).__name__} cannot shut down gracefully")

    @abstractmethod
    def next_event(self) -> Event | None:
        """Take the next event, or ``None`` when there is none now.

        Handing out :class:`~trio_hface.events.DataReceived` returns its
        flow-control credit to the peer, unless :attr:`manual_acknowledgement`
        is set.
        """

    #: When true, handing out :class:`~trio_hface.events.DataReceived` does
    #: not return its flow-control credit: the caller returns it with
    #: :meth:`acknowledge_data` once the data is consumed, so a stream whose
    #: reader is slow holds back only its own sender (HTTP/2 and HTTP/3). Set
    #: it before taking the first event. HTTP/1.1 has no flow control of its
    #: own (TCP's applies) and ignores it.
    manual_acknowledgement: bool = False

    def acknowledge_data(self, stream_id: int, length: int) -> None:  # noqa: B027 (HTTP/1.1 has nothing to do)
        """Return the flow-control credit of *length* bytes of a stream's data.

        For :attr:`manual_acknowledgement`: call it for every byte of
        :class:`~trio_hface.events.DataReceived` handed out, once consumed
        (or dropped). Framing overhead and padding are credited by the
        protocol itself. Acknowledging a stream that ended or was reset still
        returns the connection's credit. HTTP/1.1 ignores it.
        """

    @property
    def peer_allows_extended_connect(self) -> bool:
        """Whether the peer advertised extended CONNECT (``SETTINGS_ENABLE_CONNECT_PROTOCOL``, RFC 8441 and 9220).

        A client may then send ``:protocol`` (WebSockets over HTTP/2 and
        HTTP/3). False by default, and always on HTTP/1.1.
        """
        return False

    @property
    def peer_settings_received(self) -> bool:
        """Whether the peer's settings arrived, so that :attr:`peer_allows_extended_connect` is final.

        True by default (HTTP/1.1 has no settings; HTTP/2's come first on the
        connection: a PING's acknowledgement follows them). HTTP/3's come on a
        stream of their own, maybe after the first responses.
        """
        return True

    @property
    def supports_ping(self) -> bool:
        """Whether :meth:`submit_ping` works (HTTP/2's PING frame). False by default."""
        return False

    def output_may_release_events(self) -> bool:
        """Whether what was just submitted may have made :meth:`next_event` return something new.

        The connection asks it after a header block and after the end of a
        body, and wakes its receivers only when it is ``True``. HTTP/1.1
        cannot have a new event then unless input is buffered (a request
        pipelined behind the exchange just finished), the peer's input has
        ended, or events are queued already. The default says ``True``:
        implementations that cannot tell lose nothing but that saving.
        """
        return True

    def submit_ping(self, data: bytes) -> None:
        """Send a PING; a :class:`~trio_hface.events.PingAckReceived` follows its acknowledgement.

        The default raises: only versions with a PING of their own (HTTP/2)
        override it, and say so with :attr:`supports_ping`.

        :param data: exactly 8 bytes of opaque data
        :raises LocalProtocolError: if this protocol has no PING
        """
        raise LocalProtocolError(f"PING is an HTTP/2 frame; this connection speaks HTTP/{self.http_version}")


class HTTPOverTCPProtocol(HTTPProtocol):
    """An :class:`HTTPProtocol` that runs over a byte stream (HTTP/1 and HTTP/2).

    Extends :class:`HTTPProtocol`.
    """

    @abstractmethod
    def bytes_received(self, data: bytes) -> None:
        """Feed bytes received from the network (never empty: EOF is :meth:`eof_received`)."""

    @abstractmethod
    def eof_received(self) -> None:
        """Tell the protocol that the peer will send no more bytes."""

    @abstractmethod
    def connection_lost(self) -> None:
        """Tell the protocol that the transport is gone."""

    @abstractmethod
    def bytes_to_send(self) -> bytes:
        """Take the bytes to send to the network (``b""`` when there are none)."""

    def buffers_to_send(self) -> list[bytes | bytearray]:
        """Take the bytes to send as pieces, to be written in order (``[]`` when there are none).

        What :meth:`bytes_to_send` returns, without joining the pieces into
        one: a body the application handed over goes to the transport as the
        same object, not copied. The transport writes a large piece by itself
        and joins small neighbours. The default takes :meth:`bytes_to_send`
        as the one piece.
        """
        data = self.bytes_to_send()
        return [data] if data else []

    def has_output(self) -> bool:
        """Whether :meth:`bytes_to_send` or :meth:`eof_to_send` has something now.

        A hint that lets the transport skip waking its writer after input
        that made nothing to send (HTTP/1.1 answers nothing to a body's
        bytes). The default says ``True``: implementations that cannot tell
        cheaply lose nothing but that saving.
        """
        return True

    def eof_to_send(self) -> bool:
        """Whether the transport should send EOF (half-close) after the bytes to send.

        Returns ``True`` once. Only an HTTP/1.1 CONNECT or Upgrade tunnel whose
        sending side the application ended asks for it; the default is ``False``.
        """
        return False


class HTTPOverQUICProtocol(HTTPProtocol):
    """An :class:`HTTPProtocol` that runs over QUIC (HTTP/3).

    The caller passes time in with :meth:`clock` before every other call,
    and calls it again when the time from :meth:`get_timer` has come.

    Extends :class:`HTTPProtocol`.
    """

    @property
    @abstractmethod
    def connection_ids(self) -> Sequence[bytes]:
        """The connection IDs that route datagrams to this connection now."""

    @abstractmethod
    def clock(self, now: float) -> None:
        """Tell the protocol the current time, in seconds, on the caller's clock."""

    @abstractmethod
    def get_timer(self) -> float | None:
        """Return when :meth:`clock` must next be called, or ``None`` for never."""

    @abstractmethod
    def datagram_received(self, datagram: DatagramType) -> None:
        """Feed one datagram received from the network."""

    @abstractmethod
    def connection_lost(self) -> None:
        """Tell the protocol that the transport is gone."""

    @abstractmethod
    def datagrams_to_send(self) -> Sequence[DatagramType]:
        """Take the datagrams to send, each with its destination address."""

    @property
    def handshake_completed(self) -> bool:
        """Whether the QUIC handshake is complete.

        A client may submit requests before (they go out once it completes);
        :class:`.HTTPOverQUICOpener` waits for it to hand out a connection
        that has shaken hands. The default says a protocol that accepts
        streams has completed it (:meth:`is_available`), which is right for
        implementations that refuse streams before the handshake.
        """
        return self.is_available()

    def address_validated(self, original_destination_cid: bytes, retry_source_cid: bytes) -> None:
        """Tell a server connection that its client's address was validated with a Retry.

        A server that sends Retry packets calls this before the connection's
        first datagram (RFC 9000 section 8.1.2). Implementations that cannot
        take part in a Retry raise.

        :param original_destination_cid: the destination connection ID of the
            client's first Initial packet (kept in the Retry token)
        :param retry_source_cid: the source connection ID of the Retry packet
        :raises LocalProtocolError: if this protocol cannot do it
        """
        raise LocalProtocolError(f"{type(self).__name__} does not support Retry")


class HTTP1Protocol(HTTPOverTCPProtocol):
    """An HTTP/1.1 connection. Implementations extend this class.

    Extends :class:`HTTPOverTCPProtocol`.
    """

    @property
    def manual_acknowledgement(self) -> bool:
        """Always false: HTTP/1.1 has no flow control of its own (TCP's applies)."""
        return False

    @manual_acknowledgement.setter
    def manual_acknowledgement(self, value: bool) -> None:
        pass  # nothing to acknowledge: the setting does not apply

    @property
    def http_version(self) -> str:
        return "1"

    @property
    def multiplexed(self) -> bool:
        return False

    error_codes = HTTPErrorCodes(
        protocol_error=400,
        internal_error=500,
        connect_error=502,
        cancel=499,
        refused_stream=503,
        no_error=0,
    )


class HTTP2Protocol(HTTPOverTCPProtocol):
    """An HTTP/2 connection. Implementations extend this class.

    Extends :class:`HTTPOverTCPProtocol`.
    """

    @property
    def http_version(self) -> str:
        return "2"

    @property
    def multiplexed(self) -> bool:
        return True

    # RFC 9113 section 7
    error_codes = HTTPErrorCodes(
        protocol_error=0x1,
        internal_error=0x2,
        connect_error=0xA,
        cancel=0x8,
        refused_stream=0x7,
        no_error=0x0,
    )

    @property
    def supports_ping(self) -> bool:
        return True

    @abstractmethod
    def submit_ping(self, data: bytes) -> None:
        """Send a PING; a :class:`~trio_hface.events.PingAckReceived` follows its acknowledgement.

        :param data: exactly 8 bytes of opaque data
        """


class HTTP3Protocol(HTTPOverQUICProtocol):
    """An HTTP/3 connection. Implementations extend this class.

    Extends :class:`HTTPOverQUICProtocol`.
    """

    @property
    def http_version(self) -> str:
        return "3"

    @property
    def multiplexed(self) -> bool:
        return True

    # RFC 9114 section 8.1
    error_codes = HTTPErrorCodes(
        protocol_error=0x101,
        internal_error=0x102,
        connect_error=0x10F,
        cancel=0x10C,
        refused_stream=0x10B,
        no_error=0x100,
    )
