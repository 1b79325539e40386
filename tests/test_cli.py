"""The command line end to end: the server with its development certificate, and error exits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HELLO = "trio_hface.server.examples.hello:app"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_hface", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def test_server_with_development_certificate() -> None:
    """`trio-hface server` without --cert makes a CA, prints its path; curl trusts it; SIGINT stops it cleanly."""
    curl = require_tool("curl")
    process = subprocess.Popen(
        [sys.executable, "-m", "trio_hface", "server", HELLO, "https://127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "trust its CA:" in first, first
        cafile = first.rsplit(": ", 1)[1].strip()
        serving = process.stdout.readline()
        assert serving.startswith("serving on https://127.0.0.1:"), serving
        port = serving.strip().rsplit(":", 1)[1]
        for version, expected in (("--http1.1", "HTTP/1.1"), ("--http2", "HTTP/2")):
            result = subprocess.run(
                [
                    curl,
                    "-sS",
                    version,
                    "--cacert",
                    cafile,
                    "--resolve",
                    f"localhost:{port}:127.0.0.1",
                    f"https://localhost:{port}/",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert result.stdout == f"Hello, World! ({expected})\n", result.stderr
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["server", "no_such_module:app", "http://127.0.0.1:0"], 2, "cannot import 'no_such_module'"),
        (["server", "trio_hface:nothing", "http://127.0.0.1:0"], 2, "has no attribute 'nothing'"),
        (["server", HELLO, "ftp://127.0.0.1:1"], 2, "an endpoint is http://host:port"),
        (
            [
                "server",
                HELLO,
                "https://127.0.0.1:0",
                "--cert",
                "/nonexistent.pem",
                "--key",
                "/nonexistent.pem",
            ],
            2,
            "cannot read /nonexistent.pem",
        ),
        (["server", HELLO, "http://127.0.0.1:0", "--http3"], 2, "HTTP/3 needs TLS"),
    ],
)
def test_error_exits(args: list[str], status: int, message: str) -> None:
    """Bad input gives one clear line on stderr and a non-zero exit."""
    result = cli(*args)
    assert result.returncode == status
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_port_in_use() -> None:
    """A port that is taken is a one-line error with exit status 1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = cli("server", HELLO, f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert "in use" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_help_explains_commands() -> None:
    """--help lists the commands; server --help explains the development certificate."""
    assert "server" in cli("--help").stdout
    assert "development CA" in cli("server", "--help").stdout
