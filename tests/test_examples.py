"""Every example under examples/ that the docs show runs as-is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_protocol_example_runs() -> None:
    """examples/protocol.py builds a request and parses a response."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "protocol.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert "request sent and response parsed" in result.stdout
