"""The connection layer against raw Trio streams: one large upload through each, in this process.

Each connection type (HTTP/1.1 and HTTP/2 over TCP and over TLS, HTTP/3) moves the same
request body as a raw Trio ``SocketStream`` or ``SSLStream`` does (the floor of what any HTTP
layer on top can reach); both ends run in this process, so on one core. Loopback only.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import trio
import trustme

from bench.report import Figure, Section
from trio_hface import ClientTLSConfig, ServerTLSConfig
from trio_hface.connections import (
    HTTPConnection,
    HTTPOpener,
    HTTPOverQUICListener,
    HTTPOverQUICOpener,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
)
from trio_hface.events import ConnectionTerminated, DataReceived, HeadersReceived
from trio_hface.networking._tls import client_ssl_context, server_ssl_context
from trio_hface.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory
from trio_hface.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory

CHUNK = 256 * 1024
MIB = 1024 * 1024
#: How long one transfer may take before it counts as failed.
TIMEOUT = 300.0
REQUEST = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", b"/")]


def certificates() -> tuple[ServerTLSConfig, ClientTLSConfig]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server = ServerTLSConfig(
        certdata=b"".join(b.bytes() for b in cert.cert_chain_pems), keydata=cert.private_key_pem.bytes()
    )
    return server, ClientTLSConfig(cadata=ca.cert_pem.bytes().decode())


async def raw_stream(total: int, tls: tuple[ServerTLSConfig, ClientTLSConfig] | None) -> float:
    """Seconds to move *total* bytes over a raw Trio (TLS) stream."""
    done = trio.Event()

    async def sink(stream: trio.abc.Stream) -> None:
        received = 0
        while received < total:
            data = await stream.receive_some(65536)
            if not data:
                break
            received += len(data)
        done.set()

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        if tls:
            ssl_listeners = [
                trio.SSLListener(lst, server_ssl_context(tls[0], []), https_compatible=True)
                for lst in listeners
            ]
            await nursery.start(trio.serve_listeners, sink, ssl_listeners)
            raw = await trio.open_tcp_stream("127.0.0.1", port)
            stream: trio.abc.Stream = trio.SSLStream(
                raw, client_ssl_context(tls[1], []), server_hostname="localhost"
            )
        else:
            await nursery.start(trio.serve_listeners, sink, listeners)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        block = b"x" * CHUNK
        start = time.perf_counter()
        sent = 0
        while sent < total:
            await stream.send_all(block)
            sent += len(block)
        await done.wait()
        elapsed = time.perf_counter() - start
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return elapsed


async def sink_handler(connection: HTTPConnection) -> None:
    """Count request bodies; answer 204 at the end of each."""
    while True:
        event = await connection.receive_event()
        if isinstance(event, ConnectionTerminated):
            return
        if isinstance(event, (HeadersReceived, DataReceived)) and event.end_stream:
            await connection.send_headers(event.stream_id, [(b":status", b"204")], end_stream=True)


async def upload(connection: HTTPConnection, total: int) -> None:
    sid = connection.get_available_stream_id()
    await connection.send_headers(sid, REQUEST)
    block = b"x" * CHUNK
    sent = 0
    while sent < total:
        sent += len(block)
        await connection.send_data(sid, block, end_stream=sent >= total)
    while True:
        event = await connection.receive_event()
        if isinstance(event, HeadersReceived) and event.stream_id == sid:
            return


async def with_server(
    version: str,
    tls: tuple[ServerTLSConfig, ClientTLSConfig] | None,
    work: Callable[[HTTPConnection], Awaitable[None]],
) -> float:
    """Seconds *work* takes on a connection of *version* (cleartext when *tls* is ``None``)."""
    async with trio.open_nursery() as nursery:
        opener: HTTPOpener
        listener: HTTPOverQUICListener | HTTPOverTCPListener
        if version == "3":
            assert tls is not None  # QUIC is always encrypted
            listener = await HTTPOverQUICListener.create(
                HTTP3ServerFactory(), local_address=("127.0.0.1", 0), tls_config=tls[0]
            )
            opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=tls[1])
        else:
            server_factory = HTTP2ServerFactory() if version == "2" else HTTP1ServerFactory()
            listener = await HTTPOverTCPListener.create(
                server_factory, local_address=("127.0.0.1", 0), tls_config=tls[0] if tls else None
            )
            opener = HTTPOverTCPOpener(
                HTTP2ClientFactory() if version == "2" else HTTP1ClientFactory(),
                tls_config=tls[1] if tls else None,
            )
        (address, *_) = await nursery.start(listener.serve, sink_handler)
        async with await opener(address, tls=tls is not None, server_name="localhost") as connection:
            start = time.perf_counter()
            with trio.fail_after(TIMEOUT):
                await work(connection)
            elapsed = time.perf_counter() - start
        await listener.aclose()
        nursery.cancel_scope.cancel()
    return elapsed


async def measure(section: Section, mib: int) -> None:
    """Add a row per connection type: its MB/s beside the raw stream's."""
    tls = certificates()
    total = mib * MIB
    raw = {"TCP": await raw_stream(total, None), "TLS": await raw_stream(total, tls)}

    def add(test: str, transport: str, seconds: float, moved: int = total) -> None:
        reference = Figure(total / raw[transport] / 1e6, f"raw {transport}")
        section.add(test, "MB/s", reference, Figure(moved / seconds / 1e6))

    for version in ("1.1", "2"):
        for transport, config in (("TCP", None), ("TLS", tls)):
            seconds = await with_server(version[0], config, lambda c: upload(c, total))
            add(f"HTTP/{version} over {transport}, {mib} MiB", transport, seconds)
    quic_total = max(total // 4, MIB)  # HTTP/3 is slower by far: a quarter of the bytes
    seconds = await with_server("3", tls, lambda c: upload(c, quic_total))
    add(f"HTTP/3, {quic_total // MIB} MiB (raw TLS moved {mib} MiB)", "TLS", seconds, quic_total)


def run(section: Section, mib: int) -> None:
    """Run the measurements in a Trio run of their own."""
    trio.run(measure, section, mib)
