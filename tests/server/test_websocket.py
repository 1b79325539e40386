"""WebSockets of the ASGI server over HTTP/1.1, HTTP/2 and HTTP/3: real clients and hostile ones."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
import trio
import websockets.exceptions
import websockets.sync.client
from websockets.typing import Subprotocol

from tests.conftest import Certs
from tests.server import ws_apps
from tests.server.ws_helpers import VERSIONS, RawWebSocket, frame, raw_handshake, running
from trio_hface import WebSocketClosed, WebSocketHandshakeError
from trio_hface.client import Client, ClientProtocol
from trio_hface.protocols.http2 import HTTP2ServerFactory
from trio_hface.server import ASGIServer, WebSocketConfig


def ssl_context(certs: Certs) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certs.cafile)


# -- the websockets library's client (HTTP/1.1) ---------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
async def test_websockets_library_client(certs: Certs, tls: bool) -> None:
    """Echo of text and binary (0 B to 1 MiB), permessage-deflate, subprotocol, the close code both ways."""
    server = ASGIServer(ws_apps.app, tls_config=certs.server)
    endpoint = "https://127.0.0.1:0" if tls else "http://127.0.0.1:0"
    async with running(server, endpoint) as bound:
        url = f"{'wss' if tls else 'ws'}://localhost:{bound.port}"
        context = ssl_context(certs) if tls else None

        def talk() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            with websockets.sync.client.connect(
                f"{url}/echo",
                ssl=context,
                subprotocols=[Subprotocol("other"), Subprotocol("chat")],
                max_size=None,
                proxy=None,
            ) as ws:
                seen["subprotocol"] = ws.subprotocol
                assert ws.response is not None
                seen["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
                seen["accepted"] = ws.response.headers.get("x-accepted")
                for size in (0, 1, 125, 126, 65535, 65536, 1 << 20):
                    payload = os.urandom(size)
                    ws.send(payload)
                    assert ws.recv() == payload
                ws.send("héllo ✓")
                assert ws.recv() == "héllo ✓"
                ws.send(["frag", "mented"])  # a fragmented text message
                assert ws.recv() == "fragmented"
                ws.ping(b"p1").wait(10)
                ws.close(4321, "done here")
            with websockets.sync.client.connect(f"{url}/bye", ssl=context, proxy=None) as ws:
                try:
                    ws.recv()
                except websockets.exceptions.ConnectionClosed as exc:
                    assert exc.rcvd is not None
                    seen["bye"] = (exc.rcvd.code, exc.rcvd.reason)
            with websockets.sync.client.connect(f"{url}/scope?x=1", ssl=context, proxy=None) as ws:
                seen["scope"] = json.loads(ws.recv())
            return seen

        ws_apps.disconnects.clear()
        seen = await trio.to_thread.run_sync(talk)
        assert seen["subprotocol"] == "chat" and seen["accepted"] == "yes"
        assert seen["extensions"] is not None and seen["extensions"].startswith("permessage-deflate")
        assert seen["bye"] == (4000, "bye")
        scope = seen["scope"]
        assert scope["http_version"] == "1.1" and scope["scheme"] == ("wss" if tls else "ws")
        assert scope["path"] == "/scope" and scope["query_string"] == "x=1" and scope["subprotocols"] == []
        with trio.fail_after(5):
            # The application is another module's: look at what it recorded.
            while not any(d["path"] == "/echo" for d in ws_apps.disconnects):  # noqa: ASYNC110
                await trio.sleep(0.01)
        echo = next(d for d in ws_apps.disconnects if d["path"] == "/echo")
        assert echo["code"] == 4321 and echo["reason"] == "done here"


# -- our client on every version ------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "2", "3"])
async def test_our_client_every_version(certs: Certs, version: str) -> None:
    """Echo 0 B to 8 MiB, text and binary, subprotocol, scope, ping, close codes, beside an ordinary request."""
    server = ASGIServer(ws_apps.app, tls_config=certs.server)
    async with running(server) as bound:
        client = Client(tls_config=certs.client, protocol=VERSIONS[version])
        url = f"wss://localhost:{bound.port}"
        async with client.session() as session:
            async with session.websocket(f"{url}/scope", subprotocols=["chat"]) as ws:
                assert ws.http_version == version and ws.subprotocol == "chat"
                assert (b"x-accepted", b"yes") in ws.response_headers
                scope = json.loads(await ws.receive())
                assert scope["http_version"] == version and scope["scheme"] == "wss"
                assert scope["subprotocols"] == ["chat"]
                assert ["host", f"localhost:{bound.port}"] in scope["headers"]
            async with session.websocket(f"{url}/echo") as ws:
                for size in (0, 1, 1000, 70_000, 1 << 20, 8 << 20):
                    payload = os.urandom(size)
                    await ws.send(payload)
                    assert await ws.receive() == payload
                await ws.send("text ✓" * 1000)
                assert await ws.receive() == "text ✓" * 1000
                await ws.ping()
                await ws.aclose(4100, "client done")
                assert ws.close_code == 4100
                with pytest.raises(WebSocketClosed):
                    await ws.send("late")
            async with session.websocket(f"{url}/bye") as ws:
                assert [m async for m in ws] == []
                assert ws.close_code == 4000 and ws.close_reason == "bye"
                with pytest.raises(WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 4000
            from trio_hface.client import Request

            response = await session.dispatch(Request("GET", f"https://localhost:{bound.port}/"))
            assert response.status == 200 and response.content == b"plain http"


@pytest.mark.parametrize("version", ["1.1", "2", "3"])
async def test_denial_and_refusals(certs: Certs, version: str) -> None:
    """The denial response extension, 403 for a close before accepting, 500 for a crash; the server goes on."""
    server = ASGIServer(ws_apps.app, tls_config=certs.server)
    async with running(server) as bound:
        client = Client(tls_config=certs.client, protocol=VERSIONS[version])
        url = f"wss://localhost:{bound.port}"
        async with client.session() as session:
            with pytest.raises(WebSocketHandshakeError) as refused:
                async with session.websocket(f"{url}/deny"):
                    pass
            assert refused.value.status == 401 and refused.value.body == b"go away"
            assert (b"x-why", b"no token") in refused.value.headers
            with pytest.raises(WebSocketHandshakeError) as refused:
                async with session.websocket(f"{url}/close"):
                    pass
            assert refused.value.status == 403
            with pytest.raises(WebSocketHandshakeError) as refused:
                async with session.websocket(f"{url}/fail"):
                    pass
            assert refused.value.status == 500
            async with session.websocket(f"{url}/echo") as ws:
                await ws.send("still serving")
                assert await ws.receive() == "still serving"


async def test_app_crash_after_accept_closes_1011(certs: Certs) -> None:
    server = ASGIServer(ws_apps.app, tls_config=certs.server)
    async with running(server) as bound:
        client = Client(tls_config=certs.client, protocol=ClientProtocol.HTTP2)
        async with (
            client.session() as session,
            session.websocket(f"wss://localhost:{bound.port}/crash") as ws,
        ):
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert closed.value.code == 1011


async def test_graceful_shutdown_closes_1001(certs: Certs) -> None:
    server = ASGIServer(ws_apps.app, tls_config=certs.server)
    ws_apps.disconnects.clear()
    async with trio.open_nursery() as nursery:
        (bound, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        client = Client(tls_config=certs.client, protocol=ClientProtocol.HTTP2)
        async with client.session() as session, session.websocket(f"wss://localhost:{bound.port}/echo") as ws:
            await ws.send("x")
            assert await ws.receive() == "x"
            server.shutdown()
            with trio.fail_after(5), pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert closed.value.code == 1001
    assert [d["code"] for d in ws_apps.disconnects if d["path"] == "/echo"] == [1001]


# -- hostile input over raw HTTP/1.1 --------------------------------------------


async def still_serving(port: int) -> None:
    raw, head = await raw_handshake(port)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    await raw.stream.send_all(frame(1, b"alive"))
    assert await raw.read_frame() == (1, b"alive")
    await raw.stream.aclose()


@pytest.mark.parametrize(
    ("name", "frames", "code"),
    [
        ("unmasked", [frame(2, b"abc", mask=False)], 1002),
        ("invalid utf-8", [frame(1, b"\xff\xfe")], 1007),
        ("oversized", [frame(2, b"x" * 2000)], 1009),
        (
            "fragmented forever",
            [frame(2, b"y" * 300, fin=False)] + [frame(0, b"y" * 300, fin=False)] * 10,
            1009,
        ),
        ("reserved opcode", [frame(3, b"")], 1002),
        ("continuation first", [frame(0, b"z")], 1002),
        ("long ping", [frame(9, b"p" * 200)], 1002),
    ],
)
async def test_bad_frames_get_their_close_code(name: str, frames: list[bytes], code: int) -> None:
    server = ASGIServer(ws_apps.app, websocket_config=WebSocketConfig(max_message_size=1024, close_timeout=2))
    async with running(server, "http://127.0.0.1:0") as bound:
        raw, head = await raw_handshake(bound.port)
        assert head.startswith(b"HTTP/1.1 101 ")
        for piece in frames:
            await raw.stream.send_all(piece)
        with trio.fail_after(5):
            assert await raw.read_close() == code
            # The server then closes the connection.
            while await raw.stream.receive_some():
                pass
        await raw.stream.aclose()
        await still_serving(bound.port)


@pytest.mark.parametrize(
    ("key", "status"),
    [(b"short", b"400"), (b"not base64 at all!!!!!!!", b"400"), (b"AAAAAAAAAAAAAAAAAAAAAAA=", b"400")],
)
async def test_bad_key_gets_400(key: bytes, status: bytes) -> None:
    server = ASGIServer(ws_apps.app)
    async with running(server, "http://127.0.0.1:0") as bound:
        raw, head = await raw_handshake(bound.port, key=key)
        assert head.split(b" ")[1] == status
        await raw.stream.aclose()
        await still_serving(bound.port)


async def test_wrong_version_gets_426() -> None:
    server = ASGIServer(ws_apps.app)
    async with running(server, "http://127.0.0.1:0") as bound:
        stream = await trio.open_tcp_stream("127.0.0.1", bound.port)
        await stream.send_all(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head = await RawWebSocket(stream).read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 426 ") and b"sec-websocket-version: 13" in head.lower()
        await stream.aclose()
        await still_serving(bound.port)


async def test_deflate_bomb_closes_1009() -> None:
    """A small compressed frame that inflates past the limit is refused before it is inflated."""
    import zlib

    server = ASGIServer(ws_apps.app, websocket_config=WebSocketConfig(max_message_size=64 * 1024))
    async with running(server, "http://127.0.0.1:0") as bound:
        stream = await trio.open_tcp_stream("127.0.0.1", bound.port)
        await stream.send_all(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        )
        raw = RawWebSocket(stream)
        head = await raw.read_until(b"\r\n\r\n")
        assert b"permessage-deflate" in head.lower()
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = compressor.compress(b"\0" * (64 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        bomb = bomb[:-4]
        assert len(bomb) < 100_000
        masked = bytearray(frame(2, bomb))
        masked[0] |= 0x40  # RSV1: compressed
        await stream.send_all(bytes(masked))
        with trio.fail_after(10):
            assert await raw.read_close() == 1009
        await stream.aclose()
        await still_serving(bound.port)


# -- extended CONNECT on HTTP/2 -------------------------------------------------


async def test_extended_connect_refused_when_not_enabled(certs: Certs) -> None:
    """Without SETTINGS_ENABLE_CONNECT_PROTOCOL a :protocol request is malformed (reset), and our client
    falls back to HTTP/1.1."""
    server = ASGIServer(
        ws_apps.app, tls_config=certs.server, http2_factory=HTTP2ServerFactory(enable_connect_protocol=False)
    )
    async with running(server) as bound:
        context = ssl_context(certs)
        context.set_alpn_protocols(["h2"])
        tcp = await trio.open_tcp_stream("127.0.0.1", bound.port)
        stream = trio.SSLStream(tcp, context, server_hostname="localhost")
        await stream.do_handshake()
        h2conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, validate_outbound_headers=False)
        )
        h2conn.initiate_connection()
        h2conn.send_headers(
            1,
            [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "https"),
                (":authority", "localhost"),
                (":path", "/echo"),
                ("sec-websocket-version", "13"),
            ],
        )
        await stream.send_all(h2conn.data_to_send())
        reset = None
        with trio.fail_after(5):
            while reset is None:
                data = await stream.receive_some()
                assert data
                for event in h2conn.receive_data(data):
                    if isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                        reset = event
                    elif isinstance(event, h2.events.RemoteSettingsChanged):
                        setting = event.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                        assert setting is None or setting.new_value == 0
                await stream.send_all(h2conn.data_to_send())
        assert isinstance(reset, h2.events.StreamReset)
        await stream.aclose()
        client = Client(tls_config=certs.client)
        async with client.session() as session, session.websocket(f"wss://localhost:{bound.port}/echo") as ws:
            assert ws.http_version == "1.1"
            await ws.send(b"fallback")
            assert await ws.receive() == b"fallback"


async def test_cli_client_like_websocat(certs: Certs) -> None:
    """``trio-hface client wss://...`` sends each line of stdin and prints each message, over HTTP/1.1 and HTTP/2."""
    from tests.peers import OUR_ENV

    server = ASGIServer(ws_apps.app, tls_config=certs.server)
    async with running(server) as bound:
        for flag, version in (("--http1", "1.1"), ("--http2", "2")):
            url = f"wss://localhost:{bound.port}"
            # Each line goes in once the previous one came back: the server may
            # answer our close before echoing what came just before it (RFC 6455
            # section 5.5.1), so a whole stdin at once could lose the last echo.
            command = [
                sys.executable,
                "-m",
                "trio_hface",
                "client",
                flag,
                "--cacert",
                certs.cafile,
                f"{url}/echo",
            ]
            process = await trio.lowlevel.open_process(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=OUR_ENV
            )
            try:
                with trio.fail_after(30):
                    assert (
                        process.stdin is not None
                        and process.stdout is not None
                        and process.stderr is not None
                    )
                    printed = b""
                    for line in (b"hello\n", "wörld\n".encode()):
                        await process.stdin.send_all(line)
                        expected = printed + line
                        while len(printed) < len(expected):
                            chunk = await process.stdout.receive_some()
                            assert chunk, (version, printed)
                            printed += chunk
                        assert printed == expected, version
                    await process.stdin.aclose()
                    assert await process.stdout.receive_some() == b"", version
                    errors = b""
                    while chunk := await process.stderr.receive_some():
                        errors += chunk
                    assert await process.wait() == 0, errors.decode()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                for pipe in (process.stdin, process.stdout, process.stderr):
                    if pipe is not None:
                        await pipe.aclose()
            result = await trio.run_process(
                [sys.executable, "-m", "trio_hface", "client", flag, "--cacert", certs.cafile, f"{url}/bye"],
                stdin=b"",
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=OUR_ENV,
            )
            assert result.returncode == 1 and b"4000" in result.stderr
