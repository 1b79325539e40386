"""Flow-control credit of HTTP/3 request streams, returned as the application consumes.

QUIC counts every byte of a stream against the receive window, HTTP/3
framing included, while the application sees only the data. The protocol
therefore queues :class:`Credit` markers among its events, each saying how
many stream bytes to credit once the events before it have been handed out;
:class:`StreamCredit` applies them, either at once or, with manual
acknowledgement, once the application has acknowledged the data they came
with.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...events import DataReceived
from ._quic import PacedQuicConnection

__all__ = ["Credit", "StreamCredit"]


@dataclass(slots=True)
class Credit:
    """A queue entry: credit *count* bytes of *stream_id* when handed past."""

    stream_id: int
    count: int


class StreamCredit:
    """The credit of request streams: given at once, queued behind events, or held for acknowledgements."""

    __slots__ = ("_held", "_unacked", "quic")

    def __init__(self) -> None:
        #: The QUIC connection to credit (a server creates it with the first datagram).
        self.quic: PacedQuicConnection | None = None
        # With manual acknowledgement: credit held per stream, and data
        # handed out per stream that was not acknowledged yet.
        self._held: dict[int, int] = {}
        self._unacked: dict[int, int] = {}

    def give(self, stream_id: int, count: int, *, later: bool) -> Credit | None:
        """Credit *count* bytes now, or return the marker to queue when *later*."""
        if count <= 0 or self.quic is None:
            return None
        if later:
            return Credit(stream_id, count)
        self.quic.consume(stream_id, count)
        return None

    def passed(self, marker: Credit, *, manual: bool) -> None:
        """Apply a marker that the events before it have been handed past."""
        if manual:
            # Held until the caller acknowledges the data it came with.
            self._held[marker.stream_id] = self._held.get(marker.stream_id, 0) + marker.count
            self._release(marker.stream_id, 0)
        elif self.quic is not None:
            self.quic.consume(marker.stream_id, marker.count)

    def handed_out(self, event: DataReceived) -> None:
        """Count data handed out under manual acknowledgement."""
        if event.data:
            self._unacked[event.stream_id] = self._unacked.get(event.stream_id, 0) + len(event.data)

    def acknowledge(self, stream_id: int, length: int) -> None:
        """The application consumed *length* bytes of data handed out."""
        if length > 0:
            self._release(stream_id, length)

    def _release(self, stream_id: int, acknowledged: int) -> None:
        """Credit what the caller acknowledged; all that is held once it has acknowledged everything.

        The credit counts QUIC stream bytes (HTTP/3 framing included), the
        acknowledgements data bytes, and the credit of some data may come
        after its acknowledgement: so what is held goes at the latest when no
        data handed out is waiting for its acknowledgement.
        """
        unacked = max(self._unacked.get(stream_id, 0) - acknowledged, 0)
        held = self._held.get(stream_id, 0)
        count = held if unacked == 0 else min(acknowledged, held)
        if count and self.quic is not None:
            self.quic.consume(stream_id, count)
        held -= count
        for table, value in ((self._unacked, unacked), (self._held, held)):
            if value:
                table[stream_id] = value
            else:
                table.pop(stream_id, None)
