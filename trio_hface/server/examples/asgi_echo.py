"""An ASGI application that describes the request it got: the scope as JSON, and the body's digest.

``POST /echo`` streams the request body back instead, chunk by chunk.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._asgi import Receive, Scope, Send, lifespan


def describe(scope: Scope) -> dict[str, Any]:
    """The JSON-friendly part of an ``http`` scope."""
    return {
        "type": scope["type"],
        "http_version": scope["http_version"],
        "method": scope["method"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope["root_path"],
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        "client": scope["client"],
        "server": scope["server"],
    }


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Describe the request, or echo its body on ``POST /echo``."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    if scope["type"] != "http":
        return
    if scope["method"] == "POST" and scope["path"] == "/echo":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            await send(
                {
                    "type": "http.response.body",
                    "body": message.get("body", b""),
                    "more_body": message.get("more_body", False),
                }
            )
            if not message.get("more_body", False):
                return
    digest = hashlib.sha256()
    length = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        digest.update(chunk)
        length += len(chunk)
        if not message.get("more_body", False):
            break
    body = json.dumps(
        {"scope": describe(scope), "body_length": length, "body_sha256": digest.hexdigest()}, indent=2
    )
    data = body.encode() + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))],
        }
    )
    await send({"type": "http.response.body", "body": data})
