"""Factories, the registry and header validation shared by every version."""

from __future__ import annotations

import pytest

from trio_hface.errors import ALPNError, ConnectError, LocalProtocolError
from trio_hface.protocols import (
    ALPNHTTPFactory,
    HTTP1Protocol,
    HTTP2Protocol,
    HTTP3Protocol,
    HTTPOverQUICClientFactory,
    HTTPOverQUICServerFactory,
    HTTPOverTCPFactory,
    ProtocolRegistry,
    protocol_registry,
)
from trio_hface.protocols._headers import HeaderError, HeaderKind, validate_field, validate_headers
from trio_hface.protocols.http1 import HTTP1ClientFactory, HTTP1ServerFactory
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ServerFactory


def test_alpn_factory_chooses_by_negotiated_protocol() -> None:
    """ALPNHTTPFactory builds HTTP/2 for "h2" and HTTP/1.1 otherwise."""
    factory = ALPNHTTPFactory([HTTP2ServerFactory(), HTTP1ServerFactory()])
    assert list(factory.alpn_protocols) == ["h2", "http/1.1"]
    assert isinstance(factory(tls_version="TLSv1.3", alpn_protocol="h2"), HTTP2Protocol)
    assert isinstance(factory(tls_version="TLSv1.3", alpn_protocol="http/1.1"), HTTP1Protocol)
    assert isinstance(factory(), HTTP1Protocol)
    with pytest.raises(LocalProtocolError):
        factory(alpn_protocol="spdy/3")


def test_alpn_factory_without_the_default_protocol() -> None:
    """An HTTP/2-only ALPNHTTPFactory is accepted; only a connection that negotiated nothing fails, clearly."""
    factory = ALPNHTTPFactory([HTTP2ClientFactory()])
    assert list(factory.alpn_protocols) == ["h2"]
    assert isinstance(factory(tls_version="TLSv1.3", alpn_protocol="h2"), HTTP2Protocol)
    with pytest.raises(ALPNError, match=r"ALPN negotiated no protocol, and http/1\.1 is not offered") as info:
        factory(tls_version="TLSv1.3", alpn_protocol=None)
    assert isinstance(info.value, LocalProtocolError) and isinstance(info.value, ConnectError)


def test_error_codes_per_version() -> None:
    """Each version numbers its errors itself (RFC 9113 section 7, RFC 9114 section 8.1)."""
    assert HTTP1Protocol.error_codes.protocol_error == 400
    assert HTTP2Protocol.error_codes.protocol_error == 0x1
    assert HTTP2Protocol.error_codes.connect_error == 0xA
    assert HTTP3Protocol.error_codes.protocol_error == 0x101
    assert HTTP3Protocol.error_codes.connect_error == 0x10F
    assert HTTP1ClientFactory()().http_version == "1"
    assert HTTP2ClientFactory()().multiplexed


def test_registry_has_defaults_from_entry_points() -> None:
    """The default implementations are registered under "default" for each version and side."""
    for group in ("http1_servers", "http2_servers", "http1_clients", "http2_clients"):
        assert isinstance(getattr(protocol_registry, group)["default"], HTTPOverTCPFactory)
    assert isinstance(protocol_registry.http3_servers["default"], HTTPOverQUICServerFactory)
    assert isinstance(protocol_registry.http3_clients["default"], HTTPOverQUICClientFactory)
    fresh = ProtocolRegistry()
    fresh.load_entry_points()
    assert set(fresh.http2_clients) >= {"default"}, "setup.cfg registers the defaults as entry points"


def test_registry_has_httptools_with_the_speedups_extra() -> None:
    """The httptools HTTP/1.1 implementation is registered as "httptools" on both sides."""
    pytest.importorskip("httptools", reason="httptools is not installed (the speedups extra)")
    from trio_hface.protocols.http1 import HTTPToolsClientFactory, HTTPToolsServerFactory

    assert isinstance(protocol_registry.http1_servers["httptools"], HTTPToolsServerFactory)
    assert isinstance(protocol_registry.http1_clients["httptools"], HTTPToolsClientFactory)
    assert isinstance(protocol_registry.http1_servers["httptools"](), HTTP1Protocol)


def test_registry_leaves_out_an_entry_point_it_cannot_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry point whose module is missing (an optional dependency) is left out; the others load."""
    from importlib.metadata import EntryPoint

    from trio_hface.protocols import _registry

    def entry_points(group: str) -> list[EntryPoint]:
        if not group.endswith("http1_servers"):
            return []
        return [
            EntryPoint("missing", "no_such_module_for_trio_hface:Factory", group),
            EntryPoint("default", "trio_hface.protocols.http1:HTTP1ServerFactory", group),
        ]

    monkeypatch.setattr(_registry, "entry_points", entry_points)
    fresh = ProtocolRegistry()
    fresh.load_entry_points()
    assert set(fresh.http1_servers) == {"default"}


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        (
            [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b"host", b"h")],
            HeaderKind.REQUEST,
        ),
        (
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":path", b"/"),
                (b":authority", b"h"),
                (b"host", b"h"),
            ],
            HeaderKind.REQUEST,
        ),
        ([(b":method", b"GET"), (b":scheme", b"urn"), (b":path", b"/")], HeaderKind.REQUEST),
        ([(b":method", b"CONNECT"), (b":authority", b"h:1")], HeaderKind.REQUEST),
        (
            [
                (b":method", b"CONNECT"),
                (b":protocol", b"websocket"),
                (b":scheme", b"https"),
                (b":path", b"/"),
                (b":authority", b"h"),
            ],
            HeaderKind.REQUEST,
        ),
        ([(b":status", b"103"), (b"link", b"</a>")], HeaderKind.RESPONSE),
        ([(b"grpc-status", b"0")], HeaderKind.TRAILERS),
    ],
)
def test_valid_headers(headers: list[tuple[bytes, bytes]], kind: HeaderKind) -> None:
    """Well-formed header lists pass validation."""
    validate_headers(headers, kind, multiplexed=True)


@pytest.mark.parametrize(
    ("headers", "kind", "match"),
    [
        ([(b":method", b"CONNECT"), (b":authority", b"h"), (b":path", b"/")], HeaderKind.REQUEST, "CONNECT"),
        (
            [
                (b":method", b"GET"),
                (b":protocol", b"ws"),
                (b":scheme", b"h"),
                (b":path", b"/"),
                (b":authority", b"h"),
            ],
            HeaderKind.REQUEST,
            "CONNECT",
        ),
        ([(b":status", b"20")], HeaderKind.RESPONSE, ":status"),
        ([(b":status", b"200"), (b":status", b"200")], HeaderKind.RESPONSE, "repeated"),
        ([(b":status", b"200"), (b"x", b"\x00")], HeaderKind.RESPONSE, "invalid value"),
        (
            [(b":status", b"200"), (b"transfer-encoding", b"chunked")],
            HeaderKind.RESPONSE,
            "connection-specific",
        ),
        ([(b":path", b"/")], HeaderKind.TRAILERS, "pseudo"),
        ([(b":method", b"G T"), (b":scheme", b"h"), (b":path", b"/")], HeaderKind.REQUEST, ":method"),
        # RFC 9113 section 8.3.1, RFC 9114 section 4.3.1: the authority, in one place or both alike.
        (
            [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")],
            HeaderKind.REQUEST,
            "needs :authority",
        ),
        (
            [
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":path", b"/"),
                (b":authority", b"a"),
                (b"host", b"b"),
            ],
            HeaderKind.REQUEST,
            "differs",
        ),
        (
            [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"host", b"a"), (b"host", b"a")],
            HeaderKind.REQUEST,
            "one host",
        ),
        (
            [
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":path", b"/"),
                (b":authority", b"a"),
                (b"host", b""),
            ],
            HeaderKind.REQUEST,
            "empty host",
        ),
    ],
)
def test_invalid_headers(headers: list[tuple[bytes, bytes]], kind: HeaderKind, match: str) -> None:
    """Header lists that break RFC 9110 / 9113 / 9114 are refused with a reason."""
    with pytest.raises(HeaderError, match=match):
        validate_headers(headers, kind, multiplexed=True)


def test_http1_allows_mixed_case_names() -> None:
    """HTTP/1.1 names are case-insensitive; only HTTP/2 and HTTP/3 demand lower case."""
    headers = [(b":status", b"200"), (b"Content-Type", b"text/plain")]
    validate_headers(headers, HeaderKind.RESPONSE, multiplexed=False)
    with pytest.raises(HeaderError):
        validate_headers(headers, HeaderKind.RESPONSE, multiplexed=True)


def test_field_values_are_refused_exactly_as_rfc_9110_says() -> None:
    """Every value of up to three characters from those that matter (a letter, SP, HTAB, NUL, CR,
    LF, DEL, obs-text) is refused exactly when it holds NUL, CR or LF or starts or ends with
    whitespace (RFC 9110 section 5.5), as a regular field and on its own."""
    import itertools
    import re
    from functools import partial

    reference = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")
    alphabet = [b"a", b" ", b"\t", b"\x00", b"\r", b"\n", b"\x7f", b"\xff"]
    checked = 0
    for length in range(4):
        for chars in itertools.product(alphabet, repeat=length):
            value = b"".join(chars)
            bad = reference.search(value) is not None
            headers = [(b":status", b"200"), (b"x-value", value)]
            for check in (
                partial(validate_headers, headers, HeaderKind.RESPONSE, multiplexed=True),
                partial(validate_field, b"x-value", value, lower_case=True),
            ):
                if bad:
                    with pytest.raises(HeaderError, match="invalid value"):
                        check()
                else:
                    check()
            checked += 1
    assert checked == 585
