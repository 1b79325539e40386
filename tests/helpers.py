"""Helpers for sans-IO tests: move bytes between two protocols by hand."""

from __future__ import annotations

import hyperframe.frame

from trio_hface.events import Event
from trio_hface.protocols import HTTPOverTCPProtocol, HTTPProtocol
from trio_hface.protocols.http1._factories import HTTP1FactoryBase


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


def _http1_implementations() -> list[object]:
    import importlib.util

    import pytest

    missing = importlib.util.find_spec("httptools") is None
    return [
        pytest.param("h11"),
        pytest.param(
            "httptools",
            marks=pytest.mark.skipif(missing, reason="httptools is not installed (the speedups extra)"),
        ),
    ]


#: The HTTP/1.1 implementations, as pytest parameters: h11, and httptools where installed.
HTTP1_IMPLEMENTATIONS = _http1_implementations()


def http1_factories(name: str) -> tuple[type[HTTP1FactoryBase], type[HTTP1FactoryBase]]:
    """The client and server factory classes of the HTTP/1.1 implementation *name*."""
    from trio_hface.protocols import http1

    if name == "h11":
        return http1.HTTP1ClientFactory, http1.HTTP1ServerFactory
    return http1.HTTPToolsClientFactory, http1.HTTPToolsServerFactory


def h2_frames(data: bytes) -> list[hyperframe.frame.Frame]:
    """Parse the HTTP/2 frames in *data* (what a protocol sent, after any preface)."""
    frames = []
    while data:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames
