"""Headless Chromium opens wss:// WebSockets from a page our server serves (HTTP/1.1, and HTTP/2 extended CONNECT).

Skipped when Chromium is not installed, except in CI (``bash .ci/install-peers`` installs it).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from typing import Any

import pytest
import trio

from tests.conftest import Certs
from tests.server.apps import Receive, Scope, Send
from tests.server.ws_helpers import running
from trio_hface.server import ASGIServer, ServerProtocol

PAGE = b"""<!doctype html><title>ws</title><script>
const ws = new WebSocket("wss://" + location.host + "/ws");
ws.onmessage = (event) => { ws.send("browser saw " + event.data); };
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed (bash .ci/install-peers installs it)")
    pytest.skip("chromium is not installed")


@pytest.mark.parametrize(
    ("protocol", "version"),
    [(ServerProtocol.HTTP1, "1.1"), (ServerProtocol.HTTP2, "2")],
    ids=["http1.1", "http2"],
)
async def test_chromium_page_opens_websocket(certs: Certs, protocol: ServerProtocol, version: str) -> None:
    browser = chromium()
    seen: list[tuple[str, Any]] = []
    done = trio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]}
            )
            await send({"type": "http.response.body", "body": PAGE})
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": scope["http_version"]})
            message = await receive()
            seen.append((scope["http_version"], message.get("text")))
            done.set()
            await receive()  # until the browser goes

    server = ASGIServer(app, tls_config=certs.server, protocol=protocol)
    async with running(server) as bound, trio.open_nursery() as nursery:
        argv = [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--ignore-certificate-errors",
            "--no-first-run",
            f"--user-data-dir={os.environ.get('TMPDIR', '/tmp')}/hface-chromium-{os.getpid()}-{version}",
            f"https://localhost:{bound.port}/",
        ]
        process = await nursery.start(
            functools.partial(
                trio.run_process, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
            )
        )
        try:
            with trio.fail_after(60):
                await done.wait()
        finally:
            process.kill()
    assert seen == [(version, f"browser saw {version}")]
