"""Memory per idle connection of ``trio-hface server`` and hypercorn's trio worker.

    .venv/bin/python bench/idle_memory.py [--connections 400]

Each server serves the hello-world app over TLS. This process opens the connections (HTTP/1.1
after one request on it, HTTP/2 after the preface and SETTINGS, both through ALPN), leaves them
idle, and reads the growth of the server process's resident memory (``/proc/PID/statm``) per
connection. The client side's memory is not counted. Loopback only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import HELLO_APP, Certs, Ports, free_port, hypercorn_argv, ours_argv, server

#: The HTTP/2 client preface and an empty SETTINGS frame (RFC 9113 section 3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
#: Seconds one figure may take.
DEADLINE = 120.0


def rss(pid: int) -> int:
    """The resident memory of a process, in bytes."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * 4096


async def open_idle(port: int, ca: Path, version: str, count: int) -> list[trio.SSLStream[trio.SocketStream]]:
    """Open *count* connections, make each one live (a request, or the HTTP/2 preface), keep them."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2" if version == "2" else "http/1.1"])
    streams = []
    for _ in range(count):
        stream = trio.SSLStream(
            await trio.open_tcp_stream("127.0.0.1", port), context, server_hostname="localhost"
        )
        await stream.do_handshake()
        if version == "2":
            await stream.send_all(H2_PREFACE)
            await stream.receive_some(65536)  # the server's SETTINGS
        else:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += await stream.receive_some(65536)
        streams.append(stream)
    return streams


def per_connection(pid: int, port: int, ca: Path, version: str, count: int) -> float:
    """KiB of server memory per idle connection."""

    async def measure() -> float:
        with trio.fail_after(DEADLINE):
            warm = await open_idle(port, ca, version, 20)  # arenas, caches, the first TLS session
            await trio.sleep(0.5)
            before = rss(pid)
            streams = await open_idle(port, ca, version, count)
            await trio.sleep(1.0)
            after = rss(pid)
            for stream in [*warm, *streams]:
                await trio.aclose_forcefully(stream)
            return (after - before) / count / 1024

    return trio.run(measure)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=400, help="idle connections per figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        certs = Certs.create(folder)
        rows: list[tuple[str, float, float]] = []
        for version in ("1.1", "2"):
            figures: dict[str, float] = {}
            argvs: dict[str, Callable[[Ports], list[str]]] = {
                "hypercorn": lambda ports: hypercorn_argv(HELLO_APP, certs, ports),
                "trio_hface": lambda ports: ours_argv(HELLO_APP, certs, ports),
            }
            for label, argv in argvs.items():
                ports = Ports(tls=free_port(), clear=free_port())
                log = folder / f"{label}-{version}.log"
                with server(argv(ports), log, tcp_ports=[ports.tls, ports.clear]) as process:
                    time.sleep(0.5)
                    figures[label] = per_connection(
                        process.pid, ports.tls, certs.ca, version, args.connections
                    )
            rows.append(
                (
                    f"HTTP/{version} over TLS, KiB per idle connection",
                    figures["hypercorn"],
                    figures["trio_hface"],
                )
            )
    print(f"Server memory per idle connection ({args.connections} connections; lower is better)")
    print(f"{'test':<48} {'hypercorn (trio)':>17} {'trio_hface':>11} {'ratio':>7}")
    for test, reference, ours in rows:
        ratio = reference / ours if ours > 0 else float("inf")
        print(f"{test:<48} {reference:>17.1f} {ours:>11.1f} {ratio:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
