"""SSL contexts from trio_hface's TLS configurations."""

from __future__ import annotations

import os
import select
import ssl
import struct
import tempfile
from collections.abc import Callable, Sequence

import trio

try:  # not on Windows: there, only what trio already received counts
    import fcntl
    import termios
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

from .._models import ClientTLSConfig, ServerTLSConfig
from ..errors import TLSConfigError

__all__ = [
    "can_receive_without_waiting",
    "check_server_tls",
    "send_space_probe",
    "client_ssl_context",
    "server_ssl_context",
]

#: The most bytes one TLS record takes on the wire: a 5-byte header, 2**14
#: bytes of data and at most 2048 bytes of expansion (RFC 5246 section 6.2.3;
#: TLS 1.3 allows less, RFC 8446 section 5.2).
MAX_TLS_RECORD = 5 + 2**14 + 2048


def can_receive_without_waiting(stream: trio.abc.Stream) -> bool:
    """Whether ``stream.receive_some()`` returns data without waiting for the network.

    True for a :class:`trio.SSLStream` that holds decrypted data, or at
    least one whole record received and not yet decrypted, by trio or by the
    kernel (a socket stream's ``FIONREAD``): OpenSSL hands out
    one record (at most 16 KiB) per read, however much was received, so a
    reader that asks this can take the records of one network read together
    before it wakes anyone. False when it cannot tell (other streams).
    """
    if not isinstance(stream, trio.SSLStream):
        return False
    # Received, still encrypted bytes: trio keeps them in this memory BIO.
    # (Asked first: during a transfer it nearly always answers, and it costs
    # less than the SSL object's ``pending``, which trio forwards.)
    incoming = getattr(stream, "_incoming", None)
    if not isinstance(incoming, ssl.MemoryBIO):
        return bool(stream.pending())
    held = incoming.pending
    if held >= MAX_TLS_RECORD:
        return True
    # trio reads the socket 64 KiB at a time (four records); what the kernel
    # already holds comes without waiting too.
    if held + _kernel_holds(stream.transport_stream) >= MAX_TLS_RECORD:
        return True
    return bool(stream.pending())


def send_space_probe(stream: trio.abc.Stream) -> Callable[[], bool] | None:
    """A function telling whether the socket under *stream* takes more bytes now, or ``None``.

    For a :class:`trio.SocketStream`, or a :class:`trio.SSLStream` over one:
    the probe polls the socket (without waiting) for room in its send
    buffer, so that a small write made then completes at once. ``None`` for
    other streams, and where there is no ``poll``.
    """
    transport = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if not isinstance(transport, trio.SocketStream) or not hasattr(select, "poll"):
        return None
    try:
        fd = transport.socket.fileno()
    except OSError:  # pragma: no cover
        return None
    if fd < 0:
        return None
    poller = select.poll()
    poller.register(fd, select.POLLOUT)

    def has_room() -> bool:
        try:
            ready = poller.poll(0)
        except OSError:  # pragma: no cover
            return False
        return bool(ready) and ready[0][1] == select.POLLOUT

    return has_room


def _kernel_holds(transport: trio.abc.Stream) -> int:
    """Bytes received by the kernel on *transport*'s socket and not yet read (0 if unknown)."""
    if fcntl is None or not isinstance(transport, trio.SocketStream):
        return 0
    try:
        fd = transport.socket.fileno()
        if fd < 0:
            return 0
        held: int = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0
    return held


def server_ssl_context(tls_config: ServerTLSConfig, alpn_protocols: Sequence[str]) -> ssl.SSLContext:
    """Build a server context: the configured certificate, TLS 1.2 or later, ALPN offered.

    The chain and key are read and checked by :meth:`.ServerTLSConfig.check`'s
    loader, the one that the HTTP/3 side uses too, and OpenSSL gets what it read.

    :raises TLSConfigError: if the certificate or the key cannot be read or used
    """
    credentials = tls_config._credentials()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # RFC 9113 section 9.2: HTTP/2 over TLS needs TLS 1.2 or later.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        _load_chain_from_memory(context, credentials.chain_pem, credentials.key_pem)
    except ssl.SSLError as exc:
        # What the loader accepts and OpenSSL does not (say, a key too small for its security level).
        name = tls_config.certfile or "certdata"
        raise TLSConfigError(
            f"{name}: OpenSSL refuses the certificate or key: {exc.reason or exc}", name
        ) from None
    if alpn_protocols:
        context.set_alpn_protocols(list(alpn_protocols))
    return context


def check_server_tls(tls_config: ServerTLSConfig, *, tcp: bool, quic: bool) -> None:
    """Check a certificate and key once, as the TCP listeners (OpenSSL) and QUIC ones (aioquic) will load them.

    :param tcp: TLS over TCP is served (OpenSSL must accept them too)
    :param quic: HTTP/3 is served
    :raises TLSConfigError: naming the file and the problem
    """
    if tcp:
        server_ssl_context(tls_config, [])
    elif quic:
        tls_config.check()


def _load_chain_from_memory(context: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    # The ssl module loads chains from files only: use a private temporary
    # file that is removed as soon as OpenSSL has read it.
    fd, path = tempfile.mkstemp(prefix="trio-hface-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(chain + b"\n" + key)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)


def client_ssl_context(tls_config: ClientTLSConfig, alpn_protocols: Sequence[str]) -> ssl.SSLContext:
    """Build a client context: verification on unless *insecure*, ALPN offered."""
    cadata = tls_config.cadata
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH,
        cafile=tls_config.cafile,
        capath=tls_config.capath,
        cadata=cadata,
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls_config.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn_protocols:
        context.set_alpn_protocols(list(alpn_protocols))
    return context
