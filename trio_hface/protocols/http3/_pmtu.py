"""Datagram packetization layer path MTU discovery (RFC 8899, for QUIC: RFC 9000 section 14.3).

A QUIC connection starts with datagrams of a size every path carries (1200
bytes, RFC 9000 section 14). Many paths carry more: 1452 bytes on 1500-byte
Ethernet, about 9000 with jumbo frames, 64 KiB on loopback. A sender that
uses them moves the same bytes in fewer packets, and a QUIC stack written in
Python pays per packet, so the size sets the pace of a bulk transfer (about
ten times as fast with 16 KiB datagrams as with 1200 on loopback).

:class:`PathMTUSearch` decides which sizes to try and what their fate means;
the connection sends the probes (PING and PADDING, nothing that would need to
be sent again) and reports each one's acknowledgement or loss. The search
climbs :data:`PROBE_SIZES` (common path sizes), then tries the ceiling: the
smaller of the configured one and the peer's ``max_udp_payload_size``. A size whose probe
is lost :data:`MAX_PROBES` times ends the search: the last acknowledged size
is the path's. Probes are not congestion-controlled (their loss says nothing
about congestion, RFC 9000 section 14.4) and at most one is in flight.

A path that stops carrying the size found (a route change: RFC 8899
section 4.3, black hole detection) shows as consecutive probe timeouts: the
connection then falls back to the base size, for good on that path. A new
path (a migration) starts again from the base size (RFC 9000 section 14.2.1 has
a new path validated before its size is raised).

Nothing here is timed: RFC 8899's PMTU_RAISE_TIMER (probing again, after ten
minutes, for a path that may have grown) is not implemented.
"""

from __future__ import annotations

__all__ = ["MAX_PROBES", "PROBE_SIZES", "PathMTUSearch"]

#: Sizes probed in turn, as UDP payloads: 1500-byte Ethernet under IPv6 (and
#: IPv4: 1472 would fit there), then steps to jumbo frames and loopback
#: (the ceiling, probed last, is the stack's largest: 16 KiB).
PROBE_SIZES = (1452, 4096, 8192)

#: Losses of one size's probe that end the search (RFC 8899 section 5.1.2).
MAX_PROBES = 3

#: Consecutive probe timeouts of the connection, at a size above the base, that
#: are taken for a black hole: the path no longer carries that size.
BLACK_HOLE_PTOS = 3


class PathMTUSearch:
    """The DPLPMTUD state of one path (see the module's documentation).

    :param base: the size every datagram may have before any probe (and after a black hole)
    :param ceiling: the largest size to probe for
    """

    def __init__(self, base: int, ceiling: int) -> None:
        self.base = base
        self.ceiling = ceiling
        #: The largest size acknowledged on this path: the datagram size to use.
        self.size = base
        self._candidates: list[int] = []
        #: The size of the probe in flight, if any.
        self.probing: int | None = None
        self._losses = 0
        self.restart()

    @property
    def done(self) -> bool:
        """Whether the search has ended (nothing left to probe)."""
        return not self._candidates

    def restart(self) -> None:
        """A new path: back to the base size, every size to probe again."""
        self.size = self.base
        self.probing = None
        self._losses = 0
        self._plan()

    def limit(self, peer_max: int) -> None:
        """The peer receives datagrams of *peer_max* bytes at most (its ``max_udp_payload_size``)."""
        if peer_max < self.ceiling:
            self.ceiling = peer_max
            self._candidates = [size for size in self._candidates if size < peer_max]
            if peer_max > max(self.size, self.probing or 0):
                self._candidates.append(peer_max)

    def _plan(self) -> None:
        # The steps between the size and the ceiling, then the ceiling itself.
        self._candidates = [step for step in PROBE_SIZES if self.size < step < self.ceiling]
        if self.ceiling > self.size:
            self._candidates.append(self.ceiling)

    def next_probe(self) -> int | None:
        """The size to probe now, marked in flight; ``None`` while one is, or when the search is done."""
        if self.probing is not None or not self._candidates:
            return None
        self.probing = self._candidates[0]
        return self.probing

    def acknowledged(self, size: int) -> bool:
        """The probe of *size* bytes arrived; return whether the datagram size grew."""
        if size != self.probing:
            return False  # a probe of an earlier search (the path changed meanwhile)
        self.probing = None
        self._losses = 0
        if size in self._candidates:
            self._candidates.remove(size)
        if size <= self.size:
            return False
        self.size = size
        return True

    def lost(self, size: int) -> None:
        """The probe of *size* bytes was declared lost."""
        if size != self.probing:
            return
        self.probing = None
        self._losses += 1
        if self._losses >= MAX_PROBES:
            self._candidates.clear()  # the path carries less: the search is over

    def black_hole(self) -> bool:
        """The path stopped carrying the size found: back to the base for good; return whether it changed."""
        self._candidates.clear()
        self.probing = None
        if self.size == self.base:
            return False
        self.size = self.base
        return True
