"""The ASGI server over HTTP/3 against hostile requests, over real loopback UDP sockets."""

from __future__ import annotations

import trio

from tests.conftest import Certs
from tests.server import apps
from trio_hface import client as hface_client
from trio_hface.server import ASGIServer


async def test_http3_request_with_huge_headers_gets_431(certs: Certs) -> None:
    """A request with 100 KiB of headers gets 431 over HTTP/3, and the connection serves the next request."""
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        base = f"https://localhost:{endpoint.port}"
        client = hface_client.Client(tls_config=certs.client, protocol=hface_client.ClientProtocol.HTTP3)
        huge = [(b"x-huge-%d" % n, b"\x01" * 4096) for n in range(25)]
        with trio.fail_after(30):
            async with client.session() as session:
                response = await session.dispatch(hface_client.Request("GET", f"{base}/", headers=huge))
                assert response.status == 431
                response = await session.dispatch(hface_client.Request("GET", f"{base}/"))
                assert response.status == 200 and response.content == b"hello "
                assert sum(len(c) for c in session.connections().values()) == 1
        server.shutdown()
