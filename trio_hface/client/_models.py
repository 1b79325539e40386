"""Client models: URLs, origins, requests and responses."""

from __future__ import annotations

import enum
import functools
import http
import json as jsonlib
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar, cast, overload
from urllib.parse import urlencode, urlsplit

from .._typing import HeadersType
from ..errors import HTTPStatusError

__all__ = [
    "ClientProtocol",
    "Origin",
    "URL",
    "Request",
    "RequestHeaders",
    "QueryParams",
    "Headers",
    "Response",
]

#: What :class:`Request` takes as headers: a mapping or pairs, of ``str`` or ``bytes``.
RequestHeaders: TypeAlias = (
    "Mapping[str, str | bytes] | Mapping[bytes, str | bytes] | Iterable[tuple[str | bytes, str | bytes]]"
)

#: A query parameter's value: ``True``/``False`` become ``true``/``false`` and ``None`` an empty value, as in httpx.
QueryValue: TypeAlias = "str | int | float | bool | None"

#: What ``params=`` takes: a mapping (a value may be a sequence, for a repeated name) or pairs.
QueryParams: TypeAlias = "Mapping[str, QueryValue | Sequence[QueryValue]] | Sequence[tuple[str, QueryValue]]"

_DEFAULT_PORTS = {"http": 80, "https": 443}

_Head = TypeVar("_Head", bound="ResponseHead")
_T = TypeVar("_T")


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

    def with_params(self, params: QueryParams) -> URL:
        """This URL with *params* appended to its query, percent-encoded (``+`` for a space).

        :raises TypeError: if a value is not a string, number, boolean or ``None``
        """
        query = encode_params(params)
        if not query:
            return self
        separator = "&" if "?" in self.target else "?"
        return URL(self.origin, self.target + separator + query)


def _param_text(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TypeError(f"a query parameter is a str, int, float, bool or None, not {type(value).__name__}")


def encode_params(params: QueryParams) -> str:
    """*params* as a query string (without ``?``), percent-encoded as a form is."""
    pairs: list[tuple[str, str]] = []
    if isinstance(params, Mapping):
        for name, value in params.items():
            if isinstance(value, (list, tuple)):
                pairs += [(name, _param_text(v)) for v in value]
            else:
                pairs.append((name, _param_text(value)))
    else:
        pairs = [(name, _param_text(value)) for name, value in params]
    return urlencode(pairs)


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


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive view of header fields, with several values per name.

    Obtain it from :attr:`Response.fields` (or :attr:`.StreamingResponse.fields`).
    Names may be given as ``str`` or ``bytes``, in any case; values are ``str``
    (decoded as Latin-1, as HTTP field values are)::

        response.fields["Content-Type"]      # 'text/html; charset=utf-8'
        response.fields.get_list("vary")     # every value, in order
        "etag" in response.fields

    ``fields[name]`` joins repeated fields with ``", "`` (RFC 9110 section
    5.3), except ``set-cookie``, whose values cannot be joined: it gives the
    first. Iteration gives each name once, lower-cased, in order of first
    appearance. :attr:`raw` is the pairs themselves.

    :param raw: the header fields as ``bytes`` pairs
    """

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        #: The header fields as ``(name, value)`` pairs of ``bytes``, as received.
        self.raw = raw
        self._index: dict[str, list[str]] | None = None

    def _fields(self) -> dict[str, list[str]]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            for name, value in self.raw:
                index.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
            self._index = index
        return self._index

    @staticmethod
    def _key(name: str | bytes) -> str:
        return (name.decode("latin-1") if isinstance(name, bytes) else name).lower()

    def __getitem__(self, name: str | bytes) -> str:
        key = self._key(name)
        values = self._fields()[key]
        return values[0] if key == "set-cookie" else ", ".join(values)

    @overload
    def get(self, name: str | bytes, /) -> str | None: ...
    @overload
    def get(self, name: str | bytes, default: str, /) -> str: ...
    @overload
    def get(self, name: str | bytes, default: _T, /) -> str | _T: ...
    def get(self, name: str | bytes, default: object = None, /) -> object:
        """The value of *name* (as ``fields[name]``), or *default*."""
        try:
            return self[name]
        except KeyError:
            return default

    def get_list(self, name: str | bytes) -> list[str]:
        """Every value of *name*, in order (empty if there is none)."""
        return list(self._fields().get(self._key(name), []))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, (str, bytes)) and self._key(name) in self._fields()

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    def __repr__(self) -> str:
        return f"Headers({list(self.raw)!r})"


class ResponseHead:
    """What a response and a streamed one share: the status, the header fields and where they came from.

    :class:`Response` and :class:`.StreamingResponse` derive from it.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    url: URL | None
    request: Request | None

    def header(self, name: str | bytes) -> bytes | None:
        """The first value of a header, or ``None``; *name* is ``str`` or ``bytes``, in any case."""
        if isinstance(name, str):
            name = name.encode("latin-1")
        name = name.lower()
        return next((value for n, value in self.headers if n == name), None)

    @property
    def fields(self) -> Headers:
        """The header fields as a case-insensitive :class:`Headers` view (:attr:`headers` are the pairs)."""
        return Headers(self.headers)

    @property
    def reason_phrase(self) -> str:
        """The standard reason phrase of the status (``"Not Found"``), or ``""`` for an unknown one.

        HTTP/2 and HTTP/3 carry no reason phrase, so it is never the server's own.
        """
        try:
            return http.HTTPStatus(self.status).phrase
        except ValueError:
            return ""

    @property
    def is_success(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def is_redirect(self) -> bool:
        """Whether the status is one that a client follows (301, 302, 303, 307, 308) and has a ``location``."""
        return self.status in (301, 302, 303, 307, 308) and self.header(b"location") is not None

    def raise_for_status(self: _Head) -> _Head:
        """Raise :class:`~trio_hface.HTTPStatusError` for a 4xx or 5xx status; else return the response.

        So ``(await session.get(url)).raise_for_status().json()`` chains. Unlike
        httpx (and like ``curl --fail``), 1xx and 3xx are not errors: a redirect
        that was not followed comes back as a response.
        """
        if self.status >= 400:
            where = f" for url {self.url}" if self.url is not None else ""
            message = f"{self.status} {self.reason_phrase}".rstrip()
            raise HTTPStatusError(f"{message}{where}", response=self)
        return self


@dataclass
class Response(ResponseHead):
    """An HTTP response, with its whole body.

    :class:`.ClientSession.request` (and ``get``, ``post``...) and
    :meth:`.ClientSession.dispatch` return it.
    """

    #: The status code.
    status: int
    #: The header fields (no pseudo-headers), as ``bytes`` pairs; :attr:`fields` is
    #: a case-insensitive view of them.
    headers: list[tuple[bytes, bytes]]
    #: The body (for streamed responses: what has been read).
    content: bytes = b""
    #: ``"1.1"``, ``"2"`` or ``"3"``.
    http_version: str = ""
    #: Informational (1xx) responses received before this one, in order.
    informational: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    #: Trailers, if the server sent any.
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: The URL of the request that this answers (after redirects: the last one).
    url: URL | None = None
    #: The request that this answers (after redirects: the last one).
    request: Request | None = None
    #: The redirect responses that led here, oldest first (empty without redirects).
    history: list[Response] = field(default_factory=list)

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of the ``content-type`` field, or ``None``."""
        return content_charset(self.header(b"content-type"))

    @property
    def text(self) -> str:
        """The body decoded as text, as httpx decodes it.

        The ``charset`` of ``content-type`` if it names a known codec, else
        UTF-8; bytes that do not decode become U+FFFD (``errors="replace"``).
        """
        charset = self.charset or "utf-8"
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON (:func:`json.loads`, which also reads UTF-16 and UTF-32).

        :param kwargs: passed to :func:`json.loads`
        :raises ValueError: if the body is not JSON (:exc:`json.JSONDecodeError`)
        """
        return jsonlib.loads(self.content, **kwargs)


def content_charset(content_type: bytes | None) -> str | None:
    """The ``charset`` parameter of a ``content-type`` value, or ``None``."""
    if content_type is None:
        return None
    for parameter in content_type.decode("latin-1").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


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


def build_request(
    method: str,
    url: URL | str,
    *,
    base_url: URL | None = None,
    params: QueryParams | None = None,
    headers: HeadersType | RequestHeaders | None = None,
    content: str | bytes | AsyncIterable[bytes] | None = None,
    json: Any = None,
) -> Request:
    """The :class:`Request` that ``session.request(method, url, ...)`` sends.

    A relative *url* (no scheme) is appended to *base_url*; *params* go into
    the query; ``str`` content is encoded as UTF-8; *json* is serialised
    (compact, UTF-8, no NaN) with ``content-type: application/json`` unless
    the headers have a ``content-type``.

    :raises TypeError: if both *content* and *json* are given
    :raises ValueError: if the URL is not absolute and there is no base URL,
        or *json* holds NaN or infinity
    """
    if isinstance(url, str):
        url = URL.parse(url) if base_url is None or "://" in url else join_base(base_url, url)
    if params:
        url = url.with_params(params)
    pairs = _header_pairs(headers or ())
    if json is not None:
        if content is not None:
            raise TypeError("give content= or json=, not both")
        content = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        if not any(name.lower() == b"content-type" for name, _ in pairs):
            pairs.append((b"content-type", b"application/json"))
    if isinstance(content, str):
        content = content.encode("utf-8")
    return Request(method, url, pairs, b"" if content is None else content)


def normalise_base_url(base_url: URL | str) -> URL:
    """*base_url* as a :class:`URL` whose path ends with ``/`` (relative URLs are appended to it)."""
    url = URL.parse(base_url) if isinstance(base_url, str) else base_url
    path, query = url.target.partition("?")[::2]
    if query:
        raise ValueError(f"a base URL has no query: {str(url)!r}")
    return url if path.endswith("/") else URL(url.origin, path + "/")


def join_base(base_url: URL, url: str) -> URL:
    """*url* (a path, maybe with a query) appended to *base_url*, as httpx merges them:
    ``https://h/api/`` and ``/users?x=1`` give ``https://h/api/users?x=1``."""
    return URL(base_url.origin, base_url.target + url.lstrip("/"))
