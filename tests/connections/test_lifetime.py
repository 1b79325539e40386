"""Entering and leaving ``async with connection``: what a failed or cancelled entry leaves behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from trio_hface.connections import HTTPOverTCPConnection
from trio_hface.protocols import HTTPOverTCPProtocol
from trio_hface.protocols.http1 import HTTP1ClientFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory

EXTRA = {"local_address": ("mem", 0), "remote_address": ("mem", 1)}

#: Seconds after which the test frees a connection that a hanging entry left running.
RESCUE_AFTER = 100.0


def client_connection(version: str) -> tuple[HTTPOverTCPConnection, trio.testing.MemoryReceiveStream]:
    left, right = trio.testing.memory_stream_pair()
    protocol: HTTPOverTCPProtocol = HTTP2ClientFactory()() if version == "2" else HTTP1ClientFactory()()
    return HTTPOverTCPConnection(protocol, left, EXTRA), right.receive_stream


@asynccontextmanager
async def rescued(connection: HTTPOverTCPConnection) -> AsyncIterator[None]:
    """Close *connection* after RESCUE_AFTER seconds, so that a hanging entry makes the test fail, not hang."""
    async with trio.open_nursery() as nursery:

        async def rescue() -> None:
            await trio.sleep(RESCUE_AFTER)
            await connection.aclose()

        nursery.start_soon(rescue)
        yield
        nursery.cancel_scope.cancel()


async def enter_cancelled(connection: HTTPOverTCPConnection) -> bool:
    """Enter *connection* in a cancelled scope; whether the body ran."""
    entered = False
    with trio.CancelScope() as scope:
        scope.cancel()
        async with connection:
            entered = True
    return entered


@pytest.mark.parametrize("version", ["1", "2"])
async def test_cancelled_entry_leaves_no_task_behind(
    version: str, autojump_clock: trio.testing.MockClock
) -> None:
    """A cancellation that meets `async with connection` on its way in stops the reader and writer at once."""
    connection, _peer = client_connection(version)
    async with rescued(connection):
        assert not await enter_cancelled(connection)
        assert trio.current_time() < RESCUE_AFTER, "the connection's tasks outlived the cancelled entry"


async def test_cancelled_entry_closes_the_connection(autojump_clock: trio.testing.MockClock) -> None:
    """After a cancelled entry the connection is closed: using it raises, closing it again is at once."""
    connection, _peer = client_connection("2")
    async with rescued(connection):
        await enter_cancelled(connection)
        assert trio.current_time() < RESCUE_AFTER, "the connection's tasks outlived the cancelled entry"
    with pytest.raises(trio.ClosedResourceError):
        await connection.send_headers(1, [(b":method", b"GET")])
    start = trio.current_time()
    await connection.aclose()
    assert trio.current_time() == start
