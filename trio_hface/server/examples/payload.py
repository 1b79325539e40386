"""An ASGI application that answers with as many bytes as the path asks for: ``GET /1048576``.

Made for measuring bulk transfer (the benchmark in ``bench/`` serves its 1 MiB responses and
its large downloads with it). The first path segment is the body size in bytes; without one,
the body is 1 MiB. Anything after the first segment (``/1048576/7``) is ignored, so that
clients which name their downloads after the path can tell the responses apart.
"""

from __future__ import annotations

from ._asgi import Receive, Scope, Send, lifespan

#: The body size when the path names none: 1 MiB.
DEFAULT_SIZE = 1024 * 1024
#: The largest body the application agrees to send (1 GiB): a bound on how long one request runs.
MAX_SIZE = 1024 * 1024 * 1024
#: The body goes out in pieces of this size, each the same shared block (or a slice of it).
PIECE = 1024 * 1024
_BLOCK = b"x" * PIECE


def body_size(path: str) -> int | None:
    """The size *path* asks for, or ``None`` if it asks for none that is allowed."""
    segment = path.lstrip("/").split("/", 1)[0]
    if not segment:
        return DEFAULT_SIZE
    if not segment.isdigit() or int(segment) > MAX_SIZE:
        return None
    return int(segment)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer with ``x`` repeated as many times as the path asks (404 for a path that is no size)."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    if scope["type"] != "http":
        return
    size = body_size(scope["path"])
    if size is None:
        message = f"the path must be a size in bytes, at most {MAX_SIZE}\n".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(message))],
            }
        )
        await send({"type": "http.response.body", "body": message})
        return
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", b"%d" % size)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    while size > PIECE:
        await send({"type": "http.response.body", "body": _BLOCK, "more_body": True})
        size -= PIECE
    await send({"type": "http.response.body", "body": _BLOCK[:size]})
