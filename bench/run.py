"""trio_hface's benchmark: every figure of issue 10 side by side with its reference, in one run.

    .venv/bin/python bench/run.py [--quick] [--json FILE] [--only SECTION ...]

Sections (each a table of test, reference, trio_hface, ratio; ratio > 1 favours trio_hface):

``server``
    ``trio-hface server`` against hypercorn's trio worker, the same ASGI apps (hello world and
    1 MiB): h2load ``-c 10`` over HTTP/1.1 (``--h1``) and ``-c 10 -m 10`` over HTTP/2, each
    cleartext and TLS, timed (``-D``); HTTP/3 with a swarm of ngtcp2 ``gtlsclient`` processes,
    counting the responses delivered.
``grid``
    HTTP/2 cost growth: h2load ``-c 1,10,100 x -m 1,10,100``, each cell timed and capped in wall
    clock (a collapsing cell says ``timeout/incomplete``).
``client``
    ``trio_hface.client.Client`` against httpx on trio: sequential GETs, batches of 100
    concurrent GETs, one large download, for each HTTP version (peers: nginx for HTTP/1.1, or
    ``trio-hface server`` when nginx is absent; nginx for HTTP/2 too, or nghttpd; gtlsserver for HTTP/3;
    httpx has no HTTP/3).
``streams``
    Bulk transfer through each connection type against a raw Trio stream moving the same bytes.

Servers run on core 0 (``taskset -c 0``); load generators and this process, with the in-process
clients, on core 1. Everything is on loopback with trustme certificates, bounded in count and
time. Each server and client figure is the median of three rounds, ours and the reference's
taken in turn (the lowest and highest in brackets): a single run on a shared machine moves by
tens of percent (the 1 MiB HTTP/3 swarm runs once). ``--quick`` is a smoke of every part (seconds) that exits non-zero if a part fails; slow
figures never fail it. The full run takes about ten minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import clients, streams
from bench.peers import (
    HELLO_APP,
    LOAD_CORE,
    PAYLOAD_APP,
    Certs,
    LoadResult,
    Ports,
    SwarmResult,
    epitaph,
    free_port,
    h2load,
    hypercorn_argv,
    ours_argv,
    pinned,
    quic_swarm,
    settle,
    start,
    stop,
    wait_ready,
)
from bench.report import Figure, Section, median, save_json

MIB = 1024 * 1024
HYPERCORN = "hypercorn (trio)"
SERVERS = ("reference", "ours")
#: How much longer than its warm-up and duration an h2load run may take before it is killed
#: (connecting 100 clients; a collapsing server never lets it finish).
CAP_SLACK = 20.0


@dataclass(frozen=True)
class Plan:
    """How much of everything: the full run, or the smoke of ``--quick``."""

    duration: float  # seconds of each h2load run in the server section
    grid_duration: float
    grid: tuple[tuple[int, int], ...]  # (clients, streams) cells
    swarm_small: tuple[int, int]  # gtlsclient processes, streams each
    swarm_large: tuple[int, int]
    swarm_cap: float  # seconds a swarm may take before its processes are killed
    client: clients.Plan
    stream_mib: int

    warm_up: float  # seconds of each h2load run before it counts (connections made, TLS handshakes)
    rounds: int  # runs of each server and client figure, ours and the reference's in turn (median)

    def cap(self, duration: float) -> float:
        """The wall-clock cap of an h2load run of *duration* seconds."""
        return self.warm_up + duration + CAP_SLACK


FULL = Plan(
    duration=4,
    grid_duration=5,
    grid=tuple((c, m) for c in (1, 10, 100) for m in (1, 10, 100)),
    swarm_small=(10, 200),
    swarm_large=(10, 10),
    swarm_cap=60,
    client=clients.Plan(sequential=2000, concurrent=2000, download_mib=100, rounds=3),
    stream_mib=256,
    warm_up=1,
    rounds=3,
)
QUICK = Plan(
    duration=0.5,
    grid_duration=0.5,
    grid=((1, 1), (10, 10)),
    swarm_small=(2, 10),
    swarm_large=(2, 2),
    swarm_cap=20,
    client=clients.Plan(sequential=20, concurrent=100, download_mib=1, rounds=1),
    stream_mib=4,
    warm_up=0.5,
    rounds=1,
)


@dataclass(frozen=True)
class Served:
    """A server under test: the port to load, and its process."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def crashed(self) -> str:
        """Why the server is gone, or ``""`` while it runs."""
        if self.process.poll() is None:
            return ""
        return f"server exited with {self.process.returncode}: {epitaph(self.log)}"


@contextmanager
def servers(
    app: str,
    certs: Certs,
    folder: Path,
    *,
    clear: bool = False,
    h2c: bool = False,
    options: Sequence[str] = (),
) -> Iterator[dict[str, Served]]:
    """Fresh hypercorn and ``trio-hface server`` processes serving *app*, by ``SERVERS`` key.

    The port to load is the TLS one (also QUIC's), or with *clear* the cleartext one; *h2c*
    makes ours a server speaking HTTP/2 with prior knowledge there (hypercorn does both). Fresh per test: a server that crashes (hypercorn's
    trio worker can) takes only one figure with it, and none inherits another test's leftovers.
    *options* go to ``trio-hface server`` only.
    """
    stem = app.rsplit(":", 1)[0].rsplit(".", 1)[-1]
    reference, ours = Ports(free_port(), free_port()), Ports(free_port(), free_port())
    suffix = ("-h2c" if h2c else "") + ("-" + "-".join(o.lstrip("-") for o in options) if options else "")
    logs = {kind: folder / f"{kind}-{stem}{suffix}.log" for kind in SERVERS}
    argvs = {
        "reference": hypercorn_argv(app, certs, reference),
        "ours": ours_argv(app, certs, ours, http2_only=h2c, options=options),
    }
    started: dict[str, Served] = {}
    try:
        for kind, ports in (("reference", reference), ("ours", ours)):
            started[kind] = Served(ports.tls, start(argvs[kind], logs[kind]), logs[kind])
        for kind, ports in (("reference", reference), ("ours", ours)):
            served = started[kind]
            if h2c:
                wait_ready(served.process, served.log, tcp_ports=[ports.clear])
            else:
                wait_ready(served.process, served.log, tcp_ports=[ports.tls, ports.clear], udp_port=ports.tls)
        yield {
            kind: Served(ports.clear if clear else ports.tls, started[kind].process, logs[kind])
            for kind, ports in (("reference", reference), ("ours", ours))
        }
    finally:
        for served in started.values():
            stop(served.process)


def load_figure(result: LoadResult, large: bool) -> Figure:
    """An h2load result as a figure: MB/s for large bodies, req/s otherwise."""
    if not result.complete:
        return Figure(None, "timeout/incomplete")
    value = result.mbps if large else result.rate
    return Figure(value, f"{result.failed} failed" if result.failed else "")


def swarm_figure(result: SwarmResult, large: bool) -> Figure:
    """A gtlsclient swarm as a figure, with the responses lost if any."""
    note = f"lost {result.lost} of {result.expected}" if result.lost else ""
    return Figure(result.mbps if large else result.rate, note)


def check_ours(section: Section, test: str, figure: Figure) -> None:
    """Our server must answer everything (a slow figure is no failure; a lost response is)."""
    if figure.value is None or figure.note:
        section.fail(f"{test}: trio_hface {figure.note or 'gave no figure'}")


#: The h2load tests of the server section: name, HTTP/1.1 (or HTTP/2), TLS, options of ours.
TCP_TESTS: list[tuple[str, bool, bool, tuple[str, ...]]] = [
    ("HTTP/1.1 cleartext", True, False, ()),
    ("HTTP/1.1 TLS", True, True, ()),
    ("HTTP/2 cleartext (10 conns x 10 streams)", False, False, ()),
    ("HTTP/2 TLS (10 conns x 10 streams)", False, True, ()),
]
if importlib.util.find_spec("httptools") is not None:  # the speedups extra: HTTP/1.1 on httptools too
    HTTPTOOLS = ("--http1-impl", "httptools")
    TCP_TESTS[2:2] = [
        ("HTTP/1.1 cleartext, ours on httptools", True, False, HTTPTOOLS),
        ("HTTP/1.1 TLS, ours on httptools", True, True, HTTPTOOLS),
    ]


#: The gtlsclient tests of the server section: a name suffix, options of ours.
QUIC_TESTS: list[tuple[str, tuple[str, ...]]] = [("", ())]
if importlib.util.find_spec("qh3") is not None:  # the qh3 extra: HTTP/3 over qh3's QUIC too
    QUIC_TESTS.append((", ours on qh3", ("--http3-impl", "qh3")))


def loaded(served: Served, measure: Callable[[int], Figure]) -> Figure:
    """Measure against *served*; a server that died meanwhile gives no figure but its epitaph."""
    figure = measure(served.port)
    if crashed := served.crashed():
        return Figure(None, crashed)
    settle([served.process])
    return figure


def in_turn(found: dict[str, Served], measure: Callable[[int], Figure], rounds: int) -> list[Figure]:
    """*rounds* runs against each server of *found*, in turn; the median figure of each, by ``SERVERS``."""
    runs: dict[str, list[Figure]] = {kind: [] for kind in SERVERS}
    for _ in range(rounds):
        for kind in SERVERS:
            runs[kind].append(loaded(found[kind], measure))
    return [median(runs[kind]) for kind in SERVERS]


def server_app(section: Section, plan: Plan, certs: Certs, folder: Path, large: bool) -> None:
    """Both servers serving the hello app (or the 1 MiB one), under every load of the section."""
    unit = "MB/s" if large else "req/s"
    size, path = ("1 MiB", f"/{MIB}") if large else ("small", "/")
    app = PAYLOAD_APP if large else HELLO_APP
    for name, h1, tls, options in TCP_TESTS:
        scheme = "https" if tls else "http"

        def run_h2load(port: int, h1: bool = h1, scheme: str = scheme) -> Figure:
            result = h2load(
                f"{scheme}://127.0.0.1:{port}{path}",
                clients=10,
                streams=1 if h1 else 10,
                h1=h1,
                duration=plan.duration,
                warm_up=plan.warm_up,
                cap=plan.cap(plan.duration),
            )
            return load_figure(result, large)

        with servers(app, certs, folder, clear=not tls, h2c=not (tls or h1), options=options) as found:
            figures = in_turn(found, run_h2load, plan.rounds)
        section.add(f"{name}, {size}", unit, *figures)
        check_ours(section, f"{name}, {size}", figures[1])
    processes, count = plan.swarm_large if large else plan.swarm_small

    def run_swarm(port: int) -> Figure:
        swarm = quic_swarm(
            port,
            size=MIB if large else 0,
            processes=processes,
            streams=count,
            folder=folder,
            cap=plan.swarm_cap,
        )
        return swarm_figure(swarm, large)

    for suffix, options in QUIC_TESTS:
        with servers(app, certs, folder, options=options) as found:
            # The 1 MiB swarm runs once: hypercorn's loses responses, and each loss waits out
            # gtlsclient's idle timeout, so that its rounds would take minutes.
            figures = in_turn(found, run_swarm, 1 if large else plan.rounds)
        test = f"HTTP/3 ({processes} gtlsclient x {count} streams){suffix}, {size}"
        section.add(test, unit, *figures)
        check_ours(section, test, figures[1])


def server_section(plan: Plan, certs: Certs, folder: Path) -> Section:
    """``trio-hface server`` against hypercorn's trio worker, same apps, same load."""
    section = Section("Server: trio-hface server vs hypercorn --worker-class trio", HYPERCORN)
    section.header()
    for large in (False, True):
        section.part(
            f"server, {'1 MiB' if large else 'small'}",
            partial(server_app, section, plan, certs, folder, large),
        )
    return section


def grid_section(plan: Plan, certs: Certs, folder: Path) -> Section:
    """HTTP/2 cost growth with connections and streams: h2load, TLS, the hello app."""
    section = Section(
        f"HTTP/2 cost growth: h2load -c x -m, {plan.grid_duration:g} s each, TLS, hello app", HYPERCORN
    )
    section.header()
    figures: dict[tuple[int, int], Figure] = {}

    def cell(port: int, clients_: int, streams_: int) -> Figure:
        result = h2load(
            f"https://127.0.0.1:{port}/",
            clients=clients_,
            streams=streams_,
            duration=plan.grid_duration,
            warm_up=plan.warm_up,
            cap=plan.cap(plan.grid_duration),
        )
        return load_figure(result, large=False)

    def measure() -> None:
        for clients_, streams_ in plan.grid:
            with servers(HELLO_APP, certs, folder) as found:
                row = [
                    loaded(found[kind], partial(cell, clients_=clients_, streams_=streams_))
                    for kind in SERVERS
                ]
            figures[clients_, streams_] = row[1]
            section.add(f"HTTP/2 -c {clients_} -m {streams_}", "req/s", *row)

    section.part("grid", measure)
    small, large = figures.get((10, 10)), figures.get((100, 100))
    if small and large and small.value and large.value is not None:
        print(f"\ntrio_hface -c 100 -m 100 is {large.value / small.value:.2f} of -c 10 -m 10 (target >= 0.5)")
    return section


def client_section(plan: Plan, certs: Certs, folder: Path) -> Section:
    """Our client against httpx on trio, same peers."""
    section = Section(
        "Client: trio_hface.client.Client vs httpx.AsyncClient on trio (this process, core 1)", "httpx"
    )
    section.header()
    clients.run(section, plan.client, certs, folder)
    return section


def downloads_section(plan: Plan, certs: Certs, folder: Path) -> Section:
    """Our client's downloads against a raw Trio TLS stream reading the same bytes."""
    section = Section(
        f"Client downloads vs a raw Trio TLS stream: {plan.client.download_mib} MiB, best of "
        f"{clients.DOWNLOAD_RUNS}, in this process (core 1)",
        "raw trio TLS stream",
    )
    section.header()
    clients.run_downloads(section, plan.client, certs, folder)
    for row in section.rows:
        ratio = row.ratio
        if ratio is not None:
            print(f"{row.test.split(',')[0]}: {ratio:.2f} of a raw TLS stream (target >= 0.70)")
    return section


def streams_section(plan: Plan, certs: Certs, folder: Path) -> Section:
    """Each connection type against a raw Trio stream moving the same bytes."""
    section = Section(
        f"Connections vs raw Trio streams: one {plan.stream_mib} MiB upload, in this process (core 1)",
        "raw trio stream",
    )
    section.header()
    section.part("streams", lambda: streams.run(section, plan.stream_mib))
    return section


SECTIONS: dict[str, Callable[[Plan, Certs, Path], Section]] = {
    "server": server_section,
    "grid": grid_section,
    "client": client_section,
    "downloads": downloads_section,
    "streams": streams_section,
}


def describe(quick: bool) -> dict[str, object]:
    """What the run ran on, for the head of the output and the JSON file."""
    versions = {}
    for name in ("h2load", "gtlsclient", "nghttpd", "nginx"):
        try:
            path = shutil.which(name) or shutil.which(name, path="/usr/sbin") or name
            flag = "-v" if name == "nginx" else "--version"
            out = subprocess.run([path, flag], capture_output=True, text=True, timeout=10)
            versions[name] = (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            versions[name] = "not found"
    return {
        "quick": quick,
        "pinning": "server on core 0 (taskset -c 0), load and this process on core 1 (taskset -c 1)"
        if pinned()
        else "not pinned (fewer than 2 cores or no taskset)",
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "tools": versions,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke of every part, in seconds")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the figures to FILE")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run these sections only")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    meta = describe(args.quick)
    if pinned():
        os.sched_setaffinity(0, {LOAD_CORE})
    print(f"# trio_hface benchmark{' (--quick smoke)' if args.quick else ''}")
    print(f"{meta['pinning']}; {meta['cores']} cores, load average {meta['load_average']}")
    start = time.perf_counter()
    sections = []
    with tempfile.TemporaryDirectory(prefix="trio-hface-bench-") as name:
        folder = Path(name)
        certs = Certs.create(folder)
        for key in args.only or list(SECTIONS):
            sections.append(SECTIONS[key](plan, certs, folder))
    failures = [failure for section in sections for failure in section.failures]
    meta["seconds"] = round(time.perf_counter() - start, 1)
    if args.json:
        save_json(args.json, meta, sections)
    print(f"\n{len(failures)} part(s) failed" if failures else "\nevery part ran", f"in {meta['seconds']} s")
    for failure in failures:
        print(f"  {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
