"""How far HTTP/3 small requests can go here: our server beside the bare stacks and a C server.

    .venv/bin/python bench/h3_ceiling.py [--rounds 3] [--processes 10] [--streams 200]

The HTTP/3 small-request swarm of ``bench/run.py`` (``--processes`` ngtcp2 ``gtlsclient``
processes at once, ``--streams`` GETs each, every response counted) against, in turn:
ngtcp2's own ``gtlsserver`` (C: the ceiling of the swarm on this machine, client side
included), a bare HTTP/3 server on aioquic and one on qh3 (``bench/h3_throughput.py``'s:
the library's QUIC and HTTP/3 in one Trio task, no connection layer, no ASGI), and
``trio-hface server`` on each stack with the hello app. The servers run on the server core,
the swarm on the other (``taskset``). After a swarm that warms each server up, prints req/s, medians of ``--rounds``, and each as a
share of the C server's. Loopback only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import (
    BENCH,
    HELLO_APP,
    Certs,
    Ports,
    free_port,
    ours_argv,
    quic_swarm,
    server,
    tool,
)

#: A server's command line for a UDP port.
Command = Callable[[int], list[str]]
#: Seconds one swarm may take before its processes are killed.
SWARM_CAP = 60.0


def servers(certs: Certs, folder: Path, processes: int, streams: int) -> dict[str, Command]:
    """name: the command of a server of HTTP/3 small responses on a given UDP port."""
    docs = folder / "htdocs"
    docs.mkdir(exist_ok=True)
    for index in range(processes):  # gtlsserver serves files: one per path the swarm asks for
        for n in range(streams):
            (docs / f"{index}-{n}").write_bytes(b"Hello, world!\n")
    gtlsserver = tool("gtlsserver")
    raw = [sys.executable, str(BENCH / "h3_throughput.py"), "--folder", str(folder), "--serve"]
    has_qh3 = importlib.util.find_spec("qh3") is not None
    found: dict[str, Command] = {
        "gtlsserver (ngtcp2, C)": lambda port: [
            gtlsserver,
            "-q",
            "-d",
            str(docs),
            "127.0.0.1",
            str(port),
            str(certs.key),
            str(certs.cert),
        ],
        "bare aioquic (one task)": lambda port: [*raw, str(port), "--raw", "aioquic"],
    }
    if has_qh3:
        found["bare qh3 (one task)"] = lambda port: [*raw, str(port), "--raw", "qh3"]
    found["trio-hface server, aioquic"] = lambda port: ours_argv(HELLO_APP, certs, Ports(port, free_port()))
    if has_qh3:
        found["trio-hface server, qh3"] = lambda port: ours_argv(
            HELLO_APP, certs, Ports(port, free_port()), options=("--http3-impl", "qh3")
        )
    return found


def measure(command: Command, folder: Path, args: argparse.Namespace) -> tuple[float, int]:
    """The median req/s of the rounds against the server of *command*, and the responses lost."""
    port = free_port(socket.SOCK_DGRAM)
    rates, lost = [], 0
    with server(command(port), folder / "server.log", udp_port=port):
        # A first swarm warms the server up (its first handshakes, lazy imports): not counted.
        quic_swarm(port, size=0, processes=args.processes, streams=args.streams, folder=folder, cap=SWARM_CAP)
        for _ in range(args.rounds):
            result = quic_swarm(
                port, size=0, processes=args.processes, streams=args.streams, folder=folder, cap=SWARM_CAP
            )
            rates.append(result.rate)
            lost += result.lost
    return statistics.median(rates), lost


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=10, help="gtlsclient processes at once")
    parser.add_argument("--streams", type=int, default=200, help="GETs per gtlsclient process")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="h3ceiling-"))
    certs = Certs.create(folder)
    ceiling = None
    print(
        f"HTTP/3 small: {args.processes} gtlsclient x {args.streams} streams, req/s (median of {args.rounds})"
    )
    for name, argv in servers(certs, folder, args.processes, args.streams).items():
        try:
            rate, lost = measure(argv, folder, args)
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            print(f"  {name:30} failed: {exc}")
            continue
        ceiling = ceiling or rate
        note = f"  lost {lost}" if lost else ""
        print(f"  {name:30} {rate:8,.0f}  {rate / ceiling:5.0%} of the C server{note}", flush=True)


if __name__ == "__main__":
    main()
