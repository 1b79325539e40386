"""The ``trio-hface`` command line (also ``python -m trio_hface``)."""

from __future__ import annotations

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
