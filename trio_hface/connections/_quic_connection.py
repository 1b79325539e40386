"""HTTP/3 connections over QUIC datagrams; the reader drives QUIC's clock."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import trio

from .._typing import DatagramType
from ..networking import DatagramStream
from ..protocols import HTTPOverQUICProtocol
from ._connections import HTTPConnection

log = logging.getLogger(__name__)

__all__ = ["HTTPOverQUICConnection"]

#: Datagrams fed to the protocol per wakeup of the reader at most, beyond the
#: first: a burst of a fast peer (as the UDP socket's receive batch).
RECEIVE_BURST = 64


class HTTPOverQUICConnection(HTTPConnection):
    """An :class:`HTTPConnection` over QUIC datagrams (HTTP/3).

    The reader also drives QUIC's clock: it waits for a datagram under
    ``trio.move_on_at`` of the protocol's timer, and hands the time in with
    ``clock(trio.current_time())`` before every input, so ACKs, retransmissions
    and the idle timeout run even when no task is inside :meth:`receive_event`.
    Per wakeup it feeds every datagram already queued
    (:meth:`.DatagramStream.receive_nowait`), and the writer sends each
    flight with :meth:`.DatagramStream.send_batch`.

    A client connection comes from :class:`.HTTPOverQUICOpener` with its
    handshake done; a server connection from :class:`.HTTPOverQUICListener`.

    :param protocol: a protocol from an HTTP/3 factory
    :param stream: its datagrams (a :class:`.QUICStream` on a server)
    :param extra_attributes: what :attr:`~HTTPConnection.extra_attributes` reports
    """

    def __init__(
        self,
        protocol: HTTPOverQUICProtocol,
        stream: DatagramStream,
        extra_attributes: Mapping[str, Any],
    ) -> None:
        super().__init__(protocol, extra_attributes)
        self._quic = protocol
        self._datagrams = stream
        # The reader's wait for a datagram; its deadline follows the protocol's timer.
        self._timer_scope: trio.CancelScope | None = None
        protocol.clock(trio.current_time())

    def _tick(self) -> None:
        self._quic.clock(trio.current_time())

    async def _reader(self) -> None:
        try:
            while True:
                timer = self._quic.get_timer()
                datagram: DatagramType | None = None
                try:
                    # A datagram already queued is taken even when the timer is
                    # due: a timer that is due again at once (pacing's, until
                    # the writer sends) must not keep input waiting.
                    datagram = self._datagrams.receive_nowait()
                except trio.WouldBlock:
                    with trio.move_on_at(math.inf if timer is None else timer) as scope:
                        self._timer_scope = scope
                        datagram = await self._datagrams.receive()
                else:
                    await trio.lowlevel.checkpoint()  # outside the timer's scope
                self._tick()
                if datagram is not None:
                    self._quic.datagram_received(datagram)
                    self._receive_burst()
                    self._datagrams.update_connection_ids(self._quic.connection_ids)
                self._input()
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            trio.EndOfChannel,
            ConnectionRefusedError,
        ):
            # ConnectionRefusedError: the peer's UDP port is closed now (ICMP port
            # unreachable on a connected socket): the server is gone.
            self._tick()
            self._quic.connection_lost()
        finally:
            self._input_done = True
            self._input()

    def _receive_burst(self) -> None:
        """Feed the datagrams that arrived with the first one, so that the
        writer answers a burst once, not once per datagram."""
        for _ in range(RECEIVE_BURST):
            try:
                datagram = self._datagrams.receive_nowait()
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the next receive() reports a closed stream
            self._quic.datagram_received(datagram)

    async def _writer(self) -> None:
        try:
            while True:
                mark = self._submitted
                self._tick()
                datagrams = self._quic.datagrams_to_send()
                # Even when nothing went out (pacing, congestion), a timer may
                # now be due: the reader must wake for it, or data would wait.
                self._retime()
                if datagrams:
                    await self._datagrams.send_batch(datagrams)
                    self._retime()
                    self._flushed_up_to(mark)  # those senders go on while others keep sending
                    continue
                self._flushed_up_to(mark)
                if self._submitted == mark:
                    self._kick = trio.Event()
                    await self._kick.wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._broken = True
            self._flushed_up_to(self._submitted)
            self._input()

    def _retime(self) -> None:
        """Sending may arm a timer (loss detection): move the reader's deadline to it."""
        timer = self._quic.get_timer()
        if self._timer_scope is not None:
            self._timer_scope.deadline = math.inf if timer is None else timer

    async def _close_transport(self) -> None:
        await self._datagrams.aclose()

    async def _abort_transport(self) -> None:
        await trio.aclose_forcefully(self._datagrams)
