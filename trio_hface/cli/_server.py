"""``trio-hface server``: run an ASGI application."""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import logging
import math
import os
import signal
import sys
from typing import Any

import trio

from .._models import ServerTLSConfig
from ..protocols import HTTPOverTCPFactory, QUICLBConfig, protocol_registry
from ..server import (
    ACCESS_LOG_FIELDS,
    DEFAULT_ACCESS_LOG_FORMAT,
    ASGIApp,
    ASGIServer,
    DevelopmentCA,
    Endpoint,
    ProxyServer,
    ServerConfig,
    ServerProtocol,
    SteeringMode,
    check_access_log_format,
)
from ..server._config import DEFAULT_MAX_CONNECTIONS
from ._certs import add_dev_ca_dir, announce_dev_ca, dev_ca_tls
from ._config import add_config_option
from ._errors import CommandError
from ._logging import add_logging_options
from ._reload import add_reload, reloaded_child, run_reloader, wait_readable_then_cancel

__all__ = [
    "add_implementations",
    "add_server_parser",
    "add_workers",
    "worker_count",
    "http1_factory",
    "http3_factory",
    "load_app",
    "run_server",
    "server_config",
]

log = logging.getLogger(__name__)


def add_server_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "server",
        help="run an ASGI application over HTTP/1.1, HTTP/2 and HTTP/3",
        description=(
            "Serve an ASGI application. Without --cert and --key, a certificate for localhost, "
            "127.0.0.1 and ::1 is issued by the development CA (made once, kept in --dev-ca-dir), and "
            "the path of the CA file is printed so that clients (trio-hface client --cacert, "
            "curl --cacert) can trust it; trio-hface ca prints it too."
        ),
    )
    parser.add_argument(
        "app",
        metavar="APP",
        nargs="?",  # or app in the configuration file: run_server checks that there is one
        help="the ASGI application, as module:attribute (for example trio_hface.server.examples.hello:app)",
    )
    parser.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="look for the application's module in DIR first (default: the current directory)",
    )
    parser.add_argument(
        "endpoints",
        metavar="ENDPOINT",
        nargs="*",  # or endpoints in the configuration file: parse_endpoints checks that there are some
        help="where to listen: http://HOST:PORT or https://HOST:PORT (IPv6 as [::1])",
    )
    parser.add_argument("--cert", help="PEM file with the server's certificate chain")
    parser.add_argument("--key", help="PEM file with the certificate's private key")
    add_dev_ca_dir(parser)
    versions = parser.add_mutually_exclusive_group()
    versions.add_argument(
        "--tcp",
        dest="protocol",
        action="store_const",
        const=ServerProtocol.TCP,
        help="HTTP/1.1 and HTTP/2 (ALPN) on TCP only",
    )
    versions.add_argument(
        "--http1", dest="protocol", action="store_const", const=ServerProtocol.HTTP1, help="HTTP/1.1 only"
    )
    versions.add_argument(
        "--http2", dest="protocol", action="store_const", const=ServerProtocol.HTTP2, help="HTTP/2 only"
    )
    versions.add_argument(
        "--http3", dest="protocol", action="store_const", const=ServerProtocol.HTTP3, help="HTTP/3 only"
    )
    parser.add_argument("--no-alt-svc", action="store_true", help="do not advertise HTTP/3 with Alt-Svc")
    parser.add_argument(
        "--root-path",
        type=root_path,
        default="",
        metavar="PATH",
        help=(
            "the ASGI root_path, for an application mounted at PATH behind a reverse proxy "
            "(it starts with /; the scope's path starts with it too)"
        ),
    )
    add_access_log(parser)
    add_graceful_timeout(parser)
    add_max_connections(parser)
    add_workers(parser)
    add_implementations(parser, clients=False)
    add_reload(parser)
    add_common(parser)
    parser.set_defaults(command=run_server, protocol=ServerProtocol.ALL, dev_ca=None)


def add_common(parser: argparse.ArgumentParser) -> None:
    """The options of every serving command: logging after the command's name, and ``-c FILE``."""
    add_logging_options(parser, after_command=True)
    add_config_option(parser)


def root_path(text: str) -> str:
    """``--root-path``: a path that starts with ``/`` (a trailing ``/`` is dropped)."""
    if text and not text.startswith("/"):  # "" is the default: no root path
        raise argparse.ArgumentTypeError(f"the root path must start with /, as /api, not {text!r}")
    return text.rstrip("/")


def seconds(text: str) -> float:
    """A number of seconds, at least 0 (``--graceful-timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, at least 0, not {text}")
    return value


def add_graceful_timeout(parser: argparse.ArgumentParser) -> None:
    """The ``--graceful-timeout`` option of ``server`` and ``proxy``."""
    parser.add_argument(
        "--graceful-timeout",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long requests in flight may take to finish on shutdown (default 10)",
    )


def access_log_format(text: str) -> str:
    """``--access-log-format``: a format of the access log's fields."""
    try:
        check_access_log_format(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_access_log(parser: argparse.ArgumentParser) -> None:
    """``--access-log FILE|-`` and ``--access-log-format FORMAT``."""
    parser.add_argument(
        "--access-log",
        metavar="FILE",
        help=(
            "write the access log, one line per response, to FILE (appended to), or - for standard "
            "output (default: with the rest of the log on standard error, shown from -v on)"
        ),
    )
    parser.add_argument(
        "--access-log-format",
        type=access_log_format,
        metavar="FORMAT",
        help=(
            "the line of each response, with the fields "
            + ", ".join(f"{{{name}}}" for name in ACCESS_LOG_FIELDS)
            + f" (default: {DEFAULT_ACCESS_LOG_FORMAT.replace('%', '%%')!r}, after [{{time}}] in a file)"
        ),
    )


def parse_endpoints(args: argparse.Namespace) -> list[Endpoint]:
    """The endpoints of the command line (or of its configuration file).

    :raises CommandError: if there are none, or for a malformed one
    """
    if not args.endpoints:
        raise CommandError("give at least one ENDPOINT (or endpoints in the configuration file)")
    try:
        return [Endpoint.parse(value) for value in args.endpoints]
    except ValueError as exc:
        raise CommandError(str(exc)) from None


#: The implementations the CLI chooses from the protocol registry: the option,
#: the registry's groups (servers, clients), the default's stack, and the extra
#: that installs each optional one.
_IMPLEMENTATIONS = {
    "http1": ("--http1-impl", "HTTP/1.1", "h11", {"httptools": "speedups"}),
    "http3": ("--http3-impl", "HTTP/3", "aioquic", {"qh3": "qh3"}),
}


def add_implementations(parser: argparse.ArgumentParser, *, clients: bool) -> None:
    """The ``--http1-impl`` and ``--http3-impl`` options: implementations by their
    names in the protocol registry."""
    for version, (option, label, stack, extras) in _IMPLEMENTATIONS.items():
        names = sorted(getattr(protocol_registry, f"{version}_{'clients' if clients else 'servers'}"))
        optional = "; ".join(
            f"{name} comes with pip install trio_hface[{extra}]" for name, extra in extras.items()
        )
        parser.add_argument(
            option,
            default="default",
            metavar="NAME",
            help=(
                f"the {label} implementation, by its name in the protocol registry: {', '.join(names)} "
                f"(default: default, on {stack}; {optional})"
            ),
        )


def _implementation(args: argparse.Namespace, version: str, *, clients: bool) -> Any:
    option, label, _, extras = _IMPLEMENTATIONS[version]
    name = getattr(args, option[2:].replace("-", "_"))
    registry = getattr(protocol_registry, f"{version}_{'clients' if clients else 'servers'}")
    try:
        return registry[name]
    except KeyError:
        hint = f" (pip install trio_hface[{extras[name]}])" if name in extras else ""
        raise CommandError(
            f"no {label} implementation {name!r} is installed{hint}; "
            f"the registry has {', '.join(sorted(registry))}"
        ) from None


def http1_factory(args: argparse.Namespace, *, clients: bool) -> HTTPOverTCPFactory:
    """The factory that ``--http1-impl`` names.

    :raises CommandError: if no implementation of that name is registered
    """
    factory: HTTPOverTCPFactory = _implementation(args, "http1", clients=clients)
    return factory


def http3_factory(args: argparse.Namespace, *, clients: bool) -> Any:
    """The factory that ``--http3-impl`` names (a server's or a client's).

    :raises CommandError: if no implementation of that name is registered
    """
    return _implementation(args, "http3", clients=clients)


def add_max_connections(parser: argparse.ArgumentParser) -> None:
    """The admission options of ``server`` and ``proxy``: ``--max-connections``,
    ``--max-connections-per-address`` and ``--quic-retry``."""

    def positive(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
        return value

    parser.add_argument(
        "--max-connections",
        type=positive,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help=(
            "connections served at once; when full, a new one evicts the connection idle longest, "
            f"and waits only while all are busy (default {DEFAULT_MAX_CONNECTIONS})"
        ),
    )
    parser.add_argument(
        "--max-connections-per-address",
        type=positive,
        default=None,
        metavar="N",
        help="connections one client host may have at once; more are closed at once (default: no limit)",
    )
    parser.add_argument(
        "--quic-retry",
        action="store_true",
        help=(
            "validate the address of every new HTTP/3 client with a Retry first (RFC 9000 section 8.1: "
            "a spoofed source gets nothing but one small packet, at the cost of a round trip); "
            "with --workers, every worker accepts the tokens of every other"
        ),
    )


def add_workers(parser: argparse.ArgumentParser) -> None:
    """The ``--workers`` and ``--quic-lb`` options of ``server`` and ``proxy``."""

    def count(text: str) -> int:
        if text == "auto":
            return 0
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number or auto: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
        return value

    def quic_lb(text: str) -> QUICLBConfig:
        try:
            return QUICLBConfig.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parser.add_argument(
        "--workers",
        type=count,
        default=1,
        metavar="N",
        help=(
            "worker processes serving every endpoint on the same ports (SO_REUSEPORT); "
            "0 or auto: one per core (default 1: this process serves). Limits such as "
            "--max-connections apply to each worker"
        ),
    )
    parser.add_argument(
        "--quic-lb",
        type=quic_lb,
        default=None,
        metavar="SERVER_ID[:ROTATION[:NONCE_LENGTH]]",
        help=(
            "issue HTTP/3 connection IDs by the QUIC-LB plaintext algorithm with this server ID "
            "(hex, 1-15 octets), config rotation (0-6, default 0) and nonce length (default 8), "
            "for a connection-ID-aware load balancer in front of several machines"
        ),
    )


def worker_count(args: argparse.Namespace) -> int:
    """The number of workers ``--workers`` asks for (0: one per core)."""
    workers: int = args.workers
    return workers or os.cpu_count() or 1


def load_app(spec: str) -> ASGIApp:
    """Import ``module:attribute``.

    :raises CommandError: if it cannot be imported or is not callable
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise CommandError(f"the application must be module:attribute, not {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, SyntaxError) as exc:  # a syntax error: one line, and --reload waits for a fix
        raise CommandError(f"cannot import {module_name!r}: {exc}") from None
    app = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise CommandError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not callable(app):
        raise CommandError(f"{spec!r} is not callable")
    return app


def server_tls(args: argparse.Namespace) -> ServerTLSConfig:
    """``--cert`` and ``--key``, or a certificate of the development CA (then ``args.dev_ca`` is the CA,
    to save once the server listens)."""
    if args.cert:
        # Checked (for TCP and QUIC alike) by the server before it listens.
        return ServerTLSConfig(certfile=args.cert, keyfile=args.key)
    tls, args.dev_ca = dev_ca_tls(args)
    return tls


def server_config(args: argparse.Namespace, endpoints: list[Endpoint], **settings: Any) -> ServerConfig:
    """The :class:`ServerConfig` of what ``server`` and ``proxy`` share, from the command line.

    :raises CommandError: for a value out of range
    """
    if bool(args.cert) != bool(args.key):
        raise CommandError("give both --cert and --key, or neither")
    tls = server_tls(args) if any(e.tls for e in endpoints) else None
    try:
        return ServerConfig(
            tls_config=tls,
            protocol=args.protocol,
            max_connections=args.max_connections,
            max_connections_per_address=args.max_connections_per_address,
            quic_retry=args.quic_retry,
            http1_factory=http1_factory(args, clients=False),
            http3_factory=http3_factory(args, clients=False),
            **settings,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None


#: The garbage collector's first threshold while the CLI serves (Python's default is
#: 700). Requests in flight outlive young collections, so with many of them the
#: default makes the older generations fill and full collections walk the whole
#: heap again and again: at 10,000 concurrent HTTP/2 streams they took 62% of the
#: server's CPU, and this threshold cut its CPU per request by a quarter. The
#: library leaves the process's collector alone; the CLI owns its process.
SERVING_GC_THRESHOLD = 10_000


def tune_gc() -> None:
    """Raise the collector's first threshold to :data:`SERVING_GC_THRESHOLD` (if it is lower and on)."""
    first, second, third = gc.get_threshold()
    if 0 < first < SERVING_GC_THRESHOLD:
        gc.set_threshold(SERVING_GC_THRESHOLD, second, third)


async def serve(
    server: ASGIServer | ProxyServer,
    endpoints: list[Endpoint],
    workers: int = 1,
    quic_lb: QUICLBConfig | None = None,
    dev_ca: DevelopmentCA | None = None,
    parent_gone: int | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, in this process or (with workers or QUIC-LB) in worker processes.

    A development CA is saved (and its path printed) once every endpoint listens.

    :param parent_gone: a file descriptor that becomes readable when the
        reloader that started this process is gone: then shut down too
    """
    tune_gc()
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            if workers == 1 and quic_lb is None:
                bound = await nursery.start(server.run, endpoints)
            else:
                pool = await nursery.start(
                    functools.partial(server.run_workers, endpoints, workers=workers, quic_lb=quic_lb)
                )
                bound = pool.endpoints
                print(f"{workers} workers (pids {', '.join(map(str, pool.pids))})", flush=True)
                if pool.steering != SteeringMode.NONE:
                    print(f"HTTP/3 datagrams reach their worker by {pool.steering}", flush=True)
            if dev_ca is not None:
                announce_dev_ca(dev_ca)
            for endpoint in bound:
                print(
                    f"serving on {endpoint} ({server.config.protocol.describe(tls=endpoint.tls)})", flush=True
                )

            async def on_signal(waiting: trio.CancelScope) -> None:
                async for signum in signals:
                    log.info("%s received", signal.Signals(signum).name)
                    break
                waiting.cancel()

            async with trio.open_nursery() as waiting:
                waiting.start_soon(on_signal, waiting.cancel_scope)
                if parent_gone is not None:
                    waiting.start_soon(wait_readable_then_cancel, parent_gone, waiting.cancel_scope)
            server.shutdown()


def run_server(args: argparse.Namespace) -> int:
    # As hypercorn and uvicorn do: an application next to the user is found
    # (worker processes inherit sys.path, spawned or not).
    if not args.app:
        raise CommandError("give the application, APP (or app in the configuration file)")
    endpoints = parse_endpoints(args)
    prebound = reloaded_child()
    if args.reload and prebound is None:
        return run_reloader(args)
    app_dir = os.path.abspath(args.app_dir)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    app = load_app(args.app)
    config = server_config(
        args, endpoints, alt_svc=not args.no_alt_svc, graceful_timeout=args.graceful_timeout
    )
    server = ASGIServer(
        app,
        config=config,
        root_path=args.root_path,
        access_log=args.access_log,
        access_log_format=args.access_log_format,
    )
    if prebound is not None:
        endpoints = prebound.adopt(server)
    try:
        trio.run(
            functools.partial(
                serve,
                workers=worker_count(args),
                quic_lb=args.quic_lb,
                dev_ca=args.dev_ca,
                parent_gone=None if prebound is None else prebound.parent_gone,
            ),
            server,
            endpoints,
        )
    except BaseException as exc:
        if find_exception(exc, (KeyboardInterrupt,)) is not None:
            return 130  # a second Ctrl-C: stop without waiting
        problem = find_exception(exc, (OSError, ValueError, RuntimeError))
        if problem is None:
            raise
        print(f"trio-hface server: {problem}", file=sys.stderr)
        return 1 if isinstance(problem, OSError) else 2
    return 0


def find_exception(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """Find an exception of the given kinds in *exc* or the exception groups it nests."""
    if isinstance(exc, kinds):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = find_exception(inner, kinds)
        if found is not None:
            return found
    return None
