"""A WebSocket echo server and its client over HTTP/1.1, HTTP/2 and HTTP/3, in one
process.

Run it as ``python examples/websocket.py``: it prints one line per HTTP version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio
import trustme

from trio_hface import ClientTLSConfig, ServerTLSConfig
from trio_hface.client import Client, ClientProtocol
from trio_hface.server import ASGIServer

Message = MutableMapping[str, Any]


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """An ASGI application: echo each WebSocket message after the HTTP version."""
    if scope["type"] != "websocket":
        return  # (no lifespan or plain HTTP in this example)
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        reply = f"HTTP/{scope['http_version']}: {message.get('text')}"
        await send({"type": "websocket.send", "text": reply})


async def main() -> None:
    # A throwaway certificate authority, so that wss:// works without files.
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    with (
        cert.private_key_and_cert_chain_pem.tempfile() as pem,
        ca.cert_pem.tempfile() as cafile,
    ):
        server = ASGIServer(app, tls_config=ServerTLSConfig(certfile=pem, keyfile=pem))
        async with trio.open_nursery() as nursery:
            (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
            url = f"wss://localhost:{endpoint.port}/echo"
            for protocol in (
                ClientProtocol.HTTP1,
                ClientProtocol.HTTP2,
                ClientProtocol.HTTP3,
            ):
                client = Client(
                    tls_config=ClientTLSConfig(cafile=cafile), protocol=protocol
                )
                async with client.session() as session, session.websocket(url) as ws:
                    await ws.send("echo")
                    print(await ws.receive())
            server.shutdown()


if __name__ == "__main__":
    trio.run(main)
