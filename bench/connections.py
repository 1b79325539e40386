"""Benchmark of the connection layer on loopback, side by side with raw Trio streams.

Prints throughput of one large body per transport and request rates of small
requests, with ratios against the raw Trio TLS stream (the floor of what any
HTTP layer on top of it can reach). Bounded in size and time; loopback only.

    .venv/bin/python bench/connections.py [--mib 64]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from functools import partial

import trio
import trustme

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


async def small_requests(connection: HTTPConnection, count: int, concurrency: int) -> None:
    waiters: dict[int, trio.Event] = {}

    async def reader() -> None:
        while True:
            event = await connection.receive_event()
            if isinstance(event, HeadersReceived) and event.stream_id in waiters:
                waiters.pop(event.stream_id).set()

    async def worker(n: int) -> None:
        for _ in range(n):
            sid = connection.get_available_stream_id()
            waiter = waiters[sid] = trio.Event()
            await connection.send_headers(sid, REQUEST, end_stream=True)
            await waiter.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        async with trio.open_nursery() as workers:
            for _ in range(concurrency):
                workers.start_soon(worker, count // concurrency)
        nursery.cancel_scope.cancel()


async def with_server(
    version: str,
    tls: tuple[ServerTLSConfig, ClientTLSConfig],
    work: Callable[[HTTPConnection], Awaitable[None]],
) -> float:
    async with trio.open_nursery() as nursery:
        opener: HTTPOpener
        if version == "3":
            listener: HTTPOverQUICListener | HTTPOverTCPListener = await HTTPOverQUICListener.create(
                HTTP3ServerFactory(), local_address=("127.0.0.1", 0), tls_config=tls[0]
            )
            opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=tls[1])
        else:
            server_factory = HTTP2ServerFactory() if version == "2" else HTTP1ServerFactory()
            listener = await HTTPOverTCPListener.create(
                server_factory, local_address=("127.0.0.1", 0), tls_config=tls[0]
            )
            opener = HTTPOverTCPOpener(
                HTTP2ClientFactory() if version == "2" else HTTP1ClientFactory(), tls_config=tls[1]
            )
        (address, *_) = await nursery.start(listener.serve, sink_handler)
        async with await opener(address, tls=True, server_name="localhost") as connection:
            start = time.perf_counter()
            with trio.fail_after(300):
                await work(connection)
            elapsed = time.perf_counter() - start
        await listener.aclose()
        nursery.cancel_scope.cancel()
    return elapsed


async def main(mib: int, requests: int) -> None:
    tls = certificates()
    total = mib * 1024 * 1024
    print(f"one {mib} MiB body, loopback, TLS unless said otherwise")
    base = await raw_stream(total, tls)
    rows = [("raw trio TCP stream (no TLS)", await raw_stream(total, None))]
    rows.append(("raw trio TLS stream", base))
    for version in ("1", "2"):
        rows.append(
            (
                f"trio_hface HTTP/{version} connection",
                await with_server(version, tls, lambda c: upload(c, total)),
            )
        )
    quic_total = total // 4
    quic = await with_server("3", tls, lambda c: upload(c, quic_total))
    rows.append((f"trio_hface HTTP/3 connection ({mib // 4} MiB)", quic * 4))
    for name, seconds in rows:
        print(f"  {name:42s} {total / seconds / 1e6:8.1f} MB/s   x{base / seconds:5.2f} of raw TLS")
    print(f"{requests} small requests (HEADERS only, 204 answers)")
    for version, concurrency in (("1", 1), ("2", 1), ("2", 10), ("3", 10)):
        seconds = await with_server(
            version, tls, partial(small_requests, count=requests, concurrency=concurrency)
        )
        print(f"  HTTP/{version}, {concurrency:2d} at a time: {requests / seconds:8.0f} requests/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    trio.run(main, args.mib, args.requests)
