"""The client against servers we did not write (hypercorn's trio worker, nghttpd) and against ours."""

from __future__ import annotations

import hashlib
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.conftest import Certs
from tests.helpers import require_tool
from tests.peers import NGHTTPD_LISTENING, Peer, refusing_port, running_peer
from tests.server import apps
from trio_hface.client import URL, Client, ClientProtocol, Origin, PoolTimeout, ReadTimeout, Request
from trio_hface.errors import ConnectError, HFaceError
from trio_hface.server import ASGIServer

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def hypercorn(certs: Certs, worker: str = "trio") -> AsyncIterator[int]:
    """Run hypercorn (its trio worker by default) with tests.server.apps on TCP and QUIC; yield its port.

    TCP and QUIC share one port number (HTTP/3 is dialled there directly), so
    it is picked, and picked again if hypercorn finds it taken.
    """

    def command(port: int) -> list[str]:
        return [
            *(sys.executable, "-m", "hypercorn", "--worker-class", worker),
            *("--certfile", certs.certfile, "--keyfile", certs.keyfile),
            *("--bind", f"127.0.0.1:{port}", "--quic-bind", f"127.0.0.1:{port}"),
            "tests.server.apps:app",
        ]

    ready = rb"Running on https://127\.0\.0\.1:\d+ \(QUIC\)"  # after the TCP line
    async with running_peer(command, ready=ready, cwd=ROOT) as peer:
        yield peer.port


def client_for(certs: Certs, protocol: ClientProtocol, **kwargs: object) -> Client:
    return Client(tls_config=certs.client, protocol=protocol, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", [ClientProtocol.HTTP1, ClientProtocol.HTTP2, ClientProtocol.HTTP3])
async def test_hypercorn_bodies_intact_both_ways(certs: Certs, protocol: ClientProtocol) -> None:
    """5 MiB up and echoed back from hypercorn, sha256 equal, on each HTTP version."""
    payload = bytes(range(256)) * (5 * 4096)
    async with hypercorn(certs) as port, client_for(certs, protocol).session() as session:
        with trio.fail_after(60):
            response = await session.dispatch(
                Request("POST", f"https://localhost:{port}/echo", content=payload)
            )
        assert response.status == 200
        assert response.http_version == {"http1": "1.1", "http2": "2", "http3": "3"}[protocol.value]
        assert hashlib.sha256(response.content).digest() == hashlib.sha256(payload).digest()


@pytest.mark.parametrize(
    ("protocol", "worker"),
    [
        (ClientProtocol.HTTP2, "trio"),
        # hypercorn 0.18's trio worker loses request bodies when 100 HTTP/3 streams
        # arrive at once (its QUIC layer acknowledges the data, its app never gets
        # the end of the body); its asyncio worker, on the same aioquic, does not.
        (ClientProtocol.HTTP3, "asyncio"),
    ],
)
async def test_hypercorn_hundred_concurrent_requests_one_connection(
    certs: Certs, protocol: ClientProtocol, worker: str
) -> None:
    """100 concurrent requests from many tasks share one HTTP/2 or HTTP/3 connection to hypercorn."""
    async with hypercorn(certs, worker) as port, client_for(certs, protocol).session() as session:
        results: dict[int, bytes] = {}

        async def one(n: int) -> None:
            response = await session.dispatch(
                Request("POST", f"https://localhost:{port}/", content=b"%d" % n)
            )
            results[n] = response.content

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for n in range(100):
                    nursery.start_soon(one, n)
        assert results == {n: b"hello %d" % n for n in range(100)}
        assert sum(len(v) for v in session.connections().values()) == 1


async def test_hypercorn_alt_svc_upgrade(certs: Certs) -> None:
    """After hypercorn advertises h3 with Alt-Svc, later requests go over HTTP/3."""
    async with hypercorn(certs) as port, client_for(certs, ClientProtocol.ALL).session() as session:
        url = f"https://localhost:{port}/"
        first = await session.dispatch(Request("GET", url))
        assert first.http_version == "2" and first.header(b"alt-svc") is not None
        second = await session.dispatch(Request("GET", url))
        assert second.http_version == "3"


async def test_alt_svc_falls_back_to_tcp(certs: Certs) -> None:
    """If the advertised HTTP/3 endpoint does not answer, the request goes over TCP after all."""

    async def lying_app(scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"alt-svc", b'h3=":%d"' % port)]}
        )  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    server = ASGIServer(lying_app, tls_config=certs.server, alt_svc=False)  # type: ignore[arg-type]
    with refusing_port(socket.SOCK_DGRAM) as port:  # nobody answers there over UDP
        async with trio.open_nursery() as nursery:
            (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
            client = Client(tls_config=certs.client, protocol=ClientProtocol.ALL)
            async with client.session() as session:
                url = f"https://localhost:{endpoint.port}/"
                assert (await session.dispatch(Request("GET", url))).http_version == "2"
                with trio.fail_after(30):
                    again = await session.dispatch(Request("GET", url))
                assert again.http_version == "2" and again.content == b"ok"
            server.shutdown()


async def test_gtlsserver_hundred_concurrent_requests(certs: Certs, tmp_path: Path) -> None:
    """100 concurrent GETs share one HTTP/3 connection to gtlsserver (ngtcp2), bodies intact."""
    gtlsserver = require_tool("gtlsserver")
    content = bytes(range(256)) * 400
    await trio.Path(tmp_path / "f.bin").write_bytes(content)
    client = client_for(certs, ClientProtocol.HTTP3, connect_timeout=0.5)

    def command(port: int) -> list[str]:
        return [gtlsserver, "-q", "-d", str(tmp_path), "127.0.0.1", str(port), certs.keyfile, certs.certfile]

    async def answers(peer: Peer) -> bool:  # gtlsserver cannot say when it is ready
        async with client.session() as probe:
            try:
                await probe.dispatch(Request("GET", f"https://localhost:{peer.port}/f.bin"))
            except ConnectError:
                return False
            return True

    async with running_peer(command, ready=answers, udp=True) as gtls:
        async with client.session() as session:
            bodies: list[bytes] = []

            async def one() -> None:
                bodies.append(
                    (await session.dispatch(Request("GET", f"https://localhost:{gtls.port}/f.bin"))).content
                )

            with trio.fail_after(60):
                async with trio.open_nursery() as many:
                    for _ in range(100):
                        many.start_soon(one)
            assert len(bodies) == 100 and all(body == content for body in bodies)
            assert sum(len(v) for v in session.connections().values()) == 1


async def test_nghttpd(certs: Certs, tmp_path: Path) -> None:
    """The client fetches a file from nghttpd over HTTP/2, twice on one connection."""
    nghttpd = require_tool("nghttpd")
    content = bytes(range(256)) * 1024
    await trio.Path(tmp_path / "f.bin").write_bytes(content)

    def command(port: int) -> list[str]:
        return [
            nghttpd,
            "-v",
            "-d",
            str(tmp_path),
            "--address",
            "127.0.0.1",
            str(port),
            certs.keyfile,
            certs.certfile,
        ]

    async with running_peer(command, ready=NGHTTPD_LISTENING) as peer:
        async with client_for(certs, ClientProtocol.TCP).session() as session:
            for _ in range(2):
                response = await session.dispatch(Request("GET", f"https://localhost:{peer.port}/f.bin"))
                assert response.status == 200 and response.content == content and response.http_version == "2"
            assert sum(len(v) for v in session.connections().values()) == 1


async def test_our_server_streaming_trailers_reuse_and_limits(certs: Certs) -> None:
    """Streaming download, trailers, HTTP/1.1 keep-alive reuse, a pool limit of one, read timeout."""
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        base = f"https://localhost:{endpoint.port}"
        client = client_for(certs, ClientProtocol.HTTP1, max_connections_per_origin=1, read_timeout=0.2)
        async with client.session() as session:
            async with session.stream(Request("GET", f"{base}/bytes/{3 * 1024 * 1024}")) as response:
                sizes = [len(chunk) async for chunk in response.aiter_bytes()]
            assert sum(sizes) == 3 * 1024 * 1024 and len(sizes) > 1
            trailers = await session.dispatch(Request("GET", f"{base}/trailers"))
            assert trailers.content == b"with trailers" and trailers.trailers == [(b"x-checksum", b"abc")]

            async def hello(n: int) -> None:
                assert (
                    await session.dispatch(Request("POST", f"{base}/", content=b"%d" % n))
                ).content == b"hello %d" % n

            async with trio.open_nursery() as many:
                for n in range(5):
                    many.start_soon(hello, n)
            assert session.connections() == {str(Origin("https", "localhost", endpoint.port)): ["1.1"]}
            with pytest.raises(ReadTimeout) as caught:
                await session.dispatch(Request("GET", f"{base}/wait"))
            assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, HFaceError)
        server.shutdown()


async def test_pool_timeout(certs: Certs, autojump_clock: trio.testing.MockClock) -> None:
    """With the only connection of an origin busy, a request waits pool_timeout, then PoolTimeout."""
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        base = f"https://127.0.0.1:{endpoint.port}"
        client = client_for(certs, ClientProtocol.HTTP1, max_connections_per_origin=1, pool_timeout=0.3)
        async with client.session() as session:
            async with session.stream(Request("GET", f"{base}/slow")) as slow:
                start = trio.current_time()
                with pytest.raises(PoolTimeout) as caught:
                    await session.dispatch(Request("GET", f"{base}/"))
                assert trio.current_time() - start == pytest.approx(0.3, abs=0.01)
                assert isinstance(caught.value, TimeoutError)
                assert session.statistics().exchanges == 1
                assert (await slow.aread()).endswith(b"done\n")
            assert (await session.dispatch(Request("GET", f"{base}/"))).content == b"hello "
        server.shutdown()


async def test_connect_error() -> None:
    """A port where nobody listens is a ConnectError."""
    async with Client(protocol=ClientProtocol.TCP).session() as session:
        with pytest.raises(ConnectError):
            with refusing_port() as port:
                await session.dispatch(Request("GET", f"http://127.0.0.1:{port}/"))


def test_url_and_origin_parsing() -> None:
    """URLs split into origin and target; default ports are implied; bad URLs are refused."""
    url = URL.parse("https://example.com/a/b?c=d")
    assert url.origin == Origin("https", "example.com", 443) and url.target == "/a/b?c=d"
    assert URL.parse("http://[::1]:8080").origin.authority == b"[::1]:8080"
    assert Origin.parse("https://example.com:443").authority == b"example.com"
    for bad in ("ftp://a/", "https:///x", "https://a:99999/"):
        with pytest.raises(ValueError):
            URL.parse(bad)


async def test_keepalive_ping_replaces_a_silent_connection(
    certs: Certs, autojump_clock: trio.testing.MockClock
) -> None:
    """Idle HTTP/2 connections are PINGed; one whose peer stops answering is closed and replaced."""
    server = ASGIServer(apps.app, tls_config=certs.server, graceful_timeout=1)
    frozen = trio.Event()
    frozen_connections: list[trio.SocketStream] = []
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])

        async def forward(source: trio.SocketStream, target: trio.SocketStream) -> None:
            try:
                while data := await source.receive_some():
                    if frozen.is_set():
                        frozen_connections.append(source)
                        await trio.sleep_forever()  # a peer that went silent
                    await target.send_all(data)
            except trio.BrokenResourceError:
                pass

        async def relay(client_side: trio.SocketStream) -> None:
            server_side = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
            async with client_side, server_side, trio.open_nursery() as pumps:
                pumps.start_soon(forward, client_side, server_side)
                pumps.start_soon(forward, server_side, client_side)

        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        await nursery.start(partial(trio.serve_listeners, relay, listeners))
        client = client_for(certs, ClientProtocol.HTTP2, keepalive_interval=0.2)
        async with client.session() as session:
            url = f"https://127.0.0.1:{port}/"
            assert (await session.dispatch(Request("GET", url))).content == b"hello "
            (first,) = next(iter(session.pool.connections().values()), [])
            await trio.sleep(0.7)  # idle: PINGed and acknowledged meanwhile
            assert first._pong.is_set() and not first.dead
            assert (await session.dispatch(Request("GET", url))).content == b"hello "
            assert next(iter(session.pool.connections().values()), []) == [first]
            frozen.set()
            with trio.fail_after(5):
                while not getattr(first, "dead"):  # noqa: B009 (mypy narrowed .dead to False above)
                    await session.pool.wait_changed()
            frozen = trio.Event()  # the relay forwards new connections again
            response = await session.dispatch(Request("GET", url))
            assert response.content == b"hello "
            assert first not in next(iter(session.pool.connections().values()), [])
        server.shutdown()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("protocol", [ClientProtocol.HTTP2, ClientProtocol.HTTP3])
async def test_a_response_not_read_does_not_block_the_others(certs: Certs, protocol: ClientProtocol) -> None:
    """A caller that stops reading a big response holds back only that stream; other requests on
    the same connection complete, and reading it later gets every byte."""
    server = ASGIServer(apps.app, tls_config=certs.server)
    size = 8 * 1024 * 1024
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        base = f"https://localhost:{endpoint.port}"
        async with client_for(certs, protocol).session() as session:
            with trio.fail_after(30):
                async with session.stream(Request("GET", f"{base}/bytes/{size}")) as big:
                    await trio.sleep(0.5)  # the server fills the stream's window; nobody reads
                    with trio.fail_after(3):
                        for n in range(3):
                            response = await session.dispatch(Request("POST", f"{base}/", content=b"%d" % n))
                            assert response.content == b"hello %d" % n
                    received = sum([len(chunk) async for chunk in big.aiter_bytes()])
                assert received == size
                assert sum(len(c) for c in session.connections().values()) == 1
        server.shutdown()


@pytest.mark.parametrize("protocol", [ClientProtocol.HTTP1, ClientProtocol.HTTP2, ClientProtocol.HTTP3])
async def test_idle_pooled_connections_expire(
    certs: Certs, protocol: ClientProtocol, autojump_clock: trio.testing.MockClock
) -> None:
    """A pooled connection no request used for idle_timeout is closed; one in use is not."""
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        base = f"https://127.0.0.1:{endpoint.port}"
        async with client_for(certs, protocol, idle_timeout=0.2).session() as session:
            with trio.fail_after(30):
                slow = await session.dispatch(Request("GET", f"{base}/slow"))  # in use for 0.25 s
                assert slow.content.endswith(b"done\n")
                assert sum(len(c) for c in session.connections().values()) == 1
                await trio.sleep(0.6)
                assert sum(len(c) for c in session.connections().values()) == 0
                again = await session.dispatch(Request("GET", f"{base}/"))
                version = {"HTTP1": "1.1", "HTTP2": "2", "HTTP3": "3"}[protocol.name]
                assert again.content == b"hello " and again.http_version == version
        server.shutdown()


class TaskWakeups(trio.abc.Instrument):
    """Counts how many times tasks are scheduled to run."""

    def __init__(self) -> None:
        self.count = 0

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.count += 1


async def test_waiting_requests_cost_the_same_however_many_wait() -> None:
    """Many requests waiting for two HTTP/1.1 connections: wakeups per request do not grow with their number."""
    server = ASGIServer(apps.app)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["http://127.0.0.1:0"])
        url = f"http://127.0.0.1:{endpoint.port}/"
        client = Client(protocol=ClientProtocol.HTTP1, max_connections_per_origin=2)
        per_request: dict[int, float] = {}
        async with client.session() as session:

            async def get() -> None:
                assert (await session.dispatch(Request("GET", url))).content == b"hello "

            async with trio.open_nursery() as warm_up:  # both connections open
                for _ in range(2):
                    warm_up.start_soon(get)
            for count in (10, 80):
                counter = TaskWakeups()
                trio.lowlevel.add_instrument(counter)
                try:
                    with trio.fail_after(30):
                        async with trio.open_nursery() as batch:
                            for _ in range(count):
                                batch.start_soon(get)
                finally:
                    trio.lowlevel.remove_instrument(counter)
                per_request[count] = counter.count / count
        # Each request wakes a bounded number of tasks (client and server, in this process);
        # had every change woken every waiting request, 80 would cost several times 10.
        assert per_request[80] < 1.3 * per_request[10], per_request
        server.shutdown()
