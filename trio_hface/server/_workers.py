"""Worker processes: a supervisor that runs a server in N processes on the same ports.

Theory of operation
-------------------

:func:`serve_workers` (behind :meth:`ASGIServer.run_workers` and
:meth:`ProxyServer.run_workers`) is the supervisor. It binds every socket
itself, one per worker on each endpoint's port with ``SO_REUSEPORT``
(:func:`.bind_reuse_port`), attaches the kernel's QUIC steering to the UDP
groups (:func:`.attach_connection_id_steering`), and draws the secrets that
every worker must share (the stateless-reset key, the Retry token key). Then it starts the workers
with :mod:`multiprocessing`'s ``spawn`` context: each is a fresh interpreter
that unpickles the server (the ASGI application by its import path), gets its
own sockets by file-descriptor passing, and runs its own :func:`trio.run`
(:func:`_worker_main`). Everything a worker needs travels in one
:class:`_WorkerSpec`; nothing is inherited by accident.

* **Readiness**: a worker reports on a pipe once its server accepts; the
  supervisor starts (``task_status.started``) when all have. A worker that
  dies before it is ready the first time fails the whole start
  (:class:`.StartupFailed`): a broken application must not restart forever.
* **Restarts**: a worker that dies later is logged and started again on the
  same sockets, after a back-off that doubles from :data:`RESTART_BACKOFF` to
  :data:`MAX_RESTART_BACKOFF` and falls back once a worker stayed up for
  :data:`STABLE_AFTER` seconds.
* **Shutdown**: :meth:`~ASGIServer.shutdown` or cancellation sends SIGTERM to
  every worker, which shuts down gracefully as a single server does (GOAWAY,
  ``Connection: close``, ``graceful_timeout``, the lifespan shutdown), and
  waits for them within a deadline of its own, after which stragglers get
  SIGKILL. A worker also shuts down when the supervisor's pipe closes (the
  supervisor died), so no worker outlives it for long.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import socket as stdlib_socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, Protocol, cast

import trio

from .._groups import single_exception
from .._typing import AddressType
from ..errors import StartupFailed
from ..networking import ServerNetworking
from ..networking._forward import DatagramForwarder
from ..networking._reuseport import (
    PreboundNetworking,
    attach_connection_id_steering,
    bind_reuse_port,
    forwarding_pairs,
)
from ..protocols import ConnectionIDRouting, HTTPOverQUICServerFactory, QUICLBConfig
from . import _asgi
from ._models import Endpoint, naming_endpoint


class WorkerServer(Protocol):
    """What the supervisor and its workers need of a server (:class:`ASGIServer` and :class:`ProxyServer` have it)."""

    @property
    def http3_factory(self) -> HTTPOverQUICServerFactory: ...

    #: Seconds the supervisor waits for its workers to stop, once shutdown starts.
    @property
    def _stop_timeout(self) -> float: ...

    def _transports(self, endpoint: Endpoint) -> tuple[bool, bool]: ...

    def _check_endpoints(self, endpoints: Sequence[Endpoint]) -> None: ...

    def _become_worker(
        self,
        networking: ServerNetworking,
        http3_factory: HTTPOverQUICServerFactory | None,
        retry_key: bytes,
    ) -> None: ...

    async def _wait_shutdown(self) -> None: ...

    def shutdown(self) -> None: ...

    async def run(
        self, endpoints: Sequence[Endpoint | str], *, task_status: trio.TaskStatus[list[Endpoint]]
    ) -> None: ...


__all__ = ["SteeringMode", "WorkerMode", "WorkerPool", "WorkerServer", "serve_workers"]

log = logging.getLogger(__name__)
#: Shutdown's start and end (the logger that ``_server.py`` tells them on).
lifecycle_log = logging.getLogger("trio_hface.server.lifecycle")

#: Seconds before the first restart of a worker that died; doubled per death in a row.
RESTART_BACKOFF = 0.5
#: The longest wait between restarts, in seconds.
MAX_RESTART_BACKOFF = 30.0
#: Seconds a worker must stay up for its next death to restart it at once again.
STABLE_AFTER = 10.0
#: Seconds a worker may take from its start to accepting (its lifespan startup
#: has 30 of them, see LIFESPAN_TIMEOUT).
STARTUP_TIMEOUT = 60.0
#: Seconds after SIGKILL for the kernel to reap a worker.
KILL_TIMEOUT = 5.0


class SteeringMode:
    """How the datagrams of a QUIC connection reach their worker (:attr:`WorkerPool.steering`)."""

    #: One worker, or no HTTP/3: nothing to steer.
    NONE = "none"
    #: The kernel picks the socket by the connection ID (SO_ATTACH_REUSEPORT_CBPF).
    KERNEL = "kernel (SO_ATTACH_REUSEPORT_CBPF by the connection ID's first octet)"
    #: The kernel spreads by its 4-tuple hash, and the workers forward the
    #: datagrams of other workers' connections to them (over local sockets).
    FORWARD = "forwarding between workers (the kernel spreads by 4-tuple, without SO_ATTACH_REUSEPORT_CBPF)"


@dataclass
class _WorkerSpec:
    """What one worker process gets, by pickle: the server and its sockets, explicitly."""

    server: WorkerServer
    endpoints: list[Endpoint]
    index: int
    count: int
    tcp: dict[AddressType, list[stdlib_socket.socket]]
    udp: dict[AddressType, list[stdlib_socket.socket]]
    #: With forwarding: per address, per UDP socket, this worker's receive end and everyone's send ends.
    forward: dict[AddressType, list[tuple[stdlib_socket.socket, list[stdlib_socket.socket]]]]
    stateless_reset_key: bytes
    retry_key: bytes
    quic_lb: QUICLBConfig | None
    #: The supervisor's logging levels, the root's under ``""`` (``None``: it does not log).
    log_levels: dict[str, int] | None
    #: The worker's end of its pipe to the supervisor (set for each start).
    pipe: multiprocessing.connection.Connection | None = None


@dataclass
class _Worker:
    index: int
    process: BaseProcess | None = None
    pipe: multiprocessing.connection.Connection | None = None
    started_at: float = 0.0
    backoff: float = RESTART_BACKOFF
    restarts: int = 0


@dataclass
class WorkerPool:
    """The running workers of :func:`serve_workers`, as ``task_status.started`` hands them out."""

    #: The endpoints as bound (port 0 replaced by the real port).
    endpoints: list[Endpoint]
    #: How QUIC datagrams find their worker: a :class:`SteeringMode` value.
    steering: str
    _workers: list[_Worker] = field(default_factory=list)
    _restarted: trio.Event = field(default_factory=trio.Event)

    @property
    def pids(self) -> list[int | None]:
        """The process ID of each worker now (``None`` while it restarts)."""
        return [w.process.pid if w.process is not None else None for w in self._workers]

    @property
    def restarts(self) -> int:
        """Workers restarted so far (and serving again), over all workers."""
        return sum(w.restarts for w in self._workers)

    async def wait_restarts(self, count: int) -> None:
        """Wait until :attr:`restarts` is at least *count*."""
        while self.restarts < count:
            await self._restarted.wait()

    def _worker_restarted(self, worker: _Worker) -> None:
        worker.restarts += 1
        self._restarted.set()
        self._restarted = trio.Event()


class WorkerMode:
    """The worker mode of :class:`ASGIServer` and :class:`ProxyServer`: :meth:`run_workers`."""

    async def run_workers(
        self,
        endpoints: Sequence[Endpoint | str],
        *,
        workers: int,
        quic_lb: QUICLBConfig | None = None,
        kernel_steering: bool = True,
        task_status: trio.TaskStatus[WorkerPool] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve from *workers* processes on the same ports until cancelled or :meth:`shutdown`.

        This process becomes the supervisor (see :ref:`production`): it binds
        every endpoint once per worker with ``SO_REUSEPORT``, starts the
        workers (each a ``spawn``-ed interpreter running :meth:`run` on a
        pickled copy of this server, so the application must be importable
        by its module path), restarts those that die, and on shutdown stops
        them all gracefully. Settings such as ``max_connections`` apply to
        each worker. HTTP/3 connections stay on their worker when the
        client's address changes: the kernel steers datagrams by a worker
        octet in the connection IDs, where it can (:attr:`WorkerPool.steering`).

        Starts (``task_status.started``) once every worker serves, with the
        :class:`WorkerPool` (bound endpoints, process IDs, the steering mode).

        :param endpoints: where to listen, as for :meth:`run`
        :param workers: the number of worker processes, at least 1
        :param quic_lb: a QUIC-LB configuration, so that the HTTP/3
            connection IDs carry this machine's server ID too (for a
            connection-ID-aware load balancer in front of several machines)
        :param kernel_steering: let the kernel steer QUIC datagrams to their
            worker where it can; ``False`` makes the workers forward
            misrouted datagrams to each other instead, as where it cannot
        :raises ValueError: for an endpoint this configuration cannot serve
            or a number of workers out of range
        :raises TLSConfigError: if the certificate or key cannot be used
            (checked before anything is bound)
        :raises ListenError: if an address cannot be bound (an :class:`OSError`
            whose message names the endpoint)
        :raises StartupFailed: if a worker exits before it serves
        """
        parsed = [e if isinstance(e, Endpoint) else Endpoint.parse(e) for e in endpoints]
        if not parsed:
            raise ValueError("give at least one endpoint")
        with single_exception():
            await serve_workers(
                cast(WorkerServer, self),
                parsed,
                workers=workers,
                quic_lb=quic_lb,
                kernel_steering=kernel_steering,
                task_status=task_status,
            )


async def serve_workers(
    server: WorkerServer,
    endpoints: Sequence[Endpoint],
    *,
    workers: int,
    quic_lb: QUICLBConfig | None = None,
    kernel_steering: bool = True,
    task_status: trio.TaskStatus[WorkerPool] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run *server* in *workers* processes on the same sockets until it shuts down (see the module)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers!r}")
    ConnectionIDRouting(0, workers, quic_lb)  # validates the count against QUIC-LB
    server._check_endpoints(endpoints)  # before binding: a bad certificate fails here, not in each worker
    tcp, udp, bound, served, http3 = await _bind(server, list(endpoints), workers)
    # Per address, per resolved address: one socket pair per worker (forwarding only).
    pairs: dict[AddressType, list[list[tuple[stdlib_socket.socket, stdlib_socket.socket]]]] = {}
    try:
        steering = SteeringMode.NONE
        if http3 and workers > 1:
            if server.http3_factory.for_worker(ConnectionIDRouting(0, workers, quic_lb)) is None:
                raise ValueError(
                    f"{type(server.http3_factory).__name__} cannot issue connection IDs for workers: "
                    "serve HTTP/3 with one worker"
                )
            steering = SteeringMode.KERNEL if kernel_steering else SteeringMode.FORWARD
            for group in udp.values():
                for address_index in range(len(group[0])):
                    if steering == SteeringMode.KERNEL and not attach_connection_id_steering(
                        group[0][address_index], workers
                    ):
                        steering = SteeringMode.FORWARD
            if steering == SteeringMode.FORWARD:
                for address, group in udp.items():
                    pairs[address] = [forwarding_pairs(workers) for _ in group[0]]
            log.info("QUIC datagrams reach their worker by %s", steering)
        pool = WorkerPool(bound, steering, [_Worker(i) for i in range(workers)])
        key = server.http3_factory.quic_stateless_reset_key or os.urandom(32)
        retry_key = os.urandom(16)  # AES-128-GCM, as aioquic's own tokens
        specs = [
            _WorkerSpec(
                server=server,
                endpoints=served,
                index=i,
                count=workers,
                tcp={address: socks[i] for address, socks in tcp.items()},
                udp={address: socks[i] for address, socks in udp.items()},
                forward={
                    address: [
                        (per_address[i][1], [send for send, _ in per_address]) for per_address in groups
                    ]
                    for address, groups in pairs.items()
                },
                stateless_reset_key=key,
                retry_key=retry_key,
                quic_lb=quic_lb,
                log_levels=_log_levels(),
            )
            for i in range(workers)
        ]
        await _supervise(server, pool, specs, task_status)
    finally:
        for table in (tcp, udp):
            for socks in table.values():
                for per_worker in socks:
                    for sock in per_worker:
                        sock.close()
        for groups in pairs.values():
            for per_address in groups:
                for pair in per_address:
                    for sock in pair:
                        sock.close()


async def _bind(
    server: WorkerServer, endpoints: list[Endpoint], workers: int
) -> tuple[
    dict[AddressType, list[list[stdlib_socket.socket]]],
    dict[AddressType, list[list[stdlib_socket.socket]]],
    list[Endpoint],
    list[Endpoint],
    bool,
]:
    """Bind every worker's sockets.

    :returns: ``(tcp, udp, bound, served, http3)``: the sockets by address
        and worker, the endpoints as bound (one per address), the endpoints
        as the workers serve them (as given, with the real port), and whether
        HTTP/3 is served
    """
    tcp: dict[AddressType, list[list[stdlib_socket.socket]]] = {}
    udp: dict[AddressType, list[list[stdlib_socket.socket]]] = {}
    bound: list[Endpoint] = []
    served: list[Endpoint] = []
    http3 = False
    try:
        for endpoint in endpoints:
            serves_tcp, serves_http3 = server._transports(endpoint)
            port = endpoint.port
            if serves_tcp:
                with naming_endpoint(endpoint):
                    socks = await bind_reuse_port(endpoint.address, count=workers, udp=False)
                port = socks[0][0].getsockname()[1]
                tcp[(endpoint.host, port)] = socks
                bound += [Endpoint(endpoint.scheme, s.getsockname()[0], port) for s in socks[0]]
            if serves_http3:
                http3 = True
                with naming_endpoint(Endpoint(endpoint.scheme, endpoint.host, port), udp=True):
                    socks = await bind_reuse_port((endpoint.host, port), count=workers, udp=True)
                port = socks[0][0].getsockname()[1]
                udp[(endpoint.host, port)] = socks
                if not serves_tcp:
                    bound += [Endpoint("https", s.getsockname()[0], port) for s in socks[0]]
            served.append(Endpoint(endpoint.scheme, endpoint.host, port))
    except BaseException:
        for table in (tcp, udp):
            for per_worker in table.values():
                for group in per_worker:
                    for sock in group:
                        sock.close()
        raise
    return tcp, udp, bound, served, http3


def _log_levels() -> dict[str, int] | None:
    """The levels of the root logger and of every logger whose level is set (``None``: no logging set up)."""
    root = logging.getLogger()
    if not root.handlers:
        return None
    levels = {"": root.getEffectiveLevel()}
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels


async def _supervise(
    server: WorkerServer,
    pool: WorkerPool,
    specs: list[_WorkerSpec],
    task_status: trio.TaskStatus[WorkerPool],
) -> None:
    context = multiprocessing.get_context("spawn")
    try:
        async with trio.open_nursery() as nursery:
            with trio.move_on_after(STARTUP_TIMEOUT) as waiting:
                for worker, spec in zip(pool._workers, specs, strict=True):
                    if not await _start(context, worker, spec):
                        raise StartupFailed(f"worker {worker.index} exited before it served")
            if waiting.cancelled_caught:
                raise StartupFailed(f"the workers did not all serve within {STARTUP_TIMEOUT:.0f} s")
            log.info("%d workers serving (pids %s)", len(specs), pool.pids)
            task_status.started(pool)
            for worker, spec in zip(pool._workers, specs, strict=True):
                nursery.start_soon(_keep, context, pool, worker, spec)
            await server._wait_shutdown()
            lifecycle_log.info("shutting down: stopping %d workers", len(specs))
            nursery.cancel_scope.cancel()
    finally:
        with trio.move_on_after(server._stop_timeout + KILL_TIMEOUT, shield=True):
            await _stop(pool)
    lifecycle_log.info("shut down")


async def _start(context: Any, worker: _Worker, spec: _WorkerSpec) -> bool:
    """Start *worker* and wait until it serves; ``False`` if it died first."""
    ours, theirs = context.Pipe(duplex=True)
    spec.pipe = theirs
    process = context.Process(target=_worker_main, args=(spec,), name=f"trio-hface worker {worker.index}")
    try:
        process.start()
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        ours.close()
        raise ValueError(
            f"the server cannot be sent to a worker process ({exc}): "
            "its application must be importable by its module path"
        ) from exc
    finally:
        theirs.close()
        spec.pipe = None
    worker.process, worker.pipe = process, ours
    worker.started_at = trio.current_time()
    await trio.lowlevel.wait_readable(ours.fileno())
    try:
        ours.recv()
    except EOFError:
        await _reap(worker)
        return False
    return True


async def _keep(context: Any, pool: WorkerPool, worker: _Worker, spec: _WorkerSpec) -> None:
    """Restart *worker* whenever it dies, with a back-off."""
    while True:
        if worker.process is not None:
            await trio.lowlevel.wait_readable(worker.process.sentinel)
            code = await _reap(worker)
            log.warning("worker %d exited with %s: restarting in %.1f s", worker.index, code, worker.backoff)
        if trio.current_time() - worker.started_at >= STABLE_AFTER:
            worker.backoff = RESTART_BACKOFF
        await trio.sleep(worker.backoff)
        worker.backoff = min(worker.backoff * 2, MAX_RESTART_BACKOFF)
        with trio.move_on_after(STARTUP_TIMEOUT) as waiting:
            ready = await _start(context, worker, spec)
        if waiting.cancelled_caught:
            log.error("worker %d did not serve within %.0f s: killing it", worker.index, STARTUP_TIMEOUT)
            if worker.process is not None:
                worker.process.kill()
                await _reap(worker)
        elif ready:
            assert worker.process is not None
            log.info("worker %d restarted (pid %s)", worker.index, worker.process.pid)
            pool._worker_restarted(worker)
        else:
            log.error("worker %d exited again before it served", worker.index)


async def _reap(worker: _Worker) -> int | None:
    """Collect a worker that exited (or is about to): its exit code."""
    process = worker.process
    if process is None:
        return None
    # The sentinel is readable: the process has exited or is exiting.
    await trio.to_thread.run_sync(process.join, KILL_TIMEOUT, abandon_on_cancel=True)
    if process.exitcode is None:
        process.kill()
        await trio.to_thread.run_sync(process.join, KILL_TIMEOUT, abandon_on_cancel=True)
    code = process.exitcode
    if worker.pipe is not None:
        worker.pipe.close()
    process.close()
    worker.process = worker.pipe = None
    return code


async def _stop(pool: WorkerPool) -> None:
    """SIGTERM to every worker, then wait; SIGKILL those still there when cancelled."""
    running = [w for w in pool._workers if w.process is not None]
    for worker in running:
        assert worker.process is not None
        if worker.process.pid is not None and worker.process.exitcode is None:
            os.kill(worker.process.pid, signal.SIGTERM)
    try:
        for worker in running:
            assert worker.process is not None
            await trio.lowlevel.wait_readable(worker.process.sentinel)
            code = await _reap(worker)
            if code:
                log.warning("worker %d exited with %s", worker.index, code)
    finally:
        for worker in running:
            if worker.process is not None:
                worker.process.kill()
                worker.process.join(KILL_TIMEOUT)
                worker.process.close()
                worker.process = None


def _worker_main(spec: _WorkerSpec) -> None:
    """The entry point of a worker process (spawned: a fresh interpreter)."""
    if spec.log_levels is not None:
        # The worker logs as its supervisor does (the levels that the command line set).
        logging.basicConfig(
            level=spec.log_levels[""],
            format=f"%(asctime)s %(levelname)s %(name)s [worker {spec.index}]: %(message)s",
        )
        for name, level in spec.log_levels.items():
            if name:
                logging.getLogger(name).setLevel(level)
    _asgi.worker_index = spec.index
    trio.run(_run_worker, spec)


async def _run_worker(spec: _WorkerSpec) -> None:
    server = spec.server
    routing = ConnectionIDRouting(spec.index, spec.count, spec.quic_lb)
    routed = server.http3_factory.for_worker(routing, stateless_reset_key=spec.stateless_reset_key)
    forwarders = {
        address: [DatagramForwarder(routing.worker_of, spec.index, mine, sends) for mine, sends in per_socket]
        for address, per_socket in spec.forward.items()
    }
    server._become_worker(PreboundNetworking(spec.tcp, spec.udp, forwarders), routed, spec.retry_key)
    pipe = spec.pipe
    assert pipe is not None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def serve(task_status: trio.TaskStatus[list[Endpoint]]) -> None:
                await server.run(spec.endpoints, task_status=task_status)
                nursery.cancel_scope.cancel()

            await nursery.start(serve)
            pipe.send(os.getpid())

            async def on_signal() -> None:
                async for signum in signals:
                    log.info("%s: shutting down", signal.Signals(signum).name)
                    server.shutdown()

            async def on_supervisor_gone() -> None:
                await trio.lowlevel.wait_readable(pipe.fileno())
                log.warning("the supervisor is gone: shutting down")
                server.shutdown()

            nursery.start_soon(on_signal)
            nursery.start_soon(on_supervisor_gone)
