"""The wire of the httptools HTTP/1.1 implementation: heads parsed by httptools, framing decided here.

Theory of operation
-------------------

httptools (llhttp) parses eagerly, through callbacks, and cannot be told
that a response answers HEAD or CONNECT, nor be stopped at the end of one
message of a pipeline. So it parses only what it is best at, the head: the
protocol finds the end of a head itself (the empty line), checks its lines
with the same code as the h11 implementation (``block_complete``: no bare LF
or CR, no obs-fold), and hands exactly that block to a fresh parser. The
start line is split here with RFC 9112's grammar (llhttp knows only a list
of methods, target forms and versions; HTTP takes any token, as h11 does),
and llhttp reads the fields.
:func:`parse_head` then decides the body's framing as RFC 9112 section 6
and h11 do, refusing the same messages with the same statuses (400, or 501
for a transfer coding other than ``chunked``). Bodies are framed by the
protocol: a ``Content-Length`` body is sliced, a chunked one goes through
the h11 implementation's strict chunked reader, so both implementations read
bodies by one grammar.

llhttp refuses ``Content-Length: 5, 5`` and repeated equal lengths, which h11
(and RFC 9110 section 8.6) accept; such a head is parsed again with the
lengths reduced to one field when they all agree.

Writing is plain bytes joined (:func:`write_head`, :func:`check_fields`),
with the checks h11 makes on what it sends.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import httptools

from ...errors import LocalProtocolError
from ._common import check_sent_values

__all__ = [
    "CHUNKED",
    "Head",
    "Refused",
    "check_fields",
    "check_target",
    "frame_response",
    "parse_head",
    "write_head",
]

# RFC 9112 section 3.2: the request target, without white space or controls.
_TARGET = re.compile(rb"[\x21-\x7e]+\Z")
#: The body length that stands for chunked framing.
CHUNKED = -1

_DIGITS = re.compile(rb"[0-9]+\Z")
_VERSION = rb"HTTP/(?P<version>[0-9]\.[0-9])"
_REQUEST_LINE = re.compile(
    rb"(?P<method>[-!#$%&'*+.^_`|~0-9A-Za-z]+) (?P<target>[\x21-\x7e]+) " + _VERSION + rb"(?=\r\n)"
)
_STATUS_LINE = re.compile(_VERSION + rb" (?P<status>[0-9]{3})(?: [\t\x20-\x7e\x80-\xff]*)?(?=\r\n)")
_CONTENT_LENGTH_LINE = re.compile(rb"\r\ncontent-length:([^\r]*)", re.IGNORECASE)


class Refused(Exception):
    """The peer's message is refused; answer *status* and close."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Head:
    """A parsed request or response head and its body's framing."""

    __slots__ = (
        "client",
        "fields",
        "keep_alive",
        "length",
        "method",
        "status",
        "target",
        "upgrade",
        "version",
    )

    def __init__(self, client: bool, version: bytes) -> None:
        self.client = client
        #: The fields, names in lower case, values without surrounding white space.
        self.fields: list[tuple[bytes, bytes]] = []
        self.target = b""
        self.method = b""
        self.status = 0
        self.version = version
        #: Whether the message has the ``Upgrade`` field.
        self.upgrade = False
        self.keep_alive = version >= b"1.1"
        #: The body length: a number, ``-1`` for chunked, ``None`` for a
        #: response read until the connection closes.
        self.length: int | None = 0

    # -- httptools callbacks ----------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        value = value.strip(b" \t")
        if name == b"transfer-encoding":
            value = value.lower()  # h11 reports it so
        self.fields.append((name, value))

    def on_headers_complete(self) -> None:
        self._frame()

    def _frame(self) -> None:
        """Decide the body's framing from the fields (RFC 9112 section 6.3), refusing in h11's order."""
        chunked = False
        length: bytes | None = None
        hosts = 0
        for name, value in self.fields:
            if name == b"transfer-encoding":
                if chunked:
                    raise Refused("multiple Transfer-Encoding fields", 501)
                if value != b"chunked":
                    raise Refused("only Transfer-Encoding: chunked is supported", 501)
                chunked = True
            elif name == b"content-length":
                values = {v.strip() for v in value.split(b",")}
                if len(values) != 1 or (length is not None and values != {length}):
                    raise Refused("the message has differing Content-Length values")
                (length,) = values
                if not _DIGITS.match(length):
                    raise Refused(f"bad Content-Length {length[:20]!r}")
            elif name == b"connection":
                if b"close" in [c.strip().lower() for c in value.split(b",")]:
                    self.keep_alive = False
            elif name == b"upgrade":
                self.upgrade = True
            elif name == b"host":
                hosts += 1
        if not self.client:
            if hosts > 1:
                raise Refused("the request has more than one Host field (RFC 9112 section 3.2)")
            if hosts == 0 and self.version == b"1.1":
                raise Refused("the request has no Host field (RFC 9112 section 3.2)")
        if chunked:
            if length is not None:
                raise Refused(
                    "the message has both Content-Length and Transfer-Encoding (RFC 9112 section 6.1)"
                )
            if self.version == b"1.0":
                raise Refused("an HTTP/1.0 message has Transfer-Encoding (RFC 9112 section 6.1)")
            self.length = -1
        elif length is not None:
            self.length = int(length)
        elif self.client:
            self.length = None


def parse_head(data: bytes, *, client: bool) -> Head:
    """Parse a complete head (through its empty line): the start line here, the fields with httptools.

    :raises Refused: if the head is malformed or its framing ambiguous
    """
    # The start line is split here by RFC 9112's grammar, as h11 does: llhttp
    # knows a fixed list of methods, target forms and versions, where HTTP
    # takes any token and leaves the target to the application.
    line = (_STATUS_LINE if client else _REQUEST_LINE).match(data)
    if line is None:
        raise Refused("illegal status line" if client else "illegal request line")
    head = Head(client, line["version"])
    if client:
        head.status = int(line["status"])
    else:
        head.method, head.target = line["method"], line["target"]
    fields = data[line.end() :]
    try:
        _parse(head, fields)
    except Refused as exc:
        if "Content-Length" not in str(exc):
            raise
        reduced = _reduce_content_length(fields)
        if reduced is None:
            raise
        head.fields.clear()
        _parse(head, reduced)
    if client and head.status < 100:
        raise Refused(f"illegal status {head.status}")
    return head


def _parse(head: Head, fields: bytes) -> None:
    if head.client:
        parser: httptools.HttpResponseParser | httptools.HttpRequestParser = httptools.HttpResponseParser(
            head
        )
        start = b"HTTP/1.1 200 OK"
    else:
        parser = httptools.HttpRequestParser(head)
        start = b"GET / HTTP/1.1"
    # Framing is refused by _frame, in h11's order and with its statuses (501
    # for a coding other than chunked): llhttp need not look at it.
    parser.set_dangerous_leniencies(lenient_chunked_length=True, lenient_transfer_encoding=True)
    try:
        parser.feed_data(start + fields)
    except httptools.HttpParserUpgrade:
        pass  # the protocol decides what follows an Upgrade head
    except httptools.HttpParserCallbackError as exc:
        if isinstance(exc.__context__, Refused):
            raise exc.__context__ from None
        raise Refused(f"cannot parse the head: {exc}") from None
    except httptools.HttpParserError as exc:
        raise Refused(f"cannot parse the head: {exc}") from None


def _reduce_content_length(data: bytes) -> bytes | None:
    # *data* starts with the CRLF that ends the start line.
    """The head with its agreeing Content-Length values in one field, or ``None`` if they disagree."""
    values = {v.strip() for m in _CONTENT_LENGTH_LINE.finditer(data) for v in m[1].split(b",")}
    if len(values) != 1:
        return None
    (value,) = values
    if not _DIGITS.match(value):
        return None
    parts = _CONTENT_LENGTH_LINE.split(data)
    # split() alternates text and captured values: keep the text, one field in front.
    return parts[0] + b"\r\ncontent-length: " + value + b"".join(parts[2::2])


def check_fields(fields: Sequence[tuple[bytes, bytes]]) -> tuple[int | None, bool, bool]:
    """Check fields we send as h11 does; return the body length (-1 chunked, ``None`` unknown), keep-alive and Upgrade.

    :raises LocalProtocolError: for a control character, a bad or conflicting
        ``Content-Length``, or a transfer coding other than ``chunked``
    """
    length: int | None = None
    keep_alive = True
    upgrade = False
    check_sent_values(fields)
    for name, value in fields:
        lower = name.lower()
        if lower == b"content-length":
            if not _DIGITS.match(value) or (length is not None and length != int(value)):
                raise LocalProtocolError(f"bad Content-Length {value!r}")
            if length != -1:
                length = int(value)
        elif lower == b"transfer-encoding":
            if value.lower() != b"chunked" or length == -1:
                raise LocalProtocolError("only one Transfer-Encoding: chunked is supported")
            length = -1
        elif lower == b"connection":
            keep_alive = keep_alive and b"close" not in [c.strip().lower() for c in value.split(b",")]
        elif lower == b"upgrade":
            upgrade = True
    return length, keep_alive, upgrade


def check_target(target: bytes) -> None:
    """:raises LocalProtocolError: if *target* holds white space or controls"""
    if not _TARGET.match(target):
        raise LocalProtocolError(f"illegal request target {target!r}")


def write_head(first_line: bytes, fields: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A start line and fields as bytes, ending in the empty line."""
    return b"".join([first_line, *[b"%s: %s\r\n" % field for field in fields], b"\r\n"])


def frame_response(
    method: bytes,
    status: int,
    fields: list[tuple[bytes, bytes]],
    length: int | None,
    keep_alive: bool,
    their_version: bytes | None,
) -> tuple[list[tuple[bytes, bytes]], int | None, bool]:
    """The fields, body length and keep-alive of a final response, framed as h11 frames it.

    A body of unknown length is chunked to an HTTP/1.1 peer and read until
    close by an HTTP/1.0 one; ``Connection: close`` replaces the connection
    options when keep-alive ends.
    """
    no_body = status in (204, 304) or (method == b"CONNECT" and 200 <= status < 300)
    need_close = False
    if not no_body and (length is None or length == CHUNKED):
        fields = [(n, v) for n, v in fields if n.lower() not in (b"content-length", b"transfer-encoding")]
        if their_version is None or their_version < b"1.1":
            need_close = method != b"HEAD"
            length = None
        else:
            fields.append((b"Transfer-Encoding", b"chunked"))
            length = CHUNKED
    if not keep_alive or need_close:
        keep_alive = False
        tokens = {c.strip().lower() for n, v in fields if n.lower() == b"connection" for c in v.split(b",")}
        tokens.discard(b"keep-alive")
        tokens.add(b"close")
        fields = [(n, v) for n, v in fields if n.lower() != b"connection"]
        fields += [(b"Connection", token) for token in sorted(tokens)]
    return fields, 0 if no_body or method == b"HEAD" else length, keep_alive
