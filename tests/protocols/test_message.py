"""The shared message state machine (protocols/_message.py), on its own."""

from __future__ import annotations

import pytest

from trio_hface.errors import LocalProtocolError
from trio_hface.events import ConnectionTerminated
from trio_hface.protocols._headers import HeaderKind
from trio_hface.protocols._message import MessageState, Phase, StreamState, Termination


def phase(state: MessageState) -> Phase:
    """The phase, read through a call so that type checkers do not narrow it between steps."""
    return state.phase


def test_a_message_runs_headers_data_trailers() -> None:
    """Final headers, data, then trailers that end the message."""
    state = MessageState(1)
    assert state.next_block(HeaderKind.RESPONSE) is HeaderKind.RESPONSE
    state.headers(HeaderKind.RESPONSE, end_stream=False, informational=True)
    assert phase(state) is Phase.IDLE and not state.started
    state.headers(HeaderKind.RESPONSE, end_stream=False)
    assert phase(state) is Phase.HEADERS and state.in_body
    state.data(end_stream=False)
    assert phase(state) is Phase.DATA
    assert state.next_block(HeaderKind.RESPONSE) is HeaderKind.TRAILERS
    state.headers(HeaderKind.TRAILERS, end_stream=True)
    assert phase(state) is Phase.DONE and state.ended


@pytest.mark.parametrize(
    ("setup", "action", "message"),
    [
        ([], lambda s: s.data(end_stream=False), "no final headers"),
        ([], lambda s: s.headers(HeaderKind.RESPONSE, end_stream=True, informational=True), "1xx"),
        (["headers"], lambda s: s.headers(HeaderKind.TRAILERS, end_stream=False), "trailers must end"),
        (["headers"], lambda s: s.headers(HeaderKind.RESPONSE, end_stream=False), "expects trailers"),
        (["headers", "end"], lambda s: s.data(end_stream=False), "already ended"),
        (["headers", "end"], lambda s: s.next_block(HeaderKind.RESPONSE), "already ended"),
        (["reset"], lambda s: s.headers(HeaderKind.RESPONSE, end_stream=False), "was reset"),
        (["headers", "reset"], lambda s: s.check_data(), "was reset"),
    ],
)
def test_misuse_is_refused_and_changes_nothing(setup: list[str], action: object, message: str) -> None:
    """Each rule of the sequence raises LocalProtocolError and leaves the state as it was."""
    state = MessageState(5)
    for step in setup:
        if step == "headers":
            state.headers(HeaderKind.RESPONSE, end_stream=False)
        elif step == "end":
            state.end()
        else:
            state.reset()
    before = state.phase
    with pytest.raises(LocalProtocolError, match=message):
        action(state)  # type: ignore[operator]
    assert phase(state) is before


def test_held_trailers_end_the_message_for_new_input() -> None:
    """Trailers whose end comes later leave nothing but the end to come."""
    state = MessageState(3)
    state.headers(HeaderKind.REQUEST, end_stream=False)
    state.hold_trailers()
    assert state.ended
    with pytest.raises(LocalProtocolError):
        state.data(end_stream=False)
    state.end()
    assert phase(state) is Phase.DONE


def test_a_tunnel_reopens_an_ended_message_but_not_a_reset_one() -> None:
    """After CONNECT or Upgrade, the tunnel's bytes are data; a reset stays a reset."""
    state = MessageState(1)
    state.headers(HeaderKind.REQUEST, end_stream=True)
    state.reopen()
    assert phase(state) is Phase.DATA
    state.reset()
    state.reopen()
    state.end()
    assert phase(state) is Phase.RESET


def test_stream_state_pairs_both_directions() -> None:
    """A stream is closed when both messages are; a reset ends both."""
    stream = StreamState(7)
    stream.send.headers(HeaderKind.RESPONSE, end_stream=True)
    half_closed = stream.closed
    assert not half_closed
    stream.receive.headers(HeaderKind.REQUEST, end_stream=True)
    assert stream.closed and not stream.is_reset
    other = StreamState(9)
    other.reset()
    assert other.closed and other.is_reset


def test_termination_is_reported_once() -> None:
    """The first end is the event; later ones report nothing, and misuse is refused."""
    end = Termination()
    end.check_open()
    assert end.terminate(0, "bye") == ConnectionTerminated(0, "bye")
    assert end.terminate(1, "again") is None
    with pytest.raises(LocalProtocolError, match="closed"):
        end.check_open()
