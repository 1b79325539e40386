"""Fixtures of the sans-IO HTTP/3 tests: the in-memory link and its certificates (``certs``, ``link``) (see tests/h3link.py)."""

from __future__ import annotations

from tests.h3link import certs, link, quic_server_stack, quic_stack

__all__ = ["certs", "link", "quic_server_stack", "quic_stack"]
