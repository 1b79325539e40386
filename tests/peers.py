"""Starting peer processes (nghttpd, gtlsserver, hypercorn, our own CLI and examples) for tests.

:func:`running_peer` starts a long-running program, waits until it is ready and
stops it afterwards; :func:`run_peer` runs a client program (curl, nghttp,
h2load, gtlsclient) to its end under a deadline. Neither races for ports:

* a program that can bind port 0 and say which port it got is given port 0,
  and the port is read from its output (``ready`` names it ``(?P<port>...)``);
* a program that needs a port number is given a candidate (``command`` is a
  function of the port); if it exits saying the address is taken, it is
  started again with another candidate.

:func:`refusing_port` holds a bound socket that refuses everyone, for tests of a
peer that is not there: it stays bound, so no other program can take it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import trio

ROOT = Path(__file__).resolve().parent.parent
#: The environment for our own programs: this checkout is importable.
OUR_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
#: What a program that cannot bind its port says before it exits.
ADDRESS_IN_USE = re.compile(rb"in use|Could not bind|Could not listen", re.IGNORECASE)
#: How much of a peer's output is kept (the rest is read and dropped, so the pipe never blocks it).
OUTPUT_LIMIT = 1 << 20
#: What ``nghttpd -v`` prints once it listens (it prints the port it was given, so give it one).
NGHTTPD_LISTENING = rb"IPv4: listen 127\.0\.0\.1:\d+"
#: Tries with another port number when a port turns out to be taken.
PORT_ATTEMPTS = 5


class PeerExited(Exception):
    """A peer process ended before it was ready."""


@dataclass
class Peer:
    """A running peer process, its port and what it has printed so far (stdout and stderr together)."""

    process: trio.Process
    port: int
    output: bytearray = field(default_factory=bytearray)
    #: The match of ``ready`` once the peer was ready (``None`` for a probe).
    match: re.Match[bytes] | None = None
    _changed: trio.Event = field(default_factory=trio.Event)
    _ended: bool = False  # the output is complete and the process has exited

    def group(self, name: str) -> str:
        """A named group of the ``ready`` match, as text."""
        assert self.match is not None, "this peer was not made ready by a pattern"
        return self.match.group(name).decode()

    async def wait_output(self, pattern: str | bytes) -> re.Match[bytes]:
        """Wait until the output matches *pattern* (callers put a deadline around it).

        :raises PeerExited: if the process ends first
        """
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else pattern, re.DOTALL)
        while (found := regex.search(self.output)) is None:
            self._check_alive()
            self._changed = trio.Event()
            await self._changed.wait()
        return found

    async def wait_exit(self) -> int:
        """Wait until the process has exited and all its output is read; return its exit status."""
        while not self._ended:
            self._changed = trio.Event()
            await self._changed.wait()
        return await self.process.wait()

    def _check_alive(self) -> None:
        if self._ended:
            raise PeerExited(f"{self.process.args!r} exited with {self.process.returncode}: {self.text()}")

    def text(self) -> str:
        """The output so far, as text (its last 4000 characters)."""
        return self.output.decode(errors="replace")[-4000:]

    async def stop(self, sig: int = signal.SIGTERM, *, kill_after: float = 30) -> int:
        """Send *sig* and wait for the exit; return the exit status (the process is killed after *kill_after* s)."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        with trio.move_on_after(kill_after):
            return await self.process.wait()
        self.process.kill()
        return await self.process.wait()

    async def _read(self, stream: trio.abc.ReceiveStream) -> None:
        try:
            async with stream:
                while chunk := await stream.receive_some():
                    if len(self.output) < OUTPUT_LIMIT:
                        self.output += chunk[: OUTPUT_LIMIT - len(self.output)]
                    self._changed.set()
        finally:
            await self.process.wait()
            self._ended = True
            self._changed.set()


def _candidate_port(kind: int) -> int:
    """A port free a moment ago; only for programs that are retried when it is taken meanwhile."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def running_peer(
    command: Sequence[str] | Callable[[int], Sequence[str]],
    *,
    ready: str | bytes | Callable[[Peer], Awaitable[bool]],
    udp: bool = False,
    ready_within: float = 30,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    stderr_to: Path | None = None,
) -> AsyncIterator[Peer]:
    """Start a peer program, wait until it is ready, yield it, and stop it on the way out.

    :param command: the program and its arguments; or a function of a port
        number giving them, for a program that cannot bind port 0
    :param ready: a regular expression that the output matches once the peer
        is ready (a group ``port`` gives :attr:`Peer.port`; end the pattern
        after the number, or a number cut between two reads may match), or an async probe,
        called until it returns true, for a peer that prints nothing
    :param udp: the port is a UDP port (for the candidates of *command*)
    :param ready_within: how many seconds it may take to become ready, each attempt
    :param stderr_to: a file for the peer's stderr (a long log), which then is
        not part of :attr:`Peer.output`
    :raises PeerExited: if the peer ends before it is ready (not for a taken port: that is retried)

    On the way out the peer gets SIGTERM, then SIGKILL if it has not ended
    after 30 s; call :meth:`Peer.stop` first to stop it another way.
    """
    for attempt in range(PORT_ATTEMPTS):
        port = 0
        args = command
        if callable(command):
            port = _candidate_port(socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
            args = command(port)
        assert not callable(args)
        with _stderr(stderr_to) as stderr:
            process = await trio.lowlevel.open_process(
                list(args), stdout=subprocess.PIPE, stderr=stderr, cwd=cwd, env=env
            )
        peer = Peer(process, port)
        exited: PeerExited | None = None
        try:
            async with trio.open_nursery() as nursery:
                assert process.stdout is not None
                nursery.start_soon(peer._read, process.stdout)
                try:
                    with trio.fail_after(ready_within):
                        await _wait_ready(peer, ready)
                except PeerExited as exc:
                    exited = exc  # raised below, outside the nursery: not in an exception group
                    nursery.cancel_scope.cancel()
                else:
                    yield peer
                    await peer.stop()
        finally:
            if process.returncode is None:
                process.kill()
                with trio.move_on_after(5, shield=True):
                    await process.wait()
        if exited is None:
            return
        taken = callable(command) and ADDRESS_IN_USE.search(peer.output)
        if not taken or attempt + 1 == PORT_ATTEMPTS:
            raise exited
    raise AssertionError("unreachable: the last attempt raises")


def _stderr(path: Path | None) -> contextlib.AbstractContextManager[int | BinaryIO]:
    """Where a peer's stderr goes: appended to *path*, or into its stdout."""
    if path is None:
        return contextlib.nullcontext(subprocess.STDOUT)
    return open(path, "ab")  # the caller's with statement closes it


async def _wait_ready(peer: Peer, ready: str | bytes | Callable[[Peer], Awaitable[bool]]) -> None:
    if not callable(ready):
        peer.match = await peer.wait_output(ready)
        if "port" in peer.match.re.groupindex:
            peer.port = int(peer.match.group("port"))
        return
    delay = 0.01
    while not await ready(peer):
        peer._check_alive()
        await trio.sleep(delay)
        delay = min(delay * 2, 0.2)


async def accepts_tcp(peer: Peer) -> bool:
    """A probe for :func:`running_peer`: whether the peer's process lives and its port accepts TCP connections."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", peer.port)
    except OSError:
        return False
    await stream.aclose()
    return not peer._ended


async def run_peer(
    command: Sequence[str],
    *,
    within: float = 60,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a client program to its end, in at most *within* seconds; its stdout and stderr are captured apart.

    :raises trio.TooSlowError: if it takes longer (it is killed)
    """
    with trio.fail_after(within):
        return await trio.run_process(
            list(command), capture_stdout=True, capture_stderr=True, check=False, cwd=cwd, env=env
        )


@contextmanager
def refusing_port(kind: int = socket.SOCK_STREAM) -> Iterator[int]:
    """A loopback port held bound but never served: TCP connections and UDP datagrams are refused.

    A TCP socket that is bound but not listening refuses connections. A UDP
    socket connected to itself takes no datagram from anyone else, so the
    kernel answers those with ICMP port unreachable, as for a closed port.
    """
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        if kind == socket.SOCK_DGRAM:
            sock.connect(("127.0.0.1", port))
        yield port


@contextlib.contextmanager
def taken_port(kind: int) -> Iterator[int]:
    """A port that a socket of *kind* holds; for UDP, one that is free on TCP (where the server binds first)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, kind) as taken:
            taken.bind(("127.0.0.1", 0))
            port: int = taken.getsockname()[1]
            if kind == socket.SOCK_STREAM:
                taken.listen()
            else:
                with socket.socket() as probe:
                    try:
                        probe.bind(("127.0.0.1", port))
                    except OSError:
                        continue  # another process has this port on TCP: try another
            yield port
            return
    raise AssertionError("no UDP port free on TCP too")


#: What `trio-hface server` and `trio-hface proxy` print once they serve on a development certificate.
SERVING = r"trust its CA: (?P<ca>\S+)\n.*serving on https://127\.0\.0\.1:(?P<port>\d+) \("
