"""HTTP alternative services (RFC 7838): parsing ``Alt-Svc`` and remembering what origins advertised.

Pure bookkeeping: the caller hands in the time, so the cache is tested
without a clock and used by :class:`.RoutePolicy` to pick HTTP/3.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ._models import Origin

__all__ = ["AltService", "AltSvcCache", "parse_alt_svc", "BROKEN_ALT_SVC_TIME"]

#: Seconds an alternative that failed is ignored (browsers use minutes).
BROKEN_ALT_SVC_TIME = 300.0

#: RFC 7838 section 3.1: the default freshness lifetime of an advertisement.
DEFAULT_MAX_AGE = 86400.0


@dataclass(frozen=True)
class AltService:
    """An HTTP/3 alternative advertised by an origin (RFC 7838)."""

    host: str
    port: int
    expires: float


_ALT_SVC_ENTRY = re.compile(
    r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)="([^"]*)"((?:\s*;\s*[^,;=]+=[^,;]*)*)\s*(?:,|$)'
)


def parse_alt_svc(value: bytes, origin: Origin, now: float) -> AltService | bool | None:
    """Find an ``h3`` alternative in an ``Alt-Svc`` value.

    :returns: the alternative, ``False`` for ``clear`` (forget alternatives),
        ``None`` when there is no usable ``h3`` entry
    """
    text = value.decode("latin-1").strip()
    if text == "clear":
        return False
    for match in _ALT_SVC_ENTRY.finditer(text):
        protocol, authority, params = match.groups()
        if protocol != "h3":
            continue
        host, _, port_text = authority.rpartition(":")
        host = host.strip("[]") or origin.host
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            continue
        max_age = DEFAULT_MAX_AGE
        for param in params.split(";"):
            name, _, raw = param.strip().partition("=")
            if name == "ma" and raw.strip().isdigit():
                max_age = float(raw.strip())
        return AltService(host, int(port_text), now + max_age)
    return None


class AltSvcCache:
    """The HTTP/3 alternatives origins advertised, and those that failed.

    :param broken_time: seconds an alternative that failed is ignored
    """

    def __init__(self, broken_time: float = BROKEN_ALT_SVC_TIME) -> None:
        self._broken_time = broken_time
        self._alternatives: dict[Origin, AltService] = {}
        # Alternatives that failed, and until when to ignore their advertisements.
        self._broken: dict[Origin, float] = {}

    def get(self, origin: Origin, now: float) -> AltService | None:
        """The fresh alternative of *origin*, if any (a stale one is forgotten)."""
        alternative = self._alternatives.get(origin)
        if alternative is not None and alternative.expires <= now:
            del self._alternatives[origin]
            return None
        return alternative

    def learn(self, origin: Origin, headers: Iterable[tuple[bytes, bytes]], now: float) -> None:
        """Take the ``Alt-Svc`` fields of a response from *origin* over TCP."""
        if self._broken.get(origin, 0.0) > now:
            return
        for name, value in headers:
            if name == b"alt-svc":
                found = parse_alt_svc(value, origin, now)
                if found is False:
                    self._alternatives.pop(origin, None)
                elif isinstance(found, AltService):
                    self._alternatives[origin] = found
                    return

    def mark_broken(self, origin: Origin, now: float) -> None:
        """Forget the alternative of *origin* and ignore its advertisements for a while (RFC 7838 section 2.4)."""
        self._alternatives.pop(origin, None)
        self._broken[origin] = now + self._broken_time
