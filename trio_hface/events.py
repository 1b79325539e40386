"""HTTP events: what a protocol reports to the application.

Every HTTP version reports the same events. They are immutable and compare
by value (:attr:`ConnectionTerminated.message` does not take part in the
comparison); their reprs show sizes rather than payloads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._typing import HeadersType

__all__ = [
    "Event",
    "ConnectionTerminated",
    "GoawayReceived",
    "PingAckReceived",
    "StreamEvent",
    "HeadersReceived",
    "DataReceived",
    "StreamReset",
    "StreamResetReceived",
    "StreamResetSent",
]


class Event:
    """Base class of all HTTP events. Not instantiated directly."""

    __slots__ = ()


@dataclass(frozen=True)
class ConnectionTerminated(Event):
    """The connection was terminated: closed by either side, lost, or failed.

    No event follows it. When the peer misbehaved, the protocol has already
    queued its close frame (GOAWAY, CONNECTION_CLOSE, or a 4xx response for
    HTTP/1) in the outgoing data.

    Extends :class:`Event`.
    """

    #: Why the connection ended, in the numbering of the HTTP version
    #: (0 means no error).
    error_code: int = 0

    #: A human-readable explanation, if there is one (not compared).
    message: str | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"ConnectionTerminated(error_code={self.error_code!r}, message={self.message!r})"


@dataclass(frozen=True)
class GoawayReceived(Event):
    """The peer sent GOAWAY: it will process no stream above *last_stream_id*.

    Streams up to *last_stream_id* may still complete; no new stream may be
    opened on this connection.

    Extends :class:`Event`.
    """

    #: The highest stream ID that the peer may still process.
    last_stream_id: int

    #: Why the peer is going away (0 means a graceful shutdown).
    error_code: int = 0

    def __repr__(self) -> str:
        return f"GoawayReceived(last_stream_id={self.last_stream_id!r}, error_code={self.error_code!r})"


@dataclass(frozen=True)
class PingAckReceived(Event):
    """The peer acknowledged a PING that we sent (HTTP/2).

    Extends :class:`Event`.
    """

    #: The 8 bytes of opaque data of the acknowledged PING.
    data: bytes

    def __repr__(self) -> str:
        return f"PingAckReceived(data={self.data!r})"


@dataclass(frozen=True)
class StreamEvent(Event):
    """Base class of the events of one stream. Not instantiated directly.

    Extends :class:`Event`.
    """

    #: The stream the event belongs to.
    stream_id: int


@dataclass(frozen=True)
class StreamReset(StreamEvent):
    """A stream was reset. Base class of the two directions.

    The stream must not be used any more; the connection and its other
    streams are unaffected.

    Extends :class:`StreamEvent`.
    """

    #: Why the stream was reset.
    error_code: int = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(stream_id={self.stream_id!r}, error_code={self.error_code!r})"


@dataclass(frozen=True, repr=False)
class StreamResetReceived(StreamReset):
    """The peer reset a stream (RST_STREAM, RESET_STREAM or STOP_SENDING).

    Extends :class:`StreamReset`.
    """


@dataclass(frozen=True, repr=False)
class StreamResetSent(StreamReset):
    """We reset a stream: on request, or because the peer broke the protocol on it.

    Extends :class:`StreamReset`.
    """


@dataclass(frozen=True)
class HeadersReceived(StreamEvent):
    """A header block arrived: request or response headers, an informational
    (1xx) response, or trailers.

    Pseudo-headers come first, in the HTTP/2 style, for every HTTP version.
    Trailers are a header block after data, always with *end_stream* set.

    Extends :class:`StreamEvent`.
    """

    #: The header fields, names in lower case.
    headers: HeadersType

    #: Whether the peer will send nothing more on this stream.
    end_stream: bool = False

    def __repr__(self) -> str:
        return (
            f"HeadersReceived(stream_id={self.stream_id!r}, "
            f"len(headers)={len(self.headers)}, end_stream={self.end_stream!r})"
        )


@dataclass(frozen=True)
class DataReceived(StreamEvent):
    """Body data arrived on a stream.

    Handing this event out through :meth:`.HTTPProtocol.next_event`
    returns its flow-control credit to the peer.

    Extends :class:`StreamEvent`.
    """

    #: The body bytes (may be empty when only *end_stream* is reported).
    data: bytes

    #: Whether the peer will send nothing more on this stream.
    end_stream: bool = False

    def __repr__(self) -> str:
        return (
            f"DataReceived(stream_id={self.stream_id!r}, "
            f"len(data)={len(self.data)}, end_stream={self.end_stream!r})"
        )
