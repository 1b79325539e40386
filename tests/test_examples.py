"""Every example under examples/ that the docs show runs as-is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers import OUR_ENV, run_peer, running_peer

ROOT = Path(__file__).resolve().parent.parent


def test_protocol_example_runs() -> None:
    """examples/protocol.py builds a request and parses a response."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "protocol.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert "request sent and response parsed" in result.stdout


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("examples")
    result = run_example("make_certs.py", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (folder / "certs").iterdir()} == {"cacert.pem", "cert.pem", "key.pem"}
    return folder


@pytest.mark.parametrize(
    ("server_args", "client_args", "expected"),
    [
        ([], [], "HTTP/1: It works!\n"),
        (["--http2"], ["--http2"], "HTTP/2: It works!\n"),
        (["--http3"], ["--http3"], "HTTP/3: It works!\n"),
        (["--all"], ["--alpn"], "HTTP/2: It works!\n"),
        (["--all"], ["--http1"], "HTTP/1: It works!\n"),
        (["--all"], ["--http3"], "HTTP/3: It works!\n"),
    ],
    ids=["http1", "http2", "http3", "all-alpn", "all-http1", "all-http3"],
)
async def test_custom_server_and_client(
    server_args: list[str], client_args: list[str], expected: str, cert_dir: Path
) -> None:
    """The custom server and client examples talk to each other in every documented variant."""
    command = [sys.executable, str(ROOT / "examples" / "custom_server.py"), "--port", "0", *server_args]
    ready = r"(?:^|\n)listening on \S+:(?P<port>\d+)[ \n]"
    async with running_peer(command, ready=ready, cwd=cert_dir, env=OUR_ENV) as server:
        client = [sys.executable, str(ROOT / "examples" / "custom_client.py"), "--port", str(server.port)]
        result = await run_peer([*client, *client_args], cwd=cert_dir, env=OUR_ENV)
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode() == expected


def test_command_line_version() -> None:
    """`python -m trio_hface --version` prints the version."""
    import trio_hface

    result = subprocess.run(
        [sys.executable, "-m", "trio_hface", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"trio-hface {trio_hface.__version__}"


#: What examples/server.py and proxy_server.py print once they serve.
SERVING = r"(?:^|\n)\S+ on https://\S+:(?P<port>\d+)[ \n]"


async def test_server_client_and_proxy_examples(cert_dir: Path) -> None:
    """examples/server.py, client.py (Alt-Svc to HTTP/3), proxy_server.py and proxy_client.py run as-is."""
    examples = ROOT / "examples"
    async with (
        running_peer(
            [sys.executable, str(examples / "server.py"), "--port", "0"],
            ready=SERVING,
            cwd=cert_dir,
            env=OUR_ENV,
        ) as server,
        running_peer(
            [sys.executable, str(examples / "proxy_server.py"), "--port", "0"],
            ready=SERVING,
            cwd=cert_dir,
            env=OUR_ENV,
        ) as proxy,
    ):
        client = [sys.executable, str(examples / "client.py"), f"https://localhost:{server.port}/"]
        result = await run_peer(client, cwd=cert_dir, env=OUR_ENV)
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"HTTP/2 200: Hello from HTTP/2!\nHTTP/3 200: Hello from HTTP/3!\n"
        for extra in ([], ["--http3"]):
            proxy_client = [
                sys.executable,
                str(examples / "proxy_client.py"),
                "--proxy",
                f"https://localhost:{proxy.port}",
            ]
            result = await run_peer(
                [*proxy_client, "--port", str(server.port), *extra], cwd=cert_dir, env=OUR_ENV
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout == b"HTTP/1.1 200 OK\n"
        for peer in (server, proxy):
            assert await peer.stop(signal.SIGINT) == 0, "a graceful shutdown exits 0"


def test_websocket_example_runs(tmp_path: Path) -> None:
    """examples/websocket.py echoes over a WebSocket on each HTTP version."""
    result = run_example("websocket.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "HTTP/1.1: echo\nHTTP/2: echo\nHTTP/3: echo\n"


def test_client_api_example_runs(tmp_path: Path) -> None:
    """examples/client_api.py: get with params, post json through a 308, raise_for_status, on each version."""
    result = run_example("client_api.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = ""
    for version in ("1.1", "2", "3"):
        expected += (
            "  > GET /api/search?q=trio+hface&page=2\n"
            f"HTTP/{version} {{'method': 'GET', 'path': '/api/search', 'query': 'q=trio+hface&page=2', 'body': ''}}\n"
            "  > POST /api/old\n  > POST /api/new\n"
            '200 application/json {"name":"trio"}\n'
            "  > GET /api/missing\nerror: 404 Not Found\n"
        )
    assert result.stdout == expected
