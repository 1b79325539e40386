"""Ready-to-use servers: an ASGI server for every HTTP version."""

from __future__ import annotations

from ._access_log import ACCESS_LOG_FIELDS, DEFAULT_ACCESS_LOG_FORMAT, check_access_log_format
from ._asgi import ASGIApp, ClientDisconnected
from ._config import ServerConfig, ServerSettings
from ._devcerts import DevelopmentCA, default_dev_ca_directory, development_tls_config
from ._models import Endpoint, ServerProtocol
from ._proxy import ProxyServer
from ._server import ASGIServer
from ._websocket import WebSocketConfig
from ._workers import SteeringMode, WorkerPool

__all__ = [
    "ASGIServer",
    "ProxyServer",
    "ServerConfig",
    "ServerSettings",
    "ASGIApp",
    "ClientDisconnected",
    "Endpoint",
    "ServerProtocol",
    "WorkerPool",
    "SteeringMode",
    "WebSocketConfig",
    "DevelopmentCA",
    "development_tls_config",
    "default_dev_ca_directory",
    "ACCESS_LOG_FIELDS",
    "DEFAULT_ACCESS_LOG_FORMAT",
    "check_access_log_format",
]
