"""The httpx-like request methods of a session, and the redirect loop they share.

:class:`RequestMethods` is what :class:`.ClientSession` adds to ``dispatch``:
``request``, ``get``, ``post`` and the other methods build a
:class:`.Request` (base URL, query parameters, JSON) and read the whole
response; :meth:`RequestMethods.stream` is the one loop that sends requests,
calls the event hooks and follows redirects (:func:`.redirect_request`),
for every method and every HTTP version.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypedDict

from .._typing import HeadersType
from ..errors import TooManyRedirects
from ._models import URL, QueryParams, Request, RequestHeaders, Response, build_request
from ._redirects import redirect_request
from ._response import StreamingResponse

__all__ = ["Content", "EventHooks", "RequestMethods"]

log = logging.getLogger(__name__)


class EventHooks(TypedDict, total=False):
    """The ``event_hooks`` of a :class:`.Client`: async functions called for every request and response.

    ``"request"`` hooks get each :class:`.Request` just before it is sent
    (a redirect's too), and may change its headers. ``"response"`` hooks get
    each :class:`.StreamingResponse` as soon as its header fields arrived,
    before its body is read (a redirect's too); they may read it with
    :meth:`~.StreamingResponse.aread`, or raise, for example with
    :meth:`~.StreamingResponse.raise_for_status`, which ends the request
    with that exception.
    """

    #: Called with each request before it is sent.
    request: Sequence[Callable[[Request], Awaitable[object]]]
    #: Called with each response once its head arrived.
    response: Sequence[Callable[[StreamingResponse], Awaitable[object]]]


#: What :meth:`ClientSession.request` takes as a body: ``bytes``, ``str`` (sent as UTF-8) or
#: an async iterable of ``bytes`` (streamed; not sent again for a retry or a 307/308).
Content = str | bytes | AsyncIterable[bytes]


class _Settings(Protocol):
    """What the request methods read of the client (:class:`.Client` has it)."""

    base_url: URL | None
    follow_redirects: bool
    max_redirects: int
    request_hooks: list[Callable[[Request], Awaitable[object]]]
    response_hooks: list[Callable[[StreamingResponse], Awaitable[object]]]


class RequestMethods:
    """``request``, ``get``, ``post``... and ``stream``: what :class:`.ClientSession` offers beside ``dispatch``."""

    _client: _Settings

    async def dispatch(self, request: Request, *, follow_redirects: bool | None = None) -> Response:
        raise NotImplementedError  # pragma: no cover

    def _stream_once(
        self, request: Request, history: list[Response] | None = None
    ) -> AbstractAsyncContextManager[StreamingResponse]:
        raise NotImplementedError  # pragma: no cover

    async def request(
        self,
        method: str,
        url: URL | str,
        *,
        params: QueryParams | None = None,
        headers: HeadersType | RequestHeaders | None = None,
        content: Content | None = None,
        json: Any = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a request and read the whole response, as httpx's ``request`` does::

            response = await session.request("GET", "https://example.com/", params={"q": "trio"})
            response.raise_for_status()
            print(response.text)

        :param method: the method, such as ``"GET"``
        :param url: an absolute URL, or one relative to the client's ``base_url``
        :param params: query parameters, a mapping or pairs, appended to the
            URL's query (percent-encoded as a form, ``+`` for a space)
        :param headers: header fields, a mapping or pairs of ``str`` or ``bytes``
        :param content: the body: ``bytes``, ``str`` (sent as UTF-8) or an
            async iterable of ``bytes`` (streamed)
        :param json: a value to send as JSON (``content-type: application/json``)
        :param follow_redirects: whether to follow redirects (default: the
            client's ``follow_redirects``)
        :returns: the response, with :attr:`~Response.url`,
            :attr:`~Response.request` and :attr:`~Response.history` filled in
        :raises TooManyRedirects: if following more than ``max_redirects`` redirects
        :raises RedirectError: if a redirect cannot be followed
        :raises TypeError: if both *content* and *json* are given

        and everything :meth:`dispatch` raises. A 4xx or 5xx status is a
        response, not an error, unless :meth:`~Response.raise_for_status` says so.
        """
        built = build_request(
            method,
            url,
            base_url=self._client.base_url,
            params=params,
            headers=headers,
            content=content,
            json=json,
        )
        return await self.dispatch(built, follow_redirects=follow_redirects)

    async def get(
        self,
        url: URL | str,
        *,
        params: QueryParams | None = None,
        headers: HeadersType | RequestHeaders | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a GET (see :meth:`request`)."""
        return await self.request(
            "GET", url, params=params, headers=headers, follow_redirects=follow_redirects
        )

    async def head(
        self,
        url: URL | str,
        *,
        params: QueryParams | None = None,
        headers: HeadersType | RequestHeaders | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a HEAD (see :meth:`request`)."""
        return await self.request(
            "HEAD", url, params=params, headers=headers, follow_redirects=follow_redirects
        )

    async def options(
        self,
        url: URL | str,
        *,
        params: QueryParams | None = None,
        headers: HeadersType | RequestHeaders | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send an OPTIONS (see :meth:`request`)."""
        return await self.request(
            "OPTIONS", url, params=params, headers=headers, follow_redirects=follow_redirects
        )

    async def delete(
        self,
        url: URL | str,
        *,
        params: QueryParams | None = None,
        headers: HeadersType | RequestHeaders | None = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a DELETE (see :meth:`request`)."""
        return await self.request(
            "DELETE", url, params=params, headers=headers, follow_redirects=follow_redirects
        )

    async def post(
        self,
        url: URL | str,
        *,
        params: QueryParams | None = None,
        headers: HeadersType | RequestHeaders | None = None,
        content: Content | None = None,
        json: Any = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a POST (see :meth:`request`)."""
        return await self.request(
            "POST",
            url,
            params=params,
            headers=headers,
            content=content,
            json=json,
            follow_redirects=follow_redirects,
        )

    async def put(
        self,
        url: URL | str,
        *,
        params: QueryParams | None = None,
        headers: HeadersType | RequestHeaders | None = None,
        content: Content | None = None,
        json: Any = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a PUT (see :meth:`request`)."""
        return await self.request(
            "PUT",
            url,
            params=params,
            headers=headers,
            content=content,
            json=json,
            follow_redirects=follow_redirects,
        )

    async def patch(
        self,
        url: URL | str,
        *,
        params: QueryParams | None = None,
        headers: HeadersType | RequestHeaders | None = None,
        content: Content | None = None,
        json: Any = None,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send a PATCH (see :meth:`request`)."""
        return await self.request(
            "PATCH",
            url,
            params=params,
            headers=headers,
            content=content,
            json=json,
            follow_redirects=follow_redirects,
        )

    @asynccontextmanager
    async def stream(
        self,
        request: Request | str,
        url: URL | str | None = None,
        *,
        params: QueryParams | None = None,
        headers: HeadersType | RequestHeaders | None = None,
        content: Content | None = None,
        json: Any = None,
        follow_redirects: bool | None = None,
    ) -> AsyncIterator[StreamingResponse]:
        """Send a request; give the response once its headers arrived, to read its body as it comes::

            async with session.stream("GET", url) as response:
                async for chunk in response.aiter_bytes():
                    ...

        Takes a :class:`.Request`, or a method and a URL with the arguments of
        :meth:`request`. With redirects followed, the response given is the
        last one (each redirect's short body is read, and kept in
        :attr:`~StreamingResponse.history`).

        Leaving the ``async with`` before the body ended cancels the request
        (the stream is reset; an HTTP/1.1 connection is closed).

        :raises TypeError: if a :class:`.Request` comes with a URL or other
            parts of a request
        """
        client = self._client
        if isinstance(request, Request):
            if url is not None or params or headers or content is not None or json is not None:
                raise TypeError("stream() takes a Request, or a method and a URL with their parts, not both")
        else:
            if url is None:
                raise TypeError("stream() takes a Request, or a method and a URL")
            request = build_request(
                request,
                url,
                base_url=client.base_url,
                params=params,
                headers=headers,
                content=content,
                json=json,
            )
        follow = client.follow_redirects if follow_redirects is None else follow_redirects
        history: list[Response] = []
        while True:
            for request_hook in client.request_hooks:
                await request_hook(request)
            async with self._stream_once(request, list(history)) as response:
                for response_hook in client.response_hooks:
                    await response_hook(response)
                following = redirect_request(request, response) if follow else None
                if following is None:
                    yield response
                    return
                history.append(await response._for_history())
            if len(history) > client.max_redirects:
                raise TooManyRedirects(
                    f"more than {client.max_redirects} redirects, the last one from {request.url} "
                    f"to {following.url}",
                    response=history[-1],
                )
            log.debug("following the %d redirect to %s", response.status, following.url)
            request = following
