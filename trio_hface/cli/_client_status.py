"""The exit statuses of ``trio-hface client``: curl's numbers, found from the failure's causes."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import trio

from ..errors import (
    ConnectError,
    ConnectionLost,
    ProxyError,
    RedirectError,
    RemoteProtocolError,
    StreamResetError,
)

__all__ = [
    "CONNECT",
    "FAILED",
    "HTTP_ERROR",
    "RECEIVE",
    "REDIRECTS",
    "RESOLVE",
    "TIMEOUT",
    "TLS",
    "TLS_VERIFY",
    "WRITE",
    "WriteError",
    "classify",
]

#: Another failure (such as a request the client refused to make).
FAILED = 1
#: The host name could not be resolved (curl's CURLE_COULDNT_RESOLVE_HOST).
RESOLVE = 6
#: No connection could be opened: refused, unreachable (CURLE_COULDNT_CONNECT).
CONNECT = 7
#: ``--fail`` and a status of 400 or more (CURLE_HTTP_RETURNED_ERROR).
HTTP_ERROR = 22
#: The body could not be written to standard output or the ``-o`` file (CURLE_WRITE_ERROR).
WRITE = 23
#: A timeout ran out: connecting, or waiting for the response (CURLE_OPERATION_TIMEDOUT).
TIMEOUT = 28
#: The TLS or QUIC handshake failed, other than by the certificate (CURLE_SSL_CONNECT_ERROR).
TLS = 35
#: The connection ended or broke, the server reset the request or broke HTTP,
#: or the proxy refused the tunnel (CURLE_RECV_ERROR).
RECEIVE = 56
#: ``-L`` met more than ``--max-redirs`` redirects in a row, or one it
#: cannot follow (CURLE_TOO_MANY_REDIRECTS).
REDIRECTS = 47
#: The server's certificate could not be verified (CURLE_PEER_FAILED_VERIFICATION).
TLS_VERIFY = 60

#: What the QUIC stack (aioquic) says when it cannot verify a certificate.
_QUIC_VERIFY_WORDS = ("certificate", "verif")


class WriteError(Exception):
    """The output could not be written; the message names where."""


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """*exc*, the exceptions it was raised from or during, and those its groups hold."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += getattr(current, "exceptions", ())
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def classify(exc: BaseException) -> int:
    """The exit status for a failure, from the most telling exception in its chain."""
    causes = list(_causes(exc))

    def has(*kinds: type[BaseException]) -> bool:
        return any(isinstance(cause, kinds) for cause in causes)

    if has(WriteError):
        return WRITE
    if has(RedirectError):
        return REDIRECTS
    if has(ssl.SSLCertVerificationError):
        return TLS_VERIFY
    if has(ssl.SSLError):
        return TLS
    if has(socket.gaierror):
        return RESOLVE
    if has(trio.TooSlowError, TimeoutError):  # trio_hface.TimeoutError is a TimeoutError too
        return TIMEOUT
    if has(ProxyError):
        return RECEIVE
    if has(ConnectError):
        messages = " ".join(str(cause) for cause in causes if isinstance(cause, ConnectError))
        if "QUIC handshake failed" in messages:
            verify = any(word in messages.lower() for word in _QUIC_VERIFY_WORDS)
            return TLS_VERIFY if verify else TLS
        if "TLS handshake failed" in messages:
            return TLS
        return CONNECT
    if has(ConnectionLost, StreamResetError, RemoteProtocolError, trio.BrokenResourceError):
        return RECEIVE
    return FAILED
