"""HTTPConnection: a sans-IO protocol driven over a Trio transport.

Theory of operation
-------------------

Each connection runs two tasks in a nursery that ``async with connection``
owns (a listener enters it in its per-connection task; a client enters it
around its use):

* the **reader** feeds what the transport receives into the protocol, then
  wakes everyone who waits for input. For HTTP/2 (and HTTP/3) it reads all
  the time, so WINDOW_UPDATE, SETTINGS and PING are processed even when no
  task is inside :meth:`HTTPConnection.receive_event`; for HTTP/1.1, which has
  no flow control, it reads only while some task waits for input, so an
  application that does not read leaves the bytes in the kernel (TCP's own
  backpressure) instead of in a buffer.
* the **writer** takes the protocol's output and sends it. Senders submit to
  the protocol synchronously (so two tasks never get the same stream ID),
  wake the writer and wait until their bytes left: a sender never holds a
  lock across network I/O, and the reader never waits for the writer.

Nothing is queued outside the protocol: received DATA stays there until
:meth:`HTTPConnection.receive_event` hands it out, which is when its
flow-control credit goes back to the peer. A sender whose window is empty
waits for input (the reader is always reading on multiplexed connections),
so a sender waiting for credit and a receiver waiting for the sender cannot
deadlock: credit arrives through the reader, which waits for neither.

Events can also be routed where they are made: with
:meth:`HTTPConnection.set_event_router`, the task whose input or submission
made an event (the reader, most often) offers it at once to a router, which
puts it where it belongs (a stream's queue) without waiting, and no task is
woken in :meth:`HTTPConnection.receive_event` for it. What the router cannot
take without waiting it leaves to :meth:`HTTPConnection.receive_event`, in
order. The :class:`.StreamDispatcher` of servers and clients works so: a
response's events go from the reader to the task that waits for them, with
no task in between.
"""

from __future__ import annotations

import logging
import math
from abc import ABCMeta, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any

import trio

from .._models import HTTPErrorCodes
from .._typing import AddressType, HeadersType
from ..errors import HFaceError, UsageError
from ..protocols import HTTPProtocol
from ._limit import ConnectionSlot
from ._receiving import _EventReceiving

__all__ = ["CLOSE_TIMEOUT", "CONNECTION_ERRORS", "HTTPConnection"]

log = logging.getLogger(__name__)

#: What sending or receiving on a connection that ended or broke raises: catch
#: these where a connection going away is an expected outcome.
CONNECTION_ERRORS = (HFaceError, trio.BrokenResourceError, trio.ClosedResourceError)

#: Bytes asked of the transport per read (Trio's usual receive size).
RECEIVE_SIZE = 65536

#: Largest piece of a body submitted at once on a multiplexed connection, in
#: bytes: big enough for throughput, small enough that one stream does not
#: hog the writer. (HTTP/1.1 submits a body whole: it has one stream.)
SEND_CHUNK = 256 * 1024

#: Seconds that closing may spend sending its last bytes (GOAWAY, close_notify).
CLOSE_TIMEOUT = 5.0


class _ConnectionFacts:
    """What a connection is: its version and its transport's facts (the base of :class:`HTTPConnection`)."""

    _protocol: HTTPProtocol
    _extra: dict[str, Any]

    @property
    def http_version(self) -> str:
        """The HTTP version: ``"1"``, ``"2"`` or ``"3"``."""
        return self._protocol.http_version

    @property
    def multiplexed(self) -> bool:
        """Whether streams run in parallel (HTTP/2 and HTTP/3)."""
        return self._protocol.multiplexed

    @property
    def error_codes(self) -> HTTPErrorCodes:
        """Error codes of this connection's HTTP version."""
        return self._protocol.error_codes

    @property
    def local_address(self) -> AddressType:
        """Our ``(host, port)``."""
        return self._extra["local_address"]  # type: ignore[no-any-return]

    @property
    def remote_address(self) -> AddressType:
        """The peer's ``(host, port)``."""
        return self._extra["remote_address"]  # type: ignore[no-any-return]

    @property
    def extra_attributes(self) -> Mapping[str, Any]:
        """Facts about the transport: ``local_address``, ``remote_address``,
        ``tls_version``, ``alpn_protocol`` and ``peer_certificate`` (``None``
        without TLS)."""
        return dict(self._extra)

    @property
    def protocol(self) -> HTTPProtocol:
        """The sans-IO protocol underneath (for inspection; do not drive it directly)."""
        return self._protocol


class HTTPConnection(_ConnectionFacts, _EventReceiving, metaclass=ABCMeta):
    """One HTTP connection of any version.

    Obtain connections from a listener (:class:`.HTTPListener`) or an opener
    (:class:`.HTTPOpener`); the constructor is not public. Use the connection
    inside ``async with``, which runs its background tasks::

        async with connection:
            stream_id = connection.get_available_stream_id()
            await connection.send_headers(stream_id, headers, end_stream=True)
            event = await connection.receive_event()

    Several tasks may send at once, on the same or different streams.
    Events of all streams come from :meth:`receive_event`.
    """

    #: The place the connection holds in its listener's :class:`.ConnectionLimit`
    #: (``None`` without a limit, and for client connections). Whoever serves the
    #: connection marks it busy while requests are in flight
    #: (:meth:`.ConnectionSlot.set_busy`) and idle otherwise: an idle
    #: connection may be evicted when the limit is full.
    connection_slot: ConnectionSlot | None = None

    def __init__(
        self,
        protocol: HTTPProtocol,
        extra_attributes: Mapping[str, Any],
        *,
        idle_timeout: float | None = None,
    ) -> None:
        self._protocol = protocol
        self._idle_timeout = idle_timeout
        self._last_activity = trio.current_time()
        self._extra = dict(extra_attributes)
        self._exit_stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._task_scopes: list[trio.CancelScope] = []
        self._stopped = False
        self._closed = False
        self._terminated = False
        # Whether the protocol ended the connection because of an error.
        self._peer_error = False
        # Input: the reader replaces and sets this event after each input.
        self._input_event = trio.Event()
        self._input_done = False
        # HTTP/1 reads only while someone waits.
        self._waiting = 0
        # The receiving side's state (see _EventReceiving).
        self._events_event = trio.Event()
        self._event_waiters = 0
        self._router = None
        self._declined = None
        self._routing_paused = False
        self._routing = False
        self._want_input = trio.Event()
        # Output: senders bump _submitted, the writer records what it flushed.
        self._submitted = 0
        self._flushed = 0
        # Senders waiting for their bytes to leave, in the order of their marks:
        # the writer wakes those it flushed, not everyone (see _flushed_up_to).
        self._flush_waiters: deque[tuple[int, trio.Event]] = deque()
        self._kick = trio.Event()
        self._broken = False

    # -- lifetime -----------------------------------------------------------

    async def __aenter__(self) -> HTTPConnection:
        """Start the connection's tasks and :meth:`open` it."""
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self._running())
            self._exit_stack = stack.pop_all()  # entered: __aexit__ leaves it
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Close the connection (see :meth:`aclose`) and wait for its tasks."""
        stack, self._exit_stack = self._exit_stack, None
        if stack is None:
            return False
        return bool(await stack.__aexit__(exc_type, exc, tb))

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        """The connection's nursery with its reader and writer, from :meth:`open` to :meth:`aclose`."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._own_task, self._reader)
            nursery.start_soon(self._own_task, self._writer)
            try:
                await self.open()
            except BaseException:
                # Never opened: no goodbye to say, but the shielded tasks must stop.
                self._closed = True
                await self._stop()
                raise
            try:
                yield
            finally:
                await self.aclose()

    async def _own_task(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run the reader or the writer shielded from the code around the
        connection: a cancellation there must not stop them before aclose()
        (which __aexit__ always calls) has said goodbye; aclose() stops them.

        The shield gets its deadline when closing starts (``CLOSE_TIMEOUT``,
        as aclose() itself); a failed __aenter__ cancels it at once.
        """
        with trio.CancelScope(shield=True) as scope:
            self._task_scopes.append(scope)
            if self._stopped:  # started after aclose() stopped the others
                return
            await fn()

    async def open(self) -> None:
        """Start sending the protocol's opening bytes (HTTP/2 preface and SETTINGS).

        :meth:`__aenter__` calls it. It does not wait for the peer, so both
        ends of a connection may be entered in either order.
        """
        self._wake_writer()
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Close the connection: GOAWAY (HTTP/2, HTTP/3) or CONNECTION_CLOSE, then the transport.

        Idempotent. Open streams are abandoned. Saying goodbye is bounded by
        ``CLOSE_TIMEOUT`` (5 seconds), even when the caller is cancelled;
        after that the transport is closed at once.
        """
        if self._closed:
            return
        self._closed = True
        deadline = trio.current_time() + CLOSE_TIMEOUT
        for scope in self._task_scopes:
            scope.deadline = deadline  # the reader and writer's shields end with the goodbye
        try:
            with trio.move_on_at(deadline, shield=True):
                if not self._broken:
                    if not self._terminated:
                        self._protocol.submit_close(self._protocol.error_codes.no_error)
                    if self._nursery is not None:
                        # Also after the protocol ended the connection: its last
                        # words (an error response, GOAWAY) must go out.
                        try:
                            await self._flush()
                        except trio.BrokenResourceError:
                            pass
                        else:
                            await self._linger()
                await self._close_transport()
        finally:
            await self._stop()

    async def _stop(self) -> None:
        """Stop the connection's tasks and close the transport at once."""
        self._stopped = True
        for scope in self._task_scopes:
            scope.cancel()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True):  # aborting does not wait
            await self._abort_transport()

    async def _linger(self) -> None:
        """Before closing, give the peer time to read our last words (see HTTPOverTCPConnection)."""

    @abstractmethod
    async def _close_transport(self) -> None:
        """Close the transport gracefully (TLS close_notify where there is one)."""

    @abstractmethod
    async def _abort_transport(self) -> None:
        """Close the transport at once, without waiting (idempotent)."""

    @abstractmethod
    async def _reader(self) -> None: ...

    @abstractmethod
    async def _writer(self) -> None: ...

    # -- state --------------------------------------------------------------

    def is_available(self) -> bool:
        """Whether a new stream can be opened now."""
        return not self._closed and not self._broken and self._protocol.is_available()

    def has_expired(self) -> bool:
        """Whether the connection is closed or should be closed."""
        return self._closed or self._broken or self._protocol.has_expired()

    def get_available_stream_id(self) -> int:
        """Return the ID for a new stream; pass it to :meth:`send_headers` at once.

        :raises LocalProtocolError: if no stream can be opened now
        """
        self._check_usable()
        return self._protocol.get_available_stream_id()

    # -- sending ------------------------------------------------------------

    async def send_headers(self, stream_id: int, headers: HeadersType, end_stream: bool = False) -> None:
        """Send a header block (request, response, 1xx or trailers).

        The headers are submitted before the first checkpoint, so a stream ID
        from :meth:`get_available_stream_id` is claimed even if several tasks
        open streams at once. Returns when the bytes are handed to the network.

        :raises LocalProtocolError: if the headers or the stream are invalid
        :raises trio.ClosedResourceError: if the connection was closed
        """
        self.submit_headers(stream_id, headers, end_stream)
        await self._flush()

    def submit_headers(
        self, stream_id: int, headers: HeadersType, end_stream: bool = False, *, data_follows: bool = False
    ) -> None:
        """Queue a header block without waiting: it goes out with what follows.

        For headers that data follows at once (a response and its body): the
        next :meth:`send_data` sends both in one write. Without one, the
        writer sends them on its next round. Never yields to other tasks.

        :param data_follows: the caller calls :meth:`send_data` next, before
            any checkpoint: the writer is not woken for the headers alone
            (that send sends them)

        :raises LocalProtocolError: if the headers or the stream are invalid
        :raises trio.ClosedResourceError: if the connection was closed
        """
        self._check_usable()
        self._protocol.submit_headers(stream_id, headers, end_stream)
        protocol = self._protocol
        if not protocol.multiplexed and protocol.output_may_release_events():
            # Finishing an HTTP/1.1 response may let a request pipelined behind
            # it out of the protocol's buffer. A multiplexed protocol makes no
            # event of submitted headers: its receivers need not look again.
            self._poke_receivers()
        if not data_follows:
            self._wake_writer()

    async def send_submitted(self) -> None:
        """Hand what was submitted (:meth:`submit_headers`) to the network, without waiting for it.

        On HTTP/1.1 over TCP, bytes that the socket takes at once are written
        by the calling task (cheaper than waking the connection's writer);
        otherwise the writer is woken and sends them on its next round while
        the caller goes on. Never waits for the network: a checkpoint that
        raises :exc:`trio.Cancelled` only before anything was written (what
        was submitted is sent all the same). A write that fails is not
        raised here: the connection ends, and its streams' events say so, as
        when the writer's write fails.
        """
        self._wake_writer()
        await trio.lowlevel.checkpoint_if_cancelled()

    async def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send body data of any size, waiting for flow-control credit as needed.

        Large data goes out in pieces that fit the peer's window. If
        cancelled, part of the data may have been sent.

        :raises StreamResetByPeerError: if the peer reset the stream (also
            meanwhile, while waiting for credit)
        :raises LocalProtocolError: if the stream cannot take data
        :raises trio.ClosedResourceError: if the connection was closed
        :raises trio.BrokenResourceError: if the connection broke meanwhile
        """
        self._check_usable()
        view = memoryview(data)
        offset = 0
        while True:
            remaining = len(view) - offset
            if remaining == 0 and offset > 0:
                return
            window = self._protocol.get_send_window(stream_id) if remaining else math.inf
            if window <= 0:
                await self._wait_input()
                self._check_usable()
                continue
            # HTTP/1.1 has one stream and no window: the whole of the data
            # goes at once, and when it is bytes, as the same object.
            chunk = SEND_CHUNK if self._protocol.multiplexed else remaining
            size = int(min(window, remaining, chunk))
            last = offset + size == len(view)
            if size == len(view) and type(data) is bytes:
                piece = data  # the whole of it: no copy
            else:
                piece = bytes(view[offset : offset + size])
            self._protocol.submit_data(stream_id, piece, end_stream and last)
            if last and not self._protocol.multiplexed and self._protocol.output_may_release_events():
                # As in submit_headers: finishing an HTTP/1.1 message may let a
                # pipelined request out (the protocol tells whether it may); a
                # multiplexed protocol makes no event of what is sent (waking its
                # receivers for nothing costs a round of the dispatcher per response).
                self._poke_receivers()
            offset += size
            await self._flush()
            if last:
                return

    async def send_goaway(self) -> None:
        """Start a graceful shutdown: the peer opens no new streams; open ones may finish.

        HTTP/2 and HTTP/3 send GOAWAY; HTTP/1.1 answers the request in
        progress with ``Connection: close``. Then :meth:`has_expired` is true.
        """
        self._check_usable()
        self._protocol.submit_goaway()
        self._poke_receivers()
        await self._flush()

    async def send_ping(self, data: bytes) -> None:
        """Send an HTTP/2 PING; its acknowledgement arrives as :class:`~trio_hface.events.PingAckReceived`.

        :param data: 8 bytes that the acknowledgement echoes
        :raises LocalProtocolError: if the protocol has no PING
            (:attr:`.HTTPProtocol.supports_ping`)
        """
        self._check_usable()
        self._protocol.submit_ping(data)
        await self._flush()

    async def send_stream_reset(self, stream_id: int, error_code: int = 0) -> None:
        """Reset a stream (HTTP/1: close the connection).

        :param error_code: why; see :attr:`error_codes`
        """
        self._check_usable()
        self._protocol.submit_stream_reset(stream_id, error_code)
        self._poke_receivers()
        await self._flush()

    # -- receiving ----------------------------------------------------------

    @property
    def manual_acknowledgement(self) -> bool:
        """Whether data's flow-control credit waits for :meth:`acknowledge_data`.

        Off by default: :meth:`receive_event` returns the credit when it hands
        data out. Turn it on (before the first :meth:`receive_event`) when
        events go to per-stream queues, so that a stream nobody reads holds
        back its sender, and not the other streams (HTTP/2 and HTTP/3; see
        :attr:`.HTTPProtocol.manual_acknowledgement`).
        """
        return self._protocol.manual_acknowledgement

    @manual_acknowledgement.setter
    def manual_acknowledgement(self, value: bool) -> None:
        self._protocol.manual_acknowledgement = value

    def acknowledge_data(self, stream_id: int, length: int) -> None:
        """Return the flow-control credit of *length* bytes of data of a stream, consumed or dropped.

        With :attr:`manual_acknowledgement` only; the credit goes out with the
        next packet (a WINDOW_UPDATE or MAX_STREAM_DATA when enough is due).
        """
        if self._closed or self._terminated:
            return
        self._protocol.acknowledge_data(stream_id, length)
        self._wake_writer_for_output()

    # -- internals ----------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the connection is closed")
        if self._broken:
            raise trio.BrokenResourceError("the connection broke")
        if self._nursery is None:
            raise UsageError("use the connection inside 'async with connection:'")

    async def _wait_input(self) -> None:
        """Wait until the reader processed more input."""
        if self._input_done:
            await trio.lowlevel.checkpoint()
            if self._broken:
                raise trio.BrokenResourceError("the connection broke")
            return
        event = self._input_event
        self._waiting += 1
        self._want_input.set()
        try:
            await event.wait()
        finally:
            self._waiting -= 1

    def _input(self) -> None:
        """Called by the reader after feeding input: wake waiters, and the writer if there is output."""
        self._poke_receivers()
        self._wake_writer_for_output()

    def _idle_deadline(self) -> float:
        if self._idle_timeout is None:
            return math.inf
        return self._last_activity + self._idle_timeout

    def _idle_expired(self) -> None:
        """Close an idle connection: the protocol says goodbye (GOAWAY) and reports it."""
        log.debug("connection idle for %.1f s: closing", self._idle_timeout or 0.0)
        self._protocol.submit_close(self._protocol.error_codes.no_error)
        self._input()

    def _wake_writer(self) -> None:
        self._kick.set()

    def _wake_writer_for_output(self) -> None:
        """Wake the writer after input or consumption, unless the protocol says nothing is to send."""
        self._kick.set()

    async def _flush(self) -> None:
        """Wait until everything submitted so far was handed to the network."""
        self._submitted += 1
        target = self._submitted
        self._wake_writer()
        flushed = trio.Event()
        self._flush_waiters.append((target, flushed))  # marks only grow: the deque stays in order
        while self._flushed < target:
            if self._broken:
                raise trio.BrokenResourceError("the connection broke while sending")
            await flushed.wait()

    def _flushed_up_to(self, mark: int) -> None:
        """Everything submitted up to *mark* is out: wake its senders (and only them)."""
        self._flushed = max(self._flushed, mark)
        waiters = self._flush_waiters
        while waiters and waiters[0][0] <= self._flushed:
            waiters.popleft()[1].set()
