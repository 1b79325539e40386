"""The httpx-like client API: get/post/..., params, json, base_url, Response helpers, redirects,
event hooks, the timeout hierarchy, the write timeout and the global connection limit."""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import trio

import trio_hface
from tests.conftest import Certs
from tests.helpers import require_tool
from tests.peers import NGHTTPD_LISTENING, running_peer
from tests.server import apps
from trio_hface.client import (
    URL,
    Client,
    ClientProtocol,
    Headers,
    Request,
    Response,
    StreamingResponse,
    redirect_request,
)
from trio_hface.errors import (
    ConnectError,
    ConnectTimeout,
    HFaceError,
    HTTPStatusError,
    PoolTimeout,
    ReadTimeout,
    RedirectError,
    TooManyRedirects,
    WriteTimeout,
)
from trio_hface.server import ASGIServer

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

VERSIONS = [ClientProtocol.HTTP1, ClientProtocol.HTTP2, ClientProtocol.HTTP3]


async def redirects_app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/to?status=N&location=L`` redirects; ``/loop/N`` redirects to ``/loop/N+1`` forever;
    ``/status/N`` answers N; anything else describes the request as JSON."""
    if scope["type"] == "lifespan":
        await apps.app(scope, receive, send)
        return
    body = await apps.read_body(receive)
    query = dict(parse_qsl(scope["query_string"].decode()))
    path: str = scope["path"]
    if path == "/to":
        headers = [(b"location", query["location"].encode())]
        await apps.respond(send, int(query["status"]), b"moved", headers)
    elif path.startswith("/loop/"):
        step = int(path.rsplit("/", 1)[1])
        await apps.respond(send, 302, b"", [(b"location", b"/loop/%d" % (step + 1))])
    elif path.startswith("/status/"):
        await apps.respond(send, int(path.rsplit("/", 1)[1]), b"status")
    else:
        info = {
            "method": scope["method"],
            "path": path,
            "query": scope["query_string"].decode(),
            "headers": {n.decode(): v.decode() for n, v in scope["headers"]},
            "body": body.decode("utf-8", "replace"),
            "http_version": scope["http_version"],
        }
        text = json.dumps(info, ensure_ascii=False).encode()
        if scope["method"] == "HEAD":
            # The server does not drop a HEAD response's body on HTTP/2 and HTTP/3 (yet): send none.
            text = b""
        await apps.respond(send, 200, text, [(b"content-type", b"application/json; charset=utf-8")])


@asynccontextmanager
async def serving(certs: Certs, app: Any = redirects_app) -> AsyncIterator[int]:
    """Our server with *app* on TCP and QUIC; yield its port."""
    server = ASGIServer(app, tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (bound, *_) = await nursery.start(server.run, ["https://127.0.0.1:0"])
        yield bound.port
        server.shutdown()


# -- the models, without a network ---------------------------------------------------------


def test_headers_view_is_case_insensitive_by_str_or_bytes() -> None:
    """Response.header and Response.fields find a field by str or bytes in any case; repeats join."""
    response = Response(
        200,
        [
            (b"content-type", b"text/plain"),
            (b"vary", b"a"),
            (b"Vary", b"b"),
            (b"set-cookie", b"x=1"),
            (b"set-cookie", b"y=2"),
        ],
    )
    assert response.header("Content-Type") == b"text/plain" == response.header(b"CONTENT-TYPE")
    assert response.header("missing") is None
    fields = response.fields
    assert isinstance(fields, Headers)
    assert fields["CONTENT-type"] == "text/plain" and fields[b"Vary"] == "a, b"
    assert fields.get_list("vary") == ["a", "b"] and fields["set-cookie"] == "x=1"
    assert fields.get_list("set-cookie") == ["x=1", "y=2"]
    assert "VARY" in fields and "nope" not in fields and fields.get(b"VARY") == "a, b"
    assert fields.get("nope") is None and fields.get("nope", "d") == "d"
    assert list(fields) == ["content-type", "vary", "set-cookie"] and len(fields) == 3
    with pytest.raises(KeyError):
        fields["nope"]


def test_text_json_and_charset() -> None:
    """text uses the content-type charset, else UTF-8 with replacement; json() parses the body."""
    assert (
        Response(200, [(b"content-type", b"text/plain; charset=latin-1")], "é".encode("latin-1")).text == "é"
    )
    assert Response(200, [(b"content-type", b'text/plain; Charset="utf-8"')], "é".encode()).text == "é"
    assert Response(200, [], b"caf\xe9").text == "caf\ufffd"  # no charset: UTF-8, errors replaced
    assert Response(200, [(b"content-type", b"text/plain; charset=nonsense")], b"ok").text == "ok"
    assert Response(200, [], b'{"a": [1, 2]}').json() == {"a": [1, 2]}
    with pytest.raises(ValueError):
        Response(200, [], b"not json").json()


def test_raise_for_status_message_and_chaining() -> None:
    """4xx and 5xx raise HTTPStatusError with httpx's message; other statuses return the response."""
    url = URL.parse("https://example.com/missing")
    response = Response(404, [], url=url)
    with pytest.raises(HTTPStatusError) as caught:
        response.raise_for_status()
    assert str(caught.value) == "404 Not Found for url https://example.com/missing"
    assert caught.value.response is response and caught.value.status == 404
    assert isinstance(caught.value, trio_hface.HFaceError)
    with pytest.raises(HTTPStatusError, match=r"^503 Service Unavailable for url"):
        Response(503, [], url=url).raise_for_status()
    for status in (200, 204, 301, 304):
        ok = Response(status, [], url=url)
        assert ok.raise_for_status() is ok


def test_timeouts_are_trio_hface_and_builtin_timeout_errors() -> None:
    """Every timeout is a trio_hface.TimeoutError and a built-in TimeoutError; ConnectTimeout a ConnectError."""
    for cls in (ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout):
        assert issubclass(cls, trio_hface.TimeoutError)
        assert issubclass(cls, builtins.TimeoutError) and issubclass(cls, HFaceError)
        assert not issubclass(cls, trio.TooSlowError)
    assert issubclass(ConnectTimeout, ConnectError)
    assert trio_hface.client.ReadTimeout is trio_hface.ReadTimeout is ReadTimeout
    assert trio_hface.client.PoolTimeout is PoolTimeout
    assert issubclass(TooManyRedirects, RedirectError)
    for name in ("HTTPStatusError", "TooManyRedirects", "WriteTimeout", "ConnectTimeout", "RequestRefused"):
        assert name in trio_hface.__all__


def request(method: str, url: str, headers: Any = (), content: Any = b"") -> Request:
    return Request(method, url, headers=headers, content=content)


def redirect(status: int, location: bytes) -> Response:
    return Response(status, [(b"location", location)])


def test_redirect_methods_and_bodies() -> None:
    """303 turns all but HEAD into GET, 301/302 turn POST into GET (dropping the body), 307/308 keep both."""
    post = request("POST", "https://a.example/x", {"content-type": "text/plain", "x-keep": "1"}, b"data")
    for status in (301, 302, 303):
        following = redirect_request(post, redirect(status, b"/y"))
        assert following is not None
        assert (following.method, following.content, str(following.url)) == (
            "GET",
            b"",
            "https://a.example/y",
        )
        assert following.headers == [(b"x-keep", b"1")]
    for status in (307, 308):
        following = redirect_request(post, redirect(status, b"/y"))
        assert following is not None
        assert (following.method, following.content) == ("POST", b"data")
        assert (b"content-type", b"text/plain") in following.header_pairs
    put = request("PUT", "https://a.example/x", content=b"data")
    assert redirect_request(put, redirect(302, b"/y")).method == "PUT"  # type: ignore[union-attr]
    assert redirect_request(put, redirect(303, b"/y")).method == "GET"  # type: ignore[union-attr]
    head = request("HEAD", "https://a.example/x")
    assert redirect_request(head, redirect(303, b"/y")).method == "HEAD"  # type: ignore[union-attr]
    # Not redirects to follow: no location, or a status that is not one of the five.
    assert redirect_request(post, Response(302, [])) is None
    for status in (300, 304, 305, 200):
        assert redirect_request(post, redirect(status, b"/y")) is None


def test_redirect_locations_and_credentials() -> None:
    """Relative locations resolve against the request URL; credentials stay with their origin."""
    secret = {"authorization": "Bearer t", "cookie": "s=1", "x-other": "o"}
    get = request("GET", "https://a.example/dir/page?q=1", secret)
    same = redirect_request(get, redirect(302, b"next?z=2"))
    assert same is not None and str(same.url) == "https://a.example/dir/next?z=2"
    assert dict(same.header_pairs)[b"authorization"] == b"Bearer t"
    up = redirect_request(get, redirect(301, b"../up#frag"))
    assert up is not None and str(up.url) == "https://a.example/up"
    for location in (
        b"https://b.example/",
        b"//b.example/x",
        b"http://a.example/",
        b"https://a.example:8443/",
    ):
        other = redirect_request(get, redirect(302, location))
        assert other is not None
        assert dict(other.header_pairs) == {b"x-other": b"o"}, location
    encoded = redirect_request(get, redirect(302, "/café".encode()))
    assert encoded is not None and encoded.parsed_url.target == "/caf%C3%A9"
    with pytest.raises(RedirectError, match="ftp://"):
        redirect_request(get, redirect(302, b"ftp://a.example/file"))


def test_redirect_of_a_streamed_body_is_a_clear_error() -> None:
    """A 307 or 308 cannot send an async iterable body again: RedirectError says so."""

    async def body() -> AsyncIterator[bytes]:
        yield b"x"  # pragma: no cover

    streamed = request("POST", "https://a.example/x", content=body())
    response = redirect(307, b"/y")
    with pytest.raises(RedirectError, match="streamed") as caught:
        redirect_request(streamed, response)
    assert caught.value.response is response
    following = redirect_request(streamed, redirect(303, b"/y"))  # turned into GET: no body to resend
    assert following is not None and following.content == b""


# -- against our server, on every version --------------------------------------------------


@pytest.mark.parametrize("protocol", VERSIONS)
async def test_get_post_params_json_base_url(certs: Certs, protocol: ClientProtocol) -> None:
    """session.get/post/put/patch/delete/options/head with params, json, str content and base_url."""
    async with serving(certs) as port:
        client = Client(tls_config=certs.client, protocol=protocol, base_url=f"https://localhost:{port}/api")
        async with client.session() as session:
            with trio.fail_after(30):
                got = await session.get(
                    "/items", params={"q": "a b&c", "n": 2, "on": True, "tag": ["x", "y"]}
                )
                assert got.status == 200 and got.http_version == protocol_version(protocol)
                seen = got.raise_for_status().json()
                assert seen["path"] == "/api/items" and seen["method"] == "GET"
                assert seen["query"] == "q=a+b%26c&n=2&on=true&tag=x&tag=y"
                assert str(got.url) == f"https://localhost:{port}/api/items?{seen['query']}"
                assert got.request is not None and got.request.method == "GET" and got.history == []
                assert got.fields["Content-Type"] == "application/json; charset=utf-8"

                posted = await session.post("items", json={"name": "café", "n": [1, 2]})
                seen = posted.json()
                assert seen["headers"]["content-type"] == "application/json"
                assert json.loads(seen["body"]) == {"name": "café", "n": [1, 2]}
                assert posted.text == posted.content.decode("utf-8")

                for method in ("put", "patch"):
                    sent = await getattr(session, method)("x", content="tëxt", params=[("a", "1")])
                    assert sent.json()["method"] == method.upper() and sent.json()["body"] == "tëxt"
                    assert sent.json()["query"] == "a=1"
                assert (await session.delete("x")).json()["method"] == "DELETE"
                assert (await session.options("x")).json()["method"] == "OPTIONS"
                head = await session.head("x")
                assert head.status == 200 and head.content == b""
                # An absolute URL ignores base_url; both content= and json= is a TypeError.
                absolute = await session.request("GET", f"https://localhost:{port}/abs?x=1", params={"y": 2})
                assert absolute.json()["path"] == "/abs" and absolute.json()["query"] == "x=1&y=2"
                with pytest.raises(TypeError, match="not both"):
                    await session.post("x", content=b"a", json={})
                with pytest.raises(HTTPStatusError, match=r"^404 Not Found for url https://localhost"):
                    (await session.get(f"https://localhost:{port}/status/404")).raise_for_status()


def protocol_version(protocol: ClientProtocol) -> str:
    return {ClientProtocol.HTTP1: "1.1", ClientProtocol.HTTP2: "2", ClientProtocol.HTTP3: "3"}[protocol]


@pytest.mark.parametrize("protocol", VERSIONS)
async def test_redirects_followed_on_every_version(certs: Certs, protocol: ClientProtocol) -> None:
    """follow_redirects: POST becomes GET on 303, 307 resends the body, history, loop bounded."""
    async with serving(certs) as port:
        base = f"https://localhost:{port}"
        client = Client(tls_config=certs.client, protocol=protocol, max_redirects=5)
        async with client.session() as session:
            with trio.fail_after(30):
                # Off by default, as in httpx: the redirect is the response.
                plain = await session.post(
                    f"{base}/to", params={"status": 303, "location": "/done"}, content=b"b"
                )
                assert plain.status == 303 and plain.header("location") == b"/done" and plain.history == []

                seen = await session.post(
                    f"{base}/to",
                    params={"status": 303, "location": "/done?x=1"},
                    content=b"body",
                    headers={"authorization": "Bearer t"},
                    follow_redirects=True,
                )
                info = seen.json()
                assert (info["method"], info["path"], info["query"], info["body"]) == (
                    "GET",
                    "/done",
                    "x=1",
                    "",
                )
                assert (
                    "content-length" not in info["headers"] and info["headers"]["authorization"] == "Bearer t"
                )
                assert [r.status for r in seen.history] == [303] and seen.history[0].content == b"moved"
                assert str(seen.url) == f"{base}/done?x=1"

                kept = await session.post(
                    f"{base}/to",
                    params={"status": 307, "location": "/kept"},
                    content=b"body",
                    follow_redirects=True,
                )
                assert (kept.json()["method"], kept.json()["body"]) == ("POST", "body")

                with pytest.raises(TooManyRedirects, match="more than 5 redirects") as caught:
                    await session.get(f"{base}/loop/0", follow_redirects=True)
                assert caught.value.response.status == 302

                async def body() -> AsyncIterator[bytes]:
                    yield b"streamed"

                with pytest.raises(RedirectError, match="cannot be sent again"):
                    await session.post(
                        f"{base}/to",
                        params={"status": 308, "location": "/x"},
                        content=body(),
                        follow_redirects=True,
                    )
                # The stream variant follows too, and gives the last response.
                async with session.stream(
                    "GET",
                    f"{base}/to",
                    params={"status": 302, "location": "/streamed"},
                    follow_redirects=True,
                ) as streamed:
                    assert streamed.status == 200 and [r.status for r in streamed.history] == [302]
                    assert json.loads(await streamed.aread())["path"] == "/streamed"
                # The redirects kept one connection (their short bodies were read).
                assert sum(len(v) for v in session.connections().values()) == 1


async def test_follow_redirects_client_default_and_cross_origin(certs: Certs) -> None:
    """Client(follow_redirects=True) follows from dispatch too; another origin loses the credentials."""
    async with serving(certs) as port:
        client = Client(tls_config=certs.client, protocol=ClientProtocol.HTTP2, follow_redirects=True)
        async with client.session() as session:
            with trio.fail_after(30):
                # localhost and 127.0.0.1 are two origins (one server).
                location = f"https://127.0.0.1:{port}/landed"
                response = await session.dispatch(
                    Request(
                        "GET",
                        f"https://localhost:{port}/to?status=301&location={location}",
                        headers={"authorization": "Bearer t", "cookie": "s=1", "x-other": "o"},
                    )
                )
                info = response.json()
                assert info["path"] == "/landed" and info["headers"]["x-other"] == "o"
                assert "authorization" not in info["headers"] and "cookie" not in info["headers"]
                assert response.history[0].url == URL.parse(
                    f"https://localhost:{port}/to?status=301&location={location}"
                )
                not_followed = await session.get(
                    f"https://localhost:{port}/to?status=302&location=/x", follow_redirects=False
                )
                assert not_followed.status == 302


@pytest.mark.parametrize("protocol", VERSIONS)
async def test_event_hooks_see_every_request_and_response(certs: Certs, protocol: ClientProtocol) -> None:
    """Request hooks may add headers; response hooks see each hop and may read or raise."""
    seen: list[str] = []

    async def on_request(request: Request) -> None:
        seen.append(f"> {request.method} {request.parsed_url.target}")
        request.header_pairs.append((b"x-hooked", b"yes"))

    async def on_response(response: StreamingResponse) -> None:
        seen.append(f"< {response.status}")
        if response.status == 200:
            await response.aread()  # reading in a hook leaves the body to the caller too
        response.raise_for_status()

    async with serving(certs) as port:
        base = f"https://localhost:{port}"
        client = Client(
            tls_config=certs.client,
            protocol=protocol,
            follow_redirects=True,
            event_hooks={"request": [on_request], "response": [on_response]},
        )
        async with client.session() as session:
            with trio.fail_after(30):
                response = await session.get(f"{base}/to", params={"status": 302, "location": "/end"})
                assert response.json()["headers"]["x-hooked"] == "yes" and response.json()["path"] == "/end"
                assert seen == ["> GET /to?status=302&location=%2Fend", "< 302", "> GET /end", "< 200"]
                with pytest.raises(HTTPStatusError, match="500 Internal Server Error"):
                    await session.get(f"{base}/status/500")
    with pytest.raises(ValueError, match="'request' and 'response'"):
        Client(event_hooks={"requests": []})  # type: ignore[arg-type]


async def test_nghttpd_redirect_followed(certs: Certs, tmp_path: Path) -> None:
    """nghttpd's 301 for a directory without its slash (HTTP/2) is followed to the index page."""
    nghttpd = require_tool("nghttpd")
    (tmp_path / "sub").mkdir()
    await trio.Path(tmp_path / "sub" / "index.html").write_bytes(b"index of sub\n")

    def command(port: int) -> list[str]:
        return [
            nghttpd,
            "-v",
            "-d",
            str(tmp_path),
            "--address",
            "127.0.0.1",
            str(port),
            certs.keyfile,
            certs.certfile,
        ]

    async with running_peer(command, ready=NGHTTPD_LISTENING) as peer:
        async with Client(tls_config=certs.client, protocol=ClientProtocol.TCP).session() as session:
            with trio.fail_after(30):
                response = await session.get(f"https://localhost:{peer.port}/sub", follow_redirects=True)
            assert (
                response.status == 200 and response.text == "index of sub\n" and response.http_version == "2"
            )
            assert [r.status for r in response.history] == [301]
            assert str(response.url) == f"https://localhost:{peer.port}/sub/"


# -- the write timeout and the global connection limit --------------------------------------


@pytest.mark.parametrize("protocol", VERSIONS)
async def test_write_timeout(certs: Certs, protocol: ClientProtocol) -> None:
    """A server that reads none of a large body makes the upload raise WriteTimeout after write_timeout."""

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1024):  # 256 MiB at most: more than any window or socket buffer takes
            yield bytes(256 * 1024)

    async with serving(certs, apps.app) as port:
        client = Client(tls_config=certs.client, protocol=protocol, write_timeout=0.5, read_timeout=30)
        async with client.session() as session:
            with trio.fail_after(20):
                with pytest.raises(WriteTimeout, match=r"took no request data for 0\.5 s") as caught:
                    await session.post(f"https://localhost:{port}/stall", content=endless())
                assert isinstance(caught.value, TimeoutError)
                # The session goes on: the next request works.
                ok = await session.get(f"https://localhost:{port}/")
                assert ok.content == b"hello "


@pytest.mark.parametrize("protocol", [ClientProtocol.HTTP1, ClientProtocol.HTTP3])
async def test_max_connections_evicts_idle_and_waits_for_busy(certs: Certs, protocol: ClientProtocol) -> None:
    """At max_connections, an idle connection of another origin is closed; a busy one is waited for."""
    async with serving(certs, apps.app) as port:
        first, second = f"https://localhost:{port}", f"https://127.0.0.1:{port}"  # two origins
        client = Client(tls_config=certs.client, protocol=protocol, max_connections=1, pool_timeout=10)
        async with client.session() as session:
            with trio.fail_after(30):
                assert (await session.get(f"{first}/")).content == b"hello "
                assert (await session.get(f"{second}/")).content == b"hello "
                assert list(session.connections()) == [second]  # the first origin's idle one made room
                order: list[str] = []

                async def other() -> None:
                    await session.get(f"{first}/")
                    order.append("other")

                async with trio.open_nursery() as nursery:
                    async with session.stream("GET", f"{second}/slow") as slow:
                        nursery.start_soon(other)
                        await trio.sleep(0.1)
                        assert session.statistics().waiting == 1  # the only connection is busy
                        await slow.aread()
                        order.append("slow")
                assert order == ["slow", "other"]
                assert session.statistics().connections == {protocol_version(protocol): 1}
