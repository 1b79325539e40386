"""``trio-hface client ws://...``: a WebSocket between standard input and standard output, like websocat.

Each line of standard input goes out as a text message; each message
received is printed (text as a line, binary as its bytes). At the end of
standard input the WebSocket closes (1000) once the server answers; a close
from the server ends the command, with status 0 for 1000 and 1001.
"""

from __future__ import annotations

import argparse
import sys

import trio

from .._typing import HeadersType
from ..client import Client
from ..errors import HFaceError, WebSocketClosed
from ._errors import CommandError
from ._server import find_exception

__all__ = ["is_websocket_url", "run_websocket"]


def is_websocket_url(url: str) -> bool:
    """Whether the command line asks for a WebSocket (``ws://`` or ``wss://``)."""
    return url.lower().startswith(("ws://", "wss://"))


def run_websocket(args: argparse.Namespace, client: Client, headers: HeadersType) -> int:
    """Run one WebSocket to ``args.urls[0]``; return the exit status."""
    if len(args.urls) != 1:
        raise CommandError("give one ws:// or wss:// URL, alone")
    url = args.urls[0]
    closed: list[WebSocketClosed] = []

    async def main() -> None:
        async with client.session() as session, session.websocket(url, headers=headers) as ws:
            async with trio.open_nursery() as nursery:

                async def send_lines() -> None:
                    async for line in trio.wrap_file(sys.stdin):
                        try:
                            await ws.send(line.rstrip("\n"))
                        except WebSocketClosed:
                            return
                    await ws.aclose()

                nursery.start_soon(send_lines)
                async for message in ws:
                    if isinstance(message, str):
                        sys.stdout.write(message + "\n")
                    else:
                        sys.stdout.buffer.write(message)
                    sys.stdout.flush()
                closed.append(WebSocketClosed(ws.close_code or 1006, ws.close_reason))
                nursery.cancel_scope.cancel()  # the server closed: standard input no longer matters

    try:
        trio.run(main)
    except BaseException as exc:
        if find_exception(exc, (KeyboardInterrupt,)) is not None:
            return 130
        problem = find_exception(exc, (HFaceError, OSError, trio.TooSlowError, ValueError))
        if problem is None:
            raise
        print(f"trio-hface client: {url}: {problem or type(problem).__name__}", file=sys.stderr)
        return 1
    if closed and closed[0].code not in (1000, 1001):
        print(f"trio-hface client: {url}: {closed[0]}", file=sys.stderr)
        return 1
    return 0
