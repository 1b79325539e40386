"""StreamingResponse: a response whose body is read as it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..connections import HTTPConnection
from ._connection import Exchange
from ._models import Request, Response, ResponseHead

__all__ = ["StreamingResponse"]

#: The body of a redirect response that is read (and kept in its history entry)
#: so that its connection can be reused; a longer one is not read: its stream is reset.
REDIRECT_BODY_LIMIT = 64 * 1024


class StreamingResponse(ResponseHead):
    """A response whose body is read as it arrives; obtain it from :meth:`ClientSession.stream`.

    It has the header methods of :class:`Response` (:meth:`header`,
    :attr:`fields`, :meth:`raise_for_status`...), and :meth:`aiter_bytes` or
    :meth:`aread` for the body.
    """

    def __init__(
        self,
        response: Response,
        exchange: Exchange,
        read_timeout: float | None,
        request: Request | None = None,
        history: list[Response] | None = None,
    ) -> None:
        self._response = response
        self._exchange = exchange
        self._read_timeout = read_timeout
        self._content: bytes | None = None
        #: The status code.
        self.status = response.status
        #: The header fields, as ``bytes`` pairs.
        self.headers = response.headers
        #: ``"1.1"``, ``"2"`` or ``"3"``.
        self.http_version = response.http_version
        #: Informational (1xx) responses received before this one.
        self.informational = response.informational
        #: The request that this answers (after redirects: the last one).
        self.request = request
        #: Its URL.
        self.url = None if request is None else request.parsed_url
        #: The redirect responses that led here, oldest first.
        self.history = history or []

    @property
    def connection(self) -> HTTPConnection:
        """The connection that carried the response, for inspection (its
        :attr:`~.HTTPConnection.extra_attributes`: addresses, TLS version, ALPN
        protocol); the session owns it: sending on it would disturb the pool."""
        return self._exchange.connection

    @property
    def trailers(self) -> list[tuple[bytes, bytes]]:
        """Trailers, once the body has been read to its end."""
        return self._exchange.trailers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives (reading also returns flow-control credit)."""
        if self._content is not None:  # read whole already (by a hook)
            if self._content:
                yield self._content
            return
        async for chunk in self._exchange.receive_body(self._read_timeout):
            yield chunk

    async def aread(self) -> bytes:
        """Read the rest of the body; once read, it is kept, and reading again returns it."""
        if self._content is None:
            self._content = await self._exchange.read_body(self._read_timeout)
        return self._content

    def _complete(self, content: bytes) -> Response:
        """The :class:`Response` with the whole body."""
        return Response(
            self.status,
            self.headers,
            content,
            http_version=self.http_version,
            informational=self.informational,
            trailers=self.trailers,
            url=self.url,
            request=self.request,
            history=self.history,
        )

    async def _for_history(self) -> Response:
        """The :class:`Response` kept in the history of a redirect (its body, when it is short)."""
        content = self._content
        if content is None:
            content = await self._exchange.read_body_within(self._read_timeout, REDIRECT_BODY_LIMIT)
        return self._complete(content or b"")
