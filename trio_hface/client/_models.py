"""Client models: URLs, origins, requests and responses."""

from __future__ import annotations

import enum
import functools
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias, cast
from urllib.parse import urlsplit

from .._typing import HeadersType

__all__ = ["ClientProtocol", "Origin", "URL", "Request", "RequestHeaders", "Response"]

#: What :class:`Request` takes as headers: a mapping or pairs, of ``str`` or ``bytes``.
RequestHeaders: TypeAlias = (
    "Mapping[str, str | bytes] | Mapping[bytes, str | bytes] | Iterable[tuple[str | bytes, str | bytes]]"
)

_DEFAULT_PORTS = {"http": 80, "https": 443}


class ClientProtocol(enum.Enum):
    """Which HTTP versions a client uses."""

    #: HTTP/1.1 or HTTP/2 on TCP, chosen by ALPN (HTTP/1.1 without TLS);
    #: HTTP/3 once a server advertises it with Alt-Svc.
    ALL = "all"
    #: HTTP/1.1 or HTTP/2 on TCP, chosen by ALPN; Alt-Svc is ignored.
    TCP = "tcp"
    #: HTTP/1.1 only.
    HTTP1 = "http1"
    #: HTTP/2 only (prior knowledge without TLS).
    HTTP2 = "http2"
    #: HTTP/3 only.
    HTTP3 = "http3"


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port: what a connection is opened to (RFC 6454)."""

    #: ``"http"`` or ``"https"``.
    scheme: str
    #: Host name or IP address (IPv6 without brackets).
    host: str
    #: Port number.
    port: int

    @property
    def tls(self) -> bool:
        """Whether the origin uses TLS."""
        return self.scheme == "https"

    @property
    def authority(self) -> bytes:
        """The ``:authority`` of requests to this origin (the port only when not the default)."""
        return _authority(self.scheme, self.host, self.port)

    @classmethod
    def parse(cls, value: str) -> Origin:
        """Parse ``scheme://host[:port]``.

        :raises ValueError: if it is not an http or https URL with a host
        """
        return URL.parse(value).origin

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority.decode('idna')}"


@dataclass(frozen=True)
class URL:
    """An http or https URL, split into its origin and its target."""

    #: Where to connect.
    origin: Origin
    #: Path and query, as sent in ``:path`` (``"/"`` at least).
    target: str

    @classmethod
    def parse(cls, value: str) -> URL:
        """Parse an absolute http or https URL.

        :raises ValueError: if the URL is not absolute http(s) or has no host
        """
        if cls is URL:
            return _parse_url(value)  # a program asks for the same few URLs again and again
        return cls._parse(value)

    @classmethod
    def _parse(cls, value: str) -> URL:
        parts = urlsplit(value)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"only http:// and https:// URLs are supported, not {value!r}")
        if not parts.hostname:
            raise ValueError(f"the URL has no host: {value!r}")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise ValueError(f"invalid port in {value!r}") from None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(Origin(scheme, parts.hostname, port), target)

    def __str__(self) -> str:
        return f"{self.origin}{self.target}"


#: URLs and authorities parsed lately, kept for the next request (both are immutable).
PARSED_CACHE_SIZE = 256


@functools.lru_cache(maxsize=PARSED_CACHE_SIZE)
def _parse_url(value: str) -> URL:
    return URL._parse(value)


@functools.lru_cache(maxsize=PARSED_CACHE_SIZE)
def _authority(scheme: str, host: str, port: int) -> bytes:
    host = f"[{host}]" if ":" in host else host
    if _DEFAULT_PORTS.get(scheme) == port:
        return host.encode("idna")
    return f"{host}:{port}".encode("idna")


@dataclass
class Request:
    """An HTTP request to send.

    :param method: the method, such as ``"GET"``
    :param url: the URL, as a string or :class:`URL`
    :param headers: extra headers: a mapping (``{"accept": "text/html"}``) or a
        sequence of pairs, of ``str`` (encoded as Latin-1, as HTTP field values
        are) or ``bytes``; :attr:`headers` holds them as ``bytes`` pairs (names are
        lower-cased when sent; pseudo-headers are made from the URL)
    :param content: the body: bytes, or an async iterable of bytes for a streamed upload
    :raises TypeError: if a header name or value is neither ``str`` nor ``bytes``
    :raises ValueError: if a ``str`` header has a character outside Latin-1
    """

    method: str
    url: URL | str
    headers: HeadersType | RequestHeaders = ()
    content: bytes | AsyncIterable[bytes] = b""

    def __post_init__(self) -> None:
        if isinstance(self.url, str):
            self.url = URL.parse(self.url)
        self.headers = _header_pairs(self.headers)

    @property
    def header_pairs(self) -> list[tuple[bytes, bytes]]:
        """The headers as ``bytes`` pairs (what :attr:`headers` holds once the request is made)."""
        return cast("list[tuple[bytes, bytes]]", self.headers)

    @property
    def parsed_url(self) -> URL:
        """The URL as a :class:`URL`."""
        assert isinstance(self.url, URL)
        return self.url


@dataclass
class Response:
    """An HTTP response."""

    #: The status code.
    status: int
    #: The header fields (no pseudo-headers).
    headers: list[tuple[bytes, bytes]]
    #: The body (for streamed responses: what has been read).
    content: bytes = b""
    #: ``"1.1"``, ``"2"`` or ``"3"``.
    http_version: str = ""
    #: Informational (1xx) responses received before this one, in order.
    informational: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    #: Trailers, if the server sent any.
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header, or ``None``."""
        name = name.lower()
        return next((value for n, value in self.headers if n == name), None)


def _header_bytes(text: str | bytes, what: str) -> bytes:
    if type(text) is bytes:
        return text
    if isinstance(text, str):
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                f"header {what} {text!r} has a character outside Latin-1: encode it yourself"
            ) from None
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError(f"a header {what} is str or bytes, not {type(text).__name__}")


def _header_pairs(headers: HeadersType | RequestHeaders) -> list[tuple[bytes, bytes]]:
    """Request headers as ``bytes`` pairs, from a mapping or pairs of ``str`` or ``bytes``."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError(f"headers are a mapping or (name, value) pairs, not {item!r}") from None
        pairs.append((_header_bytes(name, "name"), _header_bytes(value, "value")))
    return pairs
