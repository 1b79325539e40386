"""Strict HTTP/1.1 message framing on top of h11: no request smuggling.

h11 is lenient where RFC 9112 allows leniency, and a lenient parser behind a
proxy that reads the same bytes differently is how requests are smuggled
(one side sees one request where the other sees two). :class:`StrictConnection`
keeps h11's parser and state machine but hands it stricter readers, so that
every message whose framing two implementations could read differently is
refused before anything of it reaches the application:

* a message with both ``Content-Length`` and ``Transfer-Encoding``
  (RFC 9112 section 6.1: a server may not trust either), and an HTTP/1.0
  message with ``Transfer-Encoding`` (section 6.1: its framing is faulty);
* a field line folded with obs-fold (section 5.2), and a line of the head or
  of a chunked body that ends in a bare LF or holds a bare CR (section 2.2);
* a chunk size of more than 16 hex digits (more than 64 bits), a chunk line
  longer than :data:`MAX_CHUNK_LINE` bytes, and chunk extensions that break
  the grammar of section 7.1.1.

h11 itself already refuses differing ``Content-Length`` values, a
``Content-Length`` that is not a plain decimal number, and any transfer
coding but ``chunked`` (501). Every refusal raises h11's
``LocalProtocolError`` inside the reader, which h11 turns into a
``RemoteProtocolError`` with the status to answer (400 unless said otherwise):
the connection is then answered (when it is a server's) and closed.

This uses h11 internals (``Connection._get_io_object``, the reader functions
and ``ReceiveBuffer``), stable within the h11 versions ``setup.cfg`` allows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, cast

import h11
from h11 import _readers  # the readers h11 picks per state; wrapped below
from h11._receivebuffer import ReceiveBuffer

__all__ = ["MAX_CHUNK_LINE", "StrictChunkedReader", "StrictConnection", "block_complete"]

#: The longest chunk line (size and extensions, without CRLF) accepted, in
#: bytes. Extensions are rare; nginx and Node.js bound them to a few KiB too.
MAX_CHUNK_LINE = 4096

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_EXT = rb"[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?"
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:" + _CHUNK_EXT + rb")*")
# A bare LF, a bare CR, or a line that starts with white space (obs-fold).
_BAD_LINE = re.compile(rb"(?<!\r)\n|\r(?!\n)|\n[ \t]")

Reader = Callable[[ReceiveBuffer], Any]


def _refuse(message: str, status: int = 400) -> h11.LocalProtocolError:
    # Raised inside a reader, h11 re-raises it as RemoteProtocolError.
    return h11.LocalProtocolError(message, error_status_hint=status)


def _clean(data: bytearray, stop: int) -> bool:
    """Whether ``data[:stop]`` has no bare LF, no bare CR and no folded line (what _BAD_LINE finds)."""
    crlf = data.count(b"\r\n", 0, stop)
    return (
        data.count(b"\n", 0, stop) == crlf
        and data.count(b"\r", 0, stop) == crlf
        and data.find(b"\n ", 0, stop) < 0
        and data.find(b"\n\t", 0, stop) < 0
    )


def block_complete(data: bytearray, what: str, *, may_be_empty: bool) -> bool:
    """Whether the block of lines (a head, or trailers) at the start of *data* is complete.

    Every line must end in CRLF, hold no other CR and not be folded; a bad
    line raises at once, complete or not. The block ends with an empty line;
    trailers may be only that. The check runs in C over what is buffered,
    which h11 bounds (16 KiB for a head), so a trickled block costs little.
    """
    if may_be_empty and data[:2] == b"\r\n":
        return True
    end = data.find(b"\r\n\r\n")
    # A CR at the very end may yet be followed by its LF.
    stop = end + 4 if end >= 0 else len(data) - data.endswith(b"\r")
    if not _clean(data, stop):
        bad = _BAD_LINE.search(data, 0, stop)
        found = bad[0] if bad is not None else b""
        if found == b"\n":
            raise _refuse(f"a line of the {what} ends in a bare LF (RFC 9112 section 2.2)")
        if found.startswith(b"\r"):
            raise _refuse(f"the {what} holds a bare CR (RFC 9112 section 2.2)")
        raise _refuse(f"a field line of the {what} is folded (obs-fold, RFC 9112 section 5.2)")
    return end >= 0


def _check_framing(event: h11.Request | h11.Response | h11.InformationalResponse) -> None:
    full: list[tuple[bytes, bytes, bytes]] | None = getattr(event.headers, "_full_items", None)
    names = [name for name, _ in event.headers] if full is None else [name for _, name, _ in full]
    if b"transfer-encoding" not in names:
        return
    if b"content-length" in names:
        raise _refuse("the message has both Content-Length and Transfer-Encoding (RFC 9112 section 6.1)")
    if event.http_version == b"1.0":
        raise _refuse("an HTTP/1.0 message has Transfer-Encoding (RFC 9112 section 6.1)")


def _strict_head(reader: Reader) -> Reader:
    """Wrap h11's reader of a request or response head with the checks above."""

    def read(buf: ReceiveBuffer) -> Any:
        if not block_complete(buf._data, "head", may_be_empty=False):
            return reader(buf)  # h11 bounds and sniffs an incomplete head
        event = reader(buf)
        if isinstance(event, (h11.Request, h11.Response, h11.InformationalResponse)):
            _check_framing(event)
        return event

    return read


class StrictChunkedReader:
    """A chunked body reader with RFC 9112 section 7.1's grammar, strictly."""

    def __init__(self) -> None:
        self._bytes_in_chunk = 0
        self._crlf_due = 0  # bytes of the CRLF after a chunk's data still to come
        self._in_trailers = False

    def __call__(self, buf: ReceiveBuffer) -> h11.Data | h11.EndOfMessage | None:
        if self._in_trailers:
            return self._read_trailers(buf)
        if self._crlf_due:
            data = buf.maybe_extract_at_most(self._crlf_due)
            if data is None:
                return None
            if data != b"\r\n"[2 - self._crlf_due :][: len(data)]:
                raise _refuse(f"chunk data is not followed by CRLF (got {bytes(data)!r})")
            self._crlf_due -= len(data)
            if self._crlf_due:
                return None
        chunk_start = False
        if self._bytes_in_chunk == 0:
            line = buf.maybe_extract_next_line()
            if line is None:
                if b"\n" in buf._data:
                    raise _refuse("a chunk line ends in a bare LF (RFC 9112 section 7.1)")
                if len(buf) > MAX_CHUNK_LINE + 1:
                    raise _refuse(f"a chunk line is longer than {MAX_CHUNK_LINE} bytes")
                return None
            if len(line) > MAX_CHUNK_LINE + 2:
                raise _refuse(f"a chunk line is longer than {MAX_CHUNK_LINE} bytes")
            match = _CHUNK_LINE.fullmatch(line, 0, len(line) - 2)
            if match is None:
                if re.match(rb"[0-9A-Fa-f]{17}", line):
                    raise _refuse("a chunk size has more than 16 hex digits")
                raise _refuse(f"illegal chunk line {bytes(line[:100])!r} (RFC 9112 section 7.1)")
            self._bytes_in_chunk = int(match[1], 16)
            if self._bytes_in_chunk == 0:
                self._in_trailers = True
                return self._read_trailers(buf)
            chunk_start = True
        data = buf.maybe_extract_at_most(self._bytes_in_chunk)
        if data is None:
            return None
        self._bytes_in_chunk -= len(data)
        chunk_end = self._bytes_in_chunk == 0
        if chunk_end:
            self._crlf_due = 2
        # h11's own readers hand out the bytearray too (bytes-like; copied by our protocol).
        return h11.Data(data=cast(bytes, data), chunk_start=chunk_start, chunk_end=chunk_end)

    def takes_whole(self, length: int) -> bool:
        """If *length* bytes at this point are all data of the current chunk, not its end, count them read.

        For a caller that hands such bytes on without passing them through
        the buffer (see ``HTTP1ProtocolImpl._body_received``).
        """
        if self._in_trailers or self._crlf_due or length >= self._bytes_in_chunk:
            return False
        self._bytes_in_chunk -= length
        return True

    def _read_trailers(self, buf: ReceiveBuffer) -> h11.EndOfMessage | None:
        if not block_complete(buf._data, "trailers", may_be_empty=True):
            return None
        lines = buf.maybe_extract_lines()
        assert lines is not None  # the block is complete
        return h11.EndOfMessage(headers=list(_readers._decode_header_lines(cast(Iterable[bytes], lines))))

    def read_eof(self) -> None:
        raise h11.RemoteProtocolError(
            "peer closed connection without sending complete message body (incomplete chunked read)"
        )


#: h11's readers, with the strict ones in place (h11 picks from this per state).
_STRICT_READERS: dict[Any, Any] = {
    **_readers.READERS,
    (h11.CLIENT, h11.IDLE): _strict_head(_readers.maybe_read_from_IDLE_client),
    (h11.SERVER, h11.IDLE): _strict_head(_readers.maybe_read_from_SEND_RESPONSE_server),
    (h11.SERVER, h11.SEND_RESPONSE): _strict_head(_readers.maybe_read_from_SEND_RESPONSE_server),
    h11.SEND_BODY: {**_readers.READERS[h11.SEND_BODY], "chunked": StrictChunkedReader},  # type: ignore[dict-item]
}


class StrictConnection(h11.Connection):
    """``h11.Connection`` with the strict readers of this module."""

    def _get_io_object(self, role: Any, event: Any, io_dict: Any) -> Any:
        return super()._get_io_object(
            role, event, _STRICT_READERS if io_dict is _readers.READERS else io_dict
        )
