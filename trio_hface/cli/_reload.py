"""``trio-hface server --reload``: serve from a child process, restarted when a source file changes.

Theory of operation
-------------------

The reloader (this process) binds every endpoint's sockets itself, once,
and keeps them: a restart loses no connection attempt (new ones wait in the
kernel's backlog) and port 0 keeps its port. It starts the server as a
child process, the same command line in a fresh interpreter (so the
application is imported anew), handing it the sockets as inherited file
descriptors, named in the environment variable :data:`CHILD_ENV`, and the
read end of a pipe that closes when the reloader goes away. The child runs
in a session of its own, so a Ctrl-C in the terminal reaches the reloader
only, which stops the child with ``SIGTERM`` (a graceful shutdown).

Every :data:`POLL_INTERVAL` seconds the reloader compares the modification
times of the ``.py`` files under the application's directory and the
current directory (and of the configuration file) with the last scan, in a
thread. When one changed, it stops the child and starts a new one. A child
that exits on its own (a syntax error in the edited file, say) is
reported, and the next change starts it again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket as stdlib_socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from .._typing import AddressType
from ..networking._reuseport import PreboundNetworking, bind_reuse_port
from ..server import ASGIServer, Endpoint, ServerProtocol
from ._errors import CommandError

__all__ = [
    "CHILD_ENV",
    "POLL_INTERVAL",
    "add_reload",
    "reloaded_child",
    "run_reloader",
    "wait_readable_then_cancel",
]

log = logging.getLogger("trio_hface.server.lifecycle")

#: The environment variable that tells a child of the reloader its sockets (JSON).
CHILD_ENV = "TRIO_HFACE_RELOADER_SOCKETS"
#: Seconds between two scans of the source files.
POLL_INTERVAL = 0.5
#: Files a scan looks at, at most (a scan of a huge tree would eat the CPU it watches).
MAX_WATCHED_FILES = 20_000
#: Directories a scan does not enter (besides those whose name starts with a dot).
SKIPPED_DIRECTORIES = frozenset({"__pycache__", "node_modules", "site-packages", "venv", "build", "dist"})
#: Seconds a stopped child may take beyond its graceful timeout before it is killed
#: (its lifespan shutdown and the goodbyes of its connections).
STOP_MARGIN = 10.0
#: Seconds for the kernel to reap a killed child.
KILL_TIMEOUT = 5.0


def add_reload(parser: argparse.ArgumentParser) -> None:
    """The ``--reload`` option."""
    parser.add_argument(
        "--reload",
        action="store_true",
        help=(
            "for development: serve from a child process that is restarted when a .py file under "
            "the application's directory or the current directory changes (one process only)"
        ),
    )


@dataclass
class ReloadedChild:
    """What a child of the reloader got from it: its sockets and the pipe that tells the reloader is gone."""

    tcp: dict[AddressType, list[stdlib_socket.socket]]
    udp: dict[AddressType, list[stdlib_socket.socket]]
    endpoints: list[Endpoint]
    #: Readable (end of file) once the reloader is gone.
    parent_gone: int

    def adopt(self, server: ASGIServer) -> list[Endpoint]:
        """Make *server* listen on the inherited sockets; return the endpoints to serve."""
        server._become_worker(PreboundNetworking(self.tcp, self.udp), None, os.urandom(16))
        return self.endpoints


def reloaded_child() -> ReloadedChild | None:
    """In a child of the reloader, what it handed down (``None`` in any other process)."""
    text = os.environ.get(CHILD_ENV)
    if text is None:
        return None
    spec = json.loads(text)

    def table(entries: list[list[Any]]) -> dict[AddressType, list[stdlib_socket.socket]]:
        return {(host, port): [stdlib_socket.socket(fileno=fd) for fd in fds] for host, port, fds in entries}

    return ReloadedChild(
        tcp=table(spec["tcp"]),
        udp=table(spec["udp"]),
        endpoints=[Endpoint.parse(e) for e in spec["endpoints"]],
        parent_gone=spec["parent_gone"],
    )


async def wait_readable_then_cancel(fd: int, scope: trio.CancelScope) -> None:
    """Wait until *fd* is readable (the reloader is gone), then cancel *scope*."""
    await trio.lowlevel.wait_readable(fd)
    log.warning("the reloader is gone: shutting down")
    scope.cancel()


def run_reloader(args: argparse.Namespace) -> int:
    """Run the server of *args* in a child process, restarted on every change of a source file."""

    if args.workers != 1 or args.quic_lb is not None:
        raise CommandError("--reload serves from one process: leave out --workers and --quic-lb")
    endpoints = [Endpoint.parse(value) for value in args.endpoints]
    roots = {Path(args.app_dir).resolve(), Path.cwd()}
    extra = [Path(args.config).resolve()] if args.config else []
    try:
        trio.run(_reload, args, endpoints, sorted(roots), extra)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"trio-hface server: {exc}", file=sys.stderr)
        return 1
    return 0


async def _bind(
    endpoints: list[Endpoint], protocol: ServerProtocol
) -> tuple[
    dict[AddressType, list[stdlib_socket.socket]],
    dict[AddressType, list[stdlib_socket.socket]],
    list[Endpoint],
]:
    """Bind the sockets of *endpoints* as the server would listen on them (TCP, and UDP for HTTP/3)."""
    tcp: dict[AddressType, list[stdlib_socket.socket]] = {}
    udp: dict[AddressType, list[stdlib_socket.socket]] = {}
    served: list[Endpoint] = []
    try:
        for endpoint in endpoints:
            port = endpoint.port
            if protocol is not ServerProtocol.HTTP3:
                socks = (await bind_reuse_port(endpoint.address, count=1, udp=False))[0]
                port = socks[0].getsockname()[1]
                tcp[(endpoint.host, port)] = socks
            if endpoint.tls and protocol in (ServerProtocol.ALL, ServerProtocol.HTTP3):
                socks = (await bind_reuse_port((endpoint.host, port), count=1, udp=True))[0]
                port = socks[0].getsockname()[1]
                udp[(endpoint.host, port)] = socks
            served.append(Endpoint(endpoint.scheme, endpoint.host, port))
    except BaseException:
        _close(tcp, udp)
        raise
    return tcp, udp, served


def _close(*tables: dict[AddressType, list[stdlib_socket.socket]]) -> None:
    for table in tables:
        for socks in table.values():
            for sock in socks:
                sock.close()


def scan(roots: Iterable[Path], extra: Iterable[Path] = ()) -> dict[str, float]:
    """The modification times of the ``.py`` files under *roots* (and of the files *extra*)."""
    times: dict[str, float] = {}
    for path in extra:
        try:
            times[str(path)] = path.stat().st_mtime
        except OSError:
            pass
    pending = [str(root) for root in roots]
    seen: set[str] = set()
    while pending and len(times) < MAX_WATCHED_FILES:
        folder = pending.pop()
        if folder in seen:
            continue
        seen.add(folder)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith(".") and entry.name not in SKIPPED_DIRECTORIES:
                        pending.append(entry.path)
                elif entry.name.endswith(".py"):
                    times[entry.path] = entry.stat().st_mtime
            except OSError:
                continue
    return times


async def _wait_change(roots: list[Path], extra: list[Path], before: dict[str, float]) -> str:
    """Wait until a watched file changes, appears or goes; return its name."""
    while True:
        await trio.sleep(POLL_INTERVAL)
        now = await trio.to_thread.run_sync(scan, roots, extra)
        if now != before:
            changed = {p for p in now.keys() | before.keys() if now.get(p) != before.get(p)}
            return min(changed)


async def _reload(
    args: argparse.Namespace, endpoints: list[Endpoint], roots: list[Path], extra: list[Path]
) -> None:
    tcp, udp, served = await _bind(endpoints, args.protocol)
    gone_read, gone_write = os.pipe()
    try:
        spec = {
            "tcp": [[host, port, [s.fileno() for s in socks]] for (host, port), socks in tcp.items()],
            "udp": [[host, port, [s.fileno() for s in socks]] for (host, port), socks in udp.items()],
            "endpoints": [str(e) for e in served],
            "parent_gone": gone_read,
        }
        fds = [gone_read, *(s.fileno() for t in (tcp, udp) for socks in t.values() for s in socks)]
        env = {**os.environ, CHILD_ENV: json.dumps(spec)}
        command = [sys.executable, "-m", "trio_hface", *getattr(args, "argv", sys.argv[1:])]
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

                nursery.start_soon(on_signal)
                await _restart_forever(args, command, env, fds, roots, extra)
    finally:
        os.close(gone_write)
        os.close(gone_read)
        _close(tcp, udp)


async def _restart_forever(
    args: argparse.Namespace,
    command: list[str],
    env: dict[str, str],
    fds: list[int],
    roots: list[Path],
    extra: list[Path],
) -> None:
    stop_timeout = args.graceful_timeout + STOP_MARGIN
    while True:
        before = await trio.to_thread.run_sync(scan, roots, extra)
        process = await trio.lowlevel.open_process(command, env=env, pass_fds=fds, start_new_session=True)
        try:
            changed: list[str] = []
            async with trio.open_nursery() as race:
                race.start_soon(_note_change, race.cancel_scope, changed, roots, extra, before)
                status = await process.wait()
                log.warning(
                    "the server exited with status %s: waiting for a change to start it again", status
                )
            if not changed:
                changed.append(await _wait_change(roots, extra, before))
            log.info("%s changed: restarting the server", changed[0])
        finally:
            with trio.move_on_after(stop_timeout + KILL_TIMEOUT, shield=True):
                await _stop(process, stop_timeout)


async def _note_change(
    scope: trio.CancelScope,
    changed: list[str],
    roots: list[Path],
    extra: list[Path],
    before: dict[str, float],
) -> None:
    """Wait for a change, note it in *changed*, and cancel *scope*."""
    changed.append(await _wait_change(roots, extra, before))
    scope.cancel()


async def _stop(process: trio.Process, patience: float) -> None:
    """Stop the child gracefully (``SIGTERM``); kill it after *patience* seconds."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    with trio.move_on_after(patience):
        await process.wait()
        return
    process.kill()
    await process.wait()
