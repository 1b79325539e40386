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
in the protocol registry, for both the server and the client, and
``--max-datagram-size N`` the default factories' largest datagram. ``--qh3-raw``
(or ``--raw qh3``) measures, in the same setup, a bare HTTP/3 server on qh3
(``pip install qh3``), and ``--raw aioquic`` one on aioquic: the library's own
QUIC and HTTP/3 driven by Trio over the same batched UDP socket, with none of
trio_hface's connection layer (one task, connections told apart by the
client's address): the ceiling of that implementation, not a trio_hface
figure. (Importing trio_hface's UDP socket also installs its faster check of
aioquic's received field names and values.)
"""

from __future__ import annotations

import argparse
import importlib
import math
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
    if args.raw:
        trio.run(serve_qh3, args.serve, args.folder, args.raw)
        return
    from trio_hface import ServerTLSConfig
    from trio_hface.server import ASGIServer, ServerProtocol

    settings: dict[str, Any] = {}
    if args.http3_impl:
        from trio_hface.protocols import protocol_registry

        settings["http3_factory"] = protocol_registry.http3_servers[args.http3_impl]
    elif args.max_datagram_size:
        from trio_hface.protocols.http3 import HTTP3ServerFactory

        settings["http3_factory"] = HTTP3ServerFactory(max_datagram_size=args.max_datagram_size)
    tls = ServerTLSConfig(certfile=str(args.folder / "cert.pem"), keyfile=str(args.folder / "key.pem"))
    server = ASGIServer(app, tls_config=tls, protocol=ServerProtocol.HTTP3, **settings)
    trio.run(server.run, [f"https://127.0.0.1:{args.serve}"])


async def serve_qh3(port: int, folder: Path, library: str = "qh3") -> None:
    """A bare HTTP/3 server on qh3 (or aioquic, whose API qh3 keeps): every request gets
    the body its path asks for (``/1048576``), or a 14-byte hello for any other path."""
    # qh3 is no dependency: imported by name, so that type checks pass without it.
    h3_module = importlib.import_module(f"{library}.h3.connection")
    HeadersReceived = importlib.import_module(f"{library}.h3.events").HeadersReceived
    QuicConfiguration = importlib.import_module(f"{library}.quic.configuration").QuicConfiguration
    QuicConnection = importlib.import_module(f"{library}.quic.connection").QuicConnection
    H3Connection = h3_module.H3Connection

    from trio_hface._typing import AddressType
    from trio_hface.networking._udp import UDPSocket
    from trio_hface.protocols.http3 import parse_quic_header

    configuration = QuicConfiguration(is_client=False, alpn_protocols=h3_module.H3_ALPN)
    configuration.load_cert_chain(str(folder / "cert.pem"), str(folder / "key.pem"))
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", port))
    udp = UDPSocket(sock)
    connections: dict[AddressType, tuple[Any, Any]] = {}

    def serve_events(quic: Any, h3: Any) -> None:
        while (event := quic.next_event()) is not None:
            for h3_event in h3.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    path = dict(h3_event.headers)[b":path"].strip(b"/")
                    body = b"x" * int(path) if path.isdigit() else b"Hello, world!\n"
                    h3.send_headers(
                        h3_event.stream_id, [(b":status", b"200"), (b"content-length", b"%d" % len(body))]
                    )
                    h3.send_data(h3_event.stream_id, body, end_stream=True)

    while True:
        timers = [t for quic, _ in connections.values() if (t := quic.get_timer()) is not None]
        batch: list[tuple[bytes, AddressType]] = []
        with trio.move_on_at(min(timers, default=math.inf)):
            batch = await udp.receive_batch()
        now = trio.current_time()
        for data, address in batch:
            if address not in connections:
                header = parse_quic_header(data, configuration.connection_id_length)
                if header is None or not header.is_initial:
                    continue
                quic = QuicConnection(
                    configuration=configuration, original_destination_connection_id=header.destination_cid
                )
                connections[address] = (quic, H3Connection(quic))
            connections[address][0].receive_datagram(data, address, now=now)
        out: list[tuple[bytes, AddressType]] = []
        for address, (quic, h3) in list(connections.items()):
            timer = quic.get_timer()
            if timer is not None and timer <= now:
                quic.handle_timer(now=now)
            serve_events(quic, h3)
            out.extend(quic.datagrams_to_send(now=now))
            if quic.get_timer() is None:
                del connections[address]  # closed
        await udp.send_batch(out)


def server_round(args: argparse.Namespace) -> float:
    """Start our server, run the gtlsclient processes, return MB/s."""
    port = free_udp_port()
    command = [sys.executable, __file__, "--serve", str(port), "--folder", str(args.folder)]
    if args.http3_impl:
        command += ["--http3-impl", args.http3_impl]
    if args.max_datagram_size:
        command += ["--max-datagram-size", str(args.max_datagram_size)]
    if args.raw:
        command += ["--raw", args.raw]
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
    elif args.max_datagram_size:
        from trio_hface.protocols.http3 import HTTP3ClientFactory

        settings["http3_factory"] = HTTP3ClientFactory(max_datagram_size=args.max_datagram_size)
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
        if args.max_datagram_size:
            command += ["--max-datagram-size", str(args.max_datagram_size)]
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
    parser.add_argument(
        "--max-datagram-size",
        type=int,
        help="the HTTP/3 factories' max_datagram_size (default: theirs, 1200)",
    )
    parser.add_argument("--qh3-raw", action="store_true", help="serve with a bare qh3 server (see above)")
    parser.add_argument(
        "--raw", choices=["qh3", "aioquic"], help="serve with a bare server on this library (see above)"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--download", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.qh3_raw:
        args.raw = "qh3"
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
        if args.only not in (None, name) or (args.raw and name == "client"):
            continue
        figures = [run(args) for _ in range(args.rounds)]
        rounds = " ".join(f"{figure:.1f}" for figure in figures)
        what = (
            f"{args.clients} gtlsclient x {args.downloads} x 1 MiB from "
            + (f"a bare {args.raw} server" if args.raw else "trio-hface server")
            if name == "server"
            else f"trio_hface Client, {args.client_downloads} x 1 MiB (10 at a time) from gtlsserver"
        )
        print(f"HTTP/3 {name}: {statistics.median(figures):7.1f} MB/s (median; rounds {rounds})  {what}")


if __name__ == "__main__":
    main()
