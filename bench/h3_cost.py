"""What one HTTP/3 request costs our server: instructions (callgrind) per small request.

    .venv/bin/python bench/h3_cost.py [--counts 20 100] [--processes 10] [--keep DIR] [--sans-io]

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

How the requests batch into datagrams follows the timing of the run, so the figure moves by
a few percent from run to run (compare two trees side by side). ``--sans-io`` counts
instead, with the same differencing, our HTTP/3 client and server *protocols* alone in one
process, joined in memory on a manual clock (batches of 50 GETs, each answered with a
14-byte body): no sockets, tasks or ASGI, the same count on every run, client and server
together.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from functools import partial
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
        swarm_of = partial(
            quic_swarm, ports.tls, size=0, folder=folder, cap=SWARM_CAP, idle_timeout=SWARM_IDLE_TIMEOUT
        )
        for clients in (1, processes):
            swarm_of(processes=clients, streams=WARM_UP_STREAMS)
        swarm = swarm_of(processes=processes, streams=streams)
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


#: Batches of SANS_IO_BATCH requests in the two ``--sans-io`` runs.
SANS_IO_COUNTS = (4, 24)
SANS_IO_BATCH = 50
SANS_IO_TIMEOUT = 600.0


def sans_io_worker(batches: int, folder: Path) -> None:
    """Serve *batches* x SANS_IO_BATCH GETs between an in-memory client and server protocol."""
    from trio_hface import ClientTLSConfig, ServerTLSConfig
    from trio_hface.events import Event, HeadersReceived
    from trio_hface.protocols.http3 import HTTP3ClientFactory, HTTP3ProtocolImpl, HTTP3ServerFactory

    certs = Certs.create(folder)
    server = HTTP3ServerFactory()(
        tls_config=ServerTLSConfig(certfile=str(certs.cert), keyfile=str(certs.key))
    )
    client = HTTP3ClientFactory()(
        remote_address=("127.0.0.1", 4433),
        server_name="localhost",
        tls_config=ClientTLSConfig(cafile=str(certs.ca)),
    )
    assert isinstance(server, HTTP3ProtocolImpl) and isinstance(client, HTTP3ProtocolImpl)
    addresses = {id(client): ("127.0.0.1", 50000), id(server): ("127.0.0.1", 4433)}
    now = 0.0

    def tick() -> None:
        nonlocal now
        now += 0.001
        client.clock(now)
        server.clock(now)

    def move(sender: HTTP3ProtocolImpl, receiver: HTTP3ProtocolImpl) -> int:
        datagrams = sender.datagrams_to_send()
        for data, _ in datagrams:
            receiver.datagram_received((data, addresses[id(sender)]))
        return len(datagrams)

    def pump() -> None:
        for _ in range(10_000):
            if not (move(client, server) + move(server, client)):
                timer = min(
                    (t for t in (client.get_timer(), server.get_timer()) if t is not None), default=None
                )
                if timer is None or timer > now + 0.2:
                    return
            tick()
        raise AssertionError("the link is still busy")

    def events(protocol: HTTP3ProtocolImpl) -> list[Event]:
        found = []
        while (event := protocol.next_event()) is not None:
            found.append(event)
        return found

    tick()
    pump()
    get = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", b"/")]
    ok = [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", b"14")]
    served = 0
    for _ in range(batches):
        for _ in range(SANS_IO_BATCH):
            client.submit_headers(client.get_available_stream_id(), get, end_stream=True)
        move(client, server)
        tick()
        for event in events(server):
            if isinstance(event, HeadersReceived):
                server.submit_headers(event.stream_id, ok)
                server.submit_data(event.stream_id, b"Hello, World!\n", end_stream=True)
                served += 1
        pump()
        events(client)
    if served != batches * SANS_IO_BATCH:
        raise BenchError(f"served {served} of {batches * SANS_IO_BATCH} requests")


def sans_io_instructions(folder: Path) -> float:
    """Instructions per request of the sans-IO link: the slope between two callgrind runs."""
    counts = []
    for batches in SANS_IO_COUNTS:
        argv = [
            shutil.which("valgrind") or "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={folder / f'callgrind.sans-io.{batches}'}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--sans-io-worker",
            str(batches),
            str(folder),
        ]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=SANS_IO_TIMEOUT, check=False, env=dict(os.environ)
        )
        match = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or match is None:
            raise BenchError(f"the sans-IO worker failed: {done.stderr.strip()[-2000:]}")
        counts.append(int(match.group(1)))
    small, large = SANS_IO_COUNTS
    return (counts[1] - counts[0]) / ((large - small) * SANS_IO_BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", type=int, nargs=2, default=COUNTS, metavar=("SMALL", "LARGE"))
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--keep", type=Path, help="keep the callgrind files and logs in this folder")
    parser.add_argument("--sans-io", action="store_true", help="count the protocols alone, in memory")
    parser.add_argument("--sans-io-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sans_io_worker:
        sans_io_worker(int(args.sans_io_worker[0]), Path(args.sans_io_worker[1]))
        return
    small, large = sorted(args.counts)
    if small == large:
        parser.error("the two counts must differ")
    with ExitStack() as stack:
        folder = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        if args.sans_io:
            per_request = sans_io_instructions(folder)
            print(
                f"HTTP/3 sans-IO, client and server protocols, batches of {SANS_IO_BATCH}: "
                f"{per_request:,.0f} instructions/request (callgrind)",
                flush=True,
            )
            return
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
