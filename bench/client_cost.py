"""What one client request costs: instructions (callgrind) or CPU microseconds, ours beside httpx.

    .venv/bin/python bench/client_cost.py [--callgrind | --py-spy] [--only ours|httpx]
                                          [--version 1.1|2] [--mode sequential|concurrent]

Starts the same peers as the ``client`` section of ``bench/run.py`` (``trio-hface server`` for
HTTP/1.1 over TLS, nghttpd for HTTP/2), then runs each client in a process of its own: a
warm-up, then GETs of a 14-byte body, one after the other or in batches of 100 at once.

Without ``--callgrind`` it prints CPU time (``time.process_time``) per request: quick, but
the machine's load and caches move it. With ``--callgrind`` each client process runs under
``valgrind --tool=callgrind`` twice, with a small and a larger number of requests, and the
difference of the instruction counts divided by the difference of the numbers is the cost of
one request, start-up and warm-up cancelled out: the same on a loaded machine as on an idle
one (up to how the reads happen to batch). The peers run outside valgrind. With ``--py-spy``
each client process runs under ``py-spy record`` instead, and where its time went is listed
as ``bench/profile.py`` lists a server's. Everything is on
loopback, bounded in count and time.
"""

from __future__ import annotations

import argparse
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from bench.peers import PAYLOAD_APP, Certs, Ports, free_port, nghttpd_argv, ours_argv, server

SMALL = b"Hello, World!\n"
BATCH = 100
WARM_UP = 100
#: Requests in the two callgrind runs of each case (multiples of BATCH).
CALLGRIND_COUNTS = (200, 400)
#: Requests in a CPU-time run.
TIMED_COUNT = 1000
#: How long one worker process may take (callgrind slows Python down about 50 times).
WORKER_TIMEOUT = 600.0


async def _loop(get: Callable[[], Awaitable[int]], count: int, mode: str) -> float:
    """Warm up, then make *count* requests; return the CPU seconds they took."""
    for _ in range(WARM_UP):
        if await get() != len(SMALL):
            raise AssertionError("wrong body length")
    start = time.process_time()
    if mode == "sequential":
        for _ in range(count):
            await get()
    else:
        for _ in range(count // BATCH):
            async with trio.open_nursery() as nursery:
                for _ in range(BATCH):
                    nursery.start_soon(get)
    return time.process_time() - start


async def _ours(url: str, version: str, ca: str, count: int, mode: str) -> float:
    from trio_hface import ClientTLSConfig
    from trio_hface.client import Client, ClientProtocol, Request

    protocol = ClientProtocol.HTTP1 if version == "1.1" else ClientProtocol.HTTP2
    client = Client(tls_config=ClientTLSConfig(cafile=ca), protocol=protocol)
    async with client.session() as session:

        async def get() -> int:
            return len((await session.dispatch(Request("GET", url))).content)

        return await _loop(get, count, mode)


async def _httpx(url: str, version: str, ca: str, count: int, mode: str) -> float:
    import httpx

    context = ssl.create_default_context(cafile=ca)
    http2 = version == "2"
    limits = httpx.Limits(max_connections=10)
    async with httpx.AsyncClient(http1=not http2, http2=http2, verify=context, limits=limits) as client:

        async def get() -> int:
            return len((await client.get(url)).content)

        return await _loop(get, count, mode)


def worker(client: str, url: str, version: str, ca: str, count: int, mode: str) -> None:
    """One measurement in this process: print the CPU seconds per request."""
    run = _ours if client == "ours" else _httpx
    seconds = trio.run(run, url, version, ca, count, mode)
    print(f"cpu-per-request {seconds / count:.9f}")


def _worker_argv(client: str, url: str, version: str, ca: Path, count: int, mode: str) -> list[str]:
    script = str(Path(__file__).resolve())
    return [sys.executable, script, "--worker", client, url, version, str(ca), str(count), mode]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=WORKER_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()[-2000:]}")
    return done


def cpu_cost(client: str, url: str, version: str, ca: Path, mode: str) -> float:
    """Microseconds of CPU per request."""
    done = _run(_worker_argv(client, url, version, ca, TIMED_COUNT, mode))
    match = re.search(r"cpu-per-request ([0-9.]+)", done.stdout)
    assert match is not None, done.stdout
    return float(match.group(1)) * 1e6


def instructions(client: str, url: str, version: str, ca: Path, mode: str, folder: Path) -> float:
    """Instructions per request: the slope between two callgrind runs."""
    counts: list[int] = []
    for count in CALLGRIND_COUNTS:
        out = folder / f"callgrind.{client}.{version}.{mode}.{count}"
        argv = [
            shutil.which("valgrind") or "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            *_worker_argv(client, url, version, ca, count, mode),
        ]
        done = _run(argv)
        match = re.search(r"Collected : (\d+)", done.stderr)
        assert match is not None, done.stderr[-2000:]
        counts.append(int(match.group(1)))
    small, large = CALLGRIND_COUNTS
    return (counts[1] - counts[0]) / (large - small)


def sampled(client: str, url: str, version: str, ca: Path, mode: str, folder: Path) -> str:
    """Where one client process's time goes (py-spy), with its CPU time per request."""
    from bench.profile import spy_path, top

    raw = folder / f"py-spy.{client}.{version}.{mode}.txt"
    argv = [spy_path(), "record", "--format", "raw", "--nolineno", "--rate", "500", "--output", str(raw)]
    done = _run([*argv, "--", *_worker_argv(client, url, version, ca, TIMED_COUNT * 3, mode)])
    match = re.search(r"cpu-per-request ([0-9.]+)", done.stdout)
    assert match is not None, done.stdout
    return (
        f"{client}, HTTP/{version} {mode}: {float(match.group(1)) * 1e6:,.0f} CPU us/request\n{top(raw, 30)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callgrind", action="store_true", help="count instructions (slow)")
    parser.add_argument("--py-spy", action="store_true", help="sample each client with py-spy")
    parser.add_argument("--only", choices=("ours", "httpx"), action="append")
    parser.add_argument("--version", choices=("1.1", "2"), action="append")
    parser.add_argument("--mode", choices=("sequential", "concurrent"), action="append")
    parser.add_argument("--keep", type=Path, help="keep the callgrind files in this folder")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        client, url, version, ca, count, mode = args.worker
        worker(client, url, version, ca, int(count), mode)
        return
    clients = args.only or ["ours", "httpx"]
    versions = args.version or ["1.1", "2"]
    modes = args.mode or ["sequential", "concurrent"]
    with ExitStack() as stack:
        folder = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        certs = Certs.create(folder)
        docs = folder / "htdocs"
        docs.mkdir(exist_ok=True)
        (docs / "small").write_bytes(SMALL)
        h1, h2 = Ports(free_port(), free_port()), free_port()
        urls = {"1.1": f"https://127.0.0.1:{h1.tls}/{len(SMALL)}", "2": f"https://127.0.0.1:{h2}/small"}
        if "1.1" in versions:
            argv = ours_argv(PAYLOAD_APP, certs, h1)
            stack.enter_context(server(argv, folder / "h1.log", tcp_ports=[h1.tls]))
        if "2" in versions:
            nghttpd = nghttpd_argv(docs, h2, certs)
            stack.enter_context(server(nghttpd, folder / "h2.log", tcp_ports=[h2]))
        if args.py_spy:
            for version in versions:
                for mode in modes:
                    for client in clients:
                        print(sampled(client, urls[version], version, certs.ca, mode, folder), flush=True)
            return
        unit = "instructions/request" if args.callgrind else "CPU us/request"
        print(f"{'case':<28} {'ours':>14} {'httpx':>14} {'httpx/ours':>10}   ({unit})")
        for version in versions:
            for mode in modes:
                measure = partial(instructions, folder=folder) if args.callgrind else cpu_cost
                cost = {c: measure(c, urls[version], version, certs.ca, mode) for c in clients}
                ours, theirs = cost.get("ours"), cost.get("httpx")
                ratio = f"{theirs / ours:10.2f}" if ours and theirs else f"{'-':>10}"
                print(
                    f"{'HTTP/' + version + ' ' + mode:<28} {ours or 0:>14,.0f} {theirs or 0:>14,.0f} {ratio}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
