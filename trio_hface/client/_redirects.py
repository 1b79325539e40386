"""Following redirects (RFC 9110 section 15.4): the next request, from a request and its response.

The session's redirect loop (:meth:`.ClientSession.stream`, and everything
built on it) asks :func:`redirect_request` after each response; so does
anything else that follows redirects, such as the command line's ``-L``
through ``follow_redirects=True``. The function does no I/O.
"""

from __future__ import annotations

from urllib.parse import quote, urljoin

from ..errors import RedirectError
from ._models import URL, Request, ResponseHead

__all__ = ["REDIRECT_STATUSES", "redirect_request"]

#: The statuses whose ``location`` a client follows (300, 304 and 305 are not redirects to follow).
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: Header fields that describe a body: dropped with the body when a redirect turns the method into GET.
_BODY_FIELDS = (b"content-", b"transfer-encoding", b"trailer")

#: Header fields with credentials for the origin: dropped on a redirect to another origin.
_CREDENTIALS = frozenset({b"authorization", b"cookie", b"proxy-authorization"})

#: Characters left as they are in a location (RFC 3986 reserved ones, and ``%`` of escapes).
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


def redirect_request(request: Request, response: ResponseHead) -> Request | None:
    """The request that follows *response*'s redirect, or ``None`` if it is not one to follow.

    - 301, 302, 303, 307 and 308 with a ``location`` are followed; the
      location is resolved against the request's URL (RFC 3986 section 5).
    - 303 turns any method but HEAD into GET; 301 and 302 turn POST into GET
      (RFC 9110 sections 15.4.2-15.4.4 allow it, and every browser and curl do
      it). A request turned into GET loses its body and the fields that
      describe it (``content-*``, ``transfer-encoding``).
    - 307 and 308 keep the method and the body (sections 15.4.8, 15.4.9):
      a ``bytes`` body is sent again.
    - To another origin (scheme, host or port), ``authorization``, ``cookie``
      and ``proxy-authorization`` are dropped.

    :raises RedirectError: if the location is not an http or https URL, or a
        307 or 308 would have to send a streamed (async iterable) body again
    """
    if response.status not in REDIRECT_STATUSES:
        return None
    location = response.header(b"location")
    if location is None:
        return None
    url = request.parsed_url
    # A location with non-ASCII bytes (some servers send UTF-8) is percent-encoded first.
    target = urljoin(str(url), quote(location.strip(), safe=_URL_SAFE))
    try:
        next_url = URL.parse(target)
    except ValueError as exc:
        raise RedirectError(f"cannot follow the redirect to {target!r}: {exc}", response=response) from None
    method = request.method.upper()
    if (response.status == 303 and method != "HEAD") or (response.status in (301, 302) and method == "POST"):
        method = "GET"
    headers = list(request.header_pairs)
    content = request.content
    if method != request.method.upper():
        content = b""
        headers = [(n, v) for n, v in headers if not n.lower().startswith(_BODY_FIELDS)]
    elif not isinstance(content, bytes):
        raise RedirectError(
            f"cannot follow the {response.status} redirect to {next_url}: the request's body was streamed "
            "and cannot be sent again (give it as bytes)",
            response=response,
        )
    if next_url.origin != url.origin:
        headers = [(n, v) for n, v in headers if n.lower() not in _CREDENTIALS]
    return Request(method, next_url, headers, content)
