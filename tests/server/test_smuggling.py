"""HTTP/1.1 request smuggling (RFC 9112 sections 2.2, 5.2, 6.1, 6.3, 7.1), against the real server and client.

Each hostile request below carries a hidden second request behind it. The
server must answer the first with an error, never process the hidden one,
and close the connection; the client must not read a response whose framing
is ambiguous, nor reuse its connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

from tests.helpers import HTTP1_IMPLEMENTATIONS, http1_factories, require_tool
from tests.server import apps
from trio_hface.client import Client, ClientProtocol, Request
from trio_hface.errors import HFaceError
from trio_hface.protocols.http1._factories import HTTP1FactoryBase
from trio_hface.server import ASGIServer

Factories = tuple[type[HTTP1FactoryBase], type[HTTP1FactoryBase]]


@pytest.fixture(params=HTTP1_IMPLEMENTATIONS)
def http1(request: pytest.FixtureRequest) -> Factories:
    """The client and server factories of each HTTP/1.1 implementation: every test runs on each."""
    return http1_factories(request.param)


HIDDEN = b"GET /hidden HTTP/1.1\r\nHost: a\r\n\r\n"


def post(headers: bytes, body: bytes, version: bytes = b"1.1") -> bytes:
    return b"POST /echo HTTP/" + version + b"\r\nHost: a\r\n" + headers + b"\r\n" + body


CASES = {
    # Both framings: a front proxy reading Content-Length forwards HIDDEN as body.
    "cl-then-te": post(b"Content-Length: 40\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + HIDDEN),
    "te-then-cl": post(b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n", b"0\r\n\r\n" + HIDDEN),
    "te-folded": post(b"Content-Length: 40\r\nTransfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n" + HIDDEN),
    "folded-field": post(b"X-Note: a\r\n\tb\r\nContent-Length: 0\r\n", HIDDEN),
    "bare-lf-in-head": post(b"X-Note: a\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + HIDDEN),
    "bare-cr-in-head": post(b"X-Note: a\rContent-Length: 0\r\n", HIDDEN),
    "te-in-http-1.0": post(b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n" + HIDDEN, version=b"1.0"),
    "te-not-chunked-last": post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n" + HIDDEN),
    "te-unknown": post(b"Transfer-Encoding: x-custom\r\n", b"0\r\n\r\n" + HIDDEN),
    "two-te-fields": post(
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + HIDDEN
    ),
    "cl-differ": post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!" + HIDDEN),
    "cl-list-differ": post(b"Content-Length: 5, 6\r\n", b"hello!" + HIDDEN),
    "cl-sign": post(b"Content-Length: +5\r\n", b"hello" + HIDDEN),
    "cl-hex": post(b"Content-Length: 0x5\r\n", b"hello" + HIDDEN),
    "cl-space-inside": post(b"Content-Length: 1 0\r\n", b"hello" + HIDDEN),
    # Chunked bodies the server reads after the application started.
    "chunk-size-17-digits": post(
        b"Transfer-Encoding: chunked\r\n", b"10000000000000005\r\nhello\r\n0\r\n\r\n" + HIDDEN
    ),
    "chunk-size-overflow": post(
        b"Transfer-Encoding: chunked\r\n", b"fffffffffffffffffffff\r\nhello\r\n" + HIDDEN
    ),
    "chunk-line-bare-lf": post(b"Transfer-Encoding: chunked\r\n", b"5\nhello\r\n0\r\n\r\n" + HIDDEN),
    "chunk-data-bare-lf": post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\n0\r\n\r\n" + HIDDEN),
    "last-chunk-bare-lf": post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\n\r\n" + HIDDEN),
    "trailers-bare-lf": post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\n" + HIDDEN),
    "chunk-ext-space": post(b"Transfer-Encoding: chunked\r\n", b"5;a b\r\nhello\r\n0\r\n\r\n" + HIDDEN),
    "chunk-ext-no-name": post(b"Transfer-Encoding: chunked\r\n", b"5;=x\r\nhello\r\n0\r\n\r\n" + HIDDEN),
    "chunk-ext-open-quote": post(b"Transfer-Encoding: chunked\r\n", b'5;a="x\r\nhello\r\n0\r\n\r\n' + HIDDEN),
    "chunk-size-negative": post(b"Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n" + HIDDEN),
    "chunk-line-too-long": post(
        b"Transfer-Encoding: chunked\r\n", b"5;a=" + b"x" * 5000 + b"\r\nhello\r\n0\r\n\r\n"
    ),
}

#: Statuses accepted for a case: 501 where the coding is one we do not implement (RFC 9112 section 6.1).
NOT_IMPLEMENTED = {"te-not-chunked-last", "te-unknown", "two-te-fields"}


class Recorder:
    """The test application, recording the paths it was asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: apps.Scope, receive: apps.Receive, send: apps.Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await apps.app(scope, receive, send)


@asynccontextmanager
async def cleartext(app: Any, http1: Factories) -> AsyncIterator[int]:
    server = ASGIServer(app, idle_timeout=30, http1_factory=http1[1]())
    async with trio.open_nursery() as nursery:
        (endpoint, *_) = await nursery.start(server.run, ["http://127.0.0.1:0"])
        yield endpoint.port
        server.shutdown()


async def exchange(port: int, data: bytes) -> bytes:
    """Send *data* on a new connection; return all the server sent until it closed."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        received = b""
        with trio.fail_after(10):  # the server must close: the test fails if it keeps the connection
            while chunk := await stream.receive_some():
                received += chunk
        return received


def dechunk(response: bytes) -> bytes:
    """The body of a chunked response (the echo app streams what it receives)."""
    rest = response.partition(b"\r\n\r\n")[2]
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if not size:
            return body
        body, rest = body + rest[:size], rest[size + 2 :]


@pytest.mark.parametrize("case", sorted(CASES))
async def test_ambiguous_request_is_refused_and_the_connection_closed(case: str, http1: Factories) -> None:
    """One error response, the connection closed, and the hidden request never processed."""
    app = Recorder()
    async with cleartext(app, http1) as port:
        received = await exchange(port, CASES[case])
        expected = b"HTTP/1.1 501 " if case in NOT_IMPLEMENTED else b"HTTP/1.1 400 "
        assert received.startswith(expected), received[:200]
        assert received.count(b"HTTP/1.1 ") == 1, received
        assert b"connection: close" in received.lower()
        assert "/hidden" not in app.paths
        # The server goes on serving everyone else.
        assert (
            await exchange(port, b"GET /hidden HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        ).startswith(b"HTTP/1.1 200 ")
        assert app.paths[-1] == "/hidden"


async def test_strict_framing_still_takes_what_is_well_formed(http1: Factories) -> None:
    """Chunk extensions (tokens, quoted strings), 16-digit sizes, trailers, repeated equal lengths."""
    async with cleartext(Recorder(), http1) as port:
        body = b'5;name;a=b ; q="x\\"y"\r\nhello\r\n0000000000000006\r\n world\r\n0\r\nx-check: 1\r\n\r\n'
        request = post(b"Transfer-Encoding: chunked\r\nConnection: close\r\n", body)
        received = await exchange(port, request)
        assert received.startswith(b"HTTP/1.1 200 ") and dechunk(received) == b"hello world", received
        received = await exchange(port, post(b"Content-Length: 5, 5\r\nConnection: close\r\n", b"hello"))
        assert received.startswith(b"HTTP/1.1 200 ") and dechunk(received) == b"hello", received


async def test_trickled_chunk_line_is_bounded(http1: Factories) -> None:
    """A chunk line that never ends is refused once it passes its bound, while it trickles."""
    async with cleartext(Recorder(), http1) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(post(b"Transfer-Encoding: chunked\r\n", b"5;a="))
            received = b""
            with trio.fail_after(10):
                for _ in range(100):
                    try:
                        await stream.send_all(b"x" * 100)
                    except trio.BrokenResourceError:
                        break
                    with trio.move_on_after(0.01):
                        received += await stream.receive_some()
                    if received:
                        break
                while chunk := await stream.receive_some():
                    received += chunk
            assert received.startswith(b"HTTP/1.1 400 "), received


async def test_curl_with_both_framings_gets_400(http1: Factories) -> None:
    """curl sends Content-Length and Transfer-Encoding together when told to: 400, not a response."""
    async with cleartext(Recorder(), http1) as port:
        result = await trio.run_process(
            [
                require_tool("curl"),
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                "-H",
                "Transfer-Encoding: chunked",
                "-H",
                "Content-Length: 5",
                "--data-binary",
                "hello",
                f"http://127.0.0.1:{port}/echo",
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert result.stdout == b"400", (result.stdout, result.stderr)


# -- the client side: responses -------------------------------------------------


RESPONSES = {
    "cl-and-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nhello",
    "folded": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: a\r\n b\r\n\r\nhello",
    "bare-lf": b"HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 5\r\n\r\nhello",
    "cl-differ": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 4\r\n\r\nhello",
    "chunk-17-digits": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
    "te-in-http-1.0": b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(RESPONSES))
async def test_client_refuses_ambiguous_response_and_does_not_reuse_the_connection(
    case: str, http1: Factories
) -> None:
    """The request fails; the next request goes out on a new connection and gets a good answer."""
    connections = 0

    async def serve(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        buffer = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some()
                    if not chunk:
                        return
                    buffer += chunk
                _, _, buffer = buffer.partition(b"\r\n\r\n")
                try:
                    if first:
                        await stream.send_all(RESPONSES[case])
                    else:
                        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                except trio.BrokenResourceError:
                    return

    async with trio.open_nursery() as nursery:
        (listener, *_) = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        client = Client(protocol=ClientProtocol.HTTP1, http1_factory=http1[0]())
        with trio.fail_after(10):
            async with client.session() as session:
                with pytest.raises(HFaceError):
                    await session.dispatch(Request("GET", f"http://127.0.0.1:{port}/first"))
                response = await session.dispatch(Request("GET", f"http://127.0.0.1:{port}/second"))
                assert response.status == 200 and response.content == b"ok"
        assert connections == 2
        nursery.cancel_scope.cancel()


async def test_error_response_survives_unread_input(http1: Factories) -> None:
    """The server half-closes and drains before closing (lingering close), so the 400 is read even
    when the refused request is followed by input the server never reads (no TCP reset destroys it)."""
    async with cleartext(Recorder(), http1) as port:
        for _ in range(5):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                received = b""

                async def send_junk(stream: trio.SocketStream) -> None:
                    try:
                        await stream.send_all(CASES["cl-then-te"] + b"x" * (256 * 1024))
                    except trio.BrokenResourceError:
                        pass

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send_junk, stream)
                    await trio.sleep(0.2)  # the server answered and closed meanwhile
                    with trio.fail_after(10):
                        while chunk := await stream.receive_some():
                            received += chunk
                assert received.startswith(b"HTTP/1.1 400 "), received
