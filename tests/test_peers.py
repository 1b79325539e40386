"""The peer-process helper of tests/peers.py: readiness, ports taken meanwhile, peers that die."""

from __future__ import annotations

import socket
import sys

import pytest
import trio

from tests.helpers import require_tool
from tests.peers import NGHTTPD_LISTENING, PeerExited, accepts_tcp, refusing_port, running_peer

# A peer that binds port 0 and says where, as our CLI does.
REPORTS_ITS_PORT = """
import socket, sys, time
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen()
print("noise first")
print("listening on 127.0.0.1:%d" % sock.getsockname()[1], flush=True)
time.sleep(60)
"""


async def test_port_is_read_from_the_ready_line() -> None:
    """A peer that binds port 0 is ready once it prints its port, and the port it prints accepts."""
    command = [sys.executable, "-c", REPORTS_ITS_PORT]
    async with running_peer(command, ready=r"listening on 127\.0\.0\.1:(?P<port>\d+)\n") as peer:
        assert peer.port != 0 and peer.group("port") == str(peer.port)
        assert await accepts_tcp(peer)
    assert peer.process.returncode is not None, "stopped on the way out"


async def test_a_taken_port_is_retried_with_another() -> None:
    """A peer given a port that another program holds exits; it is started again on a new candidate."""
    nghttpd = require_tool("nghttpd")
    given: list[int] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        def command(port: int) -> list[str]:
            given.append(taken.getsockname()[1] if not given else port)
            return [nghttpd, "-v", "--no-tls", "--address", "127.0.0.1", str(given[-1])]

        async with running_peer(command, ready=NGHTTPD_LISTENING) as peer:
            assert len(given) == 2 and given[0] != given[1]
            assert peer.port == given[1]
            assert await accepts_tcp(peer)


async def test_a_peer_that_dies_before_it_is_ready_says_why() -> None:
    """A peer that exits before its ready line raises PeerExited with its output, at once."""
    command = [sys.executable, "-c", "print('cannot start: no config'); raise SystemExit(3)"]
    with trio.fail_after(20), pytest.raises(PeerExited, match="no config"):
        async with running_peer(command, ready="never printed"):
            raise AssertionError("not ready")


async def test_refusing_port_refuses_tcp() -> None:
    """The held port refuses TCP connections while nobody else can bind it."""
    with refusing_port() as port:
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))
