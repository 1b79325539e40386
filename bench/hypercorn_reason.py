"""Run hypercorn (same arguments) with the standard reason phrase in its HTTP/1.1 status lines.

hypercorn leaves the reason phrase empty (``HTTP/1.1 200 \\r\\n``), which HTTP allows but
h2load ``--h1`` rejects, counting every response as failed. So that h2load can measure
hypercorn's HTTP/1.1 at all, the benchmark starts it through this file, which hands
hypercorn's HTTP/1.1 protocol an h11 whose ``Response`` fills the phrase in (one dictionary
look-up per response; nothing else of hypercorn changes). Start it with ``--workers 0``, so that the worker
is this process and not a fresh one without the patch.
"""

from __future__ import annotations

import sys
import types
from http import HTTPStatus
from typing import Any

import h11
import hypercorn.protocol.h11 as hypercorn_h11
from hypercorn.__main__ import main

PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus}


def response_with_reason(**fields: Any) -> h11.Response:
    """An h11 ``Response`` with the standard reason phrase of its status code."""
    fields.setdefault("reason", PHRASES.get(fields["status_code"], b""))
    return h11.Response(**fields)


if __name__ == "__main__":
    patched = types.ModuleType("h11")
    patched.__dict__.update(vars(h11))
    patched.Response = response_with_reason  # type: ignore[attr-defined]
    hypercorn_h11.h11 = patched  # type: ignore[attr-defined]
    sys.exit(main())
