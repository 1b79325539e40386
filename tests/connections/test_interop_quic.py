"""A real HTTP/3 stack that we did not write (ngtcp2's gtlsclient and gtlsserver) against ours."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio

from tests.conftest import Certs
from tests.h3link import quic_stack
from tests.handlers import hello_handler
from tests.helpers import require_tool
from tests.peers import Peer, running_peer
from trio_hface.connections import HTTPConnection, HTTPOverQUICListener, HTTPOverQUICOpener
from trio_hface.errors import ConnectError
from trio_hface.events import DataReceived, HeadersReceived
from trio_hface.networking import QUICListener
from trio_hface.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory

__all__ = ["quic_stack"]  # the fixture

#: Every test runs on each QUIC stack (tests/h3link.py).
pytestmark = pytest.mark.usefixtures("quic_stack")


async def test_gtlsclient_against_quic_listener(certs: Certs, tmp_path: Path) -> None:
    """gtlsclient POSTs a body on 5 streams to our HTTP/3 listener and gets its digest back on each."""
    gtlsclient = require_tool("gtlsclient")
    body = tmp_path / "body"
    body.write_bytes(b"ngtcp2 says hi " * 5000)
    download = tmp_path / "download"
    download.mkdir()
    async with trio.open_nursery() as nursery:
        listener = await HTTPOverQUICListener.create(
            HTTP3ServerFactory(), local_address=("127.0.0.1", 0), tls_config=certs.server
        )
        ((host, port), *_) = await nursery.start(listener.serve, hello_handler)
        args = [
            gtlsclient,
            "-q",
            "--exit-on-all-streams-close",
            "--timeout=20s",
            "-m",
            "POST",
            "-d",
            str(body),
            "-n",
            "5",
            "--download",
            str(download),
            host,
            str(port),
            f"https://localhost:{port}/echo",
        ]
        with trio.fail_after(60):
            result = await trio.run_process(args, capture_stdout=True, capture_stderr=True, check=False)
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        digest = hashlib.sha256(body.read_bytes()).hexdigest()
        saved = list(download.iterdir())
        assert saved, result.stderr.decode()[-2000:]
        assert all(path.read_text().strip() == digest for path in saved)
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_quic_opener_against_gtlsserver(certs: Certs, tmp_path: Path) -> None:
    """Our HTTP/3 opener fetches a 2 MiB file from gtlsserver intact, on 10 concurrent streams."""
    gtlsserver = require_tool("gtlsserver")
    content = bytes(range(256)) * 8192
    (tmp_path / "file.bin").write_bytes(content)
    opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client, handshake_timeout=0.5)
    connections: list[HTTPConnection] = []

    def command(port: int) -> list[str]:
        return [gtlsserver, "-q", "-d", str(tmp_path), "127.0.0.1", str(port), certs.keyfile, certs.certfile]

    async def handshake(peer: Peer) -> bool:  # gtlsserver cannot say when it is ready
        try:
            connections.append(await opener(("127.0.0.1", peer.port), server_name="localhost"))
        except ConnectError:
            return False
        return True

    async with running_peer(command, ready=handshake, udp=True):
        (connection,) = connections
        async with connection:
            bodies: dict[int, bytearray] = {}
            for _ in range(10):
                sid = connection.get_available_stream_id()
                headers = [
                    (b":method", b"GET"),
                    (b":scheme", b"https"),
                    (b":authority", b"localhost"),
                    (b":path", b"/file.bin"),
                ]
                await connection.send_headers(sid, headers, end_stream=True)
                bodies[sid] = bytearray()
            ended = 0
            with trio.fail_after(60):
                while ended < 10:
                    event = await connection.receive_event()
                    if isinstance(event, HeadersReceived):
                        assert dict(event.headers)[b":status"] == b"200"
                    elif isinstance(event, DataReceived):
                        bodies[event.stream_id] += event.data
                    else:
                        raise AssertionError(f"unexpected {event!r}")
                    ended += bool(getattr(event, "end_stream", False))
            assert all(
                hashlib.sha256(b).digest() == hashlib.sha256(content).digest() for b in bodies.values()
            )


async def test_restarted_server_resets_gtlsclient_statelessly(certs: Certs) -> None:
    """A server restarted with the same key answers a forgotten connection with a stateless reset,
    and gtlsclient gives up at once instead of at its idle timeout (RFC 9000 section 10.3)."""
    gtlsclient = require_tool("gtlsclient")
    factory = HTTP3ServerFactory(stateless_reset_key=b"test key " * 4)
    first = await HTTPOverQUICListener.create(
        factory, local_address=("127.0.0.1", 0), tls_config=certs.server
    )
    crash = trio.CancelScope()

    async def serve_first(*, task_status: trio.TaskStatus[list[tuple[str, int]]]) -> None:
        with crash:
            await first.serve(hello_handler, task_status=task_status)

    async with trio.open_nursery() as nursery:
        ((host, port),) = await nursery.start(serve_first)
        args = [
            *(gtlsclient, "--delay-stream=2s", "--timeout=30s", "--exit-on-all-streams-close"),
            *(host, str(port), f"https://localhost:{port}/"),
        ]
        start = trio.current_time()
        async with running_peer(args, ready=rb"andshake", ready_within=10) as client:
            await trio.sleep(0.5)  # let HANDSHAKE_DONE reach the client, so it sends short headers only
            # "Crash": the socket goes away first, so no goodbye reaches the client.
            await trio.aclose_forcefully(first._listeners[0])
            crash.cancel()
            second = await HTTPOverQUICListener.create(
                factory, local_address=(host, port), tls_config=certs.server
            )
            await nursery.start(second.serve, hello_handler)
            with trio.fail_after(15):
                await client.wait_exit()
            elapsed = trio.current_time() - start
            quic = second._listeners[0]
            assert isinstance(quic, QUICListener)
            assert quic.statistics().stateless_resets >= 1
            assert b"ERR_DRAINING" in client.output  # ngtcp2 recognised the stateless reset
            assert elapsed < 10, f"gtlsclient took {elapsed:.1f} s: it waited for its idle timeout"
            await second.aclose()
            nursery.cancel_scope.cancel()
