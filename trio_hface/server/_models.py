"""Server models: where to listen and which HTTP versions to serve."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from .._typing import AddressType
from ..errors import ListenError

__all__ = ["Endpoint", "ServerProtocol", "naming_endpoint"]


class ServerProtocol(enum.Enum):
    """Which HTTP versions a server offers."""

    #: HTTP/1.1 and HTTP/2 on TCP (chosen by ALPN; HTTP/1.1 without TLS),
    #: and HTTP/3 on UDP at the same port number when TLS is on.
    ALL = "all"
    #: HTTP/1.1 and HTTP/2 on TCP, chosen by ALPN.
    TCP = "tcp"
    #: HTTP/1.1 only.
    HTTP1 = "http1"
    #: HTTP/2 only (prior knowledge without TLS).
    HTTP2 = "http2"
    #: HTTP/3 only (QUIC, TLS required).
    HTTP3 = "http3"

    def describe(self, *, tls: bool) -> str:
        """What an endpoint serves, for people: ``HTTP/1.1, HTTP/2 over TCP; HTTP/3 over UDP``.

        :param tls: whether the endpoint is ``https``
        """
        if self is ServerProtocol.HTTP3:
            return "HTTP/3 over UDP"
        if self is ServerProtocol.HTTP1 or (not tls and self is not ServerProtocol.HTTP2):
            return "HTTP/1.1 over TCP"
        if self is ServerProtocol.HTTP2:
            return "HTTP/2 over TCP"
        if self is ServerProtocol.ALL:
            return "HTTP/1.1, HTTP/2 over TCP; HTTP/3 over UDP"
        return "HTTP/1.1, HTTP/2 over TCP"


@dataclass(frozen=True)
class Endpoint:
    """An address to listen on, with or without TLS.

    Parse one with :meth:`parse`: ``http://localhost:8080``,
    ``https://0.0.0.0:8443``, ``https://[::1]:8443``.
    """

    #: ``"http"`` or ``"https"``.
    scheme: str
    #: Host name or IP address (without brackets).
    host: str
    #: Port number (0 picks a free port).
    port: int

    @classmethod
    def parse(cls, value: str) -> Endpoint:
        """Parse ``scheme://host:port``.

        :raises ValueError: if the value is not an http or https URL with a host and a port
        """
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"an endpoint is http://host:port or https://host:port, not {value!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError(f"an endpoint has no path, query or user, not {value!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"invalid port in {value!r}") from None
        if not parts.hostname or port is None:
            raise ValueError(f"an endpoint needs a host and a port: {value!r}")
        return cls(parts.scheme, parts.hostname, port)

    @property
    def tls(self) -> bool:
        """Whether the endpoint uses TLS."""
        return self.scheme == "https"

    @property
    def address(self) -> AddressType:
        """``(host, port)``."""
        return (self.host, self.port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@contextlib.contextmanager
def naming_endpoint(endpoint: Endpoint, *, udp: bool = False) -> Iterator[None]:
    """Turn an :class:`OSError` of binding *endpoint* into a :class:`.ListenError` that names it.

    ``cannot listen on https://127.0.0.1:6443: address already in use``,
    with ``(UDP)`` after the endpoint for the UDP socket of HTTP/3.
    """
    try:
        yield
    except ListenError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        where = f"{endpoint} (UDP)" if udp else str(endpoint)
        raise ListenError(exc.errno, f"cannot listen on {where}: {reason[:1].lower()}{reason[1:]}") from exc
