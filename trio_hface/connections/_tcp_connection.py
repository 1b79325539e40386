"""HTTP/1.1 and HTTP/2 connections over a Trio byte stream (TCP, TLS, or any stream)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import trio

from ..networking import can_receive_without_waiting, send_space_probe
from ..protocols import HTTPOverTCPProtocol
from ._connections import RECEIVE_SIZE, HTTPConnection

log = logging.getLogger(__name__)

__all__ = ["HTTPOverTCPConnection", "LINGERING_CLOSE", "LINGER_MAX_BYTES"]

#: Seconds a server's connection, closing after a protocol error, waits for
#: the peer to close first (nginx's ``lingering_timeout`` does the same).
LINGERING_CLOSE = 2.0

#: The most input a lingering close reads and drops before it closes anyway.
LINGER_MAX_BYTES = 1024 * 1024

#: The most bytes fed to the protocol before its waiters are woken, while
#: further reads return at once (see ``_read_while_wanted``).
RECEIVE_BATCH = 256 * 1024

#: Output pieces (see :meth:`.HTTPOverTCPProtocol.buffers_to_send`) of at
#: least this many bytes are written by themselves, as they are; smaller
#: neighbours are joined into one write. Copying a large body costs more than
#: the extra write (and with TLS, the extra record) that sending it alone does.
COALESCE_SIZE = 64 * 1024

#: The most output a sender writes itself when the writer is idle (see
#: ``HTTPOverTCPConnection._flush``); more goes through the writer. A socket
#: that polls writable has a third of its send buffer (at least 16 KiB by
#: default) free: this much fits at once, TLS record included.
DIRECT_SEND_MAX = 4096


class HTTPOverTCPConnection(HTTPConnection):
    """An :class:`HTTPConnection` over a Trio byte stream (HTTP/1.1 and HTTP/2).

    Listeners and openers create these; build one yourself only to drive a
    protocol over a stream of your own (any :class:`trio.abc.Stream` works,
    so memory streams can drive it in tests).

    :param protocol: a fresh protocol from an :class:`.HTTPOverTCPFactory`
    :param stream: the transport, already connected (and TLS already shaken)
    :param extra_attributes: what :attr:`~HTTPConnection.extra_attributes` reports
    :param idle_timeout: seconds without traffic after which the connection
        closes itself, or ``None``
    :param lingering_close: seconds that closing after a protocol error
        waits for the peer to close first, reading and dropping what it
        still sends (at most ``LINGER_MAX_BYTES``), or ``None`` to close at
        once. Servers linger: a peer whose data is still unread when the
        socket closes gets a TCP reset, which can destroy the error response
        before the peer reads it (RFC 9112 section 9.6).
    """

    def __init__(
        self,
        protocol: HTTPOverTCPProtocol,
        stream: trio.abc.Stream,
        extra_attributes: Mapping[str, Any],
        *,
        idle_timeout: float | None = None,
        lingering_close: float | None = None,
    ) -> None:
        super().__init__(protocol, extra_attributes, idle_timeout=idle_timeout)
        self._tcp = protocol
        self._stream = stream
        self._lingering_close = lingering_close
        self._draining = False
        self._drained = 0
        # Whether the writer waits for a kick with everything flushed, whether
        # a sender writes its own bytes (see _flush), and the end of that write
        # when the writer waits for it.
        self._writer_parked = False
        self._direct_sending = False
        self._direct_done: trio.Event | None = None
        # Output a sender took for itself but leaves to the writer (too large), sent first.
        self._held: list[bytes | bytearray] | None = None
        self._send_space = send_space_probe(stream)

    async def _reader(self) -> None:
        try:
            while True:
                while not self._reading_wanted():
                    self._want_input = trio.Event()
                    await self._want_input.wait()
                # One cancel scope per run of reads, not per read: its deadline is
                # the idle deadline as of now; when it passes, the connection is
                # idle unless there was traffic meanwhile, and then a new run starts.
                with trio.CancelScope(deadline=self._idle_deadline()) as idle:
                    if await self._read_while_wanted():
                        return
                if idle.cancelled_caught and trio.current_time() >= self._idle_deadline():
                    self._idle_expired()
                    return
        finally:
            self._input_done = True
            self._input()

    def _wake_writer_for_output(self) -> None:
        if self._tcp.has_output():
            self._kick.set()

    def _reading_wanted(self) -> bool:
        # HTTP/1.1 reads only while someone waits for input (a request in
        # progress reads its body; between requests the next one is read).
        return self._tcp.multiplexed or self._waiting > 0 or self._draining

    async def _read_while_wanted(self) -> bool:
        """Feed the protocol while input is wanted; return whether the input has ended.

        The reads of one run that return at once (the TLS records of one
        network read), up to ``RECEIVE_BATCH`` bytes, are fed to the protocol
        together and its waiters are woken once, not per read: each 16 KiB
        record fed by itself would be an event for the dispatcher and the
        consumer to route, and a piece for the inbox to join again.
        """
        tcp, stream = self._tcp, self._stream
        run: list[bytes | bytearray] = []  # the reads of this run, not fed yet
        fed = 0
        try:
            while self._reading_wanted():
                try:
                    data = await stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._feed(run)
                    tcp.connection_lost()
                    return True
                except Exception as exc:
                    # Any other failure of the transport (a tunnel, a custom stream)
                    # ends this connection, not the code around it.
                    log.debug("transport failed: %r", exc)
                    self._feed(run)
                    tcp.connection_lost()
                    return True
                self._last_activity = trio.current_time()
                if not data:
                    self._feed(run)
                    tcp.eof_received()
                    return True
                if self._draining:  # the protocol has ended: what comes is dropped
                    self._feed(run)
                    self._drained += len(data)
                    if self._drained > LINGER_MAX_BYTES:
                        return True
                    continue
                run.append(data)
                fed += len(data)
                if fed < RECEIVE_BATCH and can_receive_without_waiting(stream):
                    continue  # more is here already: take it before waking anyone
                self._feed(run)
                fed = 0
                self._input()
            return False
        finally:
            if run:  # reading stopped being wanted (or was cancelled) with reads not fed
                self._feed(run)
                self._input()

    def _feed(self, run: list[bytes | bytearray]) -> None:
        """Feed the reads of *run* to the protocol as one piece, and empty it."""
        if run:
            self._tcp.bytes_received(bytes(run[0]) if len(run) == 1 else b"".join(run))
            run.clear()

    async def _writer(self) -> None:
        try:
            while True:
                mark = self._submitted
                pieces = self._take_output()
                if pieces:
                    if len(pieces) == 1:
                        await self._stream.send_all(pieces[0])
                    else:
                        await self._send_pieces(pieces)
                    self._last_activity = trio.current_time()
                    if self._tcp.multiplexed:
                        # What was submitted up to the mark is out: its senders
                        # go on now, not once no stream has anything left to
                        # send, which never comes while streams keep sending.
                        # (HTTP/1.1 has one sender, and its EOF may follow.)
                        self._flushed_up_to(mark)
                    continue
                if self._tcp.eof_to_send():
                    if isinstance(self._stream, trio.abc.HalfCloseableStream):
                        await self._stream.send_eof()
                    else:
                        # TLS cannot half-close: close the whole connection, as
                        # RFC 9110 section 9.3.6 has tunnels end.
                        await self._stream.aclose()
                self._flushed_up_to(mark)
                if self._submitted == mark:
                    self._kick = trio.Event()
                    self._writer_parked = True
                    try:
                        await self._kick.wait()
                    finally:
                        self._writer_parked = False
                while self._direct_sending:  # a sender writes its own bytes: after them
                    self._direct_done = done = trio.Event()
                    await done.wait()
        except Exception as exc:
            if not isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError)):
                log.debug("transport failed while sending: %r", exc)
            # Senders fail from now on; the reader still delivers what the peer
            # sent before it went away, then reports the end.
            self._broken = True
            self._flushed_up_to(self._submitted)
            self._input()

    async def _flush(self) -> None:
        """Hand everything submitted so far to the network; write it here when that is cheaper.

        Handing bytes to the writer costs two task switches (the writer
        wakes, then the sender). An HTTP/1.1 sender whose few bytes the
        socket takes at once writes them itself instead (see
        :meth:`_write_directly`).
        """
        # What is left to the writer, or comes after a direct write (an EOF,
        # bytes submitted meanwhile), is flushed by it.
        if not self._can_write_directly() or not await self._write_directly() or self._tcp.has_output():
            await super()._flush()

    async def send_submitted(self) -> None:
        # HTTP/1.1 over a socket with room: written here, as _flush does, but
        # never waiting for the writer (what is too large is left to it).
        # A failed write is not raised: as when the writer's fails, the
        # connection ends, and its streams learn that from their events.
        if self._can_write_directly():
            try:
                if await self._write_directly() and not self._tcp.has_output():
                    return
            except trio.BrokenResourceError:
                return
        await super().send_submitted()

    def _can_write_directly(self) -> bool:
        """Whether a sender may write its own bytes: the writer idle, nothing else being
        written, room in the socket's send buffer, and one stream (HTTP/1.1)."""
        return (
            self._writer_parked
            and not self._direct_sending
            and self._held is None
            and not self._broken
            and self._send_space is not None
            and not self._tcp.multiplexed
            and self._send_space()
        )

    async def _write_directly(self) -> bool:
        """Write the protocol's output in this task; return ``False`` if it was left to the writer.

        For a sender that :meth:`_can_write_directly`: bytes that the socket
        takes at once (at most ``DIRECT_SEND_MAX``) are written here, and
        such a write completes without waiting, so no cancellation can cut
        it. A sender cancelled before it leaves its bytes to the writer,
        which sends them all the same, as it would had the sender waited
        for the writer; so does a sender with more bytes than that. A
        write that has to wait after all and is cancelled there, or fails,
        leaves the connection broken (its bytes went out in part).
        """
        tcp = self._tcp
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
        except trio.Cancelled:
            self._wake_writer()  # the writer sends them
            raise
        pieces = tcp.buffers_to_send()
        if not pieces or sum(map(len, pieces)) > DIRECT_SEND_MAX:
            self._held = pieces or None  # the writer sends them, before anything newer
            return False
        self._submitted += 1
        mark = self._submitted
        self._direct_sending = True
        try:
            await self._send_pieces(pieces)
        except BaseException as exc:
            if not isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError, trio.Cancelled)):
                log.debug("transport failed while sending: %r", exc)
            self._broken = True
            self._flushed_up_to(self._submitted)
            self._input()
            if isinstance(exc, Exception):
                raise trio.BrokenResourceError("the connection broke while sending") from exc
            raise
        finally:
            self._direct_sending = False
            if self._direct_done is not None:  # the writer waits for this write to end
                self._direct_done.set()
                self._direct_done = None
        self._last_activity = trio.current_time()
        self._flushed_up_to(mark)
        return True

    def _take_output(self) -> list[bytes | bytearray]:
        """The protocol's output, after what a sender left to the writer."""
        pieces = self._tcp.buffers_to_send()
        held = self._held
        if held is None:
            return pieces
        self._held = None
        return held + pieces

    async def _send_pieces(self, pieces: list[bytes | bytearray]) -> None:
        """Write *pieces* in order: small neighbours joined, a large piece by itself (not copied)."""
        stream = self._stream
        if len(pieces) == 1:
            await stream.send_all(pieces[0])
            return
        batch: list[bytes | bytearray] = []
        for piece in pieces:
            if len(piece) < COALESCE_SIZE:
                batch.append(piece)
                continue
            if batch:
                await stream.send_all(b"".join(batch))
                batch = []
            await stream.send_all(piece)
        if batch:
            await stream.send_all(b"".join(batch))

    async def _linger(self) -> None:
        if self._lingering_close is None or not self._peer_error or self._input_done:
            return
        with trio.move_on_after(self._lingering_close):
            if isinstance(self._stream, trio.abc.HalfCloseableStream):
                try:
                    await self._stream.send_eof()  # our FIN follows the error response
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            self._draining = True
            self._want_input.set()
            while not self._input_done:
                await self._input_event.wait()

    async def _close_transport(self) -> None:
        try:
            await self._stream.aclose()
        except trio.BrokenResourceError:
            pass

    async def _abort_transport(self) -> None:
        await trio.aclose_forcefully(self._stream)
