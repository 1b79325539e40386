"""Behaviour that every HTTP version shares, run on HTTP/1.1, HTTP/2 and HTTP/3 alike.

Each test takes a connected pair from tests/pairs.py. Where HTTP/1.1 differs
by design (a stream reset closes the connection; GOAWAY is ``Connection:
close``; TCP is its only flow control), the expectation says so.
"""

from __future__ import annotations

import pytest

from tests.pairs import GET, OK, POST, VERSIONS, Pair, body_of, make_pair
from trio_hface.errors import FlowControlError, LocalProtocolError, StreamResetByPeerError
from trio_hface.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    StreamResetReceived,
    StreamResetSent,
)
from trio_hface.protocols import HTTPProtocol

# A final response without a body: no framing header on any version.
NO_CONTENT = [(b":status", b"204")]


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    """Every HTTP version; a test names its own list to mark one version."""
    value: str = request.param
    return value


@pytest.fixture
def pair(version: str) -> Pair:
    return make_pair(version)


# -- trailers -----------------------------------------------------------------


def test_trailers_both_ways(pair: Pair) -> None:
    """Header blocks after data arrive as trailers that end the stream, in both directions."""
    sid = pair.request([*POST, (b"te", b"trailers")], end_stream=False)
    pair.client.submit_data(sid, b"body")
    pair.client.submit_headers(sid, [(b"x-checksum", b"abc")], end_stream=True)
    _, events = pair.pump()
    assert events[1:] == [
        DataReceived(sid, b"body"),
        HeadersReceived(sid, [(b"x-checksum", b"abc")], end_stream=True),
    ]
    pair.server.submit_headers(sid, OK)
    pair.server.submit_data(sid, b"answer")
    pair.server.submit_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
    events, _ = pair.pump()
    assert events == [
        HeadersReceived(sid, pair.framed(OK)),
        DataReceived(sid, b"answer"),
        HeadersReceived(sid, [(b"grpc-status", b"0")], end_stream=True),
    ]
    assert pair.client.is_available(), "trailers end the exchange, not the connection"


@pytest.mark.parametrize("side", ["client", "server"])
def test_trailers_must_end_the_stream(pair: Pair, side: str) -> None:
    """Trailers without end_stream, or a second final response, are refused; proper trailers may follow."""
    sid = pair.request(POST, end_stream=False)
    if side == "server":
        pair.pump()
        pair.server.submit_headers(sid, OK)
    sender = pair.client if side == "client" else pair.server
    sender.submit_data(sid, b"body")
    with pytest.raises(LocalProtocolError, match="trailers"):
        sender.submit_headers(sid, [(b"x-a", b"b")])
    if side == "server":
        with pytest.raises(LocalProtocolError):
            sender.submit_headers(sid, OK, end_stream=True)
    sender.submit_headers(sid, [(b"x-a", b"b")], end_stream=True)
    received = pair.pump()[0 if side == "server" else 1]
    assert received[-1] == HeadersReceived(sid, [(b"x-a", b"b")], end_stream=True)


# -- informational responses --------------------------------------------------


def test_informational_responses_come_before_the_final_one(pair: Pair) -> None:
    """100 Continue and 103 Early Hints arrive as their own header blocks; the body and the final response follow."""
    sid = pair.request([*POST, (b"expect", b"100-continue")], end_stream=False)
    pair.pump()
    hints = [(b":status", b"103"), (b"link", b"</style.css>; rel=preload")]
    pair.server.submit_headers(sid, [(b":status", b"100")])
    pair.server.submit_headers(sid, hints)
    events, _ = pair.pump()
    assert events == [HeadersReceived(sid, [(b":status", b"100")]), HeadersReceived(sid, hints)]
    pair.client.submit_data(sid, b"body", end_stream=True)
    _, events = pair.pump()
    assert events[-1] == DataReceived(sid, b"body", end_stream=True)
    with pytest.raises(LocalProtocolError):
        pair.server.submit_headers(sid, [(b":status", b"100")], end_stream=True)
    pair.server.submit_headers(sid, NO_CONTENT, end_stream=True)
    assert pair.pump()[0] == [HeadersReceived(sid, NO_CONTENT, end_stream=True)]


@pytest.mark.parametrize(
    "version",
    [
        "1",
        "2",
        "3",
    ],
)
@pytest.mark.parametrize("informational", [False, True], ids=["no-1xx", "after-1xx"])
def test_data_before_the_final_response_is_refused(pair: Pair, informational: bool) -> None:
    """A server cannot send body data before its final response headers (RFC 9110 section 15.2)."""
    sid = pair.request(POST, end_stream=False)
    pair.pump()
    if informational:
        pair.server.submit_headers(sid, [(b":status", b"100")])
    with pytest.raises(LocalProtocolError):
        pair.server.submit_data(sid, b"too early")
    pair.server.submit_headers(sid, NO_CONTENT, end_stream=True)
    events, _ = pair.pump()
    assert events[-1] == HeadersReceived(sid, NO_CONTENT, end_stream=True)


# -- stream resets ------------------------------------------------------------


@pytest.mark.parametrize("side", ["client", "server"])
def test_stream_reset(pair: Pair, side: str) -> None:
    """A reset is reported once to each side, and other streams go on; on HTTP/1.1 it closes the connection."""
    sid = pair.request(POST, end_stream=False)
    pair.client.submit_data(sid, b"some")
    other = pair.request(GET) if pair.multiplexed else None
    pair.pump()
    resetter = pair.client if side == "client" else pair.server
    peer = pair.peer(resetter)
    code = resetter.error_codes.cancel
    resetter.submit_stream_reset(sid, code)
    if not pair.multiplexed:
        assert pair.events(resetter) == [StreamResetSent(sid, code), ConnectionTerminated(code)]
        assert resetter.has_expired() and not resetter.is_available()
        with pytest.raises(LocalProtocolError):
            resetter.submit_stream_reset(sid, code)
        pair.exchange()
        pair.end_transport()
        (terminated,) = pair.events(peer)
        assert isinstance(terminated, ConnectionTerminated)
        return
    assert pair.events(resetter) == [StreamResetSent(sid, code)]
    resetter.submit_stream_reset(sid, code)  # again: harmless, and not reported twice
    assert pair.events(resetter) == []
    with pytest.raises(LocalProtocolError):
        resetter.submit_data(sid, b"late")
    pair.exchange()
    assert pair.events(peer) == [StreamResetReceived(sid, code)]
    with pytest.raises(StreamResetByPeerError) as raised:
        peer.submit_data(sid, b"late")
    assert raised.value.error_code == code and raised.value.stream_id == sid
    with pytest.raises(LocalProtocolError):
        peer.submit_headers(sid, OK if peer is pair.server else [(b"x-late", b"1")], end_stream=True)
    with pytest.raises(LocalProtocolError):
        resetter.submit_stream_reset(sid + 100)  # never opened
    assert other is not None
    pair.server.submit_headers(other, OK, end_stream=True)
    assert pair.pump() == ([HeadersReceived(other, OK, end_stream=True)], [])
    assert pair.client.is_available()


# -- graceful shutdown --------------------------------------------------------


def test_goaway_lets_streams_in_flight_finish(pair: Pair) -> None:
    """After submit_goaway nothing new starts, but the request in flight gets its response.

    HTTP/2 and HTTP/3 send GOAWAY; HTTP/1.1 has no such frame and says
    ``Connection: close`` in the response instead.
    """
    sid = pair.request(GET)
    pair.pump()
    pair.server.submit_goaway()
    assert pair.server.has_expired() and not pair.server.is_available()
    events, _ = pair.pump()
    if pair.multiplexed:
        assert events == [GoawayReceived(sid, 0)]
        assert pair.client.has_expired() and not pair.client.is_available()
    else:
        assert events == []
    pair.server.submit_headers(sid, OK)
    pair.server.submit_data(sid, b"late but fine", end_stream=True)
    events, _ = pair.pump()
    response = OK if pair.multiplexed else pair.framed([*OK, (b"connection", b"close")])
    assert events == [HeadersReceived(sid, response), DataReceived(sid, b"late but fine", end_stream=True)]
    assert pair.client.has_expired() and not pair.client.is_available()
    with pytest.raises(LocalProtocolError):
        pair.client.get_available_stream_id()
    pair.server.submit_close()
    assert pair.events(pair.server) == [ConnectionTerminated(0)]
    # HTTP/2 repeats its GOAWAY and ends with the transport; HTTP/3 closes
    # with CONNECTION_CLOSE; HTTP/1.1 learns it from the transport only.
    at_close, at_eof = {
        "1": ([], [ConnectionTerminated(0)]),
        "2": ([GoawayReceived(sid, 0)], [ConnectionTerminated(0)]),
        "3": ([ConnectionTerminated(0)], []),
    }[pair.version]
    assert pair.pump() == (at_close, [])
    pair.end_transport()
    assert pair.pump() == (at_eof, [])


# -- termination --------------------------------------------------------------


def _terminations(events: list[Event]) -> list[ConnectionTerminated]:
    return [e for e in events if isinstance(e, ConnectionTerminated)]


@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize("error", [False, True], ids=["graceful", "error"])
def test_termination_is_reported_exactly_once(pair: Pair, side: str, error: bool) -> None:
    """submit_close, a second submit_close, the peer's answer and the transport's end make one ConnectionTerminated per side."""
    sid = pair.request(GET)
    pair.pump()
    closer = pair.client if side == "client" else pair.server
    code = closer.error_codes.protocol_error if error else 0
    closer.submit_close(code)
    closer.submit_close(code)
    seen: dict[HTTPProtocol, list[Event]] = {closer: pair.events(closer), pair.peer(closer): []}
    assert seen[closer] == [ConnectionTerminated(code)]
    assert closer.has_expired()
    with pytest.raises(LocalProtocolError):
        closer.submit_headers(sid if side == "server" else sid + 4, OK if side == "server" else GET)
    for _ in range(2):
        pair.exchange()
        pair.end_transport()
        for protocol, events in seen.items():
            events += pair.events(protocol)
    for protocol, events in seen.items():
        assert len(_terminations(events)) == 1, (protocol, events)
        assert protocol.has_expired()


# -- flow control -------------------------------------------------------------

WINDOW = 64 * 1024


def _fill(pair: Pair, sid: int) -> int:
    """Submit on *sid* while the send window allows (moving bytes between pieces); return the bytes submitted."""
    total = 0
    for _ in range(100):
        window = pair.client.get_send_window(sid)
        if not window:
            return total
        pair.client.submit_data(sid, b"x" * window)
        total += window
        pair.exchange()
    raise AssertionError("the sender never stalled")


@pytest.mark.parametrize("manual", [False, True], ids=["auto-ack", "manual-ack"])
def test_credit_follows_consumption(version: str, manual: bool) -> None:
    """An unread stream stops its sender at one window; taking the data (or acknowledging it) returns the credit.

    HTTP/1.1 has no window of its own: TCP's applies, and the setting is ignored.
    """
    pair = make_pair(version, receive_window=WINDOW)
    pair.server.manual_acknowledgement = manual
    sid = pair.request(POST, end_stream=False)
    pair.exchange()
    if not pair.multiplexed:
        assert not pair.server.manual_acknowledgement
        for _ in range(4):
            assert pair.client.get_send_window(sid) >= 2**31
            pair.client.submit_data(sid, b"x" * WINDOW)
            pair.exchange()
        assert len(body_of(pair.events(pair.server), sid)) == 4 * WINDOW
        return
    submitted = _fill(pair, sid)
    # HTTP/3 counts the request's HEADERS frame and the DATA frame headers against the stream window too.
    assert submitted == WINDOW if pair.version == "2" else WINDOW - 200 < submitted <= WINDOW
    with pytest.raises(FlowControlError):
        pair.client.submit_data(sid, b"y")
    pair.exchange()
    assert pair.client.get_send_window(sid) == 0, "data received but not taken returns no credit"
    taken = len(body_of(pair.events(pair.server), sid))
    assert taken == submitted
    pair.exchange()
    if manual:
        assert pair.client.get_send_window(sid) == 0, "taken but not acknowledged"
        pair.server.acknowledge_data(sid, taken)
        pair.exchange()
    assert pair.client.get_send_window(sid) > 0
    assert _fill(pair, sid) > 0


# -- misuse -------------------------------------------------------------------


def test_a_server_cannot_open_streams(pair: Pair) -> None:
    """A server has no stream ID to offer and cannot start a stream with headers."""
    assert not pair.server.is_available()
    with pytest.raises(LocalProtocolError):
        pair.server.get_available_stream_id()
    for stream_id in (0, 1, 2):
        with pytest.raises(LocalProtocolError):
            pair.server.submit_headers(stream_id, OK)
    assert pair.pump() == ([], [])


@pytest.mark.parametrize("side", ["client", "server"])
def test_submit_after_end_raises(pair: Pair, side: str) -> None:
    """Data, headers or an empty end after end_stream raise LocalProtocolError."""
    sid = pair.request(GET)
    if side == "server":
        pair.pump()
        pair.server.submit_headers(sid, OK, end_stream=True)
    sender = pair.client if side == "client" else pair.server
    with pytest.raises(LocalProtocolError):
        sender.submit_data(sid, b"late")
    with pytest.raises(LocalProtocolError):
        sender.submit_data(sid, b"", end_stream=True)
    with pytest.raises(LocalProtocolError):
        sender.submit_headers(sid, [(b"x-late", b"1")], end_stream=True)


@pytest.mark.parametrize(
    "version",
    [
        "1",
        "2",
        "3",
    ],
)
@pytest.mark.parametrize("side", ["client", "server"])
def test_an_ended_stream_has_no_send_window(pair: Pair, side: str) -> None:
    """get_send_window raises LocalProtocolError once our side of the stream has ended (HTTPProtocol's contract)."""
    sid = pair.request(GET)
    if side == "server":
        pair.pump()
        pair.server.submit_headers(sid, OK, end_stream=True)
    with pytest.raises(LocalProtocolError):
        (pair.client if side == "client" else pair.server).get_send_window(sid)


@pytest.mark.parametrize(
    "version",
    [
        "1",
        "2",
        "3",
    ],
)
def test_a_refused_submit_after_end_leaves_the_stream_usable(pair: Pair) -> None:
    """A client's data after end_stream is refused, and the response still arrives."""
    sid = pair.request(GET)
    with pytest.raises(LocalProtocolError):
        pair.client.submit_data(sid, b"late")
    pair.pump()
    pair.server.submit_headers(sid, NO_CONTENT, end_stream=True)
    assert pair.pump() == ([HeadersReceived(sid, NO_CONTENT, end_stream=True)], [])
