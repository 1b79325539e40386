"""The speed-up of worker processes: ``trio-hface server --workers 2`` against one process.

    .venv/bin/python bench/workers.py [--quick] [--workers N]

For HTTP/1.1 (h2load ``--h1 -c 64``), HTTP/2 (h2load ``-c 64 -m 20``), both over TLS, and
HTTP/3 (a swarm of ngtcp2 ``gtlsclient`` processes), the hello-world app is served by one
process (``--workers 1``: the plain server, no supervisor) and by N worker processes, one
after the other in the same run, and the table gives requests per second and the ratio.

The load generator runs on the same machine, pinned to the last core (``taskset``) when there
are two or more; the servers are not pinned, so with two workers on a two-core machine one
worker shares its core with the load generator. The ratio is therefore bounded by what the
load generator leaves: if it needs a third of a core, two workers have about 1.67 cores, not
2. The CPU the load generator used is printed next to each figure so that the ratio can be
read against it. Every run is bounded in time and count; loopback only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import (
    HELLO_APP,
    STARTUP_TIMEOUT,
    BenchError,
    Certs,
    cpu_seconds,
    free_port,
    h2load,
    quic_swarm,
    settle,
    stop,
    tail,
)


@contextmanager
def serving(workers: int, certs: Certs, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``trio-hface server --workers N`` on ``https://127.0.0.1:PORT`` until the block ends."""
    argv = [sys.executable, "-m", "trio_hface", "server", "--cert", str(certs.cert), "--key", str(certs.key)]
    argv += ["--workers", str(workers), HELLO_APP, f"https://127.0.0.1:{port}"]
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while b"serving on" not in log.read_bytes():  # printed once every worker serves
            if process.poll() is not None:
                raise BenchError(f"server exited with {process.returncode}: {tail(log)}")
            if time.monotonic() > deadline:
                raise BenchError(f"server did not start: {tail(log)}")
            time.sleep(0.05)
        yield process
    finally:
        stop(process)


def server_cpu(pid: int) -> float:
    """CPU seconds used so far by the server process *pid* and its children (the workers), from /proc."""
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                total += cpu_seconds(int(entry.name))
    return total


def measure(
    protocol: str, port: int, pid: int, *, duration: float, folder: Path
) -> tuple[float, float, float]:
    """Requests per second of one measurement, and the CPU cores that the load generator and the server used."""
    started = os.times()
    server_started = server_cpu(pid)
    if protocol == "h3":
        swarm = quic_swarm(
            port, size=0, processes=16, streams=max(int(duration * 200), 100), folder=folder, cap=60
        )
        rate = swarm.rate
        seconds = swarm.seconds
    else:
        result = h2load(
            f"https://127.0.0.1:{port}/",
            clients=64,
            streams=1 if protocol == "h1" else 20,
            h1=protocol == "h1",
            duration=duration,
            warm_up=min(1.0, duration / 2),
            cap=duration + 30,
        )
        if not result.complete:
            raise BenchError(f"h2load did not finish: {result.output[-300:]}")
        rate = result.rate
        seconds = duration + min(1.0, duration / 2)
    ended = os.times()
    load_cpu = (ended.children_user - started.children_user) + (
        ended.children_system - started.children_system
    )
    return rate, load_cpu / seconds, (server_cpu(pid) - server_started) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke of a second per figure")
    parser.add_argument("--workers", type=int, default=2, help="the worker count compared with 1 (default 2)")
    args = parser.parse_args()
    duration = 1.0 if args.quick else 5.0
    print(f"cores: {os.cpu_count()}; load generator on the same machine; one run, figures side by side")
    print(
        f"{'test':<6} {'1 process':>12} {f'{args.workers} workers':>12} {'ratio':>7}"
        "  server CPU (cores)  load CPU (cores)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        certs = Certs.create(folder)
        for protocol in ("h1", "h2", "h3"):
            rates, loads, servers = [], [], []
            for workers in (1, args.workers):
                port = free_port()
                with serving(workers, certs, port, folder / f"server-{workers}.log") as process:
                    rate, load, used = measure(protocol, port, process.pid, duration=duration, folder=folder)
                    settle([process])
                rates.append(rate)
                loads.append(load)
                servers.append(used)
            ratio = rates[1] / rates[0] if rates[0] else 0.0
            print(
                f"{protocol:<6} {rates[0]:>10.0f}/s {rates[1]:>10.0f}/s {ratio:>6.2f}x"
                f"  {servers[0]:>8.2f} / {servers[1]:.2f}  {loads[0]:>8.2f} / {loads[1]:.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
