"""The registry of protocol implementations."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, TypeVar, cast

from ._factories import HTTPOverQUICClientFactory, HTTPOverQUICServerFactory, HTTPOverTCPFactory

__all__ = ["ProtocolRegistry", "protocol_registry", "ENTRY_POINT_PREFIX"]

#: Entry points of implementations live in groups named
#: ``trio_hface.protocols.http{1,2,3}_{servers,clients}``.
ENTRY_POINT_PREFIX = "trio_hface.protocols"

_F = TypeVar("_F")

log = logging.getLogger(__name__)


@dataclass
class ProtocolRegistry:
    """Protocol implementations by HTTP version, side and name.

    The default implementations are registered under the name ``"default"``.
    Other packages add theirs through setuptools entry points in the groups
    ``trio_hface.protocols.http1_servers``, ``.http1_clients``,
    ``.http2_servers``, ``.http2_clients``, ``.http3_servers`` and
    ``.http3_clients``; an entry point names a factory class (instantiated
    without arguments) or a factory object. An entry point whose module
    cannot be imported (an optional dependency that is not installed, such
    as httptools for the ``"httptools"`` HTTP/1.1 implementation of the
    ``speedups`` extra) is left out.
    """

    #: HTTP/1 server factories by name.
    http1_servers: dict[str, HTTPOverTCPFactory] = field(default_factory=dict)
    #: HTTP/2 server factories by name.
    http2_servers: dict[str, HTTPOverTCPFactory] = field(default_factory=dict)
    #: HTTP/3 server factories by name.
    http3_servers: dict[str, HTTPOverQUICServerFactory] = field(default_factory=dict)
    #: HTTP/1 client factories by name.
    http1_clients: dict[str, HTTPOverTCPFactory] = field(default_factory=dict)
    #: HTTP/2 client factories by name.
    http2_clients: dict[str, HTTPOverTCPFactory] = field(default_factory=dict)
    #: HTTP/3 client factories by name.
    http3_clients: dict[str, HTTPOverQUICClientFactory] = field(default_factory=dict)

    def load(self) -> None:
        """Register the defaults, then whatever entry points declare."""
        self.load_defaults()
        self.load_entry_points()

    def load_defaults(self) -> None:
        """Register the default implementations (h11, h2, aioquic) as ``"default"``."""
        from . import http1, http2, http3

        self.http1_servers["default"] = http1.HTTP1ServerFactory()
        self.http2_servers["default"] = http2.HTTP2ServerFactory()
        self.http3_servers["default"] = http3.HTTP3ServerFactory()
        self.http1_clients["default"] = http1.HTTP1ClientFactory()
        self.http2_clients["default"] = http2.HTTP2ClientFactory()
        self.http3_clients["default"] = http3.HTTP3ClientFactory()

    def load_entry_points(self, prefix: str = ENTRY_POINT_PREFIX) -> None:
        """Register the implementations that installed packages declare.

        :param prefix: the prefix of the entry-point groups
        :raises TypeError: if an entry point names something that is not a factory
        """
        _load_group(self.http1_servers, f"{prefix}.http1_servers", HTTPOverTCPFactory)
        _load_group(self.http2_servers, f"{prefix}.http2_servers", HTTPOverTCPFactory)
        _load_group(self.http3_servers, f"{prefix}.http3_servers", HTTPOverQUICServerFactory)
        _load_group(self.http1_clients, f"{prefix}.http1_clients", HTTPOverTCPFactory)
        _load_group(self.http2_clients, f"{prefix}.http2_clients", HTTPOverTCPFactory)
        _load_group(self.http3_clients, f"{prefix}.http3_clients", HTTPOverQUICClientFactory)


def _load_group(target: dict[str, _F], group: str, kind: type) -> None:
    for entry_point in entry_points(group=group):
        try:
            obj: Any = entry_point.load()
        except ImportError as exc:
            log.debug("entry point %r in %r left out: %s", entry_point.name, group, exc)
            continue
        factory = obj() if isinstance(obj, type) else obj
        if not isinstance(factory, kind):
            raise TypeError(
                f"entry point {entry_point.name!r} in {group!r} gives {factory!r}, not a {kind.__name__}"
            )
        target[entry_point.name] = cast(_F, factory)


def _create() -> ProtocolRegistry:
    registry = ProtocolRegistry()
    registry.load()
    return registry


#: The registry with the defaults and every installed implementation loaded.
protocol_registry: ProtocolRegistry = _create()
