"""What one HTTP/3 request costs our server: instructions (callgrind) per small request.

    .venv/bin/python bench/h3_cost.py [--counts 20 100] [--processes 10] [--keep DIR]

The ``server`` section of ``bench/run.py`` measures HTTP/3 small responses with ten ngtcp2
``gtlsclient`` processes against ``trio-hface server`` (the hello app), and the server is
CPU-bound there: its throughput is its CPU time per request. This script counts that cost
independently of the machine's load: ``trio-hface server`` runs under
``valgrind --tool=callgrind`` (pinned to the server core, as in ``run.py``) twice; each time
a warm-up runs first (one gtlsclient process, then ``--processes`` at once), then the measured swarm
of the same number of processes with a small, then a larger number of streams each
(``--counts``), and the server is stopped (SIGTERM: it exits cleanly and callgrind reports).
The difference of the two runs' instruction counts divided by the difference of their
request counts is the cost of one request: start-up, warm-up and the connections' handshakes
(the same number in both runs) cancel out. gtlsclient runs outside valgrind on the load core.

Under callgrind the server is about fifty times slower, so more datagrams wait per wakeup
than in a real run: the figure is the per-request work of a busy server, which is the case
that matters. Every response must arrive, or the run fails. Everything is on loopback,
bounded in count and time.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import HELLO_APP, BenchError, Certs, Ports, free_port, ours_argv, quic_swarm, start, tail

#: Streams per gtlsclient process in the two measured swarms.
COUNTS = (20, 100)
#: gtlsclient processes per swarm (as in ``run.py``): each is one connection.
PROCESSES = 10
#: Streams per process of the warm-up swarm.
WARM_UP_STREAMS = 10
#: How long the server may take to start under valgrind, and to exit once stopped.
STARTUP_TIMEOUT = 300.0
STOP_TIMEOUT = 120.0
#: How long one swarm may take under valgrind before its processes are killed.
SWARM_CAP = 300.0
#: gtlsclient's idle timeout: ten handshakes at once take a server under valgrind longer than
#: the five seconds of ``run.py``.
SWARM_IDLE_TIMEOUT = 60.0


def _wait_ready(process: subprocess.Popen[bytes], ports: Ports, log: Path) -> None:
    """Return once the server accepts on its TLS port and holds the UDP port of the same number."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise BenchError(f"server exited with {process.returncode}: {tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", ports.tls), timeout=1).close()
        except OSError:
            pass
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", ports.tls))
                except OSError:
                    return  # taken: the server has it
        if time.monotonic() > deadline:
            raise BenchError(f"server did not start under valgrind: {tail(log)}")
        time.sleep(0.2)


def instructions(streams: int, processes: int, certs: Certs, folder: Path) -> tuple[int, int]:
    """Run the server under callgrind through a warm-up and one swarm of *processes* x *streams*.

    :returns: the instructions the server executed in all, and the requests of the measured swarm
    """
    ports = Ports(free_port(), free_port())
    out = folder / f"callgrind.h3.{streams}"
    log = folder / f"server.{streams}.log"
    argv = [
        shutil.which("valgrind") or "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        *ours_argv(HELLO_APP, certs, ports),
    ]
    process = start(argv, log)
    try:
        _wait_ready(process, ports, log)
        # Warm up with one connection first: a cold server under valgrind can take longer over
        # its first handshakes than gtlsclient waits (five seconds).
        for clients in (1, processes):
            quic_swarm(
                ports.tls,
                size=0,
                processes=clients,
                streams=WARM_UP_STREAMS,
                folder=folder,
                cap=SWARM_CAP,
                idle_timeout=SWARM_IDLE_TIMEOUT,
            )
        swarm = quic_swarm(
            ports.tls,
            size=0,
            processes=processes,
            streams=streams,
            folder=folder,
            cap=SWARM_CAP,
            idle_timeout=SWARM_IDLE_TIMEOUT,
        )
        if swarm.lost:
            raise BenchError(f"{swarm.lost} of {swarm.expected} responses were lost under callgrind")
        process.send_signal(signal.SIGTERM)
        process.wait(STOP_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    match = re.search(r"Collected : (\d+)", log.read_text(errors="replace"))
    if match is None:
        raise BenchError(f"callgrind reported nothing: {tail(log)}")
    return int(match.group(1)), swarm.expected


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", type=int, nargs=2, default=COUNTS, metavar=("SMALL", "LARGE"))
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--keep", type=Path, help="keep the callgrind files and logs in this folder")
    args = parser.parse_args()
    small, large = sorted(args.counts)
    if small == large:
        parser.error("the two counts must differ")
    with ExitStack() as stack:
        folder = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        certs = Certs.create(folder)
        (low, low_requests), (high, high_requests) = (
            instructions(count, args.processes, certs, folder) for count in (small, large)
        )
        per_request = (high - low) / (high_requests - low_requests)
        print(
            f"HTTP/3 small, {args.processes} gtlsclient x {small}/{large} streams: "
            f"{per_request:,.0f} instructions/request (server, callgrind)",
            flush=True,
        )


if __name__ == "__main__":
    main()
