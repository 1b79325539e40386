"""The access log: one line per response, in a format of named fields.

Theory of operation
-------------------

:class:`AccessLog` is made once per server from its ``access_log`` and
``access_log_format`` arguments (the format is checked then, so a bad one
fails before anything listens). :meth:`AccessLog.open` runs at the start of
each :meth:`ASGIServer.run`, in every process that serves (worker
processes open the file themselves: an open file does not travel by
pickle), and :meth:`AccessLog.close` at its end. Every request cycle
(HTTP, and the handshake of a WebSocket) calls :meth:`AccessLog.write` once
its response is complete; when nothing would be written (the logger is
off, or no destination) it returns before building the line, so a server
that does not log pays one check per request.

Lines to a file are written with one ``write`` each on a file opened for
appending, so the lines of several worker processes do not interleave.
"""

from __future__ import annotations

import logging
import string
import sys
import time
from collections.abc import MutableMapping
from typing import IO, Any

__all__ = ["ACCESS_LOG_FIELDS", "DEFAULT_ACCESS_LOG_FORMAT", "AccessLog", "check_access_log_format"]

#: The logger of the access log when it has no destination of its own.
access_logger = logging.getLogger("trio_hface.server.access")

#: The fields of an access log format, and what each one holds.
ACCESS_LOG_FIELDS: dict[str, str] = {
    "client": "the client's address and port, as 127.0.0.1:50312 ([::1]:50312 for IPv6), or - if unknown",
    "method": "the request method (WEBSOCKET for a WebSocket handshake)",
    "path": "the request target as received: the path with its query string, such as /search?q=trio",
    "version": "the HTTP version: 1.1, 2 or 3",
    "status": "the response status, such as 200",
    "bytes": "the number of response body bytes sent",
    "duration": "seconds from the request's head to the response's end (a float)",
    "duration_ms": "the same in milliseconds, rounded to three decimals",
    "host": "the request's authority (Host header or :authority), or -",
    "scheme": "http or https (ws or wss for a WebSocket)",
    "user_agent": "the user-agent header, or -",
    "referer": "the referer header, or -",
    "time": "the local time of the response's end, as 02/Dec/2026:06:45:48 +0000 (Common Log Format)",
    "worker": "the index of the worker process that served the request, or - in a single process",
}

#: The format of the access log when none is given.
DEFAULT_ACCESS_LOG_FORMAT = '{client} - "{method} {path} HTTP/{version}" {status} {bytes} {duration_ms}ms'

#: What the default format gets in front when the access log has a file of its
#: own (the rest of the log has its own timestamps; a file would have none).
_FILE_PREFIX = "[{time}] "

_SAMPLE: dict[str, Any] = {
    "client": "127.0.0.1:50312",
    "method": "GET",
    "path": "/?q=1",
    "version": "2",
    "status": 200,
    "bytes": 12,
    "duration": 0.0012,
    "duration_ms": 1.2,
    "host": "localhost",
    "scheme": "https",
    "user_agent": "-",
    "referer": "-",
    "time": "02/Dec/2026:06:45:48 +0000",
    "worker": "-",
}


def check_access_log_format(format: str) -> None:
    """Check that *format* names only fields of :data:`ACCESS_LOG_FIELDS` and formats them.

    :raises ValueError: for an unknown field, a positional ``{}``, or a
        format that does not apply to its field
    """
    try:
        parsed = list(string.Formatter().parse(format))
    except ValueError as exc:
        raise ValueError(f"invalid access log format {format!r}: {exc}") from None
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name not in ACCESS_LOG_FIELDS:
            raise ValueError(
                f"unknown access log field {{{name}}}; the fields are {', '.join(ACCESS_LOG_FIELDS)}"
            )
    try:
        format.format_map(_SAMPLE)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid access log format {format!r}: {exc}") from None


def _address(address: Any) -> str:
    if not address:
        return "-"
    host = str(address[0])
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


def _header(scope: MutableMapping[str, Any], name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return "-"


class AccessLog:
    """Where and how a server writes its access log. Made by :class:`ASGIServer`; not public API.

    :param destination: ``None``: the logger ``trio_hface.server.access`` at
        level ``INFO``; ``"-"``: standard output; otherwise a file name,
        appended to
    :param format: a :meth:`str.format` string of :data:`ACCESS_LOG_FIELDS`
        (``None``: :data:`DEFAULT_ACCESS_LOG_FORMAT`, after ``[{time}]``
        when the log has a destination of its own)
    :raises ValueError: for a format that :func:`check_access_log_format` refuses
    """

    def __init__(self, destination: str | None = None, format: str | None = None) -> None:
        if format is None:
            format = (
                DEFAULT_ACCESS_LOG_FORMAT if destination is None else _FILE_PREFIX + DEFAULT_ACCESS_LOG_FORMAT
            )
        check_access_log_format(format)
        self.destination = destination
        self.format = format
        used = {name for _, name, _, _ in string.Formatter().parse(format)}
        self._uses_worker = "worker" in used
        # strftime is a third of a line's cost: only when the format shows the time.
        self._uses_time = "time" in used
        self._file: IO[str] | None = None
        self._opened = 0

    def __getstate__(self) -> dict[str, Any]:
        # A worker process opens the file itself.
        return {**self.__dict__, "_file": None, "_opened": 0}

    def open(self) -> None:
        """Open the destination file (once per run; runs may nest)."""
        self._opened += 1
        if self._opened == 1 and self.destination not in (None, "-"):
            assert self.destination is not None
            # Line-buffered: each line leaves in one write() to an O_APPEND file.
            self._file = open(self.destination, "a", buffering=1, encoding="utf-8")

    def close(self) -> None:
        """Close the destination file when the last run that opened it ends."""
        self._opened -= 1
        if self._opened == 0 and self._file is not None:
            self._file.close()
            self._file = None

    def active(self) -> bool:
        """Whether :meth:`write` writes a line now (one can skip gathering its fields otherwise)."""
        if self.destination is None:
            return access_logger.isEnabledFor(logging.INFO)
        return self.destination == "-" or self._file is not None

    def write(
        self,
        scope: MutableMapping[str, Any],
        *,
        target: bytes,
        method: str,
        status: int,
        bytes_sent: int,
        started: float,
        ended: float,
        worker: int | None,
    ) -> None:
        """Write the line of one response.

        :param target: the request's ``:path`` as received (with the query)
        :param started: when the request's head arrived, and *ended* when the
            response ended, on one clock, in seconds
        """
        if self.destination is None:
            if not access_logger.isEnabledFor(logging.INFO):
                return
        elif self.destination != "-" and self._file is None:
            return  # not running
        duration = max(ended - started, 0.0)
        fields = {
            "client": _address(scope.get("client")),
            "method": method,
            "path": target.decode("ascii", "replace") or "/",
            "version": scope["http_version"],
            "status": status,
            "bytes": bytes_sent,
            "duration": round(duration, 6),
            "duration_ms": round(duration * 1000, 3),
            "host": _header(scope, b"host"),
            "scheme": scope["scheme"],
            "user_agent": _header(scope, b"user-agent"),
            "referer": _header(scope, b"referer"),
            "time": time.strftime("%d/%b/%Y:%H:%M:%S %z") if self._uses_time else "-",
            "worker": "-" if worker is None else worker,
        }
        line = self.format.format_map(fields)
        if worker is not None and not self._uses_worker:
            line += f" worker {worker}"
        if self.destination is None:
            access_logger.info("%s", line, extra={"access": fields})
        elif self.destination == "-":
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        else:
            assert self._file is not None
            self._file.write(line + "\n")
