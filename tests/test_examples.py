"""Every example under examples/ that the docs show runs as-is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

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
def test_custom_server_and_client(
    server_args: list[str], client_args: list[str], expected: str, cert_dir: Path
) -> None:
    """The custom server and client examples talk to each other in every documented variant."""
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "custom_server.py"), "--port", "0", *server_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cert_dir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("listening on"), server.stderr.read() if server.stderr else line
        port = line.split()[2].rsplit(":", 1)[1]
        result = run_example("custom_client.py", "--port", port, *client_args, cwd=cert_dir)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected
    finally:
        server.terminate()
        server.wait(timeout=10)
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()


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


class Background:
    """An example that prints its bound endpoint on its first line, running until stopped."""

    def __init__(self, name: str, *args: str, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / name), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert " on https://" in line, self.process.stderr.read() if self.process.stderr else line
        self.port = line.split()[2].rsplit(":", 1)[1]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=30) == 0, "a graceful shutdown exits 0"
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def test_server_client_and_proxy_examples(cert_dir: Path) -> None:
    """examples/server.py, client.py (Alt-Svc to HTTP/3), proxy_server.py and proxy_client.py run as-is."""
    server = Background("server.py", "--port", "0", cwd=cert_dir)
    proxy = Background("proxy_server.py", "--port", "0", cwd=cert_dir)
    try:
        result = run_example("client.py", f"https://localhost:{server.port}/", cwd=cert_dir)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "HTTP/2 200: Hello from HTTP/2!\nHTTP/3 200: Hello from HTTP/3!\n"
        for extra in ([], ["--http3"]):
            result = run_example(
                "proxy_client.py",
                "--proxy",
                f"https://localhost:{proxy.port}",
                "--port",
                server.port,
                *extra,
                cwd=cert_dir,
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout == "HTTP/1.1 200 OK\n"
    finally:
        server.stop()
        proxy.stop()
