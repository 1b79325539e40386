"""HTTP/1.1 and HTTP/2 connections over real loopback sockets, with and without TLS."""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
from collections.abc import Iterator
from functools import partial

import pytest
import trio
import trio.testing
import trustme

from tests.handlers import Client, echo_handler
from trio_hface import ClientTLSConfig, ServerTLSConfig
from trio_hface.connections import (
    HTTPConnection,
    HTTPOverTCPConnection,
    HTTPOverTCPListener,
    HTTPOverTCPOpener,
)
from trio_hface.errors import ALPNError
from trio_hface.events import ConnectionTerminated, DataReceived
from trio_hface.protocols import ALPNHTTPFactory
from trio_hface.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path_factory.mktemp("certs")
    chain, key, cafile = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    cafile.write_bytes(ca.cert_pem.bytes())
    yield str(chain), str(key), str(cafile)


async def start_server(
    nursery: trio.Nursery, factory: object, tls: ServerTLSConfig | None
) -> tuple[HTTPOverTCPListener, int]:
    listener = await HTTPOverTCPListener.create(factory, local_address=("127.0.0.1", 0), tls_config=tls)  # type: ignore[arg-type]
    addresses = await nursery.start(listener.serve, echo_handler)
    return listener, addresses[0][1]


@pytest.mark.parametrize("version", ["1", "2"])
async def test_end_to_end_cleartext_and_tls(version: str, tls_files: tuple[str, str, str]) -> None:
    """A request with a body and a response with a body cross each version, cleartext and TLS."""
    certfile, keyfile, cafile = tls_files
    server_factory = HTTP1ServerFactory() if version == "1" else HTTP2ServerFactory()
    client_factory = HTTP1ClientFactory() if version == "1" else HTTP2ClientFactory()
    async with trio.open_nursery() as nursery:
        for tls in (False, True):
            tls_config = ServerTLSConfig(certfile=certfile, keyfile=keyfile) if tls else None
            listener, port = await start_server(nursery, server_factory, tls_config)
            opener = HTTPOverTCPOpener(client_factory, tls_config=ClientTLSConfig(cafile=cafile))
            connection = await opener(("127.0.0.1", port), tls=tls, server_name="localhost")
            async with connection:
                assert connection.http_version == version
                assert connection.remote_address == ("127.0.0.1", port)
                assert connection.extra_attributes["tls_version"] == ("TLSv1.3" if tls else None)
                client = Client(connection)
                nursery.start_soon(client.run)
                body = b"hello" * 1000
                headers, data = await client.fetch(b"/", body, reply_size=70000)
                assert headers[b"x-sha256"] == hashlib.sha256(body).hexdigest().encode()
                assert len(data) == 70000
            await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_alpn_picks_version(tls_files: tuple[str, str, str]) -> None:
    """With ALPN on both sides (also an HTTP/2-only ALPN client), TLS speaks HTTP/2; an HTTP/1.1 client gets HTTP/1.1."""
    certfile, keyfile, cafile = tls_files
    server_factory = ALPNHTTPFactory([HTTP2ServerFactory(), HTTP1ServerFactory()])
    async with trio.open_nursery() as nursery:
        listener, port = await start_server(
            nursery, server_factory, ServerTLSConfig(certfile=certfile, keyfile=keyfile)
        )
        for client_factory, expected in (
            (ALPNHTTPFactory([HTTP2ClientFactory(), HTTP1ClientFactory()]), "2"),
            (ALPNHTTPFactory([HTTP2ClientFactory()]), "2"),  # HTTP/2 only, as hface allowed
            (HTTP1ClientFactory(), "1"),
        ):
            opener = HTTPOverTCPOpener(client_factory, tls_config=ClientTLSConfig(cafile=cafile))
            async with await opener(("127.0.0.1", port), tls=True, server_name="localhost") as connection:
                assert connection.http_version == expected
                assert connection.extra_attributes["alpn_protocol"] == (
                    "h2" if expected == "2" else "http/1.1"
                )
                client = Client(connection)
                nursery.start_soon(client.run)
                headers, _ = await client.fetch(b"/")
                assert headers[b":status"] == b"200"
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_alpn_http2_only_client_against_server_without_alpn(tls_files: tuple[str, str, str]) -> None:
    """An HTTP/2-only ALPN client fails with ALPNError when the TLS server negotiates no ALPN protocol."""
    certfile, keyfile, cafile = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)  # and no set_alpn_protocols()
    closed = trio.Event()

    async def handshake_then_wait(stream: trio.SSLStream[trio.SocketStream]) -> None:
        try:
            await stream.do_handshake()
            assert stream.selected_alpn_protocol() is None
            await stream.receive_some()  # the client closes the connection it cannot use
        except trio.BrokenResourceError:
            pass
        finally:
            closed.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_ssl_over_tcp, handshake_then_wait, 0, context, host="127.0.0.1")
        )
        port = listeners[0].transport_listener.socket.getsockname()[1]
        opener = HTTPOverTCPOpener(
            ALPNHTTPFactory([HTTP2ClientFactory()]), tls_config=ClientTLSConfig(cafile=cafile)
        )
        with pytest.raises(
            ALPNError, match=r"127\.0\.0\.1:\d+: ALPN negotiated no protocol, and http/1.1 is not offered"
        ):
            await opener(("127.0.0.1", port), tls=True, server_name="localhost")
        with trio.fail_after(20):
            await closed.wait()
        nursery.cancel_scope.cancel()


async def test_listener_refuses_a_peer_without_alpn_in_one_line(
    tls_files: tuple[str, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """An HTTP/2-only TLS listener meeting a client that offers no ALPN closes that connection
    and logs one warning, not a traceback; it goes on serving."""
    certfile, keyfile, cafile = tls_files
    async with trio.open_nursery() as nursery:
        listener, port = await start_server(
            nursery,
            ALPNHTTPFactory([HTTP2ServerFactory()]),
            ServerTLSConfig(certfile=certfile, keyfile=keyfile),
        )
        context = ssl.create_default_context(cafile=cafile)  # no ALPN offered
        with trio.fail_after(10):
            stream = trio.SSLStream(
                await trio.open_tcp_stream("127.0.0.1", port), context, server_hostname="localhost"
            )
            try:
                await stream.do_handshake()
                assert await stream.receive_some() == b""  # closed by the server
            except trio.BrokenResourceError:
                pass  # closed without close_notify: as good
            finally:
                await trio.aclose_forcefully(stream)
        refused = [r for r in caplog.records if "ALPN negotiated no protocol" in r.getMessage()]
        assert len(refused) == 1 and refused[0].exc_info is None, caplog.text
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_hundred_concurrent_streams_and_big_bodies(tls_files: tuple[str, str, str]) -> None:
    """100 concurrent HTTP/2 streams on one connection, then 50 MiB each way on one stream."""
    async with trio.open_nursery() as nursery:
        listener, port = await start_server(nursery, HTTP2ServerFactory(), None)
        async with await HTTPOverTCPOpener(HTTP2ClientFactory())(("127.0.0.1", port)) as connection:
            client = Client(connection)
            nursery.start_soon(client.run)
            results: list[bytes] = []

            async def one(n: int) -> None:
                headers, data = await client.fetch(b"/%d" % n, b"x" * n, reply_size=n)
                assert headers[b"x-size"] == b"%d" % n and len(data) == n
                results.append(headers[b":status"])

            async with trio.open_nursery() as inner:
                for n in range(100):
                    inner.start_soon(one, n)
            assert results == [b"200"] * 100
            big = bytes(range(256)) * (50 * 4096)
            headers, data = await client.fetch(b"/big", big, reply_size=len(big))
            assert headers[b"x-sha256"] == hashlib.sha256(big).hexdigest().encode()
            assert len(data) == len(big)
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_sender_blocks_while_peer_does_not_read(autojump_clock: trio.testing.MockClock) -> None:
    """A sender stalls at the flow-control window while its peer reads nothing, then resumes."""
    got: list[int] = []
    release = trio.Event()

    async def lazy_handler(connection: HTTPConnection) -> None:
        await release.wait()
        total = 0
        while True:
            event = await connection.receive_event()
            if isinstance(event, DataReceived):
                total += len(event.data)
                if event.end_stream:
                    got.append(total)
                    await connection.send_headers(event.stream_id, [(b":status", b"204")], end_stream=True)
            elif isinstance(event, ConnectionTerminated):
                return

    async with trio.open_nursery() as nursery:
        listener = await HTTPOverTCPListener.create(
            HTTP2ServerFactory(stream_window=65536, connection_window=65536), local_address=("127.0.0.1", 0)
        )
        (address, *_) = await nursery.start(listener.serve, lazy_handler)
        async with await HTTPOverTCPOpener(HTTP2ClientFactory())(address) as connection:
            client = Client(connection)
            nursery.start_soon(client.run)
            sid = connection.get_available_stream_id()
            await connection.send_headers(
                sid, [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")]
            )
            with trio.move_on_after(1) as scope:
                await connection.send_data(sid, b"z" * 1_000_000, end_stream=True)
            assert scope.cancelled_caught, "the sender should have been blocked by flow control"
            assert connection.protocol.get_send_window(sid) == 0
        release.set()
        await listener.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.skipif(
    shutil.which("curl") is None and not __import__("os").environ.get("CI"), reason="curl missing"
)
@pytest.mark.parametrize("version", ["--http1.1", "--http2"])
async def test_curl_against_listener(version: str, tls_files: tuple[str, str, str]) -> None:
    """curl (HTTP/1.1 and HTTP/2 via ALPN) gets answers from our listener."""
    certfile, keyfile, cafile = tls_files
    factory = ALPNHTTPFactory([HTTP2ServerFactory(), HTTP1ServerFactory()])
    async with trio.open_nursery() as nursery:
        listener, port = await start_server(
            nursery, factory, ServerTLSConfig(certfile=certfile, keyfile=keyfile)
        )
        result = await trio.run_process(
            [
                "curl",
                "-sS",
                version,
                "--cacert",
                cafile,
                "--data-binary",
                "hello curl",
                "-D",
                "-",
                "-H",
                "x-reply-size: 3000",
                f"https://localhost:{port}/curl",
                "-o",
                "/dev/null",
                "--max-time",
                "20",
                "--resolve",
                f"localhost:{port}:127.0.0.1",
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        out = result.stdout.decode().lower()
        expected = "http/2 200" if version == "--http2" else "http/1.1 200"
        assert out.startswith(expected), out
        assert hashlib.sha256(b"hello curl").hexdigest() in out
        await listener.aclose()
        nursery.cancel_scope.cancel()


GET_HEAD = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")]


def plain_listener() -> tuple[socket.socket, tuple[str, int]]:
    """A stdlib listening socket, so that the peer's reads need no checkpoint of ours."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server, server.getsockname()


async def test_a_small_submitted_head_is_written_by_the_calling_task() -> None:
    """HTTP/1.1 over a socket with room: send_submitted writes a GET's head itself, so it is at
    the peer when the call returns, before the connection's writer task could have run."""
    server, address = plain_listener()
    with server:
        async with await HTTPOverTCPOpener(HTTP1ClientFactory())(address) as connection:
            peer, _ = server.accept()
            with peer:
                peer.setblocking(False)
                await trio.testing.wait_all_tasks_blocked()  # the writer has started and waits
                sid = connection.get_available_stream_id()
                connection.submit_headers(sid, GET_HEAD, end_stream=True, data_follows=True)
                await connection.send_submitted()
                assert peer.recv(65536).startswith(b"GET / HTTP/1.1\r\n")


async def test_send_submitted_never_waits_for_the_network() -> None:
    """A head the transport does not take at once is left to the writer: send_submitted returns
    while the peer reads nothing, and the head arrives once it reads."""
    big = b"v" * 20000
    head = [*GET_HEAD, (b"x-filler", big)]
    client_stream, peer = trio.testing.lockstep_stream_pair()  # a write waits for the peer's read
    async with HTTPOverTCPConnection(HTTP1ClientFactory()(), client_stream, {}) as connection:
        sid = connection.get_available_stream_id()
        connection.submit_headers(sid, head, end_stream=True, data_follows=True)
        with trio.fail_after(1):
            await connection.send_submitted()
        received = b""
        with trio.fail_after(5):
            while not received.endswith(b"\r\n\r\n"):
                received += await peer.receive_some()
        assert big in received


async def test_a_failed_direct_write_ends_the_connection_without_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """send_submitted whose own write fails: no error from the call (as when the writer's
    write fails); the connection is broken, and its events report the end."""
    server, address = plain_listener()
    with server:
        async with await HTTPOverTCPOpener(HTTP1ClientFactory())(address) as connection:
            peer, _ = server.accept()

            async def failing_send_all(self: trio.SocketStream, data: object) -> None:
                raise trio.BrokenResourceError("the peer went away")

            await trio.testing.wait_all_tasks_blocked()  # the writer has started and waits
            with monkeypatch.context() as patched:
                patched.setattr(trio.SocketStream, "send_all", failing_send_all)
                sid = connection.get_available_stream_id()
                connection.submit_headers(sid, GET_HEAD, end_stream=True, data_follows=True)
                await connection.send_submitted()
            assert connection.has_expired() and not connection.is_available()
            peer.close()
            with trio.fail_after(5):
                event = await connection.receive_event()
                while not isinstance(event, ConnectionTerminated):
                    event = await connection.receive_event()
