"""HTTP/3 bulk throughput: 1 MiB downloads, our server and our client against ngtcp2's.

Server: ``--clients`` ngtcp2 ``gtlsclient`` processes each download
``--downloads`` 1 MiB bodies (one connection each, the requests one after the
other) from ``trio-hface server --http3``. Client: trio_hface's
:class:`~trio_hface.client.Client` downloads ``--client-downloads`` 1 MiB
bodies, ten at a time on one connection, from ngtcp2's ``gtlsserver``. The
server side under test runs on CPU 0, the load on CPU 1 (``taskset``, where the
machine has two CPUs). Each figure is the median of ``--rounds`` runs, in MB/s
(10**6 bytes per second). Loopback only, bounded in count and time.

    .venv/bin/python bench/h3_throughput.py [--rounds 3] [--clients 10] [--downloads 10]

``--http3-impl NAME`` picks the HTTP/3 implementation registered under NAME
in the protocol registry, for both the server and the client.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import trio
import trustme

#: The body size of every download.
BODY_SIZE = 1024 * 1024
#: Seconds any one run may take before it is abandoned.
RUN_TIMEOUT = 120.0


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    """Answer every request with a body of the size its path names (``/1048576``)."""
    if scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    size = int(scope["path"].strip("/") or "0")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % size), (b"content-type", b"application/octet-stream")],
        }
    )
    await send({"type": "http.response.body", "body": b"x" * size})


def pinned(cpu: int, command: list[str]) -> list[str]:
    """Run *command* on *cpu* when the machine has more than one CPU."""
    if (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_udp(port: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until something has bound UDP *port* (the server is up)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def serve(args: argparse.Namespace) -> None:
    """The server under test (a child process): HTTP/3 only, until killed."""
    from trio_hface import ServerTLSConfig
    from trio_hface.server import ASGIServer, ServerProtocol

    settings: dict[str, Any] = {}
    if args.http3_impl:
        from trio_hface.protocols import protocol_registry

        settings["http3_factory"] = protocol_registry.http3_servers[args.http3_impl]
    tls = ServerTLSConfig(certfile=str(args.folder / "cert.pem"), keyfile=str(args.folder / "key.pem"))
    server = ASGIServer(app, tls_config=tls, protocol=ServerProtocol.HTTP3, **settings)
    trio.run(server.run, [f"https://127.0.0.1:{args.serve}"])


def server_round(args: argparse.Namespace) -> float:
    """Start our server, run the gtlsclient processes, return MB/s."""
    port = free_udp_port()
    command = [sys.executable, __file__, "--serve", str(port), "--folder", str(args.folder)]
    if args.http3_impl:
        command += ["--http3-impl", args.http3_impl]
    server = subprocess.Popen(pinned(0, command), stdin=subprocess.DEVNULL)
    try:
        wait_for_udp(port, server)
        url = f"https://localhost:{port}/{BODY_SIZE}"
        client = ["gtlsclient", "--exit-on-all-streams-close", "-q", "--max-data=16M"]
        client += ["--max-stream-data-bidi-local=4M", "127.0.0.1", str(port), *[url] * args.downloads]
        start = time.perf_counter()
        clients = [
            subprocess.Popen(pinned(1, client), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(args.clients)
        ]
        failures = []
        for process in clients:
            try:
                _, err = process.communicate(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                _, err = process.communicate()
            if process.returncode != 0:
                failures.append(err.decode(errors="replace")[-300:])
        elapsed = time.perf_counter() - start
        if failures:
            raise RuntimeError(f"{len(failures)} gtlsclient runs failed: {failures[0]}")
        return float(args.clients * args.downloads * BODY_SIZE / elapsed / 1e6)
    finally:
        server.terminate()
        server.wait(timeout=30)


async def download(args: argparse.Namespace, port: int) -> float:
    from trio_hface import ClientTLSConfig
    from trio_hface.client import Client, ClientProtocol, Request

    settings: dict[str, Any] = {}
    if args.http3_impl:
        from trio_hface.protocols import protocol_registry

        settings["http3_factory"] = protocol_registry.http3_clients[args.http3_impl]
    client = Client(
        tls_config=ClientTLSConfig(cafile=str(args.folder / "ca.pem")),
        protocol=ClientProtocol.HTTP3,
        **settings,
    )
    url = f"https://localhost:{port}/body"
    received = 0
    async with client.session() as session:
        await session.dispatch(Request("GET", url))  # the handshake, outside the timing

        async def fetch(count: int) -> None:
            nonlocal received
            for _ in range(count):
                async with session.stream(Request("GET", url)) as response:
                    async for chunk in response.aiter_bytes():
                        received += len(chunk)

        start = trio.current_time()
        with trio.fail_after(RUN_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for i in range(10):
                    nursery.start_soon(fetch, args.client_downloads // 10 + (i < args.client_downloads % 10))
        elapsed = trio.current_time() - start
    if received != args.client_downloads * BODY_SIZE:
        raise RuntimeError(f"received {received} bytes, not {args.client_downloads * BODY_SIZE}")
    return received / elapsed / 1e6


def client_round(args: argparse.Namespace) -> float:
    """Start gtlsserver, download with our client (in a child on CPU 0), return MB/s."""
    port = free_udp_port()
    htdocs = args.folder / "htdocs"
    htdocs.mkdir(exist_ok=True)
    (htdocs / "body").write_bytes(b"x" * BODY_SIZE)
    server = subprocess.Popen(
        pinned(
            1,
            [
                "gtlsserver",
                "-q",
                "-d",
                str(htdocs),
                "127.0.0.1",
                str(port),
                str(args.folder / "key.pem"),
                str(args.folder / "cert.pem"),
            ],
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_udp(port, server)
        command = [sys.executable, __file__, "--download", str(port), "--folder", str(args.folder)]
        command += ["--client-downloads", str(args.client_downloads)]
        if args.http3_impl:
            command += ["--http3-impl", args.http3_impl]
        out = subprocess.run(pinned(0, command), capture_output=True, text=True, timeout=RUN_TIMEOUT + 30)
        if out.returncode != 0:
            raise RuntimeError(f"the client failed: {out.stderr[-500:]}")
        return float(out.stdout.split()[-1])
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=10, help="gtlsclient processes")
    parser.add_argument("--downloads", type=int, default=10, help="1 MiB downloads per gtlsclient")
    parser.add_argument("--client-downloads", type=int, default=100, help="1 MiB downloads by our client")
    parser.add_argument("--only", choices=["server", "client"], help="measure one side only")
    parser.add_argument("--http3-impl", help="an HTTP/3 implementation of the protocol registry")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--download", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args)
        return
    if args.download is not None:
        print(f"{trio.run(download, args, args.download):.3f}")
        return
    args.folder = Path(tempfile.mkdtemp(prefix="h3bench-"))
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    (args.folder / "cert.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(args.folder / "key.pem")
    ca.cert_pem.write_to_path(args.folder / "ca.pem")
    sides = {"server": server_round, "client": client_round}
    for name, run in sides.items():
        if args.only not in (None, name):
            continue
        figures = [run(args) for _ in range(args.rounds)]
        rounds = " ".join(f"{figure:.1f}" for figure in figures)
        what = (
            f"{args.clients} gtlsclient x {args.downloads} x 1 MiB from trio-hface server"
            if name == "server"
            else f"trio_hface Client, {args.client_downloads} x 1 MiB (10 at a time) from gtlsserver"
        )
        print(f"HTTP/3 {name}: {statistics.median(figures):7.1f} MB/s (median; rounds {rounds})  {what}")


if __name__ == "__main__":
    main()
