"""Which requests open a WebSocket (RFC 6455 section 4.1, RFC 8441, RFC 9220)."""

from __future__ import annotations

import pytest

from trio_hface.connections import is_websocket_request

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/chat")]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([(b"upgrade", b"websocket"), (b"connection", b"Upgrade")], True),
        ([(b"Upgrade", b"WebSocket"), (b"CONNECTION", b"keep-alive, upgrade")], True),
        ([(b"connection", b"upgrade"), (b"x", b"y"), (b"upgrade", b"h2c, websocket ")], True),
        ([(b"upgrade", b"websocket"), (b"connection", b"keep-alive"), (b"connection", b"Upgrade")], True),
        ([(b"upgrade", b"websocket")], False),  # no Connection: upgrade
        ([(b"connection", b"upgrade")], False),  # no Upgrade
        ([(b"upgrade", b"h2c"), (b"connection", b"upgrade")], False),
        ([(b"upgrade", b"websockets"), (b"connection", b"upgrade")], False),
        ([(b"upgrade", b"websocket"), (b"connection", b"upgraded")], False),
        ([(b"upgrades", b"websocket"), (b"connection", b"upgrade")], False),
        ([], False),
    ],
)
def test_an_http1_upgrade_needs_get_with_both_fields(
    fields: list[tuple[bytes, bytes]], expected: bool
) -> None:
    assert is_websocket_request([*GET, *fields]) is expected


def test_only_get_upgrades() -> None:
    fields = [(b"upgrade", b"websocket"), (b"connection", b"upgrade")]
    post = [(b":method", b"POST"), *GET[1:], *fields]
    assert not is_websocket_request(post)


@pytest.mark.parametrize(
    ("protocol", "expected"), [(b"websocket", True), (b"WebSocket", True), (b"h3", False)]
)
def test_an_extended_connect_opens_one_by_its_protocol(protocol: bytes, expected: bool) -> None:
    connect = [(b":method", b"CONNECT"), (b":protocol", protocol), (b":scheme", b"https"), (b":path", b"/")]
    assert is_websocket_request(connect) is expected
    assert not is_websocket_request([(b":method", b"CONNECT"), (b":authority", b"a:1")])
