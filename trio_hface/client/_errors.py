"""The client's timeouts: trio_hface errors that are also :exc:`trio.TooSlowError`."""

from __future__ import annotations

import trio

from ..errors import HFaceError

__all__ = ["PoolTimeout", "ReadTimeout"]


class ReadTimeout(HFaceError, trio.TooSlowError):
    """No piece of a response came within the client's ``read_timeout``."""


class PoolTimeout(HFaceError, trio.TooSlowError):
    """No pooled connection could take the request within the client's ``pool_timeout``."""
