"""Stop a listener gracefully: no new connections, running ones get a grace period."""

import functools

import trio

from trio_hface.connections import Handler, HTTPListener


async def serve_until(
    listener: HTTPListener, handler: Handler, stop: trio.Event, grace: float = 30
) -> None:
    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as connections:
            await nursery.start(
                functools.partial(listener.serve, handler, handler_nursery=connections)
            )
            await stop.wait()  # a trio.Event set when the server should stop
            await listener.aclose()
            connections.cancel_scope.deadline = trio.current_time() + grace
        nursery.cancel_scope.cancel()  # every connection has ended: stop serving
