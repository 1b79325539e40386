"""The ASGI lifespan protocol: the application's startup and shutdown around serving."""

from __future__ import annotations

import logging
from typing import Any

import trio

from ..errors import StartupFailed
from ._asgi import ASGIApp

__all__ = ["LIFESPAN_TIMEOUT", "Lifespan"]

log = logging.getLogger("trio_hface.server._server")

#: Seconds the lifespan startup and shutdown may take.
LIFESPAN_TIMEOUT = 30.0


class Lifespan:
    """The ASGI lifespan protocol, if the application supports it."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._to_app_send, self._to_app = trio.open_memory_channel[dict[str, Any]](1)
        self._from_app_send, self._from_app = trio.open_memory_channel[dict[str, Any]](1)
        self._supported = False
        self._done = trio.Event()
        # The app's lifespan task outlives a cancellation of the server, so
        # that it can still run its shutdown; shutdown() then stops it, and
        # end_by() gives the shield its deadline once the server shuts down.
        self._scope = trio.CancelScope(shield=True)
        self.state: dict[str, Any] = {}

    async def startup(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._run)
        await self._to_app_send.send({"type": "lifespan.startup"})
        with trio.fail_after(LIFESPAN_TIMEOUT):
            message = await self._from_app.receive()
        if message["type"] == "lifespan.startup.failed":
            self._scope.cancel()  # no shutdown follows: the app's task ends now
            raise StartupFailed(f"the application's startup failed: {message.get('message', '')}")
        self._supported = message["type"] == "lifespan.startup.complete"

    def end_by(self, deadline: float) -> None:
        """The app's lifespan task ends by *deadline* at the latest."""
        self._scope.deadline = min(self._scope.deadline, deadline)

    async def shutdown(self) -> None:
        try:
            if not self._supported or self._done.is_set():
                return
            await self._to_app_send.send({"type": "lifespan.shutdown"})
            with trio.move_on_after(LIFESPAN_TIMEOUT):
                async with trio.open_nursery() as waiter:
                    # The app answers, or its task ends without answering.
                    async def until_done() -> None:
                        await self._done.wait()
                        waiter.cancel_scope.cancel()

                    waiter.start_soon(until_done)
                    message = await self._from_app.receive()
                    waiter.cancel_scope.cancel()
                    if message["type"] == "lifespan.shutdown.failed":
                        log.error("the application's shutdown failed: %s", message.get("message", ""))
        finally:
            self._scope.cancel()

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}

        async def receive() -> dict[str, Any]:
            return await self._to_app.receive()

        async def send(message: Any) -> None:
            await self._from_app_send.send(dict(message))

        try:
            with self._scope:
                await self._app(scope, receive, send)
        except Exception as exc:
            # ASGI: an application that does not support lifespan raises; go on without it.
            log.debug("no lifespan support in the application: %r", exc)
        finally:
            if not self._supported:
                try:
                    self._from_app_send.send_nowait({"type": "lifespan.unsupported"})
                except trio.WouldBlock:
                    pass
            self._done.set()
