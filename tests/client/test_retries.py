"""Requests the server did not process are sent again; others are not.

The server here is scripted with h2 directly, so that it refuses exactly the
streams a test names, the way a server in a graceful restart does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial

import h2.config
import h2.connection
import h2.errors
import h2.events
import hyperframe.frame
import pytest
import trio
import trio.testing

from trio_hface.client import Client, ClientProtocol, Request
from trio_hface.errors import ConnectionLost, RequestRefused, StreamResetError


@dataclass
class ScriptedServer:
    """HTTP/2 over cleartext TCP; echoes request bodies, refusing as told.

    *goaway_after*: on the first connection, once this many requests have
    arrived, send GOAWAY naming the lowest of them as the last stream, answer
    it and close. *refuse*: how many requests in all get RST_STREAM
    REFUSED_STREAM instead of an answer.
    """

    goaway_after: int = 0
    refuse: int = 0
    #: (connection number, stream ID, body) of each request that arrived complete.
    seen: list[tuple[int, int, bytes]] = field(default_factory=list)
    connections: int = 0

    async def serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        number = self.connections
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        bodies: dict[int, bytes] = {}
        complete: list[int] = []
        async with stream:
            await stream.send_all(conn.data_to_send())
            while True:
                data = await stream.receive_some()
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        bodies[event.stream_id] = b""
                    elif isinstance(event, h2.events.DataReceived):
                        bodies[event.stream_id] += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    if isinstance(event, h2.events.StreamEnded):
                        complete.append(event.stream_id)
                        self.seen.append((number, event.stream_id, bodies[event.stream_id]))
                await stream.send_all(conn.data_to_send())
                if number == 1 and self.goaway_after:
                    if len(complete) < self.goaway_after:
                        continue
                    first = min(complete)  # the lowest stream: GOAWAY refuses those above it
                    goaway = hyperframe.frame.GoAwayFrame(0)  # h2 would refuse to answer after its own
                    goaway.last_stream_id = first
                    self._answer(conn, first, bodies[first])
                    await stream.send_all(goaway.serialize() + conn.data_to_send())
                    return  # the other streams were never processed
                for stream_id in complete:
                    if self.refuse:
                        self.refuse -= 1
                        conn.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                    else:
                        self._answer(conn, stream_id, bodies[stream_id])
                complete.clear()
                await stream.send_all(conn.data_to_send())

    @staticmethod
    def _answer(conn: h2.connection.H2Connection, stream_id: int, body: bytes) -> None:
        conn.send_headers(stream_id, [(":status", "200"), ("content-length", str(len(body)))])
        conn.send_data(stream_id, body, end_stream=True)


async def serving(nursery: trio.Nursery, server: ScriptedServer) -> str:
    listeners = await nursery.start(partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"


async def test_streams_left_out_by_goaway_are_sent_again_on_a_new_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two POSTs in flight; GOAWAY names the first: the second goes again on a new connection."""
    server = ScriptedServer(goaway_after=2)
    async with trio.open_nursery() as nursery:
        url = await serving(nursery, server)
        async with Client(protocol=ClientProtocol.HTTP2).session() as session:
            answers: dict[bytes, bytes] = {}

            async def post(body: bytes) -> None:
                answers[body] = (await session.dispatch(Request("POST", url, content=body))).content

            with trio.fail_after(10):
                async with trio.open_nursery() as requests:
                    requests.start_soon(post, b"one")
                    requests.start_soon(post, b"two")
        nursery.cancel_scope.cancel()
    assert answers == {b"one": b"one", b"two": b"two"}  # POST, yet resent: it was not processed
    assert server.connections == 2
    assert sorted(body for number, _, body in server.seen if number == 2) in ([b"one"], [b"two"])


async def test_refused_stream_is_sent_again_up_to_a_limit(autojump_clock: trio.testing.MockClock) -> None:
    """REFUSED_STREAM twice, then an answer; refused three times, RequestRefused."""
    server = ScriptedServer(refuse=2)
    async with trio.open_nursery() as nursery:
        url = await serving(nursery, server)
        async with Client(protocol=ClientProtocol.HTTP2).session() as session:
            with trio.fail_after(10):
                response = await session.dispatch(Request("POST", url, content=b"third time"))
                assert response.content == b"third time"
                assert [stream_id for _, stream_id, _ in server.seen] == [1, 3, 5]
                server.refuse = 3
                with pytest.raises(RequestRefused) as refused:
                    await session.dispatch(Request("POST", url, content=b"never"))
        nursery.cancel_scope.cancel()
    assert refused.value.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
    assert isinstance(refused.value, StreamResetError)
    assert server.refuse == 0 and len(server.seen) == 6


async def test_body_that_cannot_be_replayed_is_not_sent_again(autojump_clock: trio.testing.MockClock) -> None:
    """A streamed request body is gone once sent: a refusal reaches the caller at once."""
    server = ScriptedServer(refuse=1)

    async def body() -> AsyncIterator[bytes]:
        yield b"streamed"

    async with trio.open_nursery() as nursery:
        url = await serving(nursery, server)
        async with Client(protocol=ClientProtocol.HTTP2).session() as session:
            with trio.fail_after(10), pytest.raises(RequestRefused):
                await session.dispatch(Request("POST", url, content=body()))
        nursery.cancel_scope.cancel()
    assert len(server.seen) == 1


async def test_requests_below_goaway_that_the_server_drops_fail_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """GOAWAY names stream 3, the server closes without answering stream 1: its POST is not
    retried (it may have been processed), and the caller learns it when the connection ends,
    not when some keep-alive timer runs out."""

    async def serve(stream: trio.SocketStream) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        ended: list[int] = []
        async with stream:
            await stream.send_all(conn.data_to_send())
            while len(ended) < 2:
                data = await stream.receive_some()
                if not data:
                    return
                ended += [
                    e.stream_id for e in conn.receive_data(data) if isinstance(e, h2.events.StreamEnded)
                ]
                await stream.send_all(conn.data_to_send())
            goaway = hyperframe.frame.GoAwayFrame(0)
            goaway.last_stream_id = 3
            ScriptedServer._answer(conn, 3, b"three")
            await stream.send_all(goaway.serialize() + conn.data_to_send())

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"
        client = Client(protocol=ClientProtocol.HTTP2, keepalive_interval=60)
        outcomes: dict[bytes, object] = {}
        async with client.session() as session:

            async def post(body: bytes) -> None:
                try:
                    outcomes[body] = (await session.dispatch(Request("POST", url, content=body))).content
                except ConnectionLost as exc:
                    outcomes[body] = exc

            with trio.fail_after(10):
                async with trio.open_nursery() as requests:
                    requests.start_soon(post, b"one")
                    await trio.sleep(0.1)  # stream 1 first
                    requests.start_soon(post, b"three")
        nursery.cancel_scope.cancel()
    assert outcomes[b"three"] == b"three"
    assert isinstance(outcomes[b"one"], ConnectionLost)
