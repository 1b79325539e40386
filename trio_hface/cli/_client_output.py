"""Where ``trio-hface client`` writes: standard output in URL order, ``-o`` files, the
progress bar, ``-w`` and the ``-v`` trace.

Each URL has an :class:`Output`: what it writes to standard output (its head,
its body, its ``-w`` text) and to standard error (its ``-v`` trace, its
progress bar) goes out at once while it is the URL's turn, and into a spool
before (standard output into a :class:`tempfile.SpooledTemporaryFile`, in
memory up to ``SPOOL_MEMORY`` bytes and on disk beyond; standard error into a
list of lines, which only the head's trace fills, so it is as bounded as the
response's head). A body for ``-o`` goes to its file as it arrives, whatever
the turn.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import trio

from ._client_status import WriteError
from ._errors import CommandError

__all__ = [
    "FileSink",
    "Output",
    "Progress",
    "WriteOut",
    "format_head",
    "trace_connection",
    "trace_head",
]

#: Bytes of a response body kept in memory while earlier URLs print; the rest
#: goes to a temporary file (a few typical pages; hface kept everything).
SPOOL_MEMORY = 256 * 1024

#: Seconds between redraws of the progress bar (ten a second, as curl).
PROGRESS_INTERVAL = 0.1
#: Characters of the progress bar's bar.
PROGRESS_WIDTH = 20


def _write_stdout(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    except OSError as exc:
        # Nothing more can go there (a closed pipe, as with `| head`); keep the
        # interpreter's final flush quiet by pointing standard output at nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise WriteError(f"cannot write to standard output: {exc.strerror or exc}") from None


def _write_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


@dataclass
class Output:
    """One URL's share of standard output and standard error: at once on its turn, spooled before."""

    url: str
    spool: IO[bytes] = field(default_factory=lambda: tempfile.SpooledTemporaryFile(SPOOL_MEMORY))
    notes: list[str | Callable[[], str]] = field(default_factory=list)
    live: bool = False
    done: trio.Event = field(default_factory=trio.Event)
    #: The exit status and the line that says why, if the URL failed.
    status: int = 0
    error: str | None = None
    progress: Progress | None = None

    def write(self, data: bytes) -> None:
        """Write to standard output, in URL order.

        :raises WriteError: if standard output (or the spool's disk) refuses it
        """
        if self.live:
            _write_stdout(data)
            return
        try:
            self.spool.write(data)
        except OSError as exc:
            raise WriteError(f"cannot keep the body until its turn: {exc.strerror or exc}") from None

    def note(self, text: str | Callable[[], str]) -> None:
        """Write to standard error, in URL order; a function gives the text once it is the URL's turn."""
        if self.live:
            _write_stderr(text if isinstance(text, str) else text())
        else:
            self.notes.append(text)

    def go_live(self) -> None:
        """Print what was kept and write the rest at once (no checkpoint: no write comes between).

        :raises WriteError: if standard output refuses it
        """
        self.live = True
        if self.notes:
            _write_stderr("".join(text if isinstance(text, str) else text() for text in self.notes))
            self.notes.clear()
        try:
            self.spool.seek(0)
            while chunk := self.spool.read(65536):
                _write_stdout(chunk)
        finally:
            self.spool.close()
        if self.progress is not None:
            self.progress.show()

    def fail(self, status: int, message: str) -> None:
        """Record the URL's failure (the first one counts)."""
        if self.error is None:
            self.status, self.error = status, message


class FileSink:
    """A body written to a file as it arrives (``-o FILE``).

    :raises WriteError: if the file cannot be created
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            # Plain blocking writes: a local file takes a 64 KiB piece at once,
            # and a thread per piece would cost more than the write.
            self._file = open(path, "wb")  # closed by close()
        except OSError as exc:
            raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise WriteError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            raise WriteError(f"cannot write {self.path}: {exc.strerror or exc}") from None


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class Progress:
    """A progress bar on standard error for a download to a file, drawn while it is the URL's turn.

    ``[#########           ]  45%  22.5 MiB of 50.0 MiB  12.3 MiB/s  NAME``, or
    without a ``content-length``, ``22.5 MiB  12.3 MiB/s  NAME``; redrawn in
    place (carriage return) at most every ``PROGRESS_INTERVAL`` seconds, and a
    last time, with a newline, when the download ends.
    """

    def __init__(
        self, name: str, total: int | None, *, clock: Callable[[], float] = trio.current_time
    ) -> None:
        self.name = name
        self.total = total
        self.received = 0
        self._clock = clock
        self._start = clock()
        self._drawn_at = -PROGRESS_INTERVAL
        self._width = 0
        self._finished = False
        self._live = False

    def line(self) -> str:
        """The bar as it stands."""
        elapsed = max(self._clock() - self._start, 1e-6)
        rate = f"{_size(self.received / elapsed)}/s"
        if self.total:
            fraction = min(self.received / self.total, 1.0)
            bar = "#" * int(fraction * PROGRESS_WIDTH)
            return (
                f"[{bar:<{PROGRESS_WIDTH}}] {fraction * 100:3.0f}%  "
                f"{_size(self.received)} of {_size(self.total)}  {rate}  {self.name}"
            )
        return f"{_size(self.received)}  {rate}  {self.name}"

    def _draw(self, end: str = "") -> None:
        text = self.line()
        padding = " " * max(self._width - len(text), 0)  # cover a longer line drawn before
        self._width = len(text)
        self._drawn_at = self._clock()
        _write_stderr(f"\r{text}{padding}{end}")

    def update(self, count: int) -> None:
        """Count *count* more bytes; redraw if it is time."""
        self.received += count
        if self._live and self._clock() - self._drawn_at >= PROGRESS_INTERVAL:
            self._draw()

    def finish(self) -> None:
        """The download ended: draw the last state, with a newline, once it is the URL's turn."""
        self._finished = True
        if self._live:
            self._draw("\n")

    def show(self) -> None:
        """It is the URL's turn: draw from now on."""
        self._live = True
        self._draw("\n" if self._finished else "")


#: ``-w`` variables (curl's names) and what they mean, for the help and the docs.
WRITE_OUT_VARIABLES = {
    "http_code": "the status code (000 without a response)",
    "response_code": "the same as http_code",
    "http_version": "1.1, 2 or 3 (0 without a response)",
    "time_total": "seconds from the start of the request to the end of the body",
    "time_starttransfer": "seconds until the response's head arrived",
    "size_download": "bytes of the body received",
    "speed_download": "bytes per second of the body",
    "content_type": "the content-type header",
    "url": "the URL as given",
    "url_effective": "the URL that answered (after redirects, with -L)",
    "num_redirects": "how many redirects were followed (with -L)",
    "remote_ip": "the IP address of the server (or of the proxy)",
    "remote_port": "its port",
    "exitcode": "the exit status of this URL",
    "errormsg": "what went wrong, or nothing",
}

_WRITE_OUT_TOKEN = re.compile(r"%\{([^}]*)\}|%%|\\[nrt\\]|[^%\\]+|.", re.DOTALL)
_ESCAPES = {"\\n": "\n", "\\r": "\r", "\\t": "\t", "\\\\": "\\", "%%": "%"}


class WriteOut:
    """A ``-w`` format: text with ``%{variable}``, ``%%``, and ``\\n``, ``\\r``, ``\\t``, ``\\\\`` escapes.

    :raises CommandError: for a variable it does not know
    """

    def __init__(self, text: str) -> None:
        self._parts: list[tuple[bool, str]] = []  # (is a variable, text or name)
        for match in _WRITE_OUT_TOKEN.finditer(text):
            token, name = match.group(0), match.group(1)
            if name is not None:
                if name not in WRITE_OUT_VARIABLES:
                    known = ", ".join(WRITE_OUT_VARIABLES)
                    raise CommandError(f"-w knows no %{{{name}}}; it knows {known}")
                self._parts.append((True, name))
            else:
                self._parts.append((False, _ESCAPES.get(token, token)))

    def render(self, values: dict[str, str]) -> str:
        """The text for one URL, with *values* of the variables."""
        return "".join(values[text] if variable else text for variable, text in self._parts)


def format_head(version: str, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A response's head as ``-i`` prints it: ``HTTP/2 200``, the fields, an empty line (CRLF)."""
    lines = [f"HTTP/{version} {status}\r\n".encode()]
    lines += [name + b": " + value + b"\r\n" for name, value in headers]
    return b"".join(lines) + b"\r\n"


def _connection_kind(attributes: dict[str, Any], version: str, alt_svc: bool) -> str:
    name = f"HTTP/{version}"
    if version == "3":
        return f"{name} over QUIC, advertised by Alt-Svc" if alt_svc else f"{name} over QUIC"
    details = []
    if attributes.get("alpn_protocol"):
        details.append(f"{name} by ALPN")
    elif version == "2":
        details.append(f"{name} with prior knowledge")
    else:
        details.append(name)
    if attributes.get("tls_version"):
        details.append(str(attributes["tls_version"]))
    return ", ".join(details)


def trace_connection(
    host: str, attributes: dict[str, Any], version: str, *, reused: bool, alt_svc: bool
) -> list[str]:
    """The ``-v`` lines for the connection a response came on."""
    address = attributes.get("remote_address")
    where = f"{host} ({address[0]}) port {address[1]}" if address else host
    kind = _connection_kind(attributes, version, alt_svc)
    lines = [f"* {'Re-using the connection to' if reused else 'Connected to'} {where} ({kind})\n"]
    if attributes.get("proxy") and not reused:
        lines.append(f"* Through the tunnel of the proxy {attributes['proxy']}\n")
    return lines


def _field_lines(prefix: str, headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    return [f"{prefix} {n.decode('latin-1')}: {v.decode('latin-1')}\n" for n, v in headers]


def trace_head(
    version: str,
    request_line: str,
    request_headers: Sequence[tuple[bytes, bytes]],
    informational: Sequence[tuple[int, Sequence[tuple[bytes, bytes]]]],
    status: int,
    headers: Sequence[tuple[bytes, bytes]],
) -> list[str]:
    """The ``-v`` lines for a request and its response's head, as curl prints them."""
    lines = [f"> {request_line} HTTP/{version}\n", *_field_lines(">", request_headers), ">\n"]
    for code, fields in informational:
        lines += [f"< HTTP/{version} {code}\n", *_field_lines("<", fields), "<\n"]
    lines += [f"< HTTP/{version} {status}\n", *_field_lines("<", headers), "<\n"]
    return lines
