"""Benchmark of the ASGI server and the client, side by side with hypercorn and httpx.

Server: h2load sends the same requests to trio_hface's ASGIServer and to
hypercorn's trio worker serving the same application (HTTP/1.1 and HTTP/2 over
TLS). Client: trio_hface's Client and httpx make the same sequential requests
to one server. Figures are requests per second; ratios compare trio_hface to
the other. Loopback only, bounded in count.

    .venv/bin/python bench/server_client.py [--requests 5000]
"""

from __future__ import annotations

import argparse
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx
import trio
import trustme

from trio_hface import ClientTLSConfig, ServerTLSConfig
from trio_hface.client import Client, ClientProtocol, Request
from trio_hface.server import ASGIServer

ROOT = Path(__file__).resolve().parent.parent
APP = "trio_hface.server.examples.hello:app"


def h2load(port: int, requests: int) -> float:
    """HTTP/2: h2load, 10 connections with 10 streams each."""
    out = subprocess.run(
        ["h2load", "-n", str(requests), "-c", "10", "-m", "10", "-T", "60", f"https://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    failed = re.search(r"(\d+) failed", out)
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    assert failed and rate and failed.group(1) == "0", out
    return float(rate.group(1))


def curl_h1(port: int, requests: int, folder: Path) -> float:
    """HTTP/1.1: curl --parallel over 10 keep-alive connections.

    (h2load --h1 rejects the status line of hypercorn, which has an empty reason phrase.)
    """
    config = folder / "curl.cfg"
    config.write_text(f'url = "https://127.0.0.1:{port}/"\noutput = "/dev/null"\n' * requests)
    command = ["curl", "-sS", "--http1.1", "--cacert", str(folder / "ca.pem"), "--parallel"]
    command += ["--parallel-max", "10", "-w", "%{http_code}\n", "-K", str(config)]
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout
    elapsed = time.perf_counter() - start
    assert out.split() == ["200"] * requests, out[-500:]
    return requests / elapsed


def load(port: int, requests: int, folder: Path) -> dict[str, float]:
    return {"h1": curl_h1(port, requests, folder), "h2": h2load(port, requests)}


async def ours(tls: ServerTLSConfig, folder: Path, requests: int) -> dict[str, float]:
    from trio_hface.server.examples.hello import app

    server = ASGIServer(app, tls_config=tls)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        result = await trio.to_thread.run_sync(load, endpoint.port, requests, folder)
        server.shutdown()
    return result


def hypercorn(folder: Path, requests: int) -> dict[str, float]:
    with socket.socket() as probe:  # a free port for hypercorn
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hypercorn",
            "--worker-class",
            "trio",
            "--certfile",
            str(folder / "cert.pem"),
            "--keyfile",
            str(folder / "key.pem"),
            "--error-logfile",
            "-",
            "--bind",
            f"127.0.0.1:{port}",
            APP,
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        while "Running on" not in (line := process.stderr.readline()):
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"hypercorn did not start (exit code {process.poll()}): {line}")
        return load(port, requests, folder)
    finally:
        process.terminate()
        process.wait()


async def clients(tls: ServerTLSConfig, cafile: Path, requests: int) -> dict[str, float]:
    from trio_hface.server.examples.hello import app

    server = ASGIServer(app, tls_config=tls)
    results: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        url = f"https://localhost:{endpoint.port}/"
        for name, protocol in (("h1", ClientProtocol.HTTP1), ("h2", ClientProtocol.HTTP2)):
            client = Client(tls_config=ClientTLSConfig(cafile=str(cafile)), protocol=protocol)
            async with client.session() as session:
                await session.dispatch(Request("GET", url))
                start = time.perf_counter()
                for _ in range(requests):
                    await session.dispatch(Request("GET", url))
                results[f"trio_hface {name}"] = requests / (time.perf_counter() - start)

            def use_httpx(http2: bool) -> float:
                context = ssl.create_default_context(cafile=str(cafile))
                with httpx.Client(http2=http2, http1=not http2, verify=context) as httpx_client:
                    httpx_client.get(url)
                    start = time.perf_counter()
                    for _ in range(requests):
                        httpx_client.get(url)
                    return requests / (time.perf_counter() - start)

            results[f"httpx {name}"] = await trio.to_thread.run_sync(partial(use_httpx, name == "h2"))
        server.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    (folder / "cert.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(folder / "key.pem")
    ca.cert_pem.write_to_path(folder / "ca.pem")
    tls = ServerTLSConfig(certfile=str(folder / "cert.pem"), keyfile=str(folder / "key.pem"))
    print(f"server: {args.requests} GETs over 10 TLS connections (h1: curl --parallel, h2: h2load -m 10)")
    mine = trio.run(ours, tls, folder, args.requests)
    theirs = hypercorn(folder, args.requests)
    for version in ("h1", "h2"):
        print(
            f"  {version}: trio_hface {mine[version]:8.0f} req/s   hypercorn-trio {theirs[version]:8.0f} req/s"
            f"   x{mine[version] / theirs[version]:.2f}"
        )
    count = max(args.requests // 5, 100)
    print(f"client: {count} sequential GETs on one connection, TLS")
    results = trio.run(clients, tls, folder / "ca.pem", count)
    for version in ("h1", "h2"):
        ours_rate, httpx_rate = results[f"trio_hface {version}"], results[f"httpx {version}"]
        print(
            f"  {version}: trio_hface {ours_rate:8.0f} req/s   httpx {httpx_rate:8.0f} req/s   x{ours_rate / httpx_rate:.2f}"
        )


if __name__ == "__main__":
    main()
