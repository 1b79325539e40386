"""ServerConfig: one configuration for every server, given as an object, as keywords, or both."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from tests.conftest import Certs
from tests.server import apps
from trio_hface.cli import _main
from trio_hface.client import Client, Request, Response
from trio_hface.protocols.http1 import HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ServerFactory
from trio_hface.protocols.http3 import HTTP3ServerFactory
from trio_hface.server import ASGIServer, ProxyServer, ServerConfig, ServerProtocol, ServerSettings

HELLO = "trio_hface.server.examples.hello:app"


def settings(certs: Certs) -> ServerSettings:
    """Every shared setting away from its default (the same factories, so configurations compare equal)."""
    return {
        "tls_config": certs.server,
        "protocol": ServerProtocol.TCP,
        "http1_factory": HTTP1ServerFactory(),
        "http2_factory": HTTP2ServerFactory(),
        "http3_factory": HTTP3ServerFactory(),
        "alt_svc": False,
        "graceful_timeout": 2.0,
        "idle_timeout": 7.0,
        "handshake_timeout": 3.0,
        "max_connections": 5,
        "max_connections_per_address": 2,
    }


@asynccontextmanager
async def serving(server: ASGIServer) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        (bound, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        yield f"https://localhost:{bound.port}/"
        server.shutdown()


async def get(certs: Certs, url: str) -> Response:
    async with Client(tls_config=certs.client).session() as session:
        with trio.fail_after(10):
            return await session.dispatch(Request("GET", url))


def test_config_object_and_keywords_configure_the_same_server(certs: Certs) -> None:
    """A ServerConfig and the same settings as keywords give the same configuration and attributes."""
    given = settings(certs)
    by_object = ASGIServer(apps.app, config=ServerConfig(**given))
    by_keywords = ASGIServer(apps.app, **given)
    assert by_object.config == by_keywords.config == ServerConfig(**given)
    for name, value in given.items():
        assert getattr(by_object, name) == getattr(by_keywords, name) == value


async def test_config_object_and_keywords_serve_the_same(certs: Certs) -> None:
    """Served, both servers answer alike (TCP only, no Alt-Svc), unlike a server with the defaults."""
    given = settings(certs)
    answers = []
    for server in (ASGIServer(apps.app, config=ServerConfig(**given)), ASGIServer(apps.app, **given)):
        async with serving(server) as url:
            response = await get(certs, url)
        answers.append((response.status, response.http_version, response.header(b"alt-svc")))
    assert answers == [(200, "2", None)] * 2
    async with serving(ASGIServer(apps.app, tls_config=certs.server)) as url:
        default = await get(certs, url)
    assert default.header(b"alt-svc") is not None  # the defaults do advertise HTTP/3


async def test_keywords_override_the_config(certs: Certs) -> None:
    """A keyword argument wins over the field of config; the other fields of config stay."""
    config = ServerConfig(tls_config=certs.server, protocol=ServerProtocol.HTTP2, idle_timeout=5.0)
    server = ASGIServer(apps.app, config=config, protocol=ServerProtocol.HTTP1)
    assert server.protocol is ServerProtocol.HTTP1 and server.idle_timeout == 5.0
    assert config.protocol is ServerProtocol.HTTP2  # the caller's object is left alone
    async with serving(server) as url:
        response = await get(certs, url)
    assert response.http_version == "1.1"


def test_defaults_are_filled_in_per_server() -> None:
    """None fields become the server's defaults: factories, and the idle timeout (60 s, 300 s for the proxy)."""
    asgi = ASGIServer(apps.app)
    assert asgi.idle_timeout == 60.0 and asgi.alt_svc is True and asgi.max_connections == 768
    assert isinstance(asgi.http1_factory, HTTP1ServerFactory)
    assert isinstance(asgi.http2_factory, HTTP2ServerFactory)
    assert isinstance(asgi.http3_factory, HTTP3ServerFactory)
    assert ProxyServer().idle_timeout == ProxyServer(config=ServerConfig()).idle_timeout == 300.0
    chosen = ProxyServer(config=ServerConfig(idle_timeout=20.0, alt_svc=True))
    assert chosen.idle_timeout == 20.0
    assert chosen.alt_svc is False  # a proxy never sends alt-svc


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("graceful_timeout", -1.0),
        ("idle_timeout", -0.5),
        ("handshake_timeout", math.nan),
        ("max_connections", 0),
        ("max_connections_per_address", 0),
    ],
)
def test_values_out_of_range_are_refused(field: str, value: float) -> None:
    """A negative or NaN timeout or a limit below 1 raises ValueError naming the field, however it is given."""
    with pytest.raises(ValueError, match=f"^{field} must be"):
        ServerConfig(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"^{field} must be"):
        ASGIServer(apps.app, **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"^{field} must be"):
        ProxyServer(**{field: value})  # type: ignore[arg-type]
    server = ASGIServer(apps.app)
    before = server.config
    with pytest.raises(ValueError, match=f"^{field} must be"):
        setattr(server, field, value)
    assert server.config == before


def test_limits_and_timeouts_at_their_bounds_are_accepted() -> None:
    """Zero timeouts, a limit of 1 and None (no limit) are valid."""
    config = ServerConfig(
        graceful_timeout=0,
        idle_timeout=0,
        handshake_timeout=math.inf,
        max_connections=1,
        max_connections_per_address=None,
    )
    assert ASGIServer(apps.app, config=config).max_connections == 1
    assert ServerConfig(max_connections=None).max_connections is None


def test_assigning_an_attribute_updates_the_config() -> None:
    """server.graceful_timeout = x still works: it replaces the configuration in effect."""
    server = ASGIServer(apps.app)
    server.graceful_timeout = 3.0
    assert server.config.graceful_timeout == 3.0 and server.graceful_timeout == 3.0
    assert server.config == dataclasses.replace(
        ASGIServer(apps.app).config,
        graceful_timeout=3.0,
        http1_factory=server.http1_factory,
        http2_factory=server.http2_factory,
        http3_factory=server.http3_factory,
    )


def built(monkeypatch: pytest.MonkeyPatch, *argv: str) -> ASGIServer | ProxyServer:
    """The server that the command line builds, without serving it."""
    servers: list[ASGIServer | ProxyServer] = []
    monkeypatch.setattr(trio, "run", lambda serve, server, endpoints: servers.append(server))
    args = _main.build_parser().parse_args(list(argv))
    assert args.command(args) == 0
    (server,) = servers
    return server


def test_cli_builds_one_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """trio-hface server and proxy hand their options to the server as one ServerConfig."""
    server = built(
        monkeypatch, "server", HELLO, "http://127.0.0.1:0", "--http1", "--no-alt-svc",
        "--graceful-timeout", "3", "--max-connections", "9",
    )  # fmt: skip
    assert isinstance(server, ASGIServer)
    assert (server.protocol, server.alt_svc, server.graceful_timeout) == (ServerProtocol.HTTP1, False, 3.0)
    assert (server.max_connections, server.max_connections_per_address, server.tls_config) == (9, None, None)
    proxy = built(monkeypatch, "proxy", "http://127.0.0.1:0", "--http2", "--max-connections-per-address", "4")
    assert isinstance(proxy, ProxyServer)
    assert (proxy.protocol, proxy.max_connections_per_address, proxy.idle_timeout) == (
        ServerProtocol.HTTP2,
        4,
        300.0,
    )


def test_cli_value_out_of_range_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A negative --graceful-timeout is a one-line error with exit status 2, before anything is served."""
    assert _main.main(["server", HELLO, "http://127.0.0.1:0", "--graceful-timeout", "-1"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        "trio-hface server: argument --graceful-timeout: must be a number of seconds, at least 0, not -1 "
        "(see trio-hface server --help)"
    ]


def test_keyword_settings_are_the_config_fields() -> None:
    """ServerSettings (the servers' keyword arguments) names exactly the fields of ServerConfig."""
    assert set(ServerSettings.__annotations__) == {field.name for field in dataclasses.fields(ServerConfig)}
