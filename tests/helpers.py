"""Helpers for sans-IO tests: move bytes between two protocols by hand."""

from __future__ import annotations

from trio_hface.events import Event
from trio_hface.protocols import HTTPOverTCPProtocol, HTTPProtocol


def drain(protocol: HTTPProtocol) -> list[Event]:
    """Take every event that *protocol* has now."""
    events: list[Event] = []
    while (event := protocol.next_event()) is not None:
        events.append(event)
    return events


def xfer(sender: HTTPOverTCPProtocol, receiver: HTTPOverTCPProtocol) -> list[Event]:
    """Move what *sender* has to send into *receiver*; return the receiver's events."""
    data = sender.bytes_to_send()
    if data:
        receiver.bytes_received(data)
    return drain(receiver)


def exchange(a: HTTPOverTCPProtocol, b: HTTPOverTCPProtocol, rounds: int = 10) -> None:
    """Move bytes both ways until neither side has anything to send (events stay queued)."""
    for _ in range(rounds):
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            data = sender.bytes_to_send()
            if data:
                receiver.bytes_received(data)
                moved = True
        if not moved:
            return
    raise AssertionError(f"the protocols still talk after {rounds} rounds")


def require_tool(name: str) -> str:
    """Return the path of an external program; skip the test if it is missing (fail under CI)."""
    import os
    import shutil

    import pytest

    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing; .ci/run installs it")
        pytest.skip(f"{name} is not installed")
    return path
