"""HEAD: the response has a content-length and no content (RFC 9110 section 9.3.2), on every version."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
import trio

from tests.conftest import Certs
from trio_hface.client import Client, ClientProtocol, Request
from trio_hface.server import ASGIServer


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """Answers as for GET: a content-length and the body (the server must drop it for HEAD)."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"11")]})
    await send({"type": "http.response.body", "body": b"hello world"})


@pytest.mark.parametrize("protocol", [ClientProtocol.HTTP1, ClientProtocol.HTTP2, ClientProtocol.HTTP3])
async def test_head_has_a_length_and_no_content(certs: Certs, protocol: ClientProtocol) -> None:
    """Our server sends no body for HEAD, and our client accepts a content-length without one."""
    server = ASGIServer(app, tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        url = f"https://localhost:{endpoint.port}/"
        async with Client(tls_config=certs.client, protocol=protocol).session() as session:
            with trio.fail_after(30):
                head = await session.dispatch(Request("HEAD", url))
                get = await session.dispatch(Request("GET", url))
        server.shutdown()
    assert (head.status, head.content, dict(head.headers)[b"content-length"]) == (200, b"", b"11")
    assert get.content == b"hello world"
