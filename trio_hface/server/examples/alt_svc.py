"""An ASGI application that advertises HTTP/3 itself, with an ``Alt-Svc`` header.

The server adds ``Alt-Svc`` on its own when it serves HTTP/3; this shows how an
application can do it (for example when a proxy in front terminates QUIC elsewhere).
"""

from __future__ import annotations

from ._asgi import Receive, Scope, Send, lifespan


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer with the HTTP version and ``Alt-Svc: h3=":<port>"`` for the port the request came to."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    if scope["type"] != "http":
        return
    port = scope["server"][1] if scope.get("server") else 443
    body = f"HTTP/{scope['http_version']}; HTTP/3 is on UDP port {port}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                (b"alt-svc", b'h3=":%d"; ma=3600' % port),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
