"""Exception groups at API boundaries."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["single_exception"]


@contextmanager
def single_exception() -> Iterator[None]:
    """Re-raise the only exception of an exception group as itself.

    Nurseries wrap what escapes them in groups; at the boundary of an API
    whose callers expect one error (``ConnectError``, ``ProxyError``...), a
    group holding exactly one exception becomes that exception.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
