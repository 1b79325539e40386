"""Real HTTP/1.1 and HTTP/2 peers that we did not write: nghttp, h2load, nghttpd."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import trio

from tests.conftest import Certs
from tests.handlers import hello_handler
from tests.helpers import require_tool
from tests.peers import NGHTTPD_LISTENING, running_peer
from trio_hface.connections import HTTPOverTCPListener, HTTPOverTCPOpener
from trio_hface.events import DataReceived, HeadersReceived
from trio_hface.protocols import ALPNHTTPFactory
from trio_hface.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory

ALL_TCP = ALPNHTTPFactory([HTTP2ServerFactory(), HTTP1ServerFactory()])


async def serve(nursery: trio.Nursery, certs: Certs) -> tuple[HTTPOverTCPListener, int]:
    listener = await HTTPOverTCPListener.create(
        ALL_TCP, local_address=("127.0.0.1", 0), tls_config=certs.server
    )
    addresses = await nursery.start(listener.serve, hello_handler)
    return listener, addresses[0][1]


async def test_nghttp_against_listener(certs: Certs, tmp_path: Path) -> None:
    """nghttp (HTTP/2 over TLS with ALPN) posts a body and gets its digest back."""
    nghttp = require_tool("nghttp")
    body = tmp_path / "body"
    body.write_bytes(b"nghttp body " * 10000)
    async with trio.open_nursery() as nursery:
        listener, port = await serve(nursery, certs)
        with trio.fail_after(30):
            result = await trio.run_process(
                [
                    nghttp,
                    "-d",
                    str(body),
                    f"https://127.0.0.1:{port}/upload",
                    f"https://127.0.0.1:{port}/two",
                ],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        assert result.returncode == 0, result.stderr
        assert hashlib.sha256(body.read_bytes()).hexdigest() in result.stdout.decode()
        await listener.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("h1", [False, True], ids=["h2", "http1.1"])
async def test_h2load_bounded_run(certs: Certs, h1: bool) -> None:
    """h2load sends 2000 requests over 4 connections (10 streams each for HTTP/2): none fails."""
    h2load = require_tool("h2load")
    async with trio.open_nursery() as nursery:
        listener, port = await serve(nursery, certs)
        args = [h2load, "-n", "2000", "-c", "4", "-m", "10", "-T", "30", "-N", "30"]
        if h1:
            args.append("--h1")
        with trio.fail_after(60):
            result = await trio.run_process(
                [*args, f"https://127.0.0.1:{port}/"], capture_stdout=True, capture_stderr=True, check=False
            )
        out = result.stdout.decode()
        assert result.returncode == 0, out + result.stderr.decode()
        match = re.search(
            r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", out
        )
        assert match, out
        assert match.groups() == ("2000", "2000", "2000", "2000", "0"), out
        assert f"Application protocol: {'http/1.1' if h1 else 'h2'}" in out
        await listener.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("tls", "h2_only"), [(True, False), (True, True), (False, False)], ids=["h2-tls", "h2-only-alpn", "h2c"]
)
async def test_opener_against_nghttpd(certs: Certs, tmp_path: Path, tls: bool, h2_only: bool) -> None:
    """Our HTTP/2 opener (also an HTTP/2-only ALPN factory) fetches a 1 MiB file from nghttpd intact, with and without TLS."""
    nghttpd = require_tool("nghttpd")
    content = bytes(range(256)) * 4096
    (tmp_path / "file.bin").write_bytes(content)

    def command(port: int) -> list[str]:
        args = [nghttpd, "-v", "-d", str(tmp_path), "--address", "127.0.0.1", str(port)]
        return args + ([certs.keyfile, certs.certfile] if tls else ["--no-tls"])

    async with running_peer(command, ready=NGHTTPD_LISTENING) as peer:
        port = peer.port
        factory = (
            ALPNHTTPFactory(
                [HTTP2ClientFactory()] if h2_only else [HTTP2ClientFactory(), HTTP1ClientFactory()]
            )
            if tls
            else HTTP2ClientFactory()
        )
        opener = HTTPOverTCPOpener(factory, tls_config=certs.client)
        async with await opener(("127.0.0.1", port), tls=tls, server_name="localhost") as connection:
            assert connection.http_version == "2"
            sid = connection.get_available_stream_id()
            scheme = b"https" if tls else b"http"
            headers = [
                (b":method", b"GET"),
                (b":scheme", scheme),
                (b":authority", b"localhost"),
                (b":path", b"/file.bin"),
            ]
            await connection.send_headers(sid, headers, end_stream=True)
            data = bytearray()
            status = None
            with trio.fail_after(30):
                while True:
                    event = await connection.receive_event()
                    if isinstance(event, HeadersReceived):
                        status = dict(event.headers).get(b":status", status)
                    elif isinstance(event, DataReceived):
                        data += event.data
                    else:
                        raise AssertionError(f"unexpected {event!r}")
                    if getattr(event, "end_stream", False):
                        break
            assert status == b"200"
            assert hashlib.sha256(data).digest() == hashlib.sha256(content).digest()
