"""WebSocket echo: messages per second, trio_hface's server against hypercorn's trio worker.

    .venv/bin/python bench/websocket_echo.py [--quick] [--seconds S] [--sockets N]

The same ASGI application (``trio_hface.server.examples.websocket_echo``) runs in each server
(pinned to core 0 when there are two cores). The load is our client in this process: N WebSockets
at once, each sending a 16-byte text message and waiting for its echo, for S seconds, over
HTTP/1.1 (``wss://``, one connection each) and over HTTP/2 (extended CONNECT, all on one
connection). The figure is echoed messages per second; ratio > 1 favours trio_hface. Wall-clock
figures: on a loaded machine, compare the ratio only. ``--quick`` is a smoke (a second per cell)
that fails only if a cell cannot run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import trio

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import Certs, Ports, free_port, hypercorn_argv, ours_argv, server
from trio_hface import ClientTLSConfig
from trio_hface.client import Client, ClientProtocol

APP = "trio_hface.server.examples.websocket_echo:app"
MESSAGE = "0123456789abcdef"


async def echo_rate(port: int, ca: Path, protocol: ClientProtocol, sockets: int, seconds: float) -> float:
    """Echoed messages per second over *sockets* WebSockets at once, for *seconds*."""
    client = Client(tls_config=ClientTLSConfig(cafile=str(ca)), protocol=protocol)
    counts = [0] * sockets
    async with client.session() as session:

        async def one(index: int, started: trio.Event, go: trio.Event) -> None:
            async with session.websocket(f"wss://localhost:{port}/") as ws:
                started.set()
                await go.wait()
                with trio.move_on_after(seconds):
                    while True:
                        await ws.send(MESSAGE)
                        assert await ws.receive() == MESSAGE
                        counts[index] += 1

        go = trio.Event()
        async with trio.open_nursery() as nursery:
            for index in range(sockets):
                started = trio.Event()
                nursery.start_soon(one, index, started, go)
                await started.wait()  # every WebSocket open before the clock starts
            begin = trio.current_time()
            go.set()
        elapsed = trio.current_time() - begin
    return sum(counts) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: one second per cell")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per cell (default 5)")
    parser.add_argument("--sockets", type=int, default=10, help="WebSockets at once (default 10)")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        certs = Certs.create(Path(folder))
        for name, argv in (("trio_hface", ours_argv), ("hypercorn", hypercorn_argv)):
            ports = Ports(tls=free_port(), clear=free_port())
            log = Path(folder) / f"{name}.log"
            with server(argv(APP, certs, ports), log, tcp_ports=[ports.tls, ports.clear]):
                for label, protocol in (("HTTP/1.1", ClientProtocol.HTTP1), ("HTTP/2", ClientProtocol.HTTP2)):
                    rate = trio.run(echo_rate, ports.tls, certs.ca, protocol, args.sockets, seconds)
                    rows.append((label, name, rate))
    print(
        f"WebSocket echo, {args.sockets} at once, {seconds:g} s per cell (messages/s; loaded machine: compare ratios)"
    )
    print(f"{'version':<10}{'hypercorn':>12}{'trio_hface':>12}{'ratio':>8}")
    for label in ("HTTP/1.1", "HTTP/2"):
        rates = {name: rate for row_label, name, rate in rows if row_label == label}
        ratio = rates["trio_hface"] / rates["hypercorn"] if rates["hypercorn"] else float("inf")
        print(f"{label:<10}{rates['hypercorn']:>12.0f}{rates['trio_hface']:>12.0f}{ratio:>8.2f}")
    return 0 if all(rate > 0 for *_, rate in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
