"""`trio-hface client` as handy as curl, through its real entry point in a temporary directory."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import Certs
from tests.helpers import require_tool
from tests.peers import NGHTTPD_LISTENING, SERVING, refusing_port, run_peer, running_peer
from trio_hface import __version__
from trio_hface.server import ASGIServer

#: The installed console script, not ``python -m``.
TRIO_HFACE = str(Path(sys.executable).parent / "trio-hface")
#: Our programs see the checkout that the tests test, whatever the directory they run in.
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


BIG = 50 * 1024 * 1024
CHUNK = 256 * 1024


class App:
    """The test server's application: its paths say what it answers."""

    def __init__(self) -> None:
        #: Set by a test once the client printed the first part of /drip.
        self.go_on = trio.Event()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        headers = dict(scope["headers"])
        status, body, more = 200, b"", False
        if path == "/big":
            length = [(b"content-length", b"%d" % BIG)]
            await send({"type": "http.response.start", "status": 200, "headers": length})
            piece = b"0123456789abcdef" * (CHUNK // 16)
            for _ in range(BIG // CHUNK):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/drip":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first part\n", "more_body": True})
            with trio.move_on_after(60):
                await self.go_on.wait()
            await send({"type": "http.response.body", "body": b"the rest\n"})
            return
        if path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            target = f"/hop/{left - 1}".encode() if left > 1 else b"/agent"
            fields = [(b"location", target), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 302, "headers": fields})
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/missing":
            status, body = 404, b"no such thing\n"
        elif path == "/agent":
            body = headers.get(b"user-agent", b"(none)") + b"\n"
        elif path == "/silent":
            await trio.sleep_forever()
        else:
            body = f"hello {scope['http_version']}\n".encode()
        fields = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": fields})
        await send({"type": "http.response.body", "body": body, "more_body": more})


@asynccontextmanager
async def serving(certs: Certs, app: App | None = None) -> AsyncIterator[str]:
    """Our server on HTTP/1.1, HTTP/2 and HTTP/3 at one port; yields its base URL."""
    server = ASGIServer(app or App(), tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        yield f"https://localhost:{endpoint.port}"
        server.shutdown()


async def client(
    certs: Certs, *args: str, cwd: Path, within: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return await run_peer(
        [TRIO_HFACE, "client", "--cacert", certs.cafile, *args], within=within, cwd=cwd, env=ENV
    )


#: Runs its arguments as a program and prints that program's peak resident memory, in KiB.
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "status = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], 'wb')).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(status)\n"
)


async def peak_rss(certs: Certs, tmp_path: Path, url: str, stdout: Path) -> int:
    command = [
        sys.executable,
        "-c",
        PEAK_RSS,
        str(stdout),
        TRIO_HFACE,
        "client",
        "--cacert",
        certs.cafile,
        url,
    ]
    result = await run_peer(command, within=240, cwd=tmp_path, env=ENV)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


async def test_a_big_body_streams_through_bounded_memory(certs: Certs, tmp_path: Path) -> None:
    """A 50 MB body goes to stdout as it arrives: the client's peak memory grows far less than the body."""
    async with serving(certs) as base:
        small = await peak_rss(certs, tmp_path, f"{base}/", tmp_path / "small.out")
        big = await peak_rss(certs, tmp_path, f"{base}/big", tmp_path / "big.out")
    piece = b"0123456789abcdef" * (CHUNK // 16)
    assert (tmp_path / "big.out").stat().st_size == BIG
    expected = hashlib.sha256(piece * (BIG // CHUNK)).hexdigest()
    assert hashlib.sha256((tmp_path / "big.out").read_bytes()).hexdigest() == expected
    assert big - small < 16 * 1024, f"peak RSS {big} KiB for 50 MB, {small} KiB for a small body"


async def test_a_dripping_body_shows_its_first_part_before_the_end(certs: Certs, tmp_path: Path) -> None:
    """What arrived is printed at once: the server sends the rest only once the client printed the first part."""
    app = App()
    async with serving(certs, app) as base:
        command = [TRIO_HFACE, "client", "--cacert", certs.cafile, f"{base}/drip"]
        async with running_peer(command, ready=r"first part\n", cwd=tmp_path, env=ENV) as peer:
            assert b"the rest" not in peer.output
            app.go_on.set()
            with trio.fail_after(30):
                assert await peer.wait_exit() == 0
            assert peer.output == b"first part\nthe rest\n"


async def test_output_file_with_a_progress_bar(certs: Certs, tmp_path: Path) -> None:
    """-o FILE writes the body to FILE; --progress draws a bar on stderr, redrawn with CR, ending at 100 %."""
    async with serving(certs) as base:
        result = await client(
            certs, "--progress", "-o", "big.bin", "-o", "hello.txt", f"{base}/big", f"{base}/", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == b""
        assert (tmp_path / "big.bin").stat().st_size == BIG
        assert (tmp_path / "hello.txt").read_bytes() == b"hello 2\n"
        big_line, hello_line, end = result.stderr.decode().split("\n")
        assert end == "", result.stderr[-300:]
        states = big_line.split("\r")
        assert states[0] == "" and len(states) > 2, big_line[:300]
        assert states[-1].startswith("[" + "#" * 20 + "] 100%  50.0 MiB of 50.0 MiB  "), states[-1]
        assert re.fullmatch(r".*  [\d.]+ (B|KiB|MiB|GiB)/s  big\.bin *", states[-1]), states[-1]
        assert all(
            re.match(r"\[#* *\] +\d+%  [\d.]+ (B|KiB|MiB) of 50\.0 MiB  ", state) for state in states[1:]
        )
        assert hello_line.endswith("] 100%  8 B of 8 B  " + hello_line.split("  ")[-2] + "  hello.txt")
        quiet = await client(certs, "--no-progress", "-o", "again.bin", f"{base}/big", cwd=tmp_path)
        assert (
            quiet.returncode == 0 and quiet.stderr == b"" and (tmp_path / "again.bin").stat().st_size == BIG
        )
        unwritable = await client(certs, "-o", "no/such/dir/f", f"{base}/", cwd=tmp_path)
        assert unwritable.returncode == 23, unwritable.stderr
        assert unwritable.stderr.decode().splitlines() == [
            f"trio-hface client: {base}/: cannot write no/such/dir/f: No such file or directory"
        ]
        many = await client(certs, "-o", "a", "-o", "b", f"{base}/", cwd=tmp_path)
        assert many.returncode == 2 and b"one -o per URL" in many.stderr


async def test_fail_head_silent_and_write_out(certs: Certs, tmp_path: Path) -> None:
    """--fail exits 22 with no body; -s keeps stderr quiet; -I prints the head only; -w as curl writes it."""
    curl = require_tool("curl")
    async with serving(certs) as base:
        result = await client(certs, "--fail", f"{base}/missing", cwd=tmp_path)
        assert result.returncode == 22 and result.stdout == b""
        assert result.stderr.decode() == f"trio-hface client: {base}/missing: the server answered 404\n"
        result = await client(certs, "-s", "--fail", f"{base}/missing", cwd=tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (22, b"", b"")
        result = await client(certs, f"{base}/missing", cwd=tmp_path)
        assert result.returncode == 0 and result.stdout == b"no such thing\n"
        write_out = r"%{http_code} %{http_version} %{size_download} %{time_total}\n"
        for flag, version in (("--http1", "1.1"), ("--http2", "2"), ("--http3", "3")):
            result = await client(certs, flag, "-w", write_out, f"{base}/", f"{base}/missing", cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            body = f"hello {version}\n"
            lines = result.stdout.decode().split("\n")
            assert lines[0] == body.strip() and lines[2] == "no such thing", lines
            for line, (code, size) in zip(
                (lines[1], lines[3]), (("200", len(body)), ("404", 14)), strict=True
            ):
                words = line.split(" ")
                assert words[:3] == [code, version, str(size)] and float(words[3]) > 0, line
            head = await client(certs, flag, "-I", f"{base}/", cwd=tmp_path)
            assert head.returncode == 0, head.stderr
            text = head.stdout.decode()
            assert text.startswith(f"HTTP/{version} 200\r\n") and text.endswith("\r\n\r\n"), text
            assert f"content-length: {len(body)}\r\n" in text and "hello" not in text
        # curl reads the same values, over HTTP/2, and HEAD works for it too.
        resolve = f"localhost:{base.rsplit(':', 1)[1]}:127.0.0.1"
        curl_result = await run_peer(
            [curl, "-sS", "--cacert", certs.cafile, "--resolve", resolve, "-w", write_out, f"{base}/missing"]
        )
        ours = await client(certs, "-w", write_out, f"{base}/missing", cwd=tmp_path)
        assert curl_result.stdout.split()[:4] == ours.stdout.split()[:4] == [b"no", b"such", b"thing", b"404"]
        assert curl_result.stdout.split()[4:6] == ours.stdout.split()[4:6] == [b"2", b"14"]
        curl_head = await run_peer(
            [curl, "-sS", "-I", "--cacert", certs.cafile, "--resolve", resolve, f"{base}/"]
        )
        assert curl_head.returncode == 0 and curl_head.stdout.startswith(b"HTTP/2 200"), curl_head.stderr
        # A failure still writes out, with curl's 000.
        with refusing_port() as closed:
            result = await client(
                certs, "-w", "[%{http_code} %{exitcode}]", f"https://localhost:{closed}/", cwd=tmp_path
            )
        assert result.returncode == 7 and result.stdout == b"[000 7]"
        unknown = await client(certs, "-w", "%{nonesuch}", f"{base}/", cwd=tmp_path)
        assert unknown.returncode == 2 and b"%{nonesuch}" in unknown.stderr


async def test_user_agent_by_default_and_overridden(certs: Certs, tmp_path: Path) -> None:
    """The client says user-agent: trio-hface/VERSION unless -A or -H says otherwise."""
    async with serving(certs) as base:
        url = f"{base}/agent"
        default = await client(certs, url, cwd=tmp_path)
        assert default.stdout.decode() == f"trio-hface/{__version__}\n", default.stderr
        by_a = await client(certs, "-A", "me/1", url, cwd=tmp_path)
        by_h = await client(certs, "-H", "User-Agent: you/2", url, cwd=tmp_path)
        assert (by_a.stdout, by_h.stdout) == (b"me/1\n", b"you/2\n")


async def test_location_follows_redirects(certs: Certs, tmp_path: Path) -> None:
    """-L follows redirects on every version, bounded by --max-redirs (exit 47, as curl)."""
    curl = require_tool("curl")
    write_out = r"%{http_code} %{num_redirects} %{url_effective}\n"
    async with serving(certs) as base:
        for flag in ("--http1", "--http2", "--http3"):
            result = await client(certs, flag, "-L", "-w", write_out, f"{base}/hop/3", cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            assert result.stdout.decode() == f"trio-hface/{__version__}\n200 3 {base}/agent\n"
        plain = await client(certs, "-w", write_out, f"{base}/hop/3", cwd=tmp_path)
        assert (plain.returncode, plain.stdout.decode()) == (0, f"302 0 {base}/hop/3\n")
        too_many = await client(certs, "-L", "--max-redirs", "2", f"{base}/hop/3", cwd=tmp_path)
        assert too_many.returncode == 47 and b"more than 2 redirects" in too_many.stderr, too_many.stderr
        assert len(too_many.stderr.decode().splitlines()) == 1, too_many.stderr
        enough = await client(certs, "-L", "--max-redirs", "3", f"{base}/hop/3", cwd=tmp_path)
        assert enough.returncode == 0, enough.stderr
        bad = await client(certs, "-L", "--max-redirs", "x", f"{base}/hop/3", cwd=tmp_path)
        assert bad.returncode == 2
        # curl agrees on the same server: the same count, the same final URL, the same exit status.
        resolve = f"localhost:{base.rsplit(':', 1)[1]}:127.0.0.1"
        curl_args = [curl, "-sS", "-L", "--cacert", certs.cafile, "--resolve", resolve, "-o", "/dev/null"]
        theirs = await run_peer([*curl_args, "-w", write_out, f"{base}/hop/3"])
        assert theirs.stdout.decode() == f"200 3 {base}/agent\n", theirs.stderr
        theirs = await run_peer([*curl_args, "--max-redirs", "2", f"{base}/hop/3"])
        assert theirs.returncode == too_many.returncode == 47


async def test_verbose_trace(certs: Certs, tmp_path: Path) -> None:
    """-v traces the connection, the request's and the response's heads, and the Alt-Svc upgrade to HTTP/3."""
    async with serving(certs) as base:
        port = base.rsplit(":", 1)[1]
        result = await client(certs, "-v", f"{base}/", f"{base}/agent", cwd=tmp_path)
        assert result.returncode == 0 and result.stdout == f"hello 2\ntrio-hface/{__version__}\n".encode()
        trace = result.stderr.decode()
        assert trace.startswith(
            f"* Connected to localhost (127.0.0.1) port {port} (HTTP/2 by ALPN, TLSv1.3)\n"
        )
        assert (
            f"> GET / HTTP/2\n> host: localhost:{port}\n> user-agent: trio-hface/{__version__}\n>\n" in trace
        )
        assert "< HTTP/2 200\n< content-type: text/plain\n< content-length: 8\n" in trace
        assert f'* Alt-Svc: h3=":{port}"; ma=86400 (later requests of this session may use HTTP/3)\n' in trace
        assert f"* Re-using the connection to localhost (127.0.0.1) port {port} (HTTP/2" in trace
        assert trace.index("> GET / ") < trace.index("> GET /agent ")
        http1 = await client(certs, "-v", "--http1", f"{base}/", cwd=tmp_path)
        assert "(HTTP/1.1 by ALPN, TLSv1.3)\n> GET / HTTP/1.1\n" in http1.stderr.decode()
        http3 = await client(certs, "-v", "--http3", f"{base}/", cwd=tmp_path)
        assert f"port {port} (HTTP/3 over QUIC)\n> GET / HTTP/3\n" in http3.stderr.decode()
        # More URLs than run at once: the last ones start after an answer, and take HTTP/3 by Alt-Svc.
        many = await client(certs, "-v", "--timeout", "60", *[f"{base}/"] * 102, cwd=tmp_path, within=150)
        assert many.returncode == 0, [
            line for line in many.stderr.decode().splitlines() if "trio-hface client:" in line
        ]
        assert many.stdout.count(b"hello 2\n") >= 1 and many.stdout.endswith(b"hello 3\n")
        assert many.stdout.count(b"hello 2\n") + many.stdout.count(b"hello 3\n") == 102
        assert f"port {port} (HTTP/3 over QUIC, advertised by Alt-Svc)\n" in many.stderr.decode()


async def test_exit_statuses(certs: Certs, tmp_path: Path) -> None:
    """Resolve, connect, TLS, certificate and timeout failures exit with curl's 6, 7, 35, 60 and 28, in one line."""
    async with serving(certs) as base:
        port = base.rsplit(":", 1)[1]
        with refusing_port() as tcp, refusing_port(socket.SOCK_DGRAM) as udp:
            cases = [
                (["https://name.invalid/"], 6, "name.invalid"),
                ([f"https://localhost:{tcp}/"], 7, "cannot connect"),
                (["--http3", f"https://localhost:{udp}/"], 7, f"nobody listens at UDP port {udp}"),
                ([f"http://localhost:{port}/"], 56, "ended"),
                (["--timeout", "1", f"{base}/silent"], 28, "in 1.0 s"),
            ]
            for args, expected, words in cases:
                start = trio.current_time()
                result = await client(certs, *args, cwd=tmp_path)
                lines = result.stderr.decode().splitlines()
                assert result.returncode == expected, (args, result.stderr)
                assert len(lines) == 1 and words in lines[0], (args, lines)
                assert trio.current_time() - start < 15, args
        untrusted = [TRIO_HFACE, "client", f"{base}/"]
        for flags in ([], ["--http3"]):
            result = await run_peer([*untrusted, *flags], cwd=tmp_path, env=ENV)
            lines = result.stderr.decode().splitlines()
            assert result.returncode == 60 and len(lines) == 1, (flags, result.stderr)
            assert "certificate" in lines[0] or "issuer" in lines[0], lines
    # TLS to a server that speaks cleartext HTTP/1.1: the handshake fails (35).
    server = ASGIServer(App())
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["http://127.0.0.1:0"])
        result = await client(certs, f"https://localhost:{endpoint.port}/", cwd=tmp_path)
        server.shutdown()
    assert result.returncode == 35 and len(result.stderr.splitlines()) == 1, result.stderr


async def test_http3_default_handshake_timeout_is_short(tmp_path: Path) -> None:
    """A UDP port that swallows datagrams fails HTTP/3 after the 10 s connect timeout, not the 30 s read timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))  # bound, never read: no ICMP, no answer
        port = sink.getsockname()[1]
        start = trio.current_time()
        result = await run_peer(
            [TRIO_HFACE, "client", "--http3", f"https://127.0.0.1:{port}/"], within=40, cwd=tmp_path, env=ENV
        )
    elapsed = trio.current_time() - start
    assert result.returncode == 28, result.stderr
    assert 9 < elapsed < 20 and b"in 10.0 s" in result.stderr, (elapsed, result.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cacert", "notes.txt", "https://localhost/"],
            "--cacert notes.txt: not a PEM file of CA certificates",
        ),
        (["--proxy-http3", "https://localhost/"], "--proxy-http3 needs --proxy"),
        (["--proxy-cacert", "notes.txt", "https://localhost/"], "--proxy-cacert needs --proxy"),
        (
            ["--proxy", "https://localhost:1", "--proxy-cacert", "notes.txt", "https://localhost/"],
            "--proxy-cacert notes.txt: not a PEM file",
        ),
        (["--timeout", "0", "https://localhost/"], "--timeout must be positive"),
    ],
)
async def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    """A CA file that holds no certificate, proxy flags without --proxy: one line naming it, exit 2."""
    (tmp_path / "notes.txt").write_text("not a certificate\n")
    result = await run_peer([TRIO_HFACE, "client", *args], cwd=tmp_path, env=ENV)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


async def test_proxy_cacert(certs: Certs, tmp_path: Path) -> None:
    """--proxy-cacert trusts the proxy's CA, --cacert the server's: each connection checks its own."""
    async with (
        serving(certs) as base,
        running_peer(
            [TRIO_HFACE, "proxy", "https://127.0.0.1:0"], ready=SERVING, cwd=tmp_path, env=ENV
        ) as proxy,
    ):
        proxy_url = f"https://localhost:{proxy.port}"
        for flag in ("--proxy-http1", "--proxy-http2", "--proxy-http3"):
            through = ["--proxy", proxy_url, flag, f"{base}/"]
            result = await client(certs, "--proxy-cacert", proxy.group("ca"), *through, cwd=tmp_path)
            assert result.returncode == 0 and result.stdout == b"hello 2\n", result.stderr
        result = await client(certs, "--proxy", proxy_url, f"{base}/", cwd=tmp_path)
        assert result.returncode == 60, result.stderr
        wrong = await run_peer(
            [TRIO_HFACE, "client", "--cacert", proxy.group("ca"), "--proxy", proxy_url, f"{base}/"],
            cwd=tmp_path,
            env=ENV,
        )
        assert wrong.returncode == 60, wrong.stderr


async def test_against_nghttpd(certs: Certs, tmp_path: Path) -> None:
    """A real HTTP/2 server: -v says HTTP/2 by ALPN, -o saves the file, -w reads its size, --fail sees its 404."""
    nghttpd = require_tool("nghttpd")
    docs = tmp_path / "docs"
    docs.mkdir()
    content = os.urandom(3_000_000)
    (docs / "f.bin").write_bytes(content)

    def command(port: int) -> list[str]:
        return [
            nghttpd,
            "-v",
            "-d",
            str(docs),
            "--address",
            "127.0.0.1",
            str(port),
            certs.keyfile,
            certs.certfile,
        ]

    async with running_peer(command, ready=NGHTTPD_LISTENING) as peer:
        base = f"https://localhost:{peer.port}"
        result = await client(
            certs,
            "-v",
            "-o",
            "f.bin",
            "-w",
            "%{http_code} %{http_version} %{size_download}\n",
            f"{base}/f.bin",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"200 2 {len(content)}\n".encode()
        assert (tmp_path / "f.bin").read_bytes() == content
        assert f"port {peer.port} (HTTP/2 by ALPN, TLSv1.3)\n> GET /f.bin HTTP/2\n" in result.stderr.decode()
        missing = await client(certs, "--fail", f"{base}/nothing", cwd=tmp_path)
        assert missing.returncode == 22 and b"answered 404" in missing.stderr
