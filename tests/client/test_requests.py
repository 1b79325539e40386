"""Request headers as users write them: a dict, or pairs of str or bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from tests.conftest import Certs
from trio_hface.client import Client, ClientProtocol, Request
from trio_hface.server import ASGIServer
from trio_hface.server.examples import asgi_echo


@pytest.mark.parametrize(
    "headers",
    [
        {"x-one": "1", "X-Two": "zwei"},
        {b"x-one": b"1", b"X-Two": b"zwei"},
        [("x-one", "1"), ("X-Two", "zwei")],
        [(b"x-one", b"1"), ("X-Two", b"zwei")],
    ],
    ids=["dict-str", "dict-bytes", "pairs-str", "pairs-mixed"],
)
def test_request_headers_become_bytes_pairs(headers: Any) -> None:
    request = Request("GET", "https://example.com/", headers=headers)
    assert request.headers == [(b"x-one", b"1"), (b"X-Two", b"zwei")]
    assert request.header_pairs is request.headers


def test_request_headers_latin1_and_bad_types() -> None:
    assert Request("GET", "https://example.com/", headers={"x": "café"}).headers == [
        (b"x", "café".encode("latin-1"))
    ]
    with pytest.raises(ValueError, match="outside Latin-1"):
        Request("GET", "https://example.com/", headers={"x": "✓"})
    with pytest.raises(TypeError, match="str or bytes, not int"):
        Request("GET", "https://example.com/", headers={"x": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"\(name, value\) pairs"):
        Request("GET", "https://example.com/", headers=["x-one"])  # type: ignore[list-item]


@pytest.mark.parametrize("protocol", [ClientProtocol.HTTP1, ClientProtocol.HTTP2, ClientProtocol.HTTP3])
async def test_dict_headers_reach_the_server(certs: Certs, protocol: ClientProtocol) -> None:
    """A dict of str headers (which failed with "too many values to unpack") arrives on every version."""
    server = ASGIServer(asgi_echo.app, tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (bound, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        client = Client(tls_config=certs.client, protocol=protocol)
        async with client.session() as session:
            with trio.fail_after(30):
                response = await session.dispatch(
                    Request(
                        "GET", f"https://localhost:{bound.port}/", headers={"X-Token": "abc", "accept": "*/*"}
                    )
                )
        seen = json.loads(response.content)["scope"]["headers"]
        assert ["x-token", "abc"] in seen and ["accept", "*/*"] in seen
        server.shutdown()
