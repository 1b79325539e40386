"""Where ``trio-hface server`` spends its time under the benchmark's loads, sampled with py-spy.

    .venv/bin/pip install -q -e '.[bench]'
    .venv/bin/python bench/profile.py [SCENARIO ...] [--seconds 15] [--top 15] [--keep DIR]

Scenarios: ``h1-small`` (h2load --h1 -c 10, hello app, cleartext), ``h1-small-tls`` (the same over
TLS), ``h1-small-httptools`` (cleartext, ``--http1-impl httptools``: the speedups extra), ``h1-large`` (the same with
1 MiB responses), ``h1-large-tls`` (the same over TLS), ``h2-large`` (h2load -c 10 -m 10 over
TLS, 1 MiB responses), ``h2-100x100`` (h2load -c 100 -m 100 over TLS, hello app), ``h3-large`` (ten
gtlsclient processes x 10 streams of 1 MiB), ``h3-small`` (ten x 200 streams, hello app), and
``h3-large-qh3`` and ``h3-small-qh3``, the same with ``--http3-impl qh3`` (the qh3 extra). For each, the server runs on core 0 and the load on
core 1 while py-spy samples the server (``--nonblocking``, idle samples left out, so the
percentages are of the time the server was busy); then the functions are listed by their own
time (the innermost frame of a sample) and by the time spent in them and below.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import (
    HELLO_APP,
    LOAD_CORE,
    PAYLOAD_APP,
    Certs,
    LoadResult,
    Ports,
    free_port,
    h2load,
    ours_argv,
    pinned,
    quic_swarm,
    server,
    tool,
)

MIB = 1024 * 1024
Load = Callable[[Ports, Path, float], str]


def described(result: LoadResult) -> str:
    if not result.complete:
        return "h2load timeout/incomplete"
    return f"{result.rate:,.0f} req/s, {result.mbps:,.1f} MB/s, {result.failed} failed"


def h1_load(path: str, *, tls: bool = False) -> Load:
    def load(ports: Ports, folder: Path, seconds: float) -> str:
        url = f"https://127.0.0.1:{ports.tls}{path}" if tls else f"http://127.0.0.1:{ports.clear}{path}"
        return described(h2load(url, clients=10, h1=True, duration=seconds, warm_up=0.5, cap=seconds + 30))

    return load


def h2_load(ports: Ports, folder: Path, seconds: float) -> str:
    url = f"https://127.0.0.1:{ports.tls}/"
    return described(h2load(url, clients=100, streams=100, duration=seconds, warm_up=1, cap=seconds + 30))


def h2_large_load(ports: Ports, folder: Path, seconds: float) -> str:
    url = f"https://127.0.0.1:{ports.tls}/{MIB}"
    return described(h2load(url, clients=10, streams=10, duration=seconds, warm_up=1, cap=seconds + 30))


def h3_load(ports: Ports, folder: Path, seconds: float) -> str:
    swarm = quic_swarm(ports.tls, size=MIB, processes=10, streams=10, folder=folder, cap=seconds + 30)
    return f"{swarm.mbps:,.1f} MB/s, {swarm.delivered} of {swarm.expected} delivered in {swarm.seconds:.1f} s"


def h3_small_load(ports: Ports, folder: Path, seconds: float) -> str:
    swarm = quic_swarm(ports.tls, size=0, processes=10, streams=200, folder=folder, cap=seconds + 30)
    return (
        f"{swarm.rate:,.0f} req/s, {swarm.delivered} of {swarm.expected} delivered in {swarm.seconds:.1f} s"
    )


#: The HTTP/3 implementation on qh3 (the qh3 extra), for the scenarios that name it.
QH3 = ("--http3-impl", "qh3")

#: HTTP/1.1 on httptools (the speedups extra), for the scenarios that name it.
HTTPTOOLS = ("--http1-impl", "httptools")

#: name: (application, load, options of ours)
SCENARIOS: dict[str, tuple[str, Load, tuple[str, ...]]] = {
    "h1-small": (HELLO_APP, h1_load("/"), ()),
    "h1-small-tls": (HELLO_APP, h1_load("/", tls=True), ()),
    "h1-small-httptools": (HELLO_APP, h1_load("/"), HTTPTOOLS),
    "h1-large": (PAYLOAD_APP, h1_load(f"/{MIB}"), ()),
    "h1-large-tls": (PAYLOAD_APP, h1_load(f"/{MIB}", tls=True), ()),
    "h2-large": (PAYLOAD_APP, h2_large_load, ()),
    "h2-100x100": (HELLO_APP, h2_load, ()),
    "h3-large": (PAYLOAD_APP, h3_load, ()),
    "h3-large-qh3": (PAYLOAD_APP, h3_load, QH3),
    "h3-small": (HELLO_APP, h3_small_load, ()),
    "h3-small-qh3": (HELLO_APP, h3_small_load, QH3),
}


def spy_path() -> str:
    """py-spy: beside this interpreter (the bench extra installs it there), or on the PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else tool("py-spy")


def top(raw: Path, count: int) -> str:
    """The *count* functions with most own time and most total time in a py-spy raw file."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = [frame for frame in stack.split(";") if not frame.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += int(number)
        own[frames[-1]] += int(number)
        for frame in set(frames):
            total[frame] += int(number)
    if not samples:
        return "  no samples (was the server busy?)"
    lines = [f"  {samples} busy samples; own time:"]
    lines += [f"  {n / samples:6.1%}  {frame}" for frame, n in own.most_common(count)]
    lines.append("  in the function and below (trio's run loop and the task bodies left out):")
    skip = ("trio/_core/_run.py", "<module>", "<frozen runpy>", "(trio_hface/cli/")
    inclusive = [(frame, n) for frame, n in total.most_common() if not any(s in frame for s in skip)]
    lines += [f"  {n / samples:6.1%}  {frame}" for frame, n in inclusive[:count]]
    return "\n".join(lines)


def profile(name: str, seconds: float, count: int, folder: Path) -> str:
    """Run scenario *name* against a fresh server sampled by py-spy; return the summary."""
    app, load, options = SCENARIOS[name]
    certs = Certs.create(folder)
    ports = Ports(free_port(), free_port())
    raw = folder / f"{name}.txt"
    with server(
        ours_argv(app, certs, ports, options=options),
        folder / f"{name}.log",
        tcp_ports=[ports.tls, ports.clear],
        udp_port=ports.tls,
    ) as process:
        record = [spy_path(), "record", "--pid", str(process.pid), "--format", "raw", "--nolineno"]
        record += ["--nonblocking", "--rate", "200", "--duration", str(round(seconds)), "--output", str(raw)]
        spy = subprocess.Popen(
            record,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        result: list[str] = []
        loader = threading.Thread(target=lambda: result.append(load(ports, folder, seconds)))
        loader.start()
        loader.join(seconds + 60)
        spy.wait(seconds + 30)
    summary = f"{name}: {result[0] if result else 'load did not finish'}"
    return f"{summary}\n{top(raw, count) if raw.exists() else '  py-spy wrote nothing'}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"of {list(SCENARIOS)} (default all)"
    )
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--keep", type=Path, help="keep the raw py-spy files in this folder")
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {list(SCENARIOS)}")
    if pinned():
        os.sched_setaffinity(0, {LOAD_CORE})
    with tempfile.TemporaryDirectory(prefix="trio-hface-profile-") as name:
        folder = args.keep or Path(name)
        folder.mkdir(parents=True, exist_ok=True)
        for scenario in args.scenarios or list(SCENARIOS):
            print(profile(scenario, args.seconds, args.top, folder), "\n", flush=True)


if __name__ == "__main__":
    main()
