"""`trio-hface server|proxy|ca` at startup, through the real entry point in a temporary directory:
certificate checks, bind failures, the development CA kept across runs, and the startup lines."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.helpers import require_tool
from tests.peers import run_peer, running_peer, taken_port
from tests.tls_files import BAD_PAIRS, write_tls_files

TRIO_HFACE = str(Path(sys.executable).parent / "trio-hface")
HELLO = "trio_hface.server.examples.hello:app"

#: An application that leaves a file behind once its lifespan starts: the proof that the server started.
MARKING_APP = """
import pathlib

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                pathlib.Path("started").write_text("yes")
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
"""


def environment(data_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["XDG_DATA_HOME"] = str(data_home)
    return env


def run(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRIO_HFACE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=environment(cwd / "data"),
    )


def serving_pattern(scheme: str = "https") -> str:
    """The startup line of an endpoint (the first one's port as the group ``port``)."""
    port = r"(?P<port>\d+)" if scheme == "https" else r"\d+"
    return rf"serving on {scheme}://127\.0\.0\.1:{port} \([^)]*\)\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_tls_files(tmp_path)
    (tmp_path / "marking_app.py").write_text(MARKING_APP)
    return tmp_path


#: Each bad pair with the default versions; a few with HTTP/3 only and with workers too (the
#: library's tests check every pair on the TCP and QUIC sides).
CASES = [pytest.param([], *pair, id=f"{pair[0]}-{pair[1]}") for pair in BAD_PAIRS] + [
    pytest.param(
        flags, *BAD_PAIRS[index], id=f"{' '.join(flags)}-{BAD_PAIRS[index][0]}-{BAD_PAIRS[index][1]}"
    )
    for flags in (["--http3"], ["--http3", "--workers", "2"], ["--workers", "2"])
    for index in (0, 2, 3, 5)
]


@pytest.mark.parametrize(("flags", "cert", "key", "words", "named"), CASES)
def test_bad_certificate_is_one_line_before_anything_starts(
    folder: Path, flags: list[str], cert: str, key: str, words: str, named: str
) -> None:
    """A bad --cert/--key pair: one line naming the file, status 2, no lifespan startup, nothing listens (TCP and QUIC)."""
    result = run(
        folder, "server", "marking_app:app", "https://127.0.0.1:0", "--cert", cert, "--key", key, *flags
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and named in lines[0], result.stderr
    assert "serving on" not in result.stdout and not (folder / "started").exists()


@pytest.mark.parametrize(
    "flags", [["--cert", "cert.pem"], ["--key", "key.pem"]], ids=["cert-only", "key-only"]
)
@pytest.mark.parametrize("endpoint", ["https://127.0.0.1:0", "http://127.0.0.1:0"])
def test_cert_without_key_is_a_usage_error(folder: Path, flags: list[str], endpoint: str) -> None:
    """--cert without --key (or the reverse) exits 2 with one line, for https and http endpoints alike."""
    result = run(folder, "server", HELLO, endpoint, *flags)
    assert result.returncode == 2
    assert result.stderr.strip() == "trio-hface: give both --cert and --key, or neither"


@pytest.mark.parametrize(
    ("command", "kind", "workers"),
    [
        ("server", socket.SOCK_STREAM, "1"),
        ("server", socket.SOCK_DGRAM, "1"),
        ("server", socket.SOCK_STREAM, "2"),
        ("server", socket.SOCK_DGRAM, "2"),
        ("proxy", socket.SOCK_STREAM, "1"),
        ("proxy", socket.SOCK_DGRAM, "2"),
    ],
    ids=[
        "server-tcp",
        "server-udp",
        "server-tcp-workers",
        "server-udp-workers",
        "proxy-tcp",
        "proxy-udp-workers",
    ],
)
def test_bind_failure_names_the_address_and_creates_nothing(
    folder: Path, kind: int, workers: str, command: str
) -> None:
    """A taken TCP or UDP port: `cannot listen on https://127.0.0.1:PORT: address already in use`, and no CA made."""
    with taken_port(kind) as port:
        app = [HELLO] if command == "server" else []
        result = run(folder, command, *app, f"https://127.0.0.1:{port}", "--workers", workers)
    udp = " (UDP)" if kind == socket.SOCK_DGRAM else ""
    assert result.returncode == 1
    assert (
        result.stderr
        == f"trio-hface {command}: cannot listen on https://127.0.0.1:{port}{udp}: address already in use\n"
    )
    assert result.stdout == "" and not (folder / "data").exists()


async def test_development_ca_is_kept_across_restarts(folder: Path) -> None:
    """The CA lives in $XDG_DATA_HOME/trio-hface/dev-ca, private; a restarted server is trusted by the saved path."""
    curl = require_tool("curl")
    command = [TRIO_HFACE, "server", HELLO, "https://127.0.0.1:0"]
    ready = r"trust its CA: (?P<ca>\S+)\n" + serving_pattern()
    saved: list[bytes] = []
    for _ in range(2):
        async with running_peer(command, ready=ready, cwd=folder, env=environment(folder / "data")) as server:
            cafile = Path(server.group("ca"))
            assert cafile == folder / "data" / "trio-hface" / "dev-ca" / "ca.pem"
            saved.append(await trio.Path(cafile).read_bytes())
            resolve = f"localhost:{server.port}:127.0.0.1"
            result = await run_peer(
                [
                    curl,
                    "-sS",
                    "--cacert",
                    str(cafile),
                    "--resolve",
                    resolve,
                    f"https://localhost:{server.port}/",
                ]
            )
            assert result.stdout == b"Hello, World! (HTTP/2)\n", result.stderr
            assert await server.stop(signal.SIGINT) == 0
    assert saved[0] == saved[1]
    assert stat.S_IMODE(cafile.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((cafile.parent / "ca-key.pem").stat().st_mode) == 0o600


def test_ca_command_prints_and_writes_the_ca(folder: Path) -> None:
    """`trio-hface ca` prints the CA's path (making it once), --write FILE copies it, --dev-ca-dir chooses the place."""
    first = run(folder, "ca")
    assert first.returncode == 0 and first.stderr == ""
    cafile = Path(first.stdout.strip())
    assert cafile == folder / "data" / "trio-hface" / "dev-ca" / "ca.pem"
    assert run(folder, "ca").stdout == first.stdout  # reused, not made again
    written = run(folder, "ca", "--write", "copy.pem")
    assert written.returncode == 0 and (folder / "copy.pem").read_bytes() == cafile.read_bytes()
    assert run(folder, "ca", "--write", "-").stdout == cafile.read_text()
    chosen = run(folder, "ca", "--dev-ca-dir", "mine")
    assert Path(chosen.stdout.strip()) == Path("mine") / "ca.pem" or chosen.stdout.strip() == "mine/ca.pem"
    assert (folder / "mine" / "ca.pem").read_bytes() != cafile.read_bytes()


def test_corrupt_ca_is_replaced_and_said(folder: Path) -> None:
    """A corrupt ca-key.pem: a new CA, and one line on stderr that says what was wrong."""
    cafile = Path(run(folder, "ca").stdout.strip())
    old = cafile.read_bytes()
    (cafile.parent / "ca-key.pem").write_text("garbage\n")
    result = run(folder, "ca")
    assert result.returncode == 0 and Path(result.stdout.strip()) == cafile
    assert re.fullmatch(
        r"trio-hface: \S+ca-key\.pem is not a PEM file .*: made a new development CA\n", result.stderr
    )
    assert cafile.read_bytes() != old


async def test_server_saves_the_ca_only_once_it_listens(folder: Path) -> None:
    """--dev-ca-dir: the server's CA goes there once it serves; `trio-hface ca --dev-ca-dir` names the same file."""
    command = [TRIO_HFACE, "server", HELLO, "https://127.0.0.1:0", "--dev-ca-dir", "ca-here"]
    ready = r"trust its CA: (?P<ca>\S+)\n" + serving_pattern()
    async with running_peer(command, ready=ready, cwd=folder, env=environment(folder / "data")) as server:
        assert (
            Path(server.group("ca")) == folder / "ca-here" / "ca.pem"
            or server.group("ca") == "ca-here/ca.pem"
        )
        assert await server.stop(signal.SIGINT) == 0
    assert run(folder, "ca", "--dev-ca-dir", "ca-here").stdout.strip() == server.group("ca")
    assert not (folder / "data").exists()


@pytest.mark.parametrize(
    ("command", "flags", "versions"),
    [
        ("server", [], "HTTP/1.1, HTTP/2 over TCP; HTTP/3 over UDP"),
        ("server", ["--tcp"], "HTTP/1.1, HTTP/2 over TCP"),
        ("server", ["--http3"], "HTTP/3 over UDP"),
        ("proxy", [], "HTTP/1.1, HTTP/2 over TCP; HTTP/3 over UDP"),
        ("proxy", ["--http2"], "HTTP/2 over TCP"),
    ],
)
async def test_startup_line_says_what_listens_where(
    folder: Path, command: str, flags: list[str], versions: str
) -> None:
    """`serving on https://127.0.0.1:PORT (versions)` per endpoint with the real port, and the http endpoint's own."""
    app = [HELLO] if command == "server" else []
    args = [TRIO_HFACE, command, *app, "https://127.0.0.1:0", "http://127.0.0.1:0", *flags]
    if "--http3" in flags:
        args.remove("http://127.0.0.1:0")  # HTTP/3 needs TLS
    ready = serving_pattern() + ("" if "--http3" in flags else serving_pattern("http"))
    async with running_peer(args, ready=ready, cwd=folder, env=environment(folder / "data")) as server:
        lines = [line for line in server.text().splitlines() if line.startswith("serving on")]
        assert lines[0] == f"serving on https://127.0.0.1:{server.port} ({versions})"
        if "--http3" not in flags:
            http_versions = "HTTP/2 over TCP" if "--http2" in flags else "HTTP/1.1 over TCP"
            assert re.fullmatch(rf"serving on http://127\.0\.0\.1:\d+ \({http_versions}\)", lines[1]), lines
        our = [TRIO_HFACE, "client", "--cacert", str(folder / "data" / "trio-hface" / "dev-ca" / "ca.pem")]
        if command == "server":
            flag = "--http3" if "HTTP/3" in versions else "--http2"
            result = await run_peer(
                [*our, flag, f"https://localhost:{server.port}/"], env=environment(folder / "data")
            )
            assert result.returncode == 0 and result.stdout.startswith(b"Hello, World!"), result.stderr
        assert await server.stop(signal.SIGINT) == 0


def test_unusable_ca_directory_is_one_line(folder: Path) -> None:
    """A --dev-ca-dir that cannot be made (under a regular file) is one line with status 2, for ca and server."""
    for args in (["ca"], ["server", HELLO, "https://127.0.0.1:0"]):
        result = run(folder, *args, "--dev-ca-dir", "cert.pem/ca")
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("trio-hface") and "cert.pem/ca" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
