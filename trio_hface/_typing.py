"""Type aliases shared by every layer."""

from __future__ import annotations

from collections.abc import Sequence

#: A network address: ``(host, port)``.
AddressType = tuple[str, int]

#: A UDP datagram with its peer address: ``(payload, (host, port))``.
DatagramType = tuple[bytes, AddressType]

#: One header field: ``(name, value)``, both bytes, the name lower case.
HeaderType = tuple[bytes, bytes]

#: A header list in the HTTP/2 style: pseudo-headers (``:method``,
#: ``:scheme``, ``:authority``, ``:path``, ``:status``, ``:protocol``) first,
#: then regular fields.
HeadersType = Sequence[HeaderType]
