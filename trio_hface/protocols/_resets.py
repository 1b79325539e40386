"""What HTTP/2 and HTTP/3 connections keep about the streams their peer reset."""

from __future__ import annotations

__all__ = ["RAPID_RESET_ALLOWANCE", "REMEMBERED_RESETS", "PeerResets"]

#: Streams a client may reset before its resets are counted against it: past
#: this many, a client that has reset more than half of the streams it opened
#: is cut off (rapid reset, CVE-2023-44487).
RAPID_RESET_ALLOWANCE = 1000

#: Streams the peer reset whose error code is remembered, to explain why they
#: cannot take headers or data any more.
REMEMBERED_RESETS = 128


class PeerResets:
    """The error codes of the latest streams the peer reset, and, for a server,
    how many of the streams the peer opened it reset."""

    def __init__(self) -> None:
        self._codes: dict[int, int] = {}  # oldest first
        #: Streams the peer opened.
        self.opened = 0
        #: How many of them the peer reset.
        self.reset = 0

    def remember(self, stream_id: int, error_code: int) -> None:
        """Keep the peer's error code for a stream (the latest :data:`REMEMBERED_RESETS`)."""
        self._codes[stream_id] = error_code
        if len(self._codes) > REMEMBERED_RESETS:
            del self._codes[next(iter(self._codes))]

    def code(self, stream_id: int) -> int | None:
        """The peer's error code for a stream it reset lately, or ``None``."""
        return self._codes.get(stream_id)

    def count_reset(self) -> bool:
        """Count a reset of a stream the peer opened; true when the peer resets too many (rapid reset)."""
        self.reset += 1
        return self.reset > RAPID_RESET_ALLOWANCE and 2 * self.reset > self.opened
