"""The state of HTTP messages, shared by every HTTP version.

Theory of operation
-------------------

Every HTTP version carries the same thing on a stream: one message in each
direction, made of a header block (after any number of informational 1xx
blocks, responses only), body data, and optional trailers, then the end; or a
reset that aborts the stream. :class:`MessageState` is that progress for one
direction, kept as data (a :class:`Phase`), and its methods are the only
place where the rules of the sequence are checked:

* the first final block is the request or the response, any block after it
  is trailers, and trailers end the message;
* a 1xx block cannot end the stream and does not move the message on;
* data needs the final block first and nothing after the end;
* once ended or reset, a message takes nothing more.

:class:`StreamState` pairs the two directions of one stream. Each protocol
keeps one per open stream (HTTP/1.1 has one at a time) and adds only what its
wire needs; it calls the checks when the application submits something (they
raise :class:`~trio_hface.errors.LocalProtocolError`) and moves the receiving
side on as events arrive (where the library below it has already checked the
peer). :class:`Termination` reports the end of a connection exactly once,
and :func:`server_cannot_open` is the error every version raises when a
server is asked to open a stream.
"""

from __future__ import annotations

import enum

from ..errors import LocalProtocolError
from ..events import ConnectionTerminated
from ._headers import HeaderKind

__all__ = ["Phase", "MessageState", "StreamState", "Termination", "server_cannot_open"]


class Phase(enum.Enum):
    """Where the message of one direction of a stream is."""

    #: Nothing final yet (informational 1xx blocks may have passed).
    IDLE = "idle"
    #: The final header block (request or response), no data yet.
    HEADERS = "headers"
    #: Body data after the final header block.
    DATA = "data"
    #: Trailers, with the end of the stream still to come (HTTP/3 may carry
    #: the end on its own after the trailers).
    TRAILERS = "trailers"
    #: The message is complete.
    DONE = "done"
    #: The stream was reset (or, for the sending side, stopped by the peer).
    RESET = "reset"


# Tuples, not sets: membership is then identity checks, where a set would
# call Enum.__hash__, written in Python, on the hot path of every message.
_ENDED = (Phase.TRAILERS, Phase.DONE, Phase.RESET)
_IN_BODY = (Phase.HEADERS, Phase.DATA)


class MessageState:
    """The progress of the message in one direction of one stream.

    :param stream_id: the stream, named in error messages
    """

    __slots__ = ("phase", "stream_id")

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.phase = Phase.IDLE

    def __repr__(self) -> str:
        return f"<MessageState stream {self.stream_id}: {self.phase.value}>"

    @property
    def started(self) -> bool:
        """Whether the final header block has passed."""
        return self.phase is not Phase.IDLE

    @property
    def in_body(self) -> bool:
        """Whether data or trailers may follow now."""
        return self.phase in _IN_BODY

    @property
    def ended(self) -> bool:
        """Whether nothing more can pass: the end, trailers or a reset."""
        return self.phase in _ENDED

    def next_block(self, first: HeaderKind) -> HeaderKind:
        """Return what the next header block is: *first* (request or response), or trailers.

        :raises LocalProtocolError: if the message has ended
        """
        if self.phase is Phase.IDLE:
            return first
        if self.phase in _IN_BODY:
            return HeaderKind.TRAILERS
        raise self._ended_error()

    def check_headers(self, kind: HeaderKind, *, end_stream: bool, informational: bool = False) -> None:
        """Check that a header block of *kind* may pass now, without moving on.

        *informational* is for a 1xx response.

        :raises LocalProtocolError: if the block cannot come now, or a 1xx or
            trailers block disagrees with *end_stream*
        """
        if self.next_block(kind) is not kind:
            raise LocalProtocolError(f"stream {self.stream_id} expects trailers, not a {kind.name.lower()}")
        if informational and end_stream:
            raise LocalProtocolError("an informational (1xx) response cannot end the stream")
        if kind is HeaderKind.TRAILERS and not end_stream:
            raise LocalProtocolError(
                f"trailers must end the stream (stream {self.stream_id}, end_stream=True)"
            )

    def headers(self, kind: HeaderKind, *, end_stream: bool, informational: bool = False) -> None:
        """Move past a header block of *kind* (checked as :meth:`check_headers` does).

        A 1xx block (*informational*) leaves the message where it is; trailers end it.

        :raises LocalProtocolError: as :meth:`check_headers`
        """
        if self.phase is Phase.IDLE and not informational and kind is not HeaderKind.TRAILERS:
            self.phase = Phase.DONE if end_stream else Phase.HEADERS  # the common case, checked
            return
        self.check_headers(kind, end_stream=end_stream, informational=informational)
        if not informational:
            self.phase = Phase.DONE if end_stream or kind is HeaderKind.TRAILERS else Phase.HEADERS

    def check_data(self) -> None:
        """Check that data may pass now, without moving on.

        :raises LocalProtocolError: before the final header block, or after the end
        """
        if self.phase not in _IN_BODY:
            if self.phase is Phase.IDLE:
                raise LocalProtocolError(f"stream {self.stream_id} has no final headers yet")
            raise self._ended_error()

    def data(self, *, end_stream: bool) -> None:
        """Move past data (and the end, with *end_stream*).

        :raises LocalProtocolError: before the final header block, or after the end
        """
        if self.phase not in _IN_BODY:
            self.check_data()
        self.phase = Phase.DONE if end_stream else Phase.DATA

    def reopen(self) -> None:
        """Carry a tunnel's bytes as data after the message's end (CONNECT or Upgrade on HTTP/1.1)."""
        if self.phase is not Phase.RESET:
            self.phase = Phase.DATA

    def hold_trailers(self) -> None:
        """Move past trailers whose end of stream comes later (receiving side of HTTP/3)."""
        self.phase = Phase.TRAILERS

    def end(self) -> None:
        """Mark the message complete, whatever it was doing."""
        if self.phase is not Phase.RESET:
            self.phase = Phase.DONE

    def reset(self) -> None:
        """Mark the message aborted."""
        self.phase = Phase.RESET

    def _ended_error(self) -> LocalProtocolError:
        if self.phase is Phase.RESET:
            return LocalProtocolError(f"stream {self.stream_id} was reset")
        return LocalProtocolError(f"stream {self.stream_id} was already ended")


class StreamState:
    """Both directions of one stream.

    :param stream_id: the stream
    """

    __slots__ = ("receive", "send", "stream_id")

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        #: Our message.
        self.send = MessageState(stream_id)
        #: The peer's message.
        self.receive = MessageState(stream_id)

    def __repr__(self) -> str:
        return f"<StreamState {self.stream_id}: send {self.send.phase.value}, receive {self.receive.phase.value}>"

    @property
    def is_reset(self) -> bool:
        """Whether the stream was reset: nothing more of it reaches the application."""
        return self.receive.phase is Phase.RESET

    @property
    def closed(self) -> bool:
        """Whether both directions are done (ended or reset)."""
        return self.send.ended and self.receive.ended

    def reset(self) -> None:
        """Abort both directions."""
        self.send.reset()
        self.receive.reset()


class Termination:
    """The end of a connection, reported exactly once."""

    __slots__ = ("terminated",)

    def __init__(self) -> None:
        #: Whether the connection has ended.
        self.terminated = False

    def terminate(self, error_code: int, message: str | None) -> ConnectionTerminated | None:
        """Return the event that reports the end the first time, ``None`` after that."""
        if self.terminated:
            return None
        self.terminated = True
        return ConnectionTerminated(error_code, message)

    def check_open(self) -> None:
        """:raises LocalProtocolError: if the connection has ended"""
        if self.terminated:
            raise LocalProtocolError("the connection is closed")


def server_cannot_open(version: str) -> LocalProtocolError:
    """The error for a server asked to open a stream (no version has server push here)."""
    return LocalProtocolError(f"an HTTP/{version} server cannot open streams (server push is not supported)")
