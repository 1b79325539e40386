"""The client the httpx way: get/post, params, json, raise_for_status, redirects, hooks.

Run it as ``python examples/client_api.py``: it serves a small application on
a throwaway certificate and asks it over HTTP/1.1, HTTP/2 and HTTP/3.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio
import trustme

from trio_hface import ClientTLSConfig, HTTPStatusError, ServerTLSConfig
from trio_hface.client import Client, ClientProtocol, Request
from trio_hface.server import ASGIServer

Message = MutableMapping[str, Any]


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """``/old`` redirects to ``/new``, ``/missing`` is 404; else the request in JSON."""
    if scope["type"] != "http":
        return  # (no lifespan in this example)
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status, headers, content = 200, [(b"content-type", b"application/json")], b""
    if scope["path"] == "/api/old":
        status, headers = 308, [(b"location", b"/api/new")]
    elif scope["path"] == "/api/missing":
        status = 404
    else:
        described = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
        }
        content = json.dumps({**described, "body": body.decode()}).encode()
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


async def log_request(request: Request) -> None:
    """An event hook: called with every request, redirects too, before it is sent."""
    print(f"  > {request.method} {request.parsed_url.target}")


async def main() -> None:
    ca = (
        trustme.CA()
    )  # a throwaway certificate authority, so that https works without files
    cert = ca.issue_cert("localhost")
    with (
        cert.private_key_and_cert_chain_pem.tempfile() as pem,
        ca.cert_pem.tempfile() as cafile,
    ):
        server = ASGIServer(app, tls_config=ServerTLSConfig(certfile=pem, keyfile=pem))
        async with trio.open_nursery() as nursery:
            (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
            for protocol in (
                ClientProtocol.HTTP1,
                ClientProtocol.HTTP2,
                ClientProtocol.HTTP3,
            ):
                client = Client(
                    tls_config=ClientTLSConfig(cafile=cafile),
                    protocol=protocol,
                    base_url=f"https://localhost:{endpoint.port}/api/",
                    follow_redirects=True,
                    event_hooks={"request": [log_request]},
                )
                async with client.session() as session:
                    response = await session.get(
                        "search", params={"q": "trio hface", "page": 2}
                    )
                    print(
                        f"HTTP/{response.http_version}",
                        response.raise_for_status().json(),
                    )
                    response = await session.post(
                        "old", json={"name": "trio"}
                    )  # 308 keeps the POST
                    print(
                        response.status,
                        response.fields["content-type"],
                        response.json()["body"],
                    )
                    try:
                        (await session.get("missing")).raise_for_status()
                    except HTTPStatusError as exc:
                        print("error:", exc.status, exc.response.reason_phrase)
            server.shutdown()


if __name__ == "__main__":
    trio.run(main)
