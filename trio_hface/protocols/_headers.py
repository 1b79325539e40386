"""Validation of HTTP/2-style header lists, shared by every HTTP version.

Rules from RFC 9110 section 5 (field syntax), RFC 9113 section 8.2 and 8.3
(lower case names, pseudo-headers, connection-specific fields) and RFC 9114
section 4.2 and 4.3 (the same for HTTP/3), and RFC 8441 / RFC 9220
(extended CONNECT with ``:protocol``).
"""

from __future__ import annotations

import re
from enum import Enum

from .._typing import HeadersType

# RFC 9110 section 5.1: field-name = token; tchar set, section 5.6.2.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_LOWER_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")
# RFC 9110 section 5.5: field-value = *field-content; no CR, LF or NUL
# anywhere, and no leading or trailing whitespace.
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")
# The same for the regular fields, in two quicker steps (see _bad_value).
_CONTROL = re.compile(rb"[\x00\r\n]")
_WHITESPACE = frozenset(b" \t")
# RFC 9110 section 15: a status code is three digits.
_STATUS = re.compile(rb"[1-5][0-9][0-9]\Z")

#: Fields that only make sense for one HTTP/1.1 hop (RFC 9113 section 8.2.2,
#: RFC 9114 section 4.2).
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)

REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})
RESPONSE_PSEUDO = frozenset({b":status"})


class HeaderKind(Enum):
    """What a header block is."""

    REQUEST = "request"
    RESPONSE = "response"
    TRAILERS = "trailers"


class HeaderError(ValueError):
    """A header list breaks a rule; the message says which."""


def _bad_value(value: bytes) -> bool:
    """Whether a field value breaks RFC 9110 section 5.5 (what ``_BAD_VALUE`` finds: a
    character search and a look at both ends are twice as quick as its alternation)."""
    return _CONTROL.search(value) is not None or (
        bool(value) and (value[0] in _WHITESPACE or value[-1] in _WHITESPACE)
    )


def validate_field(name: bytes, value: bytes, *, lower_case: bool) -> None:
    """Check one regular field's syntax.

    :raises HeaderError: if the name is not a token (a lower case one when
        *lower_case*) or the value holds CR, LF, NUL or surrounding whitespace
    """
    if not isinstance(name, bytes) or not isinstance(value, bytes):
        raise HeaderError(f"header names and values must be bytes, not {name!r}: {value!r}")
    pattern = _LOWER_TOKEN if lower_case else _TOKEN
    if not pattern.match(name):
        raise HeaderError(f"invalid header name {name!r}")
    if _bad_value(value):
        raise HeaderError(f"invalid value of header {name.decode('latin-1')!r}: {value!r}")


def validate_headers(
    headers: HeadersType,
    kind: HeaderKind,
    *,
    multiplexed: bool,
    allow_extended_connect: bool = True,
) -> tuple[dict[bytes, bytes], list[tuple[bytes, bytes]]]:
    """Check a header list of the given kind.

    :param headers: the header list, pseudo-headers first
    :param kind: request, response or trailers
    :param multiplexed: apply the HTTP/2 and HTTP/3 rules (lower case names,
        no connection-specific fields, ``te`` only ``trailers``)
    :param allow_extended_connect: whether ``:protocol`` may appear
    :returns: the pseudo-headers and the regular fields
    :raises HeaderError: if a rule is broken
    """
    # One walk, with the checks of validate_field() inline (every block of
    # every version, received or sent, comes here).
    pseudo: dict[bytes, bytes] = {}
    regular: list[tuple[bytes, bytes]] = []
    good_name = (_LOWER_TOKEN if multiplexed else _TOKEN).match
    bad_value = _bad_value
    request = kind is HeaderKind.REQUEST
    host: bytes | None = None
    for item in headers:
        if not isinstance(item, tuple) or len(item) != 2:
            raise HeaderError(f"a header must be a (name, value) pair, not {item!r}")
        name, value = item
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise HeaderError(f"header names and values must be bytes, not {name!r}: {value!r}")
        if name[:1] == b":":
            if regular:
                raise HeaderError(f"pseudo-header {name!r} after a regular header")
            if name in pseudo:
                raise HeaderError(f"repeated pseudo-header {name!r}")
            pseudo[name] = value
            continue
        if not good_name(name):
            raise HeaderError(f"invalid header name {name!r}")
        if bad_value(value):
            raise HeaderError(f"invalid value of header {name.decode('latin-1')!r}: {value!r}")
        if multiplexed:
            if name in CONNECTION_SPECIFIC:
                raise HeaderError(f"connection-specific header {name!r} is not allowed in HTTP/2 and HTTP/3")
            if name == b"te" and value.lower() != b"trailers":
                raise HeaderError(f"te header must be 'trailers', not {value!r}")
            if name == b"host" and request:
                if host is not None:
                    raise HeaderError("a request has one host header at most")
                host = value
        regular.append((name, value))
    if kind is HeaderKind.TRAILERS:
        if pseudo:
            raise HeaderError(f"trailers must not have pseudo-headers, got {sorted(pseudo)!r}")
    elif kind is HeaderKind.RESPONSE:
        _check_response_pseudo(pseudo)
    else:
        _check_request_pseudo(pseudo, allow_extended_connect)
        if multiplexed:
            _check_authority(pseudo, host)
    return pseudo, regular


def _check_authority(pseudo: dict[bytes, bytes], host: bytes | None) -> None:
    """RFC 9113 section 8.3.1, RFC 9114 section 4.3.1: an http or https request names its
    authority in :authority or host, not empty, and the same in both if it has both."""
    authority = pseudo.get(b":authority")
    if host is not None and not host:
        raise HeaderError("empty host header")
    if authority is None:
        if host is None and pseudo.get(b":scheme") in (b"http", b"https"):
            raise HeaderError("an http or https request needs :authority or a host header")
    elif host is not None and host != authority:
        raise HeaderError(f"host {host!r} differs from :authority {authority!r}")


def _check_response_pseudo(pseudo: dict[bytes, bytes]) -> None:
    unknown = set(pseudo) - RESPONSE_PSEUDO
    if unknown:
        raise HeaderError(f"unexpected pseudo-headers in a response: {sorted(unknown)!r}")
    status = pseudo.get(b":status")
    if status is None:
        raise HeaderError("a response needs a :status pseudo-header")
    if not _STATUS.match(status):
        raise HeaderError(f"invalid :status {status!r}")


def _check_request_pseudo(pseudo: dict[bytes, bytes], allow_extended_connect: bool) -> None:
    unknown = set(pseudo) - REQUEST_PSEUDO
    if unknown:
        raise HeaderError(f"unexpected pseudo-headers in a request: {sorted(unknown)!r}")
    method = pseudo.get(b":method")
    if not method:
        raise HeaderError("a request needs a :method pseudo-header")
    if not _TOKEN.match(method):
        raise HeaderError(f"invalid :method {method!r}")
    for name in (b":scheme", b":authority", b":path", b":protocol"):
        value = pseudo.get(name)
        if value is not None and (not value or _BAD_VALUE.search(value) or b" " in value):
            raise HeaderError(f"invalid {name.decode()} {value!r}")
    if b":protocol" in pseudo:
        # RFC 8441 section 4, RFC 9220 section 3: extended CONNECT.
        if not allow_extended_connect:
            raise HeaderError(":protocol is only allowed when extended CONNECT is enabled")
        if method != b"CONNECT":
            raise HeaderError(f":protocol requires the CONNECT method, not {method!r}")
        missing = [n for n in (b":scheme", b":path", b":authority") if n not in pseudo]
        if missing:
            raise HeaderError(f"an extended CONNECT request needs {missing!r}")
    elif method == b"CONNECT":
        # RFC 9113 section 8.5, RFC 9114 section 4.4.
        if b":authority" not in pseudo:
            raise HeaderError("a CONNECT request needs :authority")
        if b":scheme" in pseudo or b":path" in pseudo:
            raise HeaderError("a CONNECT request must not have :scheme or :path")
    else:
        if b":scheme" not in pseudo or b":path" not in pseudo:
            raise HeaderError("a request needs :scheme and :path pseudo-headers")


def header_value(headers: HeadersType, name: bytes) -> bytes | None:
    """Return the first value of a field, or ``None``."""
    for n, v in headers:
        if n == name:
            return v
    return None
