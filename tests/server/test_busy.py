"""New connections are served while another connection keeps many streams busy."""

from __future__ import annotations

import ssl
from collections.abc import MutableMapping
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import trio

from tests.conftest import Certs
from trio_hface import client as hface_client
from trio_hface.server import ASGIServer

#: Streams the busy connection keeps running (our HTTP/2 server's
#: MAX_CONCURRENT_STREAMS).
BUSY_STREAMS = 100

#: Connections that arrive together while the busy one runs.
NEWCOMERS = 40

#: What each busy stream sends, over and over, until its client goes away.
CHUNK = b"x" * 1024


async def busy_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """``/busy`` streams a body without end; anything else gets a short answer."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/busy":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:  # ends when the client disconnects (send raises)
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]})
    await send({"type": "http.response.body", "body": b"hello "})


class Rounds(trio.abc.Instrument):
    """Counts the scheduler's rounds (one I/O check each, then a batch of task steps)."""

    def __init__(self) -> None:
        self.count = 0

    def before_io_wait(self, timeout: float) -> None:
        self.count += 1


async def run_busy_connection(
    certs: Certs, port: int, running: trio.Event, received: list[int], *, task_status: trio.TaskStatus[None]
) -> None:
    """One HTTP/2 connection with BUSY_STREAMS streams of /busy, read (and credited) as fast as they come."""
    context = ssl.create_default_context(cafile=certs.cafile)
    context.set_alpn_protocols(["h2"])
    stream = trio.SSLStream(
        await trio.open_tcp_stream("127.0.0.1", port), context, server_hostname="localhost"
    )
    peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    # Windows wide enough that the streams send without waiting for credit.
    window = 1 << 20
    peer.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
    )
    peer.initiate_connection()
    peer.increment_flow_control_window(BUSY_STREAMS * window)
    request = [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", "/busy")]
    for n in range(BUSY_STREAMS):
        peer.send_headers(2 * n + 1, request, end_stream=True)
    task_status.started()
    streaming: set[int] = set()
    try:
        while True:
            await stream.send_all(peer.data_to_send())
            data = await stream.receive_some()
            assert data, "the server closed the busy connection"
            for event in peer.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    assert event.stream_id is not None
                    peer.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
                    received[0] += len(event.data or b"")
                    streaming.add(event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    raise AssertionError(f"busy stream {event.stream_id} ended")
            if len(streaming) == BUSY_STREAMS:
                running.set()
    finally:
        await trio.aclose_forcefully(stream)


async def test_new_connections_are_served_while_a_connection_has_100_busy_streams(certs: Certs) -> None:
    """While one connection's 100 streams stream without pause, 40 connections arriving at
    once all shake hands and get an answer within a bounded number of scheduling rounds, not
    one after the other (accepting and handshaking do not starve behind request work)."""
    server = ASGIServer(busy_app, tls_config=certs.server)
    rounds = Rounds()
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        running = trio.Event()
        received = [0]  # bytes the busy streams delivered
        busy = trio.CancelScope()

        async def busy_connection(task_status: trio.TaskStatus[None]) -> None:
            with busy:
                await run_busy_connection(certs, endpoint.port, running, received, task_status=task_status)

        with trio.fail_after(30):
            await nursery.start(busy_connection)
            await running.wait()  # every busy stream is sending

            served: list[int] = []

            async def newcomer() -> None:
                client = hface_client.Client(
                    tls_config=certs.client, protocol=hface_client.ClientProtocol.HTTP2
                )
                async with client.session() as session:
                    url = f"https://127.0.0.1:{endpoint.port}/"  # no name to resolve in a thread
                    response = await session.dispatch(hface_client.Request("GET", url))
                assert response.content == b"hello "
                served.append(rounds.count)

            trio.lowlevel.add_instrument(rounds)
            try:
                start, before = trio.current_time(), received[0]
                async with trio.open_nursery() as newcomers:
                    for _ in range(NEWCOMERS):
                        newcomers.start_soon(newcomer)
                elapsed, during = trio.current_time() - start, received[0] - before
            finally:
                trio.lowlevel.remove_instrument(rounds)
        # Each newcomer needs a few dozen rounds (TCP and TLS handshakes, the
        # HTTP/2 prefaces, the request), and they all need them at once: 45
        # here. Accepted one at a time, the last waits for the others' turns
        # too (three rounds each with a connection limit): 160 here. Rounds,
        # not seconds, because a round lasts as long as the busy streams' work
        # takes (half a second with 10,000 of them), which this machine sets.
        detail = f"{served} after {elapsed:.2f} s"
        assert served[-1] <= 2 * NEWCOMERS, f"newcomers served only after scheduling rounds {detail}"
        assert during >= BUSY_STREAMS * len(CHUNK), f"the busy streams stood still ({during} bytes)"
        busy.cancel()
        server.shutdown()
