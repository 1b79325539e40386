"""`trio-hface server` and `proxy` options through the real entry point: logging, the access log,
--root-path, --graceful-timeout, the shutdown lines, --reload and the configuration file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.helpers import require_tool
from tests.peers import SERVING, Peer, run_peer, running_peer
from trio_hface import ClientTLSConfig
from trio_hface.cli import build_parser
from trio_hface.cli._config import ConfigError, apply_config_file
from trio_hface.client import Client, ClientProtocol
from trio_hface.server import ACCESS_LOG_FIELDS

ROOT = Path(__file__).resolve().parent.parent
#: The real entry point, as a user runs it (not python -m).
ENTRY = str(Path(sys.executable).parent / "trio-hface")
#: Our own programs find this checkout; the test's modules are found in their working directory.
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
#: What the server prints once it serves on an http:// endpoint (the port, then a non-digit).
HTTP_SERVING = r"http://127\.0\.0\.1:(?P<port>\d+)\D"

#: An application that describes its scope (HTTP and WebSocket), and answers /slow after a while.
SCOPE_APP = """
import json
import trio

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    info = {"path": scope["path"], "root_path": scope["root_path"], "raw_path": scope["raw_path"].decode()}
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(info)})
        await send({"type": "websocket.close"})
        return
    if scope["path"].endswith("/slow"):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started\\n", "more_body": True})
        await trio.sleep(60)
    body = json.dumps(info).encode()
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ENTRY, *args], capture_output=True, text=True, timeout=60, env=ENV, cwd=cwd)


def project(tmp_path: Path, module: str = SCOPE_APP, name: str = "scope_app_for_cli") -> Path:
    (tmp_path / f"{name}.py").write_text(module)
    return tmp_path


async def http1_get(port: int, target: str) -> bytes:
    """One HTTP/1.1 request on a new connection; the whole response."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n".encode()
        )
        received = b""
        with trio.fail_after(20):
            while chunk := await stream.receive_some():
                received += chunk
    return received


async def our_client(peer: Peer, flag: str, path: str) -> str:
    url = f"https://localhost:{peer.port}{path}"
    result = await run_peer([ENTRY, "client", flag, "--cacert", peer.group("ca"), url], env=ENV)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


# -- logging: -v and --log-level after the command, library noise kept out ------


@pytest.mark.parametrize(
    ("flags", "logged"),
    [
        ([], False),
        (["-v"], True),
        (["--log-level", "INFO"], True),
        (["-v", "--log-level", "warning"], False),
    ],
)
async def test_verbosity_after_the_command(tmp_path: Path, flags: list[str], logged: bool) -> None:
    """-v and --log-level work after `server`: the access log shows on stderr from INFO on, and
    aioquic's INFO lines about each QUIC connection stay out of it."""
    command = [ENTRY, "server", "scope_app_for_cli:app", "https://127.0.0.1:0", *flags]
    async with running_peer(command, ready=SERVING, cwd=project(tmp_path), env=ENV) as server:
        assert '"path": "/q"' in await our_client(server, "--http3", "/q?x=1")
        assert await server.stop(signal.SIGINT) == 0
    text = server.text()
    assert ("trio_hface.server.access: 127.0.0.1:" in text and '"GET /q?x=1 HTTP/3" 201' in text) is logged, (
        text
    )
    assert not re.search(r"INFO (quic|http3)\b", text), text


def test_verbosity_before_and_after_the_command_add_up() -> None:
    """`trio-hface -v server -v` is -vv (debug); --log-level after the command wins over the one before."""
    from trio_hface.cli._logging import log_level

    parser = build_parser()
    args = parser.parse_args(["-v", "server", "m:app", "http://127.0.0.1:0", "-v"])
    assert log_level(args) == 10
    args = parser.parse_args(["--log-level", "error", "proxy", "http://127.0.0.1:0", "--log-level", "info"])
    assert log_level(args) == 20


# -- the access log ----------------------------------------------------------------


async def test_access_log_to_a_file_every_version_and_websocket(tmp_path: Path) -> None:
    """--access-log FILE with --access-log-format: one line per response with the query, status,
    bytes and duration, over HTTP/1.1, HTTP/2 (curl), HTTP/3 and for a WebSocket."""
    curl = require_tool("curl")
    log_file = tmp_path / "access.log"
    fields = "{client} {method} {path} {version} {status} {bytes} {duration_ms} {host}"
    command = [
        ENTRY,
        "server",
        "scope_app_for_cli:app",
        "https://127.0.0.1:0",
        "--access-log",
        str(log_file),
        "--access-log-format",
        fields,
    ]
    async with running_peer(command, ready=SERVING, cwd=project(tmp_path), env=ENV) as server:
        cafile = server.group("ca")
        resolve = f"localhost:{server.port}:127.0.0.1"
        for flag in ("--http1.1", "--http2"):
            result = await run_peer(
                [
                    curl,
                    "-sS",
                    flag,
                    "--cacert",
                    cafile,
                    "--resolve",
                    resolve,
                    f"https://localhost:{server.port}/c?v={flag}",
                ]
            )
            assert result.returncode == 0, result.stderr
        body = await our_client(server, "--http3", "/three?a=1&b=2")
        client = Client(tls_config=_trust(cafile), protocol=ClientProtocol.HTTP2)
        async with client.session() as session:
            async with session.websocket(f"wss://localhost:{server.port}/ws?room=1") as ws:
                assert json.loads(await ws.receive())["path"] == "/ws"
        assert await server.stop(signal.SIGINT) == 0
    lines = log_file.read_text().splitlines()
    assert len(lines) == 4, lines
    pattern = r"127\.0\.0\.1:\d+ {method} {path} {version} {status} {bytes} \d+\.\d+ localhost:{port}"
    expected = [
        ("GET", "/c?v=--http1.1", "1.1", 201, None),
        ("GET", "/c?v=--http2", "2", 201, None),
        ("GET", "/three?a=1&b=2", "3", 201, len(body)),
        ("WEBSOCKET", "/ws?room=1", "2", 200, 0),
    ]
    for line, (method, path, version, status, size) in zip(lines, expected, strict=True):
        regex = pattern.format(
            method=method,
            path=re.escape(path),
            version=version,
            status=status,
            bytes=r"\d+" if size is None else size,
            port=server.port,
        )
        assert re.fullmatch(regex, line), (regex, line)
    # The duration is of the request: more than nothing, less than the test.
    assert all(0 < float(line.split()[6]) < 60_000 for line in lines)


def _trust(cafile: str) -> ClientTLSConfig:
    return ClientTLSConfig(cafile=cafile)


async def test_access_log_on_stdout_with_workers_names_the_worker(tmp_path: Path) -> None:
    """--access-log - writes the default format to standard output, in worker processes too, and
    each line ends with the worker that served it."""
    command = [
        ENTRY,
        "server",
        "scope_app_for_cli:app",
        "http://127.0.0.1:0",
        "--workers",
        "2",
        "--access-log",
        "-",
    ]
    async with running_peer(command, ready=HTTP_SERVING, cwd=project(tmp_path), env=ENV) as server:
        for _ in range(4):
            assert (await http1_get(server.port, "/w?n=1")).startswith(b"HTTP/1.1 201")
        with trio.fail_after(20):
            await server.wait_output(
                r'(\] 127\.0\.0\.1:\d+ - "GET /w\?n=1 HTTP/1\.1" 201 \d+ [\d.]+ms worker \d\n.*){4}'
            )
        assert await server.stop(signal.SIGINT) == 0


def test_unknown_access_log_field_is_a_usage_error() -> None:
    """An unknown field in --access-log-format is one line naming it, exit 2, before anything listens."""
    result = cli("server", "m:app", "http://127.0.0.1:0", "--access-log-format", "{client} {colour}")
    assert result.returncode == 2
    assert "unknown access log field {colour}" in result.stderr and "duration_ms" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- --root-path -----------------------------------------------------------------


async def test_root_path_in_http_and_websocket_scopes(tmp_path: Path) -> None:
    """--root-path /api is the scope's root_path, and the path starts with it (put back when a
    proxy took it off), for HTTP and WebSocket requests."""
    command = [ENTRY, "server", "scope_app_for_cli:app", "https://127.0.0.1:0", "--root-path", "/api/"]
    async with running_peer(command, ready=SERVING, cwd=project(tmp_path), env=ENV) as server:
        stripped = json.loads(await our_client(server, "--http2", "/items?x=1"))
        assert stripped == {"path": "/api/items", "root_path": "/api", "raw_path": "/api/items"}
        kept = json.loads(await our_client(server, "--http1", "/api/items"))
        assert kept == {"path": "/api/items", "root_path": "/api", "raw_path": "/api/items"}
        client = Client(tls_config=_trust(server.group("ca")), protocol=ClientProtocol.HTTP1)
        async with client.session() as session:
            async with session.websocket(f"wss://localhost:{server.port}/feed") as ws:
                assert json.loads(await ws.receive()) == {
                    "path": "/api/feed",
                    "root_path": "/api",
                    "raw_path": "/api/feed",
                }
        assert await server.stop(signal.SIGINT) == 0


# -- option checks ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["server", "proxy"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--graceful-timeout", "-1"], "--graceful-timeout: must be a number of seconds, at least 0, not -1"),
        (["--graceful-timeout", "soon"], "--graceful-timeout: not a number of seconds: 'soon'"),
        (["--graceful-timeout", "nan"], "--graceful-timeout: must be a number of seconds"),
        (["--root-path", "api"], "--root-path: the root path must start with /"),
        (["--log-level", "loud"], "--log-level: not a level: 'loud'"),
    ],
)
def test_bad_option_values_are_one_line_usage_errors(command: str, args: list[str], message: str) -> None:
    """A bad --graceful-timeout (negative, not a number), --root-path or --log-level is one line, exit 2."""
    if command == "proxy" and args[0] == "--root-path":
        pytest.skip("the proxy has no root path")
    app = ["m:app"] if command == "server" else []
    result = cli(command, *app, "http://127.0.0.1:0", *args)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- shutdown lines -----------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_shutdown_lines_say_what_is_waited_for(tmp_path: Path, workers: str) -> None:
    """SIGINT logs `shutting down: waiting up to 1.5 s for 1 request in flight` and `shut down`, at
    the default log level, in a single process and in worker mode (a line per worker, and the supervisor's)."""
    command = [
        ENTRY,
        "server",
        "scope_app_for_cli:app",
        "http://127.0.0.1:0",
        "--graceful-timeout",
        "1.5",
        "--workers",
        workers,
    ]
    async with running_peer(command, ready=HTTP_SERVING, cwd=project(tmp_path), env=ENV) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(b"GET /slow HTTP/1.1\r\nhost: localhost\r\n\r\n")
            received = b""
            with trio.fail_after(20):
                while b"started" not in received:
                    received += await stream.receive_some()
            assert await server.stop(signal.SIGINT) == 0
    text = server.text()
    assert (
        len(
            re.findall(
                r"INFO trio_hface\.server\.lifecycle.*: shutting down: waiting up to 1\.5 s for 1 request in flight\n",
                text,
            )
        )
        == 1
    ), text
    if workers == "1":
        assert re.search(
            r"lifecycle: shutting down: waiting up to 1\.5 s for 1 request in flight\n.*lifecycle: shut down\n",
            text,
            re.DOTALL,
        ), text
    else:
        assert re.search(r"lifecycle: shutting down: stopping 2 workers\n", text), text
        assert (
            len(
                re.findall(
                    r"\[worker \d\]: shutting down: waiting up to 1\.5 s for [01] requests? in flight\n", text
                )
            )
            == 2
        ), text
        assert len(re.findall(r"\[worker \d\]: shut down\n", text)) == 2, text
        assert text.rstrip().endswith("trio_hface.server.lifecycle: shut down"), text


# -- the configuration file ----------------------------------------------------------


async def test_config_file_with_the_command_line_over_it(tmp_path: Path) -> None:
    """-c FILE gives the app, the endpoints and options by the flags' names (dashes or underscores);
    the command line overrides the file."""
    project(tmp_path)
    (tmp_path / "trio-hface.toml").write_text(
        'app = "scope_app_for_cli:app"\n'
        'endpoints = ["http://127.0.0.1:0"]\n'
        "graceful-timeout = 7\n"
        'root_path = "/from-file"\n'
        'access-log = "-"\n'
        'access_log_format = "{method} {path} {status}"\n'
    )
    command = [ENTRY, "server", "-c", "trio-hface.toml", "--root-path", "/from-cli"]
    async with running_peer(command, ready=HTTP_SERVING, cwd=tmp_path, env=ENV) as server:
        response = await http1_get(server.port, "/x")
        assert b'"root_path": "/from-cli"' in response, response
        with trio.fail_after(20):
            await server.wait_output(r"GET /x 201\n")
        assert await server.stop(signal.SIGINT) == 0
    assert "waiting up to 7 s for 0 requests in flight" in server.text()


async def test_proxy_reads_a_config_file(tmp_path: Path) -> None:
    """`trio-hface proxy -c FILE` takes its endpoints and repeatable --allow from the file."""
    (tmp_path / "proxy.toml").write_text(
        'endpoints = ["http://127.0.0.1:0"]\nallow = ["localhost:*"]\nverbose = 1\n'
    )
    command = [ENTRY, "proxy", "-c", "proxy.toml"]
    async with running_peer(command, ready=HTTP_SERVING, cwd=tmp_path, env=ENV) as proxy:
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            await stream.send_all(b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n")
            with trio.fail_after(20):
                head = await stream.receive_some()
        assert head.startswith(b"HTTP/1.1 403"), head
        with trio.fail_after(20):
            await proxy.wait_output(r"INFO .*CONNECT to example\.com:443 refused by the allow-list")
        assert await proxy.stop(signal.SIGINT) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("colour = 1\n", "trio-hface.toml: unknown key 'colour'"),
        ('graceful-timeout = "soon"\n', "trio-hface.toml: graceful-timeout: not a number of seconds: 'soon'"),
        (
            "graceful-timeout = -2\n",
            "trio-hface.toml: graceful-timeout: must be a number of seconds, at least 0",
        ),
        ("quic-retry = 1\n", "trio-hface.toml: quic-retry: must be true or false, not a number (1)"),
        ('endpoints = "http://127.0.0.1:0"\n', "trio-hface.toml: endpoints: must be a list"),
        ("app = 3\n", "trio-hface.toml: app: must be a string, not a number (3)"),
        ("http2 = true\nhttp3 = true\n", "trio-hface.toml: http2 and http3 exclude each other"),
        ("endpoints = [\n", "trio-hface.toml: not valid TOML"),
        ("workers = 0.5\n", "trio-hface.toml: workers: not a number or auto: '0.5'"),
    ],
)
def test_config_file_errors_name_the_file_and_key(tmp_path: Path, content: str, message: str) -> None:
    """An unknown key, a value of the wrong type or bad TOML is one line naming the file and key, exit 2."""
    (tmp_path / "trio-hface.toml").write_text(content)
    result = cli("server", "-c", "trio-hface.toml", "m:app", "http://127.0.0.1:0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"trio-hface: {message}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("command", ["server", "proxy"])
def test_every_flag_is_a_key_of_the_config_file(tmp_path: Path, command: str) -> None:
    """Each option of the command is a key of the file by its own name: none is unknown (the keys
    come from argparse's definitions, not from a second list)."""
    parser = build_parser().parse_args([command]).command_parser
    path = tmp_path / "all.toml"
    keys = []
    for action in parser._actions:
        names = [s[2:] for s in action.option_strings if s.startswith("--")] or [action.dest]
        keys += [n for n in names if n not in ("help", "config", "reload")]
    assert {"graceful-timeout", "log-level", "verbose", "max-connections", "workers", "endpoints"} <= set(
        keys
    )
    for key in keys:
        for spelling in (key, key.replace("-", "_")):
            path.write_text(f"{spelling} = {{}}\n")  # a table: the wrong type for every option
            with pytest.raises(ConfigError) as caught:
                apply_config_file(parser, str(path))
            assert f"{path}: {spelling}: must be" in str(caught.value), caught.value
    path.write_text("reload = true\n")
    with pytest.raises(ConfigError, match="unknown key 'reload'"):
        apply_config_file(parser, str(path))


def test_access_log_fields_are_documented() -> None:
    """Every access log field is in docs/cli.rst."""
    text = (ROOT / "docs" / "cli.rst").read_text()
    for name in ACCESS_LOG_FIELDS:
        assert f"``{{{name}}}``" in text, name


# -- --reload ------------------------------------------------------------------------

RELOAD_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"version %s"})
"""


def _write(path: Path, text: str) -> None:
    """Write *path* and move its modification time on, so that a poll sees a change even within a tick."""
    before = path.stat().st_mtime if path.exists() else 0.0
    path.write_text(text)
    os.utime(path, (before + 2, before + 2))


async def test_reload_restarts_on_a_change_and_survives_a_syntax_error(tmp_path: Path) -> None:
    """--reload serves the edited app after a change (same port), logs a syntax error and waits for
    the next change, and SIGINT stops everything."""
    app_file = tmp_path / "reload_app_for_cli.py"
    _write(app_file, RELOAD_APP % 1)
    command = [
        ENTRY,
        "server",
        "reload_app_for_cli:app",
        "http://127.0.0.1:0",
        "--reload",
        "--graceful-timeout",
        "1",
    ]
    async with running_peer(command, ready=HTTP_SERVING, cwd=tmp_path, env=ENV) as server:
        assert b"version 1" in await http1_get(server.port, "/")
        _write(app_file, RELOAD_APP % 2)
        with trio.fail_after(30):
            await server.wait_output(r"reload_app_for_cli\.py changed: restarting the server\n.*serving on")
        assert b"version 2" in await http1_get(server.port, "/")
        _write(app_file, "async def app(:\n")
        with trio.fail_after(30):
            await server.wait_output(
                r"cannot import 'reload_app_for_cli': invalid syntax.*exited with status 2: waiting for a change"
            )
        _write(app_file, RELOAD_APP % 3)
        with trio.fail_after(30):
            await server.wait_output(r"exited with status 2.*changed: restarting the server\n.*serving on")
        assert b"version 3" in await http1_get(server.port, "/")
        with trio.fail_after(30):
            assert await server.stop(signal.SIGINT) == 0
    assert server.text().count("shut down") >= 2, server.text()


def test_reload_refuses_workers() -> None:
    """--reload with --workers 2 is a one-line error, exit 2."""
    result = cli("server", "m:app", "http://127.0.0.1:0", "--reload", "--workers", "2")
    assert result.returncode == 2
    assert "--reload serves from one process" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_documented_config_file_is_valid(tmp_path: Path) -> None:
    """The TOML example of docs/cli.rst is a valid configuration file of `server`, read as it says."""
    text = (ROOT / "docs" / "cli.rst").read_text()
    block = text.split(".. code-block:: toml\n\n", 1)[1].split("\n\n", 1)[0]
    path = tmp_path / "trio-hface.toml"
    path.write_text("\n".join(line.removeprefix("   ") for line in block.splitlines()) + "\n")
    parser = build_parser()
    server = parser.parse_args(["server"]).command_parser
    apply_config_file(server, str(path))
    args = parser.parse_args(["server"])
    assert args.app == "myapp:app" and args.endpoints == ["https://127.0.0.1:6443", "http://127.0.0.1:8080"]
    assert (args.graceful_timeout, args.root_path, args.access_log) == (5.0, "/api", "access.log")
    assert args.protocol.name == "HTTP2" and args.command_verbose == 1
