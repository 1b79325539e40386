"""The processes the benchmark measures with and against: servers, h2load, gtlsclient swarms.

Servers run pinned to one core and load generators to the other (``taskset``), so that the
figures compare servers, not schedulers. Every process is started with a deadline and
stopped (terminate, then kill) when its block ends; every port is a free loopback port.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

BENCH = Path(__file__).resolve().parent
HELLO_APP = "trio_hface.server.examples.hello:app"
PAYLOAD_APP = "trio_hface.server.examples.payload:app"
#: The core that servers (the measured side) run on, and the core of the load.
SERVER_CORE, LOAD_CORE = 0, 1
#: How long a server may take to accept its first connection.
STARTUP_TIMEOUT = 30.0
#: How long a stopped server may take to exit before it is killed.
STOP_TIMEOUT = 5.0
#: How long to wait for a server to go idle between two measurements.
SETTLE_TIMEOUT = 10.0


class BenchError(Exception):
    """A part of the benchmark could not run: a tool is missing, a server died, a tool failed."""


def pinned() -> bool:
    """Whether server and load get a core each (needs two cores and ``taskset``)."""
    return len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset") is not None


def on_core(core: int, argv: Sequence[str]) -> list[str]:
    """*argv* run on *core* when pinning is possible, as it is otherwise."""
    return ["taskset", "-c", str(core), *argv] if pinned() else list(argv)


def tool(name: str) -> str:
    """The path of an external program (some Debian packages put servers in /usr/sbin)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if path is None:
        raise BenchError(f"{name} is not installed (bash .ci/install-peers installs it)")
    return path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port that is free for TCP (or UDP) now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Certs:
    """A development CA and a certificate for localhost and 127.0.0.1, as PEM files."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def create(cls, folder: Path) -> Certs:
        """Issue the certificate with trustme and write the files into *folder*."""
        ca = trustme.CA()
        issued = ca.issue_cert("localhost", "127.0.0.1")
        certs = cls(ca=folder / "ca.pem", cert=folder / "cert.pem", key=folder / "key.pem")
        ca.cert_pem.write_to_path(certs.ca)
        certs.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        issued.private_key_pem.write_to_path(certs.key)
        return certs


@dataclass(frozen=True)
class Ports:
    """Where one server process listens: TLS (and QUIC on the same number) and cleartext."""

    tls: int
    clear: int


def ours_argv(
    app: str, certs: Certs, ports: Ports, *, http2_only: bool = False, options: Sequence[str] = ()
) -> list[str]:
    """``trio-hface server`` serving *app* over TLS (HTTP/1.1, HTTP/2, HTTP/3) and cleartext.

    Cleartext HTTP/2 needs a server of its own (``--http2``: prior knowledge); the default
    cleartext endpoint speaks HTTP/1.1. *options* go to the command as they are
    (``--http1-impl httptools``).
    """
    argv = [sys.executable, "-m", "trio_hface", "server", "--cert", str(certs.cert), "--key", str(certs.key)]
    argv += options
    if http2_only:
        return [*argv, "--http2", app, f"http://127.0.0.1:{ports.clear}"]
    return [*argv, app, f"https://127.0.0.1:{ports.tls}", f"http://127.0.0.1:{ports.clear}"]


def nghttpd_argv(docs: Path, port: int, certs: Certs) -> list[str]:
    """nghttpd serving the files of *docs* over HTTP/2 with TLS on 127.0.0.1:*port*."""
    return [tool("nghttpd"), "-a", "127.0.0.1", "-d", str(docs), str(port), str(certs.key), str(certs.cert)]


def hypercorn_argv(app: str, certs: Certs, ports: Ports) -> list[str]:
    """hypercorn's trio worker serving *app* over TLS, QUIC and cleartext (HTTP/2 prior knowledge too)."""
    return [
        sys.executable,
        str(BENCH / "hypercorn_reason.py"),
        "--worker-class",
        "trio",
        "--workers",
        "0",  # serve in this process: the reason-phrase patch applies, and taskset pins it
        "--certfile",
        str(certs.cert),
        "--keyfile",
        str(certs.key),
        "--bind",
        f"127.0.0.1:{ports.tls}",
        "--quic-bind",
        f"127.0.0.1:{ports.tls}",
        "--insecure-bind",
        f"127.0.0.1:{ports.clear}",
        app,
    ]


def wait_accepting(process: subprocess.Popen[bytes], ports: Sequence[int], log: Path) -> None:
    """Return once every TCP port in *ports* accepts; raise if *process* exits or is too slow."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    for port in ports:
        while True:
            if process.poll() is not None:
                raise BenchError(f"server exited with {process.returncode}: {tail(log)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(f"server did not accept on port {port}: {tail(log)}") from None
                time.sleep(0.05)


def wait_udp_bound(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Return once some socket holds UDP *port* (a server that cannot say when it is ready)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise BenchError(f"server exited with {process.returncode}: {tail(log)}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return  # taken: the server has it
        if time.monotonic() > deadline:
            raise BenchError(f"server did not bind UDP port {port}: {tail(log)}")
        time.sleep(0.05)


def tail(log: Path, lines: int = 5) -> str:
    """The last lines of a log file, on one line."""
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


#: The line of a traceback that names the exception (``| trio.BusyResourceError: ...``).
_RAISED = re.compile(r"^[\s|+]*((?:[\w.]+\.)?\w*(?:Error|Exception|Group|Interrupt|Exit)\b.*)$")


def epitaph(log: Path) -> str:
    """Why a server died, from its log: the innermost exception of its last traceback, or the last line."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    for line in reversed(lines):
        if (raised := _RAISED.match(line)) and not raised.group(1).startswith(
            ("ExceptionGroup", "BaseExceptionGroup")
        ):
            return raised.group(1).strip()
    return lines[-1].strip() if lines else "(empty log)"


def start(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server pinned to the server core, its output going to *log*."""
    with log.open("wb") as output:
        return subprocess.Popen(
            on_core(SERVER_CORE, argv), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )


def wait_ready(
    process: subprocess.Popen[bytes], log: Path, *, tcp_ports: Sequence[int] = (), udp_port: int | None = None
) -> None:
    """Return once a started server accepts on *tcp_ports* and holds *udp_port*."""
    wait_accepting(process, tcp_ports, log)
    if udp_port is not None:
        wait_udp_bound(process, udp_port, log)


@contextmanager
def server(
    argv: Sequence[str], log: Path, *, tcp_ports: Sequence[int] = (), udp_port: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server pinned to the server core until the block ends; ready when the block starts."""
    process = start(argv, log)
    try:
        wait_ready(process, log, tcp_ports=tcp_ports, udp_port=udp_port)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate *process*, and kill it if it does not exit within ``STOP_TIMEOUT``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """The CPU time process *pid* has used so far (user and system), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(processes: Sequence[subprocess.Popen[bytes]], timeout: float = SETTLE_TIMEOUT) -> None:
    """Wait (at most *timeout*) until *processes* stop using CPU: work left over from one
    measurement (connections being torn down) must not be charged to the next."""
    deadline = time.monotonic() + timeout
    used = sum(cpu_seconds(p.pid) for p in processes)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = sum(cpu_seconds(p.pid) for p in processes)
        if now - used < 0.02:  # under 10% of a core
            return
        used = now


@dataclass
class LoadResult:
    """What one h2load run measured (``complete`` is false when the wall-clock cap stopped it)."""

    seconds: float = 0.0
    succeeded: int = 0
    failed: int = 0
    body_bytes: int = 0
    complete: bool = False
    output: str = ""

    @property
    def rate(self) -> float:
        """Requests that succeeded, per second."""
        return self.succeeded / self.seconds if self.seconds else 0.0

    @property
    def mbps(self) -> float:
        """Response body megabytes (10**6 bytes) per second."""
        return self.body_bytes / self.seconds / 1e6 if self.seconds else 0.0


H2LOAD_FINISHED = re.compile(r"finished in [\d.]+m?s")
H2LOAD_REQUESTS = re.compile(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed")
H2LOAD_DATA = re.compile(r"\((\d+)\) data")


def h2load(
    url: str,
    *,
    clients: int,
    streams: int = 1,
    h1: bool = False,
    duration: float,
    warm_up: float,
    cap: float,
) -> LoadResult:
    """Run h2load on the load core for *duration* seconds (``-D``) after *warm_up* seconds
    (connections made, requests not counted); give up after *cap* seconds in all."""
    argv = [tool("h2load"), "-c", str(clients), "-m", str(streams), "-D", f"{round(duration * 1000)}ms"]
    argv += [f"--warm-up-time={round(warm_up * 1000)}ms"]
    argv += ["--h1", url] if h1 else [url]
    try:
        done = subprocess.run(
            on_core(LOAD_CORE, argv), capture_output=True, text=True, timeout=cap, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:  # the process is killed: a collapsing server
        partial = exc.stdout if isinstance(exc.stdout, str) else ""
        return LoadResult(output=partial)
    out = done.stdout
    finished, requests, data = (
        H2LOAD_FINISHED.search(out),
        H2LOAD_REQUESTS.search(out),
        H2LOAD_DATA.search(out),
    )
    if done.returncode != 0 or not (finished and requests and data):
        raise BenchError(f"h2load failed ({done.returncode}): {(done.stderr or out).strip()[-300:]}")
    return LoadResult(
        seconds=duration,  # what h2load counts: "finished in" includes the warm-up
        succeeded=int(requests.group(1)),
        failed=int(requests.group(2)),
        body_bytes=int(data.group(1)),
        complete=True,
        output=out,
    )


@dataclass
class SwarmResult:
    """What a swarm of gtlsclient processes got: responses of the expected size, and the time."""

    expected: int
    delivered: int
    body_bytes: int
    seconds: float

    @property
    def rate(self) -> float:
        """Delivered responses per second."""
        return self.delivered / self.seconds if self.seconds else 0.0

    @property
    def mbps(self) -> float:
        """Delivered body megabytes per second."""
        return self.body_bytes / self.seconds / 1e6 if self.seconds else 0.0

    @property
    def lost(self) -> int:
        """Responses that never arrived complete."""
        return self.expected - self.delivered


def quic_swarm(
    port: int,
    *,
    size: int,
    processes: int,
    streams: int,
    folder: Path,
    cap: float,
    idle_timeout: float = 5.0,
) -> SwarmResult:
    """*processes* gtlsclient processes at once, each GETting *streams* bodies of *size* bytes.

    Each response goes to a file of its own (the paths differ after the size), so that the
    responses delivered complete can be counted. *size* 0 asks the hello app (any path).
    *idle_timeout* is gtlsclient's ``--timeout`` (longer for a server under valgrind).
    """
    gtlsclient = tool("gtlsclient")
    prefix = f"https://localhost:{port}/" + (f"{size}/" if size else "")
    commands = []
    for index in range(processes):
        download = folder / f"swarm-{port}-{index}"
        shutil.rmtree(download, ignore_errors=True)
        download.mkdir(parents=True)
        urls = [f"{prefix}{index}-{n}" for n in range(streams)]
        argv = [
            gtlsclient,
            "-q",
            "--exit-on-all-streams-close",
            f"--timeout={idle_timeout:g}s",
            "-n",
            str(streams),
        ]
        commands.append((download, [*argv, "--download", str(download), "127.0.0.1", str(port), *urls]))
    start = time.perf_counter()
    running = [
        subprocess.Popen(
            on_core(LOAD_CORE, argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _, argv in commands
    ]
    deadline = start + cap
    for process in running:
        try:
            process.wait(max(deadline - time.perf_counter(), 0.01))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    seconds = time.perf_counter() - start
    delivered = body_bytes = 0
    for download, _ in commands:
        for path in download.iterdir():
            length = path.stat().st_size
            if (length == size) if size else length > 0:
                delivered += 1
                body_bytes += length
        shutil.rmtree(download, ignore_errors=True)
    return SwarmResult(processes * streams, delivered, body_bytes, seconds)
