"""Connection squatting: idle connections cannot keep others out of a full server (issue 8)."""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.peers import running_peer
from tests.server import squat_app

ROOT = Path(__file__).resolve().parent.parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

#: The server's limit (the default) and the squatters' connections.
MAX_CONNECTIONS = 768
SQUATTERS = 3000
#: How long the squatters keep at it, and the normal requests made meanwhile.
FLOOD_SECONDS = 22.0
NORMAL_REQUESTS = 10
#: What "answered" means for a normal request, in seconds.
ANSWER_WITHIN = 5.0
#: The growth of the server's resident memory we accept during the flood.
MAX_RSS_GROWTH = 150 * 1024 * 1024


@pytest.fixture
def enough_files() -> Iterator[None]:
    """Raise the soft limit of open files to the hard limit (the server process inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = SQUATTERS + MAX_CONNECTIONS + 500
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def rss(pid: int) -> int:
    """The resident memory of process *pid*, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")  # pragma: no cover


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process *pid*."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Squatters:
    """Connections that send nothing and come back as soon as the server closes them."""

    def __init__(self, port: int, deadline: float) -> None:
        self.port = port
        self.deadline = deadline
        self.counts = {"connected": 0, "closed_by_server": 0, "refused": 0}
        #: Set once every squatter has connected once.
        self.filled = trio.Event()

    async def squat(self) -> None:
        """Until the deadline, hold one idle connection, and open a new one each time the server closes it."""
        while trio.current_time() < self.deadline:
            sock = trio.socket.socket()
            try:
                try:
                    await sock.connect(("127.0.0.1", self.port))
                except OSError:
                    self.counts["refused"] += 1
                    await trio.sleep(0.1)
                    continue
                self.counts["connected"] += 1
                if self.counts["connected"] == SQUATTERS:
                    self.filled.set()
                with trio.move_on_at(self.deadline):
                    try:
                        await sock.recv(1)  # b"" (or a reset) once the server closed it
                    except OSError:
                        pass
                    self.counts["closed_by_server"] += 1
            finally:
                sock.close()


async def get(port: int, path: str) -> bytes:
    """One request on a fresh connection (``Connection: close``); the whole response."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path.encode()
        )
        response = b""
        while data := await stream.receive_some():
            response += data
        return response


#: The squat server's command line: ``trio-hface -v server`` with the default max_connections.
SERVER = [
    *(sys.executable, "-m", "trio_hface", "-v", "server", "tests.server.squat_app:app"),
    *("http://127.0.0.1:0", "--max-connections", str(MAX_CONNECTIONS)),
]


@pytest.mark.usefixtures("enough_files")
async def test_squatters_cannot_keep_normal_requests_out(tmp_path: Path) -> None:
    """3000 idle connections against max_connections=768: the server evicts the idle longest, normal
    requests from fresh connections are answered within 5 s throughout, a request in flight completes,
    the server's memory stays bounded and evictions are logged a few times, not once each."""
    log_path = tmp_path / "server.log"
    ready = r"serving on http://127\.0\.0\.1:(?P<port>\d+) \("
    async with running_peer(SERVER, ready=ready, cwd=ROOT, env=ENV, stderr_to=log_path) as server:
        process, port = server.process, server.port
        assert (await get(port, "/")).endswith(b"\r\n\r\nhello")
        baseline = rss(process.pid)
        cpu_before = cpu_seconds(process.pid)

        answer_times: list[float | None] = []
        samples: list[int] = []
        drip: list[bytes] = []
        async with trio.open_nursery() as nursery:
            # The request in flight: started before the flood, streamed over 8 s.
            drip_started = trio.Event()

            async def slow_request() -> None:
                with trio.fail_after(60):
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                    async with stream:
                        await stream.send_all(
                            b"GET /drip HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                        )
                        while data := await stream.receive_some():
                            drip.append(data)
                            drip_started.set()

            nursery.start_soon(slow_request)
            with trio.fail_after(10):
                await drip_started.wait()

            deadline = trio.current_time() + FLOOD_SECONDS
            squatters = Squatters(port, deadline)
            counts = squatters.counts
            for index in range(SQUATTERS):
                nursery.start_soon(squatters.squat)
                if index % 100 == 99:
                    # 5,000 connections a second, not all at once: a burst of 3,000
                    # SYNs overflows loopback's input queue (netdev_max_backlog).
                    await trio.sleep(0.02)

            async def sample_memory() -> None:
                while trio.current_time() < deadline:
                    samples.append(rss(process.pid))
                    await trio.sleep(0.5)

            nursery.start_soon(sample_memory)
            with trio.fail_after(FLOOD_SECONDS / 2):
                await squatters.filled.wait()  # the squatters fill the server and its backlog
            first = trio.current_time()
            for i in range(NORMAL_REQUESTS):
                began = trio.current_time()
                elapsed: float | None = None  # None: not answered in time
                with trio.move_on_after(ANSWER_WITHIN):
                    response = await get(port, "/")
                    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"hello"), response
                    elapsed = trio.current_time() - began
                answer_times.append(elapsed)
                # Spread until 5 s before the end, when the squatters all go at once.
                await trio.sleep_until(first + (i + 1) * (deadline - 5.0 - first) / NORMAL_REQUESTS)
        after = rss(process.pid)
        print(f"server CPU during the flood: {cpu_seconds(process.pid) - cpu_before:.1f} s")
        log_lines = [line for line in log_path.read_text().splitlines() if "evicted" in line]
        print(
            f"\nsquatting: {counts}; normal requests answered in "
            f"{[None if t is None else round(t, 3) for t in answer_times]} s; server RSS "
            f"{baseline / 2**20:.1f} MiB before, {max(samples) / 2**20:.1f} MiB at most during, "
            f"{after / 2**20:.1f} MiB after; {len(log_lines)} eviction log lines"
        )
        assert all(t is not None and t < ANSWER_WITHIN for t in answer_times), answer_times
        assert b"drip %d\n" % (squat_app.DRIP_PIECES - 1) in b"".join(drip)
        assert b"".join(drip).endswith(b"done\n\r\n0\r\n\r\n")  # the chunked response ended
        assert counts["closed_by_server"] >= SQUATTERS - MAX_CONNECTIONS  # the squatters were evicted
        assert max(samples) - baseline < MAX_RSS_GROWTH
        assert 1 <= len(log_lines) <= FLOOD_SECONDS / 10 + 2  # a summary every 10 s, not a line each
