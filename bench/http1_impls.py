"""Micro-benchmark of the HTTP/1.1 implementations, sans-IO, in one process: h11 and httptools.

A cycle is one keep-alive request and response between a client and a server
protocol of the same implementation: the client submits a GET, the server
reads it and answers 200 with a small body (or a 64 KiB one), the client
reads the answer. The server side alone (parse a request, write a response)
is what a server pays per request. Figures are cycles per second, the best
of a few rounds; ratios compare httptools to h11. Bounded in count and time.

    .venv/bin/python bench/http1_impls.py [--cycles 20000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from trio_hface.events import DataReceived, HeadersReceived
from trio_hface.protocols import HTTPOverTCPFactory
from trio_hface.protocols import protocol_registry as registry

REQUEST = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"localhost:8080"),
    (b":path", b"/hello?name=world"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
]
RAW_REQUEST = b"GET /hello?name=world HTTP/1.1\r\nhost: localhost:8080\r\nuser-agent: bench/1.0\r\naccept: */*\r\naccept-encoding: gzip, deflate\r\n\r\n"
ROUNDS = 3


def round_trip(
    client_factory: HTTPOverTCPFactory, server_factory: HTTPOverTCPFactory, body: bytes, cycles: int
) -> float:
    """Seconds for *cycles* request/response cycles on one keep-alive connection."""
    client, server = client_factory(), server_factory()
    response = [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"content-length", b"%d" % len(body)),
    ]
    start = time.perf_counter()
    for _ in range(cycles):
        sid = client.get_available_stream_id()
        client.submit_headers(sid, REQUEST, end_stream=True)
        server.bytes_received(client.bytes_to_send())
        request = server.next_event()
        assert isinstance(request, HeadersReceived) and request.end_stream
        server.submit_headers(sid, response)
        server.submit_data(sid, body, end_stream=True)
        client.bytes_received(server.bytes_to_send())
        while not isinstance(event := client.next_event(), DataReceived) or not event.end_stream:
            assert event is not None
    return time.perf_counter() - start


def server_side(server_factory: HTTPOverTCPFactory, body: bytes, cycles: int) -> float:
    """Seconds for a server to read *cycles* requests and write their responses."""
    server = server_factory()
    response = [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"content-length", b"%d" % len(body)),
    ]
    start = time.perf_counter()
    for n in range(cycles):
        server.bytes_received(RAW_REQUEST)
        request = server.next_event()
        assert isinstance(request, HeadersReceived)
        server.submit_headers(2 * n + 1, response)
        server.submit_data(2 * n + 1, body, end_stream=True)
        server.bytes_to_send()
    return time.perf_counter() - start


def best(measure: Callable[[], float], cycles: int) -> float:
    return cycles / min(measure() for _ in range(ROUNDS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20_000, help="cycles per round (default 20000)")
    args = parser.parse_args()
    cycles = max(1, min(args.cycles, 1_000_000))
    names = [n for n in ("default", "httptools") if n in registry.http1_servers]
    if "httptools" not in names:
        print("httptools is not installed (pip install -e '.[speedups]'): h11 only")
    print(f"{'test':34} " + " ".join(f"{'h11' if n == 'default' else n:>12}" for n in names) + "   ratio")
    for label, body in (
        ("round trip, 12 B body, cycles/s", b"Hello world!"),
        ("round trip, 64 KiB body", b"x" * 65536),
    ):
        rates = [
            best(
                partial(round_trip, registry.http1_clients[n], registry.http1_servers[n], body, cycles),
                cycles,
            )
            for n in names
        ]
        print(_row(label, rates))
    rates = [
        best(partial(server_side, registry.http1_servers[n], b"Hello world!", cycles), cycles) for n in names
    ]
    print(_row("server side, requests/s", rates))


def _row(label: str, rates: list[float]) -> str:
    ratio = f"{rates[1] / rates[0]:6.2f}x" if len(rates) > 1 else ""
    return f"{label:34} " + " ".join(f"{rate:12,.0f}" for rate in rates) + "  " + ratio


if __name__ == "__main__":
    main()
