"""Worker processes: SO_REUSEPORT, QUIC steering by connection ID, restarts, graceful shutdown.

Every test starts real processes on loopback, bounds its time, and checks
that no worker is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import Certs
from tests.handlers import Client
from tests.helpers import require_tool
from tests.server import worker_app
from trio_hface.connections import HTTPConnection, HTTPOverQUICOpener, HTTPOverTCPOpener
from trio_hface.events import ConnectionTerminated, DataReceived, Event, GoawayReceived
from trio_hface.networking import DatagramStream, SystemNetworking, UDPClientNetworking
from trio_hface.networking._reuseport import connection_id_steering_program
from trio_hface.protocols.http1 import HTTP1ClientFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory
from trio_hface.protocols.http3 import HTTP3ClientFactory, HTTP3ServerFactory, stateless_reset_token
from trio_hface.server import ASGIServer, ProxyServer, SteeringMode, WorkerPool

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")

ROOT = Path(__file__).resolve().parents[2]

#: Seconds any one of these tests may take.
TEST_TIMEOUT = 90


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@asynccontextmanager
async def workers(
    server: ASGIServer | ProxyServer, count: int = 2, endpoint: str = "https://127.0.0.1:0", **options: Any
) -> AsyncIterator[WorkerPool]:
    """Run *server* in *count* workers; afterwards, no worker process may be left."""
    seen: set[int] = set()
    async with trio.open_nursery() as nursery:
        pool: WorkerPool = await nursery.start(
            lambda task_status: server.run_workers(
                [endpoint], workers=count, task_status=task_status, **options
            )
        )
        try:
            seen.update(pid for pid in pool.pids if pid is not None)
            yield pool
            seen.update(pid for pid in pool.pids if pid is not None)
        finally:
            server.shutdown()
    assert all(pid is None for pid in pool.pids)
    assert not [pid for pid in seen if alive(pid)]


async def fetch_pid(connection: HTTPConnection, nursery: trio.Nursery) -> tuple[int, int]:
    """One request on *connection*: the worker's and its lifespan's process IDs."""
    client = Client(connection)
    nursery.start_soon(client.run)
    headers, body = await client.fetch(b"/")
    assert body == headers[b"x-worker-pid"] + b"\n"
    return int(headers[b"x-worker-pid"]), int(headers[b"x-lifespan-pid"])


async def test_two_workers_serve_every_version(certs: Certs) -> None:
    """With 2 workers, HTTP/1.1, HTTP/2 and HTTP/3 connections reach both, each with its own lifespan."""
    server = ASGIServer(worker_app.app, tls_config=certs.server)
    with trio.fail_after(TEST_TIMEOUT):
        async with workers(server) as pool:
            assert len(pool.pids) == 2 and pool.steering == SteeringMode.KERNEL
            port = pool.endpoints[0].port
            openers: list[Any] = [
                HTTPOverTCPOpener(HTTP1ClientFactory(), tls_config=certs.client),
                HTTPOverTCPOpener(HTTP2ClientFactory(), tls_config=certs.client),
                HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client),
            ]
            for opener in openers:
                served = set()
                for _ in range(24):
                    async with trio.open_nursery() as nursery:
                        connection = await opener(("127.0.0.1", port), tls=True, server_name="localhost")
                        async with connection:
                            worker, lifespan = await fetch_pid(connection, nursery)
                            assert worker == lifespan
                            served.add(worker)
                        nursery.cancel_scope.cancel()
                assert served == set(pool.pids), (opener, served)


class RebindingUDP(DatagramStream):
    """A client UDP stream that can move to a new local port, as after a NAT rebinding.

    Each socket has a reader task (in the test's nursery) that feeds one
    bounded channel; the old socket is closed when the stream moves.
    """

    def __init__(self, nursery: trio.Nursery, remote: tuple[str, int]) -> None:
        self._nursery = nursery
        self._remote = remote
        self._send, self._receive = trio.open_memory_channel[Any](256)
        self._stream: DatagramStream | None = None

    async def open(self) -> None:
        old = self._stream
        self._stream = await SystemNetworking().connect_udp(self._remote)
        self._nursery.start_soon(self._read, self._stream)
        if old is not None:
            await old.aclose()

    async def _read(self, stream: DatagramStream) -> None:
        try:
            while True:
                datagram = await stream.receive()
                try:
                    self._send.send_nowait(datagram)
                except trio.WouldBlock:
                    pass  # as a congested network would
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return

    async def send(self, value: Any) -> None:
        assert self._stream is not None
        await self._stream.send(value)

    async def send_batch(self, datagrams: Sequence[Any]) -> None:
        assert self._stream is not None
        await self._stream.send_batch(datagrams)

    async def receive(self) -> Any:
        return await self._receive.receive()

    def receive_nowait(self) -> Any:
        return self._receive.receive_nowait()

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
        self._receive.close()


class RebindingNetworking(UDPClientNetworking):
    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.streams: list[RebindingUDP] = []

    async def connect_udp(self, remote_address: tuple[str, int]) -> DatagramStream:
        stream = RebindingUDP(self.nursery, remote_address)
        await stream.open()
        self.streams.append(stream)
        return stream


@pytest.mark.parametrize("new_cid", [False, True], ids=["same-cid", "new-cid"])
@pytest.mark.parametrize("kernel_steering", [True, False], ids=["kernel", "forwarding"])
async def test_http3_address_change_stays_on_its_worker(
    certs: Certs, kernel_steering: bool, new_cid: bool
) -> None:
    """Each of 50 HTTP/3 connections keeps working, on the same worker, after its client's port (and CID) change."""
    server = ASGIServer(worker_app.app, tls_config=certs.server)
    with trio.fail_after(TEST_TIMEOUT):
        async with workers(server, kernel_steering=kernel_steering) as pool, trio.open_nursery() as readers:
            expected = SteeringMode.KERNEL if kernel_steering else SteeringMode.FORWARD
            if pool.steering != expected:
                pytest.skip(f"no kernel steering here: {pool.steering}")
            port = pool.endpoints[0].port
            networking = RebindingNetworking(readers)
            opener = HTTPOverQUICOpener(HTTP3ClientFactory(), networking, tls_config=certs.client)
            served = set()
            for _ in range(50):
                async with trio.open_nursery() as nursery:
                    connection = await opener(("127.0.0.1", port), tls=True, server_name="localhost")
                    async with connection:
                        client = Client(connection)
                        nursery.start_soon(client.run)
                        before, _ = await client.fetch(b"/")
                        await networking.streams[-1].open()  # a new local port
                        if new_cid:  # and a connection ID the server issued later (aioquic internals)
                            quic = connection._quic._quic  # type: ignore[attr-defined]
                            old_cid = quic._peer_cid.cid
                            quic.change_connection_id()
                            assert quic._peer_cid.cid != old_cid
                        with trio.fail_after(10):
                            after, _ = await client.fetch(b"/")
                        assert after[b"x-worker-pid"] == before[b"x-worker-pid"]
                        served.add(int(before[b"x-worker-pid"]))
                    nursery.cancel_scope.cancel()
            assert served == set(pool.pids)
            readers.cancel_scope.cancel()


async def test_gtlsclient_address_change_with_two_workers(certs: Certs, tmp_path: Path) -> None:
    """ngtcp2's client moves to a new local address in the middle of each response; all 16 finish on their worker."""
    gtlsclient = require_tool("gtlsclient")
    server = ASGIServer(worker_app.app, tls_config=certs.server)
    runs = 16
    with trio.fail_after(TEST_TIMEOUT):
        async with workers(server) as pool:
            port = pool.endpoints[0].port
            results: list[tuple[Path, str]] = []

            async def migrate(index: int) -> None:
                download = tmp_path / f"download-{index}"
                download.mkdir()
                argv = [
                    *(gtlsclient, "--exit-on-all-streams-close", "--timeout=10s"),
                    *("--change-local-addr=300ms", "--download", str(download)),
                    *("127.0.0.1", str(port), f"https://localhost:{port}/drip?100"),
                ]
                # Without -q, ngtcp2 logs every packet with its local address and
                # says whether the path validation succeeded.
                done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
                log = (done.stdout + done.stderr).decode(errors="replace")
                assert done.returncode == 0, log[-2000:]
                (saved,) = download.iterdir()  # named after the path
                results.append((saved, log))

            async with trio.open_nursery() as nursery:
                for index in range(runs):
                    nursery.start_soon(migrate, index)
            served = set()
            for body, log in results:
                assert "Path validation against path" in log and "succeeded" in log, log[-2000:]
                local_ports = set(re.findall(r"Received packet: local=\[127\.0\.0\.1\]:(\d+)", log))
                assert len(local_ports) == 2, local_ports  # answered on the old address, then the new
                *dots, pid = body.read_bytes().splitlines()
                assert dots == [b"." * 999] * 100
                served.add(int(pid))
            assert served == set(pool.pids)


@pytest.mark.parametrize("kernel_steering", [True, False], ids=["kernel", "forwarding"])
async def test_stateless_reset_from_either_worker(certs: Certs, kernel_steering: bool) -> None:
    """A short-header packet of an unknown connection gets a stateless reset with the shared key, whichever worker it reaches."""
    key = os.urandom(32)
    server = ASGIServer(
        worker_app.app, tls_config=certs.server, http3_factory=HTTP3ServerFactory(stateless_reset_key=key)
    )
    with trio.fail_after(TEST_TIMEOUT):
        async with workers(server, kernel_steering=kernel_steering) as pool:
            port = pool.endpoints[0].port
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with sock:
                await sock.bind(("127.0.0.1", 0))
                for first_octet in (0, 1, 2, 3, 0x41, 0xFE):  # both workers, twice and more
                    cid = bytes([first_octet]) + os.urandom(7)
                    await sock.sendto(b"\x40" + cid + os.urandom(40), ("127.0.0.1", port))
                    with trio.fail_after(5):
                        reply, _ = await sock.recvfrom(2048)
                    assert reply[0] & 0xC0 == 0x40  # looks like a short header
                    assert reply[-16:] == stateless_reset_token(key, cid), first_octet


async def test_killed_worker_is_replaced(certs: Certs) -> None:
    """A worker killed with SIGKILL is started again, and the server keeps answering on both workers."""
    server = ASGIServer(worker_app.app, tls_config=certs.server)
    with trio.fail_after(TEST_TIMEOUT):
        async with workers(server, endpoint="http://127.0.0.1:0") as pool:
            victim = pool.pids[0]
            assert victim is not None
            os.kill(victim, signal.SIGKILL)
            await pool.wait_restarts(1)
            assert pool.pids[0] not in (None, victim)
            port = pool.endpoints[0].port
            opener = HTTPOverTCPOpener(HTTP1ClientFactory())
            served = set()
            for _ in range(24):
                async with trio.open_nursery() as nursery:
                    async with await opener(("127.0.0.1", port), tls=False) as connection:
                        served.add((await fetch_pid(connection, nursery))[0])
                    nursery.cancel_scope.cancel()
            assert served == set(pool.pids) and victim not in served


async def test_cli_sigterm_drains_and_exits_0(certs: Certs) -> None:
    """trio-hface server --workers 2: SIGTERM lets a slow response finish, and every process exits 0."""
    command = [
        *(sys.executable, "-m", "trio_hface", "server", "tests.server.worker_app:app", "http://127.0.0.1:0"),
        *("--workers", "2", "--graceful-timeout", "20"),
    ]
    with trio.fail_after(TEST_TIMEOUT):
        process = await trio.lowlevel.open_process(
            command, cwd=ROOT, stdout=__import__("subprocess").PIPE, stderr=None
        )
        try:
            assert process.stdout is not None
            output = b""
            while b"serving on" not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, output
                output += chunk
            port = int(output.split(b"serving on http://127.0.0.1:")[1].split()[0])
            pids = [int(p) for p in output.split(b"(pids ")[1].split(b")")[0].split(b", ")]
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"GET /slow?2 HTTP/1.1\r\nhost: localhost\r\n\r\n")
                received = b""
                while b"started" not in received:
                    received += await stream.receive_some()
                process.send_signal(signal.SIGTERM)
                while True:
                    chunk = await stream.receive_some()
                    if not chunk:
                        break
                    received += chunk
            assert b"started\n" in received and received.endswith(b"\n0\r\n\r\n")
            assert await process.wait() == 0
            assert not [pid for pid in pids if alive(pid)]
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


def test_steering_program_shape() -> None:
    """The BPF program is whole instructions of 8 bytes and ends by returning A."""
    program = connection_id_steering_program(2)
    assert len(program) % 8 == 0 and program[-8:-6] == (0x16).to_bytes(2, sys.byteorder)
    with pytest.raises(ValueError):
        connection_id_steering_program(0)


async def test_retry_tokens_valid_on_every_worker(certs: Certs) -> None:
    """With Retry on, each of 20 HTTP/3 connections opens, though its retried Initial may reach another worker."""
    server = ASGIServer(worker_app.app, tls_config=certs.server, quic_retry=True)
    with trio.fail_after(TEST_TIMEOUT):
        async with workers(server) as pool:
            port = pool.endpoints[0].port
            opener = HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client, handshake_timeout=5)
            served = set()
            for _ in range(20):
                async with trio.open_nursery() as nursery:
                    connection = await opener(("127.0.0.1", port), tls=True, server_name="localhost")
                    async with connection:
                        served.add((await fetch_pid(connection, nursery))[0])
                    nursery.cancel_scope.cancel()
            assert served == set(pool.pids)


async def test_proxy_workers_tunnel(certs: Certs) -> None:
    """ProxyServer with 2 workers tunnels CONNECT requests from both workers to an origin."""
    origin = ASGIServer(worker_app.app)
    proxy = ProxyServer()
    curl = require_tool("curl")
    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            (bound, *_) = await nursery.start(origin.run, ["http://127.0.0.1:0"])
            async with workers(proxy, endpoint="http://127.0.0.1:0") as pool:
                proxy_url = f"http://127.0.0.1:{pool.endpoints[0].port}"
                for _ in range(6):
                    result = await trio.run_process(
                        [
                            curl,
                            "-sS",
                            "--max-time",
                            "20",
                            "--proxytunnel",
                            "-x",
                            proxy_url,
                            f"http://127.0.0.1:{bound.port}/",
                        ],
                        capture_stdout=True,
                        capture_stderr=True,
                        check=False,
                    )
                    assert result.returncode == 0, result.stderr
                    assert result.stdout == str(os.getpid()).encode() + b"\n"  # the origin runs here
            origin.shutdown()


@pytest.mark.parametrize("version", ["2", "3"])
async def test_shutdown_drains_with_goaway(certs: Certs, version: str) -> None:
    """Shutdown with 2 workers: an HTTP/2 or HTTP/3 response in flight gets GOAWAY, then completes."""
    server = ASGIServer(worker_app.app, tls_config=certs.server, graceful_timeout=20)
    opener: Any = (
        HTTPOverTCPOpener(HTTP2ClientFactory(), tls_config=certs.client)
        if version == "2"
        else HTTPOverQUICOpener(HTTP3ClientFactory(), tls_config=certs.client)
    )
    events: list[Event] = []
    with trio.fail_after(TEST_TIMEOUT):
        async with workers(server) as pool:
            port = pool.endpoints[0].port
            async with await opener(("127.0.0.1", port), tls=True, server_name="localhost") as connection:
                sid = connection.get_available_stream_id()
                request = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost")]
                await connection.send_headers(sid, [*request, (b":path", b"/slow?1.5")], end_stream=True)
                body = b""
                while not any(getattr(e, "end_stream", False) for e in events):
                    event = await connection.receive_event()
                    events.append(event)
                    if isinstance(event, DataReceived):
                        body += event.data
                        if body == b"started\n":
                            server.shutdown()  # the response is in flight
                    assert not isinstance(event, ConnectionTerminated), events
    assert any(isinstance(e, GoawayReceived) for e in events), events
    assert body.startswith(b"started\n") and int(body.split(b"\n")[1]) > 0


async def test_application_that_cannot_reach_a_worker() -> None:
    """An application that does not pickle (a local function) is a ValueError that says why, and no process is left."""

    async def local_app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("never called")

    server = ASGIServer(local_app)
    with trio.fail_after(TEST_TIMEOUT), pytest.raises(ValueError, match="importable by its module path"):
        await server.run_workers(["http://127.0.0.1:0"], workers=2)
