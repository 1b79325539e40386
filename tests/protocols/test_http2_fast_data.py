"""HTTP/2 DATA frames taken past h2's parser: the same events, windows and answers as h2's own path.

Each test feeds the same bytes, cut at the same places, to two protocols: one
takes plain DATA frames of open streams itself (the default), the other leaves
every frame to h2 (``fast_data = False``). Whatever the frames (padding,
END_STREAM, windows overrun, content-length exceeded, DATA inside a header
block, unknown streams), both must report the same and answer the same bytes.
"""

from __future__ import annotations

import itertools

import h2.events
import hpack
import hyperframe.frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import drain, h2_frames, xfer
from trio_hface.events import ConnectionTerminated, DataReceived, Event, HeadersReceived
from trio_hface.protocols.http2 import HTTP2ClientFactory, HTTP2ProtocolImpl, HTTP2ServerFactory

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
WINDOW = 1000  # small, so that the frames drawn below can overrun it
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def request_headers(encoder: hpack.Encoder, stream_id: int, extra: list[tuple[bytes, bytes]]) -> bytes:
    frame = hyperframe.frame.HeadersFrame(stream_id)
    fields = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")]
    frame.data = encoder.encode(fields + extra)
    frame.flags.add("END_HEADERS")
    return frame.serialize()


def data_frame(stream_id: int, payload: bytes, *, end_stream: bool = False, padding: int = 0) -> bytes:
    frame = hyperframe.frame.DataFrame(stream_id, payload)
    if end_stream:
        frame.flags.add("END_STREAM")
    if padding:
        frame.flags.add("PADDED")
        frame.pad_length = padding
    return frame.serialize()


def other_frame(kind: str, stream_id: int, encoder: hpack.Encoder) -> bytes:
    if kind == "window":
        return hyperframe.frame.WindowUpdateFrame(stream_id, window_increment=500).serialize()
    if kind == "ping":
        return hyperframe.frame.PingFrame(0, b"12345678").serialize()
    if kind == "reset":
        return hyperframe.frame.RstStreamFrame(stream_id, error_code=8).serialize()
    if kind == "open-block":  # a header block left open: DATA must not come before its CONTINUATION
        frame = hyperframe.frame.HeadersFrame(stream_id)
        frame.data = encoder.encode([(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")])
        return frame.serialize()
    if kind == "continuation":
        continuation = hyperframe.frame.ContinuationFrame(stream_id)
        continuation.data = encoder.encode([(b":authority", b"a")])
        continuation.flags.add("END_HEADERS")
        return continuation.serialize()
    raise AssertionError(kind)


FRAMES = st.one_of(
    st.tuples(
        st.just("data"),
        st.sampled_from([1, 3]),
        st.integers(0, 60),
        st.just(False),
        st.just(0),
    ),
    st.tuples(
        st.just("data"),
        # open, open with content-length (mostly), idle, even (each ends the connection)
        st.sampled_from([1, 1, 1, 3, 3, 3, 5, 2]),
        st.integers(0, 700),
        st.booleans(),
        st.sampled_from([0, 0, 0, 9]),
    ),
    st.tuples(
        st.sampled_from(["window", "ping", "reset", "open-block", "continuation"]),
        st.sampled_from([1, 3, 9]),
        st.just(0),
        st.just(False),
        st.just(0),
    ),
)


def client_bytes(frames: list[tuple[str, int, int, bool, int]]) -> bytes:
    encoder = hpack.Encoder()
    out = bytearray(PREFACE)
    out += hyperframe.frame.SettingsFrame(0).serialize()
    out += request_headers(encoder, 1, [])
    out += request_headers(encoder, 3, [(b"content-length", b"300")])
    for kind, stream_id, size, end_stream, padding in frames:
        if kind == "data":
            out += data_frame(
                stream_id, bytes([65 + size % 26]) * size, end_stream=end_stream, padding=padding
            )
        else:
            out += other_frame(kind, stream_id, encoder)
    return bytes(out)


def summary(events: list[Event]) -> list[tuple[object, ...]]:
    """What must be equal: each event's kind, stream, payload and end. Consecutive data of a
    stream counts as one piece: where a body is cut into events is not part of HTTP/2's
    meaning (frames taken past h2 in one read come as one event)."""
    result: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, DataReceived):
            last = result[-1] if result else None
            if last is not None and last[:2] == ("data", event.stream_id) and not last[3]:
                assert isinstance(last[2], bytes)
                result[-1] = ("data", event.stream_id, last[2] + event.data, event.end_stream)
            else:
                result.append(("data", event.stream_id, event.data, event.end_stream))
        elif isinstance(event, HeadersReceived):
            result.append(("headers", event.stream_id, tuple(event.headers), event.end_stream))
        elif isinstance(event, ConnectionTerminated):
            result.append(("terminated", event.error_code))
        else:
            result.append((repr(event),))
    return result


def fed(protocol: HTTP2ProtocolImpl, data: bytes, cuts: list[int]) -> tuple[list[tuple[object, ...]], bytes]:
    """Feed *data* cut at *cuts*, taking events after each piece; return them and the answer."""
    events = fed_events(protocol, data, cuts)
    return summary(events[0]), events[1]


def fed_events(protocol: HTTP2ProtocolImpl, data: bytes, cuts: list[int]) -> tuple[list[Event], bytes]:
    """As :func:`fed`, with the events as they came."""
    events: list[Event] = []
    answer = bytearray(protocol.bytes_to_send())
    start = 0
    for end in [*sorted(set(cuts)), len(data)]:
        if end > start:
            protocol.bytes_received(data[start:end])
            events += drain(protocol)
            answer += protocol.bytes_to_send()
            start = end
    return events, bytes(answer)


def server_pair() -> tuple[HTTP2ProtocolImpl, HTTP2ProtocolImpl]:
    factory = HTTP2ServerFactory(stream_window=WINDOW, connection_window=3 * WINDOW)
    fast, slow = factory(), factory()
    assert isinstance(fast, HTTP2ProtocolImpl) and isinstance(slow, HTTP2ProtocolImpl)
    slow._h2.fast_data = False
    return fast, slow


@FUZZ
@given(
    frames=st.lists(FRAMES, max_size=12),
    cuts=st.lists(st.integers(0, 12000), max_size=8),
)
def test_a_server_reports_and_answers_as_h2_does(
    frames: list[tuple[str, int, int, bool, int]], cuts: list[int]
) -> None:
    data = client_bytes(frames)
    fast, slow = server_pair()
    (fast_events, fast_answer), (slow_events, slow_answer) = fed(fast, data, cuts), fed(slow, data, cuts)
    assert fast_events == slow_events
    assert answered(fast, fast_answer) == answered(slow, slow_answer)


def answered(protocol: HTTP2ProtocolImpl, answer: bytes) -> tuple[list[bytes], dict[int, int]]:
    """What must be equal in the answers: every frame but WINDOW_UPDATE, and the credit of the
    connection and of each stream still known, granted or due (when a WINDOW_UPDATE goes out
    depends on how the data was cut into events: h2 sends one when half a window is due)."""
    frames = [frame.serialize() for frame in h2_frames(answer)]
    others = [frame for frame in frames if frame[3] != 0x8]
    connection = protocol._h2._inbound_flow_control_window_manager
    credit = {0: connection.current_window_size + connection._bytes_processed}
    for stream_id, stream in protocol._h2.streams.items():
        window = stream._inbound_window_manager
        credit[stream_id] = window.current_window_size + window._bytes_processed
    return others, credit


def test_the_fast_path_takes_the_plain_frames() -> None:
    """Plain DATA frames of an open stream do not reach h2's frame parser (so the test above
    compares two different paths), and frames split across reads are joined."""
    fast, slow = server_pair()
    data = client_bytes([("data", 1, 100, False, 0)] * 3)
    parsed: list[object] = []
    receive_frame = fast._h2._receive_frame

    def recording(frame: hyperframe.frame.Frame) -> list[h2.events.Event]:
        parsed.append(frame)
        return receive_frame(frame)

    fast._h2._receive_frame = recording  # type: ignore[method-assign]
    events, _ = fed_events(fast, data, [len(data) - 100])
    # The two frames whole in the first read come as one event, the third on its own.
    assert [(e.stream_id, e.data) for e in events if isinstance(e, DataReceived)] == [
        (1, b"W" * 200),
        (1, b"W" * 100),
    ]
    assert not any(isinstance(frame, hyperframe.frame.DataFrame) for frame in parsed)
    assert fed(slow, data, [len(data) - 100])[0] == summary(events)


def test_a_window_overrun_is_a_flow_control_error_on_the_fast_path() -> None:
    fast, slow = server_pair()
    data = client_bytes([("data", 1, 600, False, 0), ("data", 1, 600, False, 0)])
    events, answer = fed(fast, data, [])
    assert (events, answer) == fed(slow, data, [])
    assert events[-1] == ("terminated", 3)  # FLOW_CONTROL_ERROR


def test_a_client_download_is_the_same_on_both_paths() -> None:
    """The client side (CLIENT_OPEN, a half-closed stream): a body of many frames, then its end."""
    results = []
    for fast_data in (True, False):
        window = 8 * 1024 * 1024
        client = HTTP2ClientFactory(stream_window=window, connection_window=window)()
        server = HTTP2ServerFactory()()
        assert isinstance(client, HTTP2ProtocolImpl)
        client._h2.fast_data = fast_data
        xfer(client, server)
        xfer(server, client)
        xfer(client, server)
        sid = client.get_available_stream_id()
        client.submit_headers(
            sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")], True
        )
        xfer(client, server)
        server.submit_headers(sid, [(b":status", b"200"), (b"content-length", b"200000")])
        server.submit_data(sid, bytes(range(256)) * 781 + b"x" * 64, end_stream=True)
        wire = server.bytes_to_send()
        results.append(fed(client, wire, list(range(0, len(wire), 7000))))
    assert results[0] == results[1]
    body = b"".join(e[2] for e in results[0][0] if e[0] == "data")  # type: ignore[misc]
    assert body == bytes(range(256)) * 781 + b"x" * 64
    assert results[0][0][-1][-1] is True  # the last event ends the stream


def test_more_than_the_content_length_resets_the_stream_on_the_fast_path() -> None:
    fast, slow = server_pair()
    data = client_bytes([("data", 3, 200, False, 0), ("data", 3, 200, False, 0), ("data", 1, 10, False, 0)])
    events, answer = fed(fast, data, [])
    assert (events, answer) == fed(slow, data, [])
    assert ("data", 3, b"S" * 200, False) in events
    assert ("data", 1, b"K" * 10, False) in events  # the connection goes on
    reset = [f for f in h2_frames(answer) if isinstance(f, hyperframe.frame.RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in reset] == [(3, 1)]  # PROTOCOL_ERROR


def test_frames_of_two_streams_in_one_read_are_events_of_each() -> None:
    fast, slow = server_pair()
    frames = [("data", 1, 10, False, 0), ("data", 3, 11, False, 0), ("data", 3, 12, False, 0)]
    data = client_bytes([*frames, ("data", 1, 13, True, 0)])
    events, answer = fed_events(fast, data, [])
    assert [(e.stream_id, e.data, e.end_stream) for e in events if isinstance(e, DataReceived)] == [
        (1, b"K" * 10, False),
        (3, b"L" * 11 + b"M" * 12, False),
        (1, b"N" * 13, True),
    ]
    assert (summary(events), answer) == fed(slow, data, [])


@FUZZ
@given(
    frames=st.lists(st.tuples(st.sampled_from([0x0, 0x1, 0x4, 0x8]), st.integers(0, 32)), max_size=30),
    long_at=st.none() | st.integers(0, 30),
    cuts=st.lists(st.integers(0, 700), max_size=60),
    preface=st.booleans(),
)
def test_frame_scanner_refuses_the_first_long_frame_wherever_the_reads_are_cut(
    frames: list[tuple[int, int]], long_at: int | None, cuts: list[int], preface: bool
) -> None:
    """The scanner that checks each frame header as soon as it arrives finds the first frame
    over the limit (or a first frame that is not SETTINGS) at the same offset however the
    bytes are cut into reads, including in its whole-header fast loop, and never later: a
    read that lost the scanner its place would make it misread a payload as a header."""
    from trio_hface.protocols.http2._h2 import FrameScanner

    limit = 32
    if long_at is not None:
        frames.insert(min(long_at, len(frames)), (0x0, limit + 1))
    stream = bytearray(PREFACE if preface else b"")
    expected: int | None = None
    for index, (kind, length) in enumerate(frames):
        frame_type = 0x4 if index == 0 and kind != 0x8 else kind  # mostly SETTINGS first; 0x8: not
        if expected is None and ((index == 0 and frame_type != 0x4) or length > limit):
            expected = len(stream)
        stream += length.to_bytes(3, "big") + bytes([frame_type, 0]) + (1).to_bytes(4, "big")
        stream += b"x" * length
    data = bytes(stream)
    bounds = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    scanner = FrameScanner(server=preface)
    found: int | None = None
    for start, end in itertools.pairwise(bounds):
        refused = scanner.scan(data[start:end], limit)
        if refused is not None:
            found = start + refused.offset
            break
    if expected is None:
        assert found is None
    else:
        # Refused once its header is whole, at the header's first byte (or, for a header
        # split over reads, at the start of the read in which it completed).
        read_start = max(b for b in bounds if b < expected + 9)
        assert found == max(expected, read_start)


def test_data_after_our_own_reset_is_not_taken_past_h2() -> None:
    """What we send between two reads changes a stream's state: a stream whose DATA the fast
    path took in one read, and that we then reset, is closed for the DATA of the next read,
    on the fast path as on h2's own."""
    data = client_bytes([("data", 1, 100, False, 0), ("data", 1, 100, False, 0)])
    cut = len(data) - 109  # the second DATA frame (9 + 100 bytes) comes in a read of its own
    results = []
    for protocol in server_pair():
        events = fed_events(protocol, data[:cut], [])[0]
        protocol.submit_stream_reset(1, 8)  # CANCEL
        protocol.bytes_to_send()
        later = fed_events(protocol, data[cut:], [])[0]
        results.append((summary(events), summary(later)))
    assert results[0] == results[1]
    assert not any(event[0] == "data" for event in results[0][1])  # nothing of stream 1 after its reset
