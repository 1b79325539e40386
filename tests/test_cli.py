"""The command line end to end: the server with its development certificate, and error exits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import Certs
from tests.helpers import require_tool
from tests.peers import SERVING, refusing_port, run_peer, running_peer

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HELLO = "trio_hface.server.examples.hello:app"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_hface", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


async def test_server_with_development_certificate() -> None:
    """`trio-hface server` without --cert makes a CA, prints its path; curl trusts it; SIGINT stops it cleanly."""
    curl = require_tool("curl")
    command = [sys.executable, "-m", "trio_hface", "server", HELLO, "https://127.0.0.1:0"]
    async with running_peer(command, ready=SERVING, env=ENV) as server:
        assert b"trust its CA:" in server.output.split(b"\n", 1)[0], server.text()
        for version, expected in (("--http1.1", "HTTP/1.1"), ("--http2", "HTTP/2")):
            resolve = f"localhost:{server.port}:127.0.0.1"
            url = f"https://localhost:{server.port}/"
            result = await run_peer(
                [curl, "-sS", version, "--cacert", server.group("ca"), "--resolve", resolve, url]
            )
            assert result.stdout.decode() == f"Hello, World! ({expected})\n", result.stderr
        assert await server.stop(signal.SIGINT) == 0


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
        (["server", HELLO, "http://127.0.0.1:0", "--http3", "--workers", "2"], 2, "HTTP/3 needs TLS"),
    ],
)
def test_error_exits(args: list[str], status: int, message: str) -> None:
    """Bad input gives one clear line on stderr and a non-zero exit."""
    result = cli(*args)
    assert result.returncode == status
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use(workers: str) -> None:
    """A port that is taken is a one-line error with exit status 1, with workers too."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = cli("server", HELLO, f"http://127.0.0.1:{port}", "--workers", workers)
    assert result.returncode == 1
    assert "in use" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "-1"], "must be at least 0"),
        (["--workers", "many"], "not a number or auto"),
        (["--quic-lb", "zz"], "SERVER_ID_HEX"),
        (["--quic-lb", "01:7"], "config_rotation must be in 0-6"),
    ],
)
def test_worker_options_out_of_range(args: list[str], message: str) -> None:
    """--workers and --quic-lb refuse what they cannot use, with exit status 2."""
    result = cli("server", HELLO, "http://127.0.0.1:0", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_help_explains_commands() -> None:
    """--help lists the commands; server --help explains the development certificate."""
    assert "server" in cli("--help").stdout
    assert "development CA" in cli("server", "--help").stdout


async def test_client_every_version_and_through_the_proxy(tmp_path: Path) -> None:
    """`trio-hface client` reaches `trio-hface server` over HTTP/1.1, 2 and 3, directly and through `trio-hface proxy`."""
    our = [sys.executable, "-m", "trio_hface"]
    async with (
        running_peer([*our, "server", HELLO, "https://127.0.0.1:0"], ready=SERVING, env=ENV) as server,
        running_peer([*our, "proxy", "https://127.0.0.1:0"], ready=SERVING, env=ENV) as proxy,
    ):
        both = tmp_path / "both.pem"
        cas = [await trio.Path(peer.group("ca")).read_text() for peer in (server, proxy)]
        await trio.Path(both).write_text("".join(cas))
        url = f"https://localhost:{server.port}/"
        for flag, version in (("--http1", "1.1"), ("--http2", "2"), ("--http3", "3")):
            result = await run_peer(
                [*our, "client", "-i", "--cacert", server.group("ca"), flag, url], env=ENV
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.decode().startswith(f"HTTP/{version} 200")
            assert result.stdout.decode().endswith(f"Hello, World! (HTTP/{version})\n")
        for flag in ("--proxy-http1", "--proxy-http2", "--proxy-http3"):
            proxied = ["--cacert", str(both), "--proxy", f"https://localhost:{proxy.port}", flag, url]
            result = await run_peer([*our, "client", *proxied], env=ENV)
            assert result.returncode == 0, result.stderr
            assert result.stdout == b"Hello, World! (HTTP/2)\n"
        for peer in (server, proxy):
            assert await peer.stop(signal.SIGINT) == 0


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["client", "ftp://example.com/"], 2, "only http:// and https://"),
        (["client", "--cacert", "/nonexistent.pem", "https://localhost/"], 2, "cannot read /nonexistent.pem"),
        (["client", "-H", "broken", "http://localhost/"], 2, "NAME: VALUE"),
        (["proxy", "ftp://127.0.0.1:1"], 2, "an endpoint is http://host:port"),
    ],
)
def test_client_and_proxy_error_exits(args: list[str], status: int, message: str) -> None:
    """Bad input to client and proxy gives one line on stderr and exit status 2."""
    result = cli(*args)
    assert result.returncode == status, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_client_connection_failure_exits_non_zero() -> None:
    """A server that is not there is a one-line error with exit status 7 (curl's "could not connect")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        result = cli("client", "--http1", f"http://127.0.0.1:{port}/")
    assert result.returncode == 7
    assert "cannot connect" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--http2", "--http3"])
async def test_client_several_urls_share_a_connection_and_print_in_order(certs: Certs, flag: str) -> None:
    """`trio-hface client URL URL URL`: dispatched at once on one connection, printed in URL order, failures named."""
    from trio_hface.server import ASGIServer

    second_arrived = trio.Event()
    big = b"x" * 400_000  # more than the CLI keeps in memory while the first URL is pending

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        port = scope["client"][1]
        if scope["path"] == "/first":
            # Answer only once the second request arrived: a client that sends them one by one fails here.
            with trio.move_on_after(30):
                await second_arrived.wait()
            body = f"first {port} {'after second' if second_arrived.is_set() else 'alone'}\n".encode()
        else:
            second_arrived.set()
            body = f"second {port}\n".encode() + big
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = ASGIServer(app, tls_config=certs.server)
    with refusing_port(socket.SOCK_DGRAM if flag == "--http3" else socket.SOCK_STREAM) as closed:
        async with trio.open_nursery() as nursery:
            (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
            base = f"https://localhost:{endpoint.port}"
            failing = f"https://localhost:{closed}/nobody"
            command = [
                sys.executable,
                "-m",
                "trio_hface",
                "client",
                "--cacert",
                certs.cafile,
                flag,
                "--timeout",
                "10",
            ]
            result = await run_peer(
                [*command, f"{base}/first", failing, f"{base}/second"], within=90, env=ENV
            )
            server.shutdown()
    assert result.returncode == 7, result.stderr  # the failed URL's: could not connect
    first, second, rest = result.stdout.split(b"\n", 2)
    first_words, second_words = first.split(), second.split()
    assert first_words[0] == b"first" and first.endswith(b" after second"), result.stdout[:200]
    assert second_words[0] == b"second" and rest == big
    assert first_words[1] == second_words[1], "both requests should have used one connection"
    errors = result.stderr.decode().strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"trio-hface client: {failing}: "), errors


@pytest.mark.parametrize("command", ["server", "proxy"])
def test_admission_flags_reach_the_server(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-connections-per-address N and --quic-retry configure the server and the proxy (default: no limit, no Retry)."""
    import trio

    from trio_hface.cli import _main
    from trio_hface.server import ASGIServer, ProxyServer

    servers: list[ASGIServer | ProxyServer] = []
    # Build the server as the command does, without serving it.
    monkeypatch.setattr(trio, "run", lambda serve, server, endpoints: servers.append(server))
    app = [HELLO] if command == "server" else []
    for flag, expected in (([], None), (["--max-connections-per-address", "3"], 3)):
        args = _main.build_parser().parse_args([command, *app, "http://127.0.0.1:0", *flag])
        assert args.command(args) == 0
        assert servers.pop().max_connections_per_address == expected
    for flag, retry in (([], False), (["--quic-retry"], True)):
        args = _main.build_parser().parse_args([command, *app, "http://127.0.0.1:0", *flag])
        assert args.command(args) == 0
        assert servers.pop().quic_retry is retry


@pytest.mark.parametrize("version", ["http1", "http3"])
@pytest.mark.parametrize("command", ["server", "proxy", "client"])
def test_impl_flags_choose_from_the_registry(
    command: str, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--http1-impl and --http3-impl NAME give the server, the proxy and the client that
    registry entry (default: h11's, aioquic's)."""
    import trio

    from trio_hface.cli import _client, _main
    from trio_hface.protocols import protocol_registry

    side = "clients" if command == "client" else "servers"
    registry = getattr(protocol_registry, f"{version}_{side}")
    built: list[Any] = []
    monkeypatch.setattr(trio, "run", lambda serve, server, endpoints: built.append(server))
    app = [HELLO] if command == "server" else []
    url = "http://127.0.0.1:1/" if command == "client" else "http://127.0.0.1:0"
    for name in sorted(registry):
        flags = [] if name == "default" else [f"--{version}-impl", name]
        args = _main.build_parser().parse_args([command, *app, url, *flags])
        if command == "client":
            assert getattr(_client._client(args), f"{version}_factory") is registry[name]
        else:
            assert args.command(args) == 0
            assert getattr(built.pop(), f"{version}_factory") is registry[name]


@pytest.mark.parametrize(("option", "label"), [("--http1-impl", "HTTP/1.1"), ("--http3-impl", "HTTP/3")])
def test_unknown_impl_is_a_one_line_error(option: str, label: str) -> None:
    """An --http1-impl or --http3-impl that is not registered exits with status 2 and names what is."""
    result = cli("server", HELLO, "http://127.0.0.1:0", option, "nonesuch")
    assert result.returncode == 2
    assert f"no {label} implementation 'nonesuch'" in result.stderr and "default" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


async def test_httptools_server_and_client_end_to_end() -> None:
    """`server --http1-impl httptools` answers curl and `client --http1-impl httptools` over HTTP/1.1."""
    pytest.importorskip("httptools", reason="httptools is not installed (the speedups extra)")
    curl = require_tool("curl")
    command = [
        sys.executable,
        "-m",
        "trio_hface",
        "server",
        HELLO,
        "https://127.0.0.1:0",
        "--http1-impl",
        "httptools",
    ]
    async with running_peer(command, ready=SERVING, env=ENV) as server:
        url = f"https://localhost:{server.port}/"
        cafile = server.group("ca")
        resolve = f"localhost:{server.port}:127.0.0.1"
        result = await run_peer([curl, "-sS", "--http1.1", "--cacert", cafile, "--resolve", resolve, url])
        assert result.stdout.decode() == "Hello, World! (HTTP/1.1)\n", result.stderr
        our = [sys.executable, "-m", "trio_hface", "client", "-i", "--http1", "--http1-impl", "httptools"]
        result = await run_peer([*our, "--cacert", cafile, url], env=ENV)
        assert result.returncode == 0, result.stderr
        text = result.stdout.decode()
        assert text.startswith("HTTP/1.1 200") and text.endswith("Hello, World! (HTTP/1.1)\n")
        assert await server.stop(signal.SIGINT) == 0


async def test_qh3_server_and_client_end_to_end() -> None:
    """`server --http3-impl qh3` answers ngtcp2's gtlsclient and our aioquic client over HTTP/3,
    and `client --http3-impl qh3` gets the page from it."""
    pytest.importorskip("qh3", reason="qh3 is not installed (the qh3 extra)")
    gtlsclient = require_tool("gtlsclient")
    command = [
        sys.executable,
        "-m",
        "trio_hface",
        "server",
        HELLO,
        "https://127.0.0.1:0",
        "--http3-impl",
        "qh3",
    ]
    async with running_peer(command, ready=SERVING, env=ENV) as server:
        url = f"https://localhost:{server.port}/"
        cafile = server.group("ca")
        with tempfile.TemporaryDirectory() as download:
            peer = [gtlsclient, "-q", "--exit-on-all-streams-close", "--timeout=20s", "--download", download]
            result = await run_peer([*peer, "127.0.0.1", str(server.port), f"{url}hello"])
            assert result.returncode == 0, result.stderr
            assert (Path(download) / "hello").read_text() == "Hello, World! (HTTP/3)\n"
        for impl in ("default", "qh3"):
            our = [sys.executable, "-m", "trio_hface", "client", "-i", "--http3", "--http3-impl", impl]
            result = await run_peer([*our, "--cacert", cafile, url], env=ENV)
            assert result.returncode == 0, result.stderr
            text = result.stdout.decode()
            assert text.startswith("HTTP/3 200") and text.endswith("Hello, World! (HTTP/3)\n"), text
        assert await server.stop(signal.SIGINT) == 0


async def test_server_raises_the_gc_threshold_while_serving() -> None:
    """`trio-hface server` serves with the collector's first threshold raised (requests in flight
    would otherwise make full collections walk the heap over and over)."""
    command = [sys.executable, "-m", "trio_hface", "server", "tests.server.gc_app:app", "https://127.0.0.1:0"]
    async with running_peer(command, ready=SERVING, env=ENV) as server:
        url = f"https://localhost:{server.port}/"
        result = await run_peer(
            [sys.executable, "-m", "trio_hface", "client", "--cacert", server.group("ca"), url], env=ENV
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode().split()[0] == "10000"
        assert await server.stop(signal.SIGINT) == 0


APP_MODULE = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"from the user's own module"})
"""


@pytest.mark.parametrize(
    ("where", "extra"),
    [("cwd", []), ("app-dir", ["--app-dir", "project"]), ("cwd-workers", ["--workers", "2"])],
)
async def test_server_imports_an_app_next_to_the_user(tmp_path: Path, where: str, extra: list[str]) -> None:
    """The trio-hface command finds module:app in the current directory, or in --app-dir, as hypercorn and uvicorn do."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "myapp_for_cli_test.py").write_text(APP_MODULE)
    trio_hface_command = str(Path(sys.executable).parent / "trio-hface")  # the real entry point, not -m
    command = [trio_hface_command, "server", "myapp_for_cli_test:app", "http://127.0.0.1:0", *extra]
    cwd = tmp_path if where == "app-dir" else project
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    async with running_peer(
        command, ready=r"serving on http://127\.0\.0\.1:(?P<port>\d+) \(", cwd=cwd, env=env
    ) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            received = b""
            with trio.fail_after(20):
                while chunk := await stream.receive_some():
                    received += chunk
        assert received.startswith(b"HTTP/1.1 200") and b"from the user's own module" in received
        assert await server.stop(signal.SIGINT) == 0
