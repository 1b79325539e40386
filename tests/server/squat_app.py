"""The application of the squatting test's server process: ``/drip`` streams slowly, the rest says hello."""

from __future__ import annotations

from typing import Any

import trio

#: The pieces of ``/drip`` and the seconds between them (a response that
#: takes a few seconds, in flight while the squatters come).
DRIP_PIECES = 16
DRIP_INTERVAL = 0.5


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # no lifespan support needed
    if scope["path"] == "/drip":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(DRIP_PIECES):
            await send({"type": "http.response.body", "body": b"drip %d\n" % i, "more_body": True})
            await trio.sleep(DRIP_INTERVAL)
        await send({"type": "http.response.body", "body": b"done\n"})
    else:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})
