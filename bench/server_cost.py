"""What one small request costs the server: instructions (callgrind), ours beside hypercorn.

    .venv/bin/python bench/server_cost.py [--tls | --http2] [--impl h11|httptools]
                                          [--only ours|hypercorn] [--counts SMALL LARGE] [--keep FOLDER]

Serves the hello-world app of the ``server`` section of ``bench/run.py`` with
``trio-hface server`` and with hypercorn's trio worker, each server process under
``valgrind --tool=callgrind``, and loads it from outside valgrind with
``h2load --h1 -c 10 -n COUNT`` (cleartext, or TLS with ``--tls``). Each server runs twice,
for a small and a larger number of requests; the difference of the two instruction totals
divided by the difference of the numbers is the cost of one request, start-up, connection
set-up (ten connections each time, TLS handshakes included) and shut-down cancelled out: the
same on a loaded machine as on an idle one, up to how reads happen to batch. ``--impl``
picks our HTTP/1.1 implementation (hypercorn always uses h11). Everything is on loopback,
bounded in count and time. With ``--http2`` the load is HTTP/2 over TLS (ALPN), ten
streams at once on each connection (``h2load -c 10 -m 10``), as in the benchmark's HTTP/2 test.
"""

from __future__ import annotations

import argparse
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the checkout
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import (
    HELLO_APP,
    BenchError,
    Certs,
    Ports,
    free_port,
    hypercorn_argv,
    ours_argv,
    stop,
    tail,
    tool,
)

#: Requests in the two runs of each server (h2load spreads them over ten connections).
COUNTS = (500, 2000)
CLIENTS = 10
#: Streams at once on each connection with --http2.
STREAMS = 10
#: How long a server under valgrind may take to start (Python runs about 50 times slower).
STARTUP_TIMEOUT = 600.0
#: How long one h2load run may take, and a stopped server to write its callgrind totals.
LOAD_TIMEOUT = 600.0
EXIT_TIMEOUT = 120.0
TOTALS = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def _wait_serving(process: subprocess.Popen[bytes], url: str, ca: Path, log: Path) -> None:
    """Return once *url* answers a GET (a listening socket alone may not serve yet)."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise BenchError(f"server exited with {process.returncode}: {tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=30, context=context) as response:
                response.read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"server did not answer {url}: {tail(log)}") from None
            time.sleep(0.5)


def _load(url: str, count: int, http2: bool) -> None:
    mode = ["-m", str(STREAMS)] if http2 else ["--h1"]
    argv = [tool("h2load"), *mode, "-c", str(CLIENTS), "-n", str(count), url]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=LOAD_TIMEOUT, stdin=subprocess.DEVNULL
    )
    match = re.search(
        r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", done.stdout
    )
    if done.returncode != 0 or match is None:
        raise BenchError(f"h2load failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-300:]}")
    if int(match.group(1)) != count:
        raise BenchError(f"h2load: {match.group(1)} of {count} succeeded ({match.group(2)} failed)")


def instructions(
    argv: list[str], url: str, ca: Path, count: int, out: Path, log: Path, http2: bool = False
) -> int:
    """The instruction total of one server process that served *count* requests, start to exit."""
    valgrind = [shutil.which("valgrind") or "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*valgrind, *argv], stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        _wait_serving(process, url, ca, log)
        _load(url, count, http2)
        process.terminate()  # both servers exit cleanly on SIGTERM; callgrind then writes its file
        process.wait(EXIT_TIMEOUT)
    finally:
        stop(process)
    match = TOTALS.search(out.read_text(errors="replace")) if out.exists() else None
    if match is None:
        raise BenchError(f"no callgrind totals in {out}: {tail(log)}")
    return int(match.group(1))


def per_request(kind: str, args: argparse.Namespace, certs: Certs, folder: Path) -> float:
    """Instructions per request of server *kind*: the slope between the two runs."""
    totals: list[int] = []
    for count in args.counts:
        ports = Ports(free_port(), free_port())
        port = ports.tls if args.tls else ports.clear
        if kind == "ours":
            options = ["--http1-impl", args.impl] if args.impl != "h11" else []
            argv = ours_argv(HELLO_APP, certs, ports, options=options)
        else:
            argv = hypercorn_argv(HELLO_APP, certs, ports)
        url = f"{'https' if args.tls else 'http'}://127.0.0.1:{port}/"
        impl = "h2" if args.http2 else args.impl if kind == "ours" else "h11"
        stem = f"{kind}-{'tls' if args.tls else 'clear'}-{impl}-{count}"
        out, log = folder / f"callgrind.{stem}", folder / f"{stem}.log"
        totals.append(instructions(argv, url, certs.ca, count, out, log, args.http2))
    small, large = args.counts
    slope: float = (totals[1] - totals[0]) / (large - small)
    return slope


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tls", action="store_true", help="load over TLS (default: cleartext)")
    parser.add_argument("--http2", action="store_true", help="load with HTTP/2 over TLS, 10 streams at once")
    parser.add_argument(
        "--impl", choices=("h11", "httptools"), default="h11", help="our HTTP/1.1 implementation"
    )
    parser.add_argument("--only", choices=("ours", "hypercorn"), action="append")
    parser.add_argument("--counts", type=int, nargs=2, default=COUNTS, metavar=("SMALL", "LARGE"))
    parser.add_argument("--keep", type=Path, help="keep the callgrind files and logs in this folder")
    args = parser.parse_args()
    small, large = args.counts
    if not 0 < small < large or large > 100_000:
        parser.error("--counts needs 0 < SMALL < LARGE <= 100000")
    if args.http2:
        args.tls = True  # HTTP/2 is chosen by ALPN
    kinds = args.only or ["ours", "hypercorn"]
    with ExitStack() as stack:
        folder = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        certs = Certs.create(folder)
        cost = {kind: per_request(kind, args, certs, folder) for kind in kinds}
    ours, theirs = cost.get("ours"), cost.get("hypercorn")
    ratio = f"{theirs / ours:10.2f}" if ours and theirs else f"{'-':>10}"
    if args.http2:
        case = "HTTP/2 TLS, 10 streams per connection"
    else:
        case = f"HTTP/1.1 {'TLS' if args.tls else 'cleartext'}, ours on {args.impl}"
    print(f"{'case':<36} {'ours':>12} {'hypercorn':>12} {'hc/ours':>10}   (instructions/request)")
    print(f"{case:<36} {ours or 0:>12,.0f} {theirs or 0:>12,.0f} {ratio}", flush=True)


if __name__ == "__main__":
    main()
