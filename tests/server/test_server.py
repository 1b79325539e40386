"""The ASGI server over every HTTP version, against real clients: curl, httpx, h2load, gtlsclient, ours."""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import subprocess
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import hyperframe.frame
import pytest
import trio
import trio.testing

from tests.conftest import Certs
from tests.handlers import Client
from tests.helpers import require_tool
from tests.server import apps
from trio_hface import client as hface_client
from trio_hface.connections import HTTPOverQUICOpener, HTTPOverTCPOpener
from trio_hface.events import ConnectionTerminated, DataReceived, Event, GoawayReceived, HeadersReceived
from trio_hface.protocols.http1 import HTTP1ClientFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory
from trio_hface.protocols.http3 import HTTP3ClientFactory
from trio_hface.server import ASGIServer, Endpoint, ServerProtocol


@asynccontextmanager
async def running(server: ASGIServer, endpoint: str = "https://127.0.0.1:0") -> AsyncIterator[Endpoint]:
    async with trio.open_nursery() as nursery:
        (bound, *_) = await nursery.start(server.run, [endpoint])
        yield bound
        server.shutdown()


async def curl(certs: Certs, *args: str) -> tuple[str, bytes]:
    """Run curl; return the response head and body."""
    result = await trio.run_process(
        [require_tool("curl"), "-sS", "--max-time", "30", "--cacert", certs.cafile, "-D", "-", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):
        head, _, body = body.partition(b"\r\n\r\n")
    return head.decode().lower(), body


@pytest.mark.parametrize("version", ["--http1.1", "--http2"])
async def test_curl_get_post_big_many_headers_slow(certs: Certs, version: str) -> None:
    """curl over HTTP/1.1 and HTTP/2: GET, POST echo, a 5 MiB response, 100 headers, a slow stream."""
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with running(server) as endpoint:
        url = f"https://localhost:{endpoint.port}"
        resolve = ["--resolve", f"localhost:{endpoint.port}:127.0.0.1", version]
        head, body = await curl(certs, *resolve, f"{url}/")
        assert head.startswith("http/2 200" if version == "--http2" else "http/1.1 200")
        assert f'alt-svc: h3=":{endpoint.port}"' in head
        assert body == b"hello "
        payload = bytes(range(256)) * 4096
        result = await trio.run_process(
            ["curl", "-sS", *resolve, "--cacert", certs.cafile, "--data-binary", "@-", f"{url}/echo"],
            stdin=payload,
            capture_stdout=True,
            check=True,
        )
        assert result.stdout == payload
        _, body = await curl(certs, *resolve, f"{url}/bytes/{5 * 1024 * 1024}")
        assert len(body) == 5 * 1024 * 1024 and body[:512] == apps.BLOCK[:512]
        head, _ = await curl(certs, *resolve, f"{url}/headers/100")
        assert "x-header-99: value-99" in head
        _, body = await curl(certs, *resolve, f"{url}/slow")
        assert body == b"".join(b"tick %d\n" % i for i in range(5)) + b"done\n"


async def test_scope_per_version(certs: Certs) -> None:
    """The ASGI scope says 1.1, 2 or 3 and carries path, query, headers, client and server."""
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with running(server) as endpoint, trio.open_nursery() as nursery:
        openers: list[tuple[Any, str]] = [
            (HTTPOverTCPOpener(HTTP1ClientFactory(), tls_config=certs.client), "1.1"),
            (HTTPOverTCPOpener(HTTP2ClientFactory(), tls_config=certs.client), "2"),
            (HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client), "3"),
        ]
        for opener, version in openers:
            async with await opener(
                ("127.0.0.1", endpoint.port), tls=True, server_name="localhost"
            ) as connection:
                client = Client(connection)
                nursery.start_soon(client.run)
                headers, body = await client.fetch(b"/scope?a=1&b=%20", b"payload")
                scope = json.loads(body)
                assert scope["http_version"] == version
                assert scope["method"] == "POST" and scope["scheme"] == "https"
                assert scope["path"] == "/scope" and scope["query_string"] == "a=1&b=%20"
                assert ["host", "localhost"] in scope["headers"]
                assert scope["body_sha256"] == hashlib.sha256(b"payload").hexdigest()
                assert scope["server"][1] == endpoint.port and scope["client"][0] == "127.0.0.1"
                assert (b"alt-svc" in headers) == (version != "3")
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
async def test_httpx_client(certs: Certs, http2: bool) -> None:
    """httpx talks to the server over HTTP/1.1 and HTTP/2 (httpx runs in a thread: it uses anyio, we do not)."""
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with running(server) as endpoint:
        url = f"https://localhost:{endpoint.port}"

        def use_httpx() -> list[httpx.Response]:
            context = ssl.create_default_context(cafile=certs.cafile)
            with httpx.Client(http2=http2, verify=context, http1=not http2) as client:
                return [
                    client.get(f"{url}/"),
                    client.post(f"{url}/echo", content=b"x" * 100_000),
                    client.get(f"{url}/trailers"),
                ]

        hello, echo, trailers = await trio.to_thread.run_sync(use_httpx)
        assert hello.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert hello.text == "hello "
        assert echo.content == b"x" * 100_000
        assert trailers.content == b"with trailers"


async def test_gtlsclient_http3(certs: Certs, tmp_path: Path) -> None:
    """gtlsclient (ngtcp2) gets answers from the ASGI server over HTTP/3."""
    gtlsclient = require_tool("gtlsclient")
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with running(server) as endpoint:
        args = [
            gtlsclient,
            "-q",
            "--exit-on-all-streams-close",
            "--timeout=20s",
            "--download",
            str(tmp_path),
            "127.0.0.1",
            str(endpoint.port),
            f"https://localhost:{endpoint.port}/bytes/100000",
        ]
        with trio.fail_after(30):
            result = await trio.run_process(args, capture_stdout=True, stderr=subprocess.STDOUT, check=False)
        assert result.returncode == 0, result.stdout.decode(errors="replace")[-2000:]
        (saved,) = await trio.Path(tmp_path).iterdir()
        assert await saved.read_bytes() == (apps.BLOCK * 2)[:100000]


@pytest.mark.parametrize("h1", [False, True], ids=["h2", "http1.1"])
async def test_h2load_against_asgi_server(certs: Certs, h1: bool) -> None:
    """h2load: 1000 requests over 4 connections (10 streams each on HTTP/2), none failed."""
    h2load = require_tool("h2load")
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with running(server) as endpoint:
        args = [h2load, "-n", "1000", "-c", "4", "-m", "10", "-T", "30", "-N", "30"]
        if h1:
            args.append("--h1")
        with trio.fail_after(60):
            result = await trio.run_process(
                [*args, f"https://127.0.0.1:{endpoint.port}/"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        out = result.stdout.decode()
        match = re.search(
            r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", out
        )
        assert match and match.groups() == ("1000", "1000", "1000", "1000", "0"), out


async def test_failing_application(certs: Certs) -> None:
    """An app that raises gets a 500; one that raises mid-response gets its stream reset; the server goes on."""
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with running(server) as endpoint, trio.open_nursery() as nursery:
        opener = HTTPOverTCPOpener(HTTP2ClientFactory(), tls_config=certs.client)
        async with await opener(
            ("127.0.0.1", endpoint.port), tls=True, server_name="localhost"
        ) as connection:
            client = Client(connection)
            nursery.start_soon(client.run)
            headers, body = await client.fetch(b"/raise")
            assert headers[b":status"] == b"500" and body == b"Internal Server Error\n"
            with pytest.raises(AssertionError, match="StreamResetReceived"):
                await client.fetch(b"/raise-after-start")
            headers, body = await client.fetch(b"/", b"still")
            assert body == b"hello still"
        nursery.cancel_scope.cancel()


async def test_trailers_and_alt_svc_off(certs: Certs) -> None:
    """http.response.trailers reach an HTTP/2 client; alt_svc=False sends no Alt-Svc."""
    server = ASGIServer(apps.app, tls_config=certs.server, alt_svc=False)
    async with running(server) as endpoint:
        opener = HTTPOverTCPOpener(HTTP2ClientFactory(), tls_config=certs.client)
        async with await opener(
            ("127.0.0.1", endpoint.port), tls=True, server_name="localhost"
        ) as connection:
            sid = connection.get_available_stream_id()
            request = [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", b"/trailers"),
            ]
            await connection.send_headers(sid, request, end_stream=True)
            events: list[Event] = []
            with trio.fail_after(10):
                while not events or not getattr(events[-1], "end_stream", False):
                    events.append(await connection.receive_event())
            assert isinstance(events[0], HeadersReceived) and b"alt-svc" not in dict(events[0].headers)
            assert events[1] == DataReceived(sid, b"with trailers")
            assert events[-1] == HeadersReceived(sid, [(b"x-checksum", b"abc")], end_stream=True)


async def test_graceful_shutdown_lets_requests_finish(
    certs: Certs, autojump_clock: trio.testing.MockClock
) -> None:
    """On shutdown: GOAWAY to HTTP/2 clients, the request in flight completes, new connections are refused."""
    apps.lifespan_events.clear()
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        assert apps.lifespan_events == ["lifespan.startup"]
        opener = HTTPOverTCPOpener(HTTP2ClientFactory(), tls_config=certs.client)
        async with await opener(
            ("127.0.0.1", endpoint.port), tls=True, server_name="localhost"
        ) as connection:
            sid = connection.get_available_stream_id()
            request = [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", b"/wait"),
            ]
            await connection.send_headers(sid, request, end_stream=True)
            await trio.sleep(0.1)  # the request is in the application now
            server.shutdown()
            events: list[Event] = []
            with trio.fail_after(10):
                while not events or not isinstance(events[-1], ConnectionTerminated):
                    events.append(await connection.receive_event())
            assert any(isinstance(e, GoawayReceived) for e in events)
            assert DataReceived(sid, b"waited", end_stream=True) in events
    assert apps.lifespan_events == ["lifespan.startup", "lifespan.shutdown"]


async def test_cleartext_http1_endpoint() -> None:
    """An http:// endpoint serves HTTP/1.1 (no ALPN without TLS) and needs no certificate."""
    server = ASGIServer(apps.app)
    async with running(server, "http://127.0.0.1:0") as endpoint:
        result = await trio.run_process(
            ["curl", "-sS", "-i", f"http://127.0.0.1:{endpoint.port}/"], capture_stdout=True, check=True
        )
        assert result.stdout.startswith(b"HTTP/1.1 200")
        assert b"alt-svc" not in result.stdout.lower()


async def test_endpoint_parsing() -> None:
    """Endpoints parse http/https with IPv4, names and bracketed IPv6; bad ones are refused."""
    assert Endpoint.parse("https://[::1]:8443") == Endpoint("https", "::1", 8443)
    assert str(Endpoint.parse("http://localhost:80")) == "http://localhost:80"
    for bad in ("ftp://a:1", "https://a", "https://a:99999", "https://a:1/path"):
        with pytest.raises(ValueError):
            Endpoint.parse(bad)


async def test_connection_close_ends_the_connection() -> None:
    """After a `Connection: close` exchange the server closes the connection (the client waits for EOF)."""
    server = ASGIServer(apps.app, idle_timeout=60)
    async with running(server, "http://127.0.0.1:0") as endpoint:
        stream = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        received = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some():
                received += chunk
        assert received.startswith(b"HTTP/1.1 200") and b"hello " in received
        await stream.aclose()


async def test_requests_on_one_connection_do_not_share_contextvars() -> None:
    """What an application sets in a contextvar stays in its request: the next request on the
    same HTTP/1.1 connection, pipelined behind it (started by whichever task finished the first
    response) or sent after it, starts from the server's context."""
    server = ASGIServer(apps.app, idle_timeout=60)
    async with running(server, "http://127.0.0.1:0") as endpoint:
        stream = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
        request = b"GET /contextvar HTTP/1.1\r\nHost: a\r\n\r\n"
        received = b""
        with trio.fail_after(5):
            await stream.send_all(request * 3)
            while received.count(b"HTTP/1.1 200") < 3 or not received.endswith(b"unset"):
                received += await stream.receive_some()
            await stream.send_all(request)
            while received.count(b"HTTP/1.1 200") < 4 or not received.endswith(b"unset"):
                received += await stream.receive_some()
        assert received.count(b"\r\n\r\nunset") == 4 and b"earlier" not in received
        await stream.aclose()


async def test_cancelled_server_runs_lifespan_shutdown(certs: Certs) -> None:
    """Cancelling run() still runs the application's lifespan shutdown, at once."""
    apps.lifespan_events.clear()
    server = ASGIServer(apps.app, tls_config=certs.server)
    start = trio.current_time()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run, ["https://127.0.0.1:0"])
            nursery.cancel_scope.cancel()
    assert apps.lifespan_events == ["lifespan.startup", "lifespan.shutdown"]
    assert trio.current_time() - start < 5


async def test_nghttp_against_asgi_server(certs: Certs, tmp_path: Path) -> None:
    """nghttp (HTTP/2) POSTs to the ASGI server's echo and fetches the scope, on one connection."""
    nghttp = require_tool("nghttp")
    body = tmp_path / "body"
    await trio.Path(body).write_bytes(b"nghttp to asgi " * 4000)
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with running(server) as endpoint:
        with trio.fail_after(30):
            result = await trio.run_process(
                [nghttp, "-d", str(body), f"https://127.0.0.1:{endpoint.port}/echo"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == await trio.Path(body).read_bytes()


async def test_stalled_request_body_gets_408(autojump_clock: trio.testing.MockClock) -> None:
    """A client that stops sending its declared body gets 408 after read_timeout; the server goes on."""
    server = ASGIServer(apps.app, read_timeout=0.3)
    async with running(server, "http://127.0.0.1:0") as endpoint:
        stream = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
        await stream.send_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        received = b""
        start = trio.current_time()
        with trio.fail_after(10):
            while b"408" not in received:
                received += await stream.receive_some()
        assert trio.current_time() - start == pytest.approx(0.3, abs=0.01)
        await stream.aclose()
        again = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
        await again.send_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        received = b""
        with trio.fail_after(10):
            while chunk := await again.receive_some():
                received += chunk
        assert received.startswith(b"HTTP/1.1 200") and b"hello " in received
        await again.aclose()


async def test_max_connections_holds_back_the_next_connection_while_the_first_is_busy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With max_connections=1, a second client waits while the first has a request in flight; once
    the first is idle (kept alive), the second evicts it and is served."""
    server = ASGIServer(apps.app, max_connections=1)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["http://127.0.0.1:0"])
        with trio.fail_after(20):
            first = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
            await first.send_all(b"GET /stall HTTP/1.1\r\nHost: localhost\r\n\r\n")  # 3 s in flight
            await trio.sleep(0.3)
            second = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
            await second.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            with trio.move_on_after(1) as held:
                await second.receive_some()
            assert held.cancelled_caught, "the second connection waits: the first is busy"
            response = b""
            while not response.endswith(b"\r\n0\r\n\r\n"):  # the end of the chunked body
                response += await first.receive_some()
            assert response.startswith(b"HTTP/1.1 200") and b"stalled" in response  # unharmed
            assert (await second.receive_some()).startswith(b"HTTP/1.1 200")
            assert await first.receive_some() == b"", "the idle first connection was evicted"
            await first.aclose()
            await second.aclose()
        server.shutdown()


async def test_max_connections_per_address_closes_a_hosts_extra_connections_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With max_connections_per_address=2, a host's third connection is closed at once, another
    host (127.0.0.2) is served, and the host gets a place again when one of its connections ends."""
    server = ASGIServer(apps.app, max_connections_per_address=2)
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"

    async def served(stream: trio.SocketStream) -> bool:
        await stream.send_all(request)
        try:
            return (await stream.receive_some()).startswith(b"HTTP/1.1 200")
        except trio.BrokenResourceError:  # reset: closed at once
            return False

    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["http://127.0.0.1:0"])
        with trio.fail_after(20):
            first, second, third = [await trio.open_tcp_stream("127.0.0.1", endpoint.port) for _ in range(3)]
            assert await served(first) and await served(second)  # kept alive
            assert not await served(third)
            other = await trio.open_tcp_stream("127.0.0.1", endpoint.port, local_address="127.0.0.2")
            assert await served(other)
            await first.aclose()
            await trio.sleep(0.2)  # the server notices the end of the first
            again = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
            assert await served(again)
            for stream in (second, third, other, again):
                await stream.aclose()
        server.shutdown()


async def test_keepalive_timeout_is_not_reset_by_a_trickled_head(
    certs: Certs, autojump_clock: trio.testing.MockClock
) -> None:
    """A slowloris peer (a request head a byte at a time) and an HTTP/2 peer that only PINGs are
    closed after idle_timeout; a real client may pause between requests as long as it likes below it."""
    server = ASGIServer(apps.app, tls_config=certs.server, idle_timeout=1.0)
    async with trio.open_nursery() as nursery:
        (endpoint, tls_endpoint) = await nursery.start(
            server.run, ["http://127.0.0.1:0", "https://127.0.0.1:0"]
        )
        with trio.fail_after(20):
            slow = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
            start = trio.current_time()
            with pytest.raises(trio.BrokenResourceError):
                for byte in b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100:
                    await slow.send_all(bytes([byte]))
                    await trio.sleep(0.1)  # every byte comes well within the idle timeout
                    if await _closed(slow):
                        raise trio.BrokenResourceError
            assert (
                1.0 <= trio.current_time() - start < 1.5
            )  # a byte every 0.1 s: the close is seen at the next
            await slow.aclose()

            opener = HTTPOverTCPOpener(HTTP2ClientFactory(), tls_config=certs.client)
            async with await opener(
                ("127.0.0.1", tls_endpoint.port), tls=True, server_name="localhost"
            ) as h2:
                start = trio.current_time()
                goaway = None
                while goaway is None:
                    await h2.send_ping(b"stayhere")
                    with trio.move_on_after(0.2):
                        while True:
                            event = await h2.receive_event()
                            if isinstance(event, (GoawayReceived, ConnectionTerminated)):
                                goaway = event
                                break
                assert 1.0 <= trio.current_time() - start < 1.5  # PINGs 0.2 s apart: one may pass after

            paused = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
            for _ in range(3):
                await paused.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                response = b""
                while not response.endswith(b"\r\n0\r\n\r\n"):  # the end of the chunked body
                    response += await paused.receive_some()
                assert response.startswith(b"HTTP/1.1 200")
                await trio.sleep(0.7)  # below the timeout each time, above it in all
            await paused.aclose()
        server.shutdown()


async def _closed(stream: trio.SocketStream) -> bool:
    """Whether the peer closed *stream* (without waiting)."""
    with trio.move_on_after(0):
        return await stream.receive_some() == b""
    return False


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param([("connection", "keep-alive")], id="connection-specific"),  # forbidden in HTTP/2
        pytest.param([("x-bad", "a\x00b")], id="nul-in-value"),
        pytest.param([("x-bad", "a\r\nx-smuggled: 1")], id="crlf-in-value"),
        pytest.param([("X-Upper", "1")], id="uppercase-name"),
        pytest.param([("bad name", "1")], id="space-in-name"),
        pytest.param([("content-length", "0"), ("content-length", "1")], id="conflicting-content-length"),
    ],
)
async def test_malformed_http2_request_resets_only_its_stream(bad: list[tuple[str, str]]) -> None:
    """A malformed request gets RST_STREAM PROTOCOL_ERROR; a good one on the same connection is answered."""
    server = ASGIServer(apps.app, protocol=ServerProtocol.HTTP2)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["http://127.0.0.1:0"])
        peer = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
            )
        )
        peer.initiate_connection()
        get = [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", "/")]
        peer.send_headers(1, [*get, *bad], end_stream=True)
        peer.send_headers(3, get, end_stream=True)
        resets: dict[int, int] = {}
        statuses: dict[int, bytes] = {}
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
            await stream.send_all(peer.data_to_send())
            while 3 not in statuses or 1 not in resets:
                data = await stream.receive_some()
                assert data, "the server closed the connection"
                for event in peer.receive_data(data):
                    if isinstance(event, h2.events.StreamReset):
                        resets[event.stream_id] = event.error_code
                    elif isinstance(event, h2.events.ResponseReceived):
                        statuses[event.stream_id] = dict(event.headers)[b":status"]
                    assert not isinstance(event, h2.events.ConnectionTerminated)
                await stream.send_all(peer.data_to_send())
            await stream.aclose()
        assert resets == {1: h2.errors.ErrorCodes.PROTOCOL_ERROR} and statuses == {3: b"200"}
        server.shutdown()


@pytest.mark.parametrize("protocol", [hface_client.ClientProtocol.HTTP2, hface_client.ClientProtocol.HTTP3])
async def test_a_stream_that_is_not_read_does_not_block_the_others(
    certs: Certs,
    protocol: hface_client.ClientProtocol,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An application that leaves a request body unread holds back only that stream (flow control),
    not the other requests of the connection."""
    server = ASGIServer(apps.app, tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        base = f"https://127.0.0.1:{endpoint.port}"  # no name to resolve: no thread, so the clock may jump
        client = hface_client.Client(tls_config=certs.client, protocol=protocol)
        async with client.session() as session:

            async def stalled_upload() -> None:
                request = hface_client.Request("POST", f"{base}/stall", content=b"x" * (4 << 20))
                response = await session.dispatch(request)
                assert response.content == b"stalled"

            with trio.fail_after(20):
                await session.dispatch(hface_client.Request("GET", f"{base}/"))  # the connection is up
                async with trio.open_nursery() as requests:
                    requests.start_soon(stalled_upload)
                    await trio.sleep(0.5)  # the upload fills its stream's window meanwhile
                    with trio.fail_after(2):  # well before /stall answers
                        for _ in range(3):
                            response = await session.dispatch(hface_client.Request("GET", f"{base}/"))
                            assert response.content == b"hello "
                assert sum(len(c) for c in session.connections().values()) == 1
        server.shutdown()


async def test_rapid_reset_flood_is_cut_off_and_others_are_served() -> None:
    """CVE-2023-44487: a client opening and resetting streams without end gets GOAWAY
    ENHANCE_YOUR_CALM and loses its connection; another client is served meanwhile."""
    server = ASGIServer(apps.app, protocol=ServerProtocol.HTTP2)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["http://127.0.0.1:0"])
        attacker = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        attacker.initiate_connection()
        get = [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", "/wait")]
        goaway = None
        with trio.fail_after(20):
            stream = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
            await stream.send_all(attacker.data_to_send())
            for n in range(3000):
                stream_id = 2 * n + 1
                attacker.send_headers(stream_id, get, end_stream=True)
                attacker.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                try:
                    await stream.send_all(attacker.data_to_send())
                except trio.BrokenResourceError:
                    break  # the server closed the connection
            with trio.move_on_after(5):
                while goaway is None and (data := await _receive_or_empty(stream)):
                    for event in attacker.receive_data(data):
                        if isinstance(event, h2.events.ConnectionTerminated):
                            goaway = event
            await stream.aclose()
            result = await trio.run_process(
                ["curl", "-sS", "--http2-prior-knowledge", f"http://127.0.0.1:{endpoint.port}/"],
                capture_stdout=True,
                check=True,
            )
        assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert result.stdout == b"hello "
        server.shutdown()


async def _receive_or_empty(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some()
    except trio.BrokenResourceError:  # reset by the server after its GOAWAY
        return b""


async def test_http1_body_not_read_pushes_back_through_tcp(autojump_clock: trio.testing.MockClock) -> None:
    """HTTP/1.1 has no flow control of its own: a body the application does not read stays in
    the network (TCP pushes back), it does not pile up in the server."""
    server = ASGIServer(apps.app)
    size = 256 * 1024 * 1024
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["http://127.0.0.1:0"])
        stream = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
        await stream.send_all(b"POST /stall HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b"x" * (1 << 20)
        sent = 0
        with trio.move_on_after(1.5):  # /stall reads nothing for 3 s
            while sent < size:
                await stream.send_all(chunk)
                sent += len(chunk)
        assert sent < 64 * 1024 * 1024, f"{sent} bytes went in while nobody read them"
        await stream.aclose()
        server.shutdown()


def _frames_of(buffer: bytearray) -> list[hyperframe.frame.Frame]:
    """Take the complete frames out of *buffer* (received bytes, no preface)."""
    frames = []
    while len(buffer) >= 9:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(buffer[:9]))
        if len(buffer) < 9 + length:
            break
        frame.parse_body(memoryview(buffer[9 : 9 + length]))
        frames.append(frame)
        del buffer[: 9 + length]
    return frames


async def _goaway_then_close(stream: trio.SocketStream) -> int | None:
    """Read until the server closes *stream*; return the error code of its GOAWAY."""
    received = bytearray()
    code = None
    while data := await _receive_or_empty(stream):
        received += data
        for frame in _frames_of(received):
            if isinstance(frame, hyperframe.frame.GoAwayFrame):
                code = frame.error_code
    return code


def _client_start(*headers: tuple[str, str], end_stream: bool = False) -> bytes:
    """A client preface and SETTINGS, then a request's HEADERS on stream 1."""
    peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    peer.initiate_connection()
    if headers:
        peer.send_headers(1, list(headers), end_stream=end_stream)
    return bytes(peer.data_to_send())


POST_ECHO = ((":method", "POST"), (":scheme", "http"), (":authority", "localhost"), (":path", "/echo"))


async def test_oversized_frames_trickled_on_many_connections_keep_memory_bounded() -> None:
    """20 connections each announce a 2**24-1 byte DATA frame and trickle its payload: each gets
    GOAWAY FRAME_SIZE_ERROR and is closed, and the server does not buffer the payloads."""
    connections, trickle, piece = 20, 2 << 20, b"x" * 65536
    server = ASGIServer(apps.app, protocol=ServerProtocol.HTTP2)
    results: list[int | None] = []  # one per connection the server closed

    async def attack(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        header = ((1 << 24) - 1).to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01"  # DATA, stream 1
        await stream.send_all(_client_start(*POST_ECHO) + header)
        closed = trio.Event()

        async def read() -> None:
            results.append(await _goaway_then_close(stream))
            closed.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            try:
                for _ in range(trickle // len(piece)):
                    await stream.send_all(piece)
                    await trio.sleep(0.01)
            except trio.BrokenResourceError:
                pass  # the server closed the connection
            with trio.move_on_after(10):
                await closed.wait()
            nursery.cancel_scope.cancel()
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["http://127.0.0.1:0"])
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            with trio.fail_after(30):
                async with trio.open_nursery() as attackers:
                    for _ in range(connections):
                        attackers.start_soon(attack, endpoint.port)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        server.shutdown()
    # Without the check, the server held what was trickled: 20 x 2 MiB here (20 x 16 MiB at worst).
    assert peak - before < 8 << 20, f"the server grew by {(peak - before) >> 20} MiB"
    assert results == [h2.errors.ErrorCodes.FRAME_SIZE_ERROR] * connections


def _headers_frame(block: bytes) -> bytes:
    frame = hyperframe.frame.HeadersFrame(1)
    frame.data = block
    frame.flags.add("END_HEADERS")
    frame.flags.add("END_STREAM")
    return bytes(frame.serialize())


def _ping_frame() -> bytes:
    frame = hyperframe.frame.PingFrame(0)
    frame.opaque_data = b"12345678"
    return bytes(frame.serialize())


@pytest.mark.parametrize(
    ("data", "error_code"),
    [
        pytest.param(_client_start() + _headers_frame(b"\xbf"), 9, id="hpack-index-out-of-range"),
        pytest.param(_client_start() + _headers_frame(b"\x82\x20"), 9, id="hpack-table-size-update-late"),
        pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _ping_frame(), 1, id="preface-then-ping"),
    ],
)
async def test_broken_http2_connection_start_gets_goaway(data: bytes, error_code: int) -> None:
    """Over a real socket: an undecodable header block gets GOAWAY COMPRESSION_ERROR, a preface
    followed by PING instead of SETTINGS gets GOAWAY PROTOCOL_ERROR; then the server closes."""
    server = ASGIServer(apps.app, protocol=ServerProtocol.HTTP2)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["http://127.0.0.1:0"])
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
            await stream.send_all(data)
            assert await _goaway_then_close(stream) == error_code
            await stream.aclose()
        server.shutdown()


async def test_nghttp_conflicting_content_length_resets_the_stream(tmp_path: Path) -> None:
    """nghttp sending two content-length values (its own and ours) gets RST_STREAM PROTOCOL_ERROR,
    and no GOAWAY: only the stream fails (RFC 9110 section 8.6, h2 >= 4.4)."""
    nghttp = require_tool("nghttp")
    body = tmp_path / "body"
    await trio.Path(body).write_bytes(b"12345")
    server = ASGIServer(apps.app, protocol=ServerProtocol.HTTP2)
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["http://127.0.0.1:0"])
        with trio.fail_after(30):
            result = await trio.run_process(
                [
                    nghttp,
                    "-v",
                    "-d",
                    str(body),
                    "-H",
                    "content-length: 6",
                    f"http://127.0.0.1:{endpoint.port}/echo",
                ],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        server.shutdown()
    output = result.stdout.decode()
    assert "content-length: 5" in output and "content-length: 6" in output  # both went out
    reset = re.search(r"recv RST_STREAM frame .*\n\s*\(error_code=(\w+)", output)
    assert reset is not None and reset.group(1) == "PROTOCOL_ERROR", output
    assert "recv GOAWAY" not in output and ":status:" not in output  # no response, no connection error
