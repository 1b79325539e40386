"""Sans-IO tests of HTTP/3 against hostile peers: oversized field sections and QPACK bombs."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import pylsqpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# The link's fixtures (certs, link) come from tests/protocols/conftest.py.
from tests.h3link import (
    GET,
    OK,
    Certs,
    Link,
    drain,
    make_link,
    request,
)
from trio_hface.events import DataReceived, HeadersReceived, StreamResetSent
from trio_hface.protocols.http3 import HTTP3ServerFactory
from trio_hface.protocols.http3._qpack import (
    STATIC_ENTRY_MAX,
    STATIC_NAME_MAX,
    EncoderScanner,
    field_section_bound,
    field_section_bound_cap,
    field_section_size,
)
from trio_hface.protocols.http3._streams import _Stream

#: Every test runs on each QUIC stack (tests/h3link.py).
pytestmark = pytest.mark.usefixtures("quic_stack")

H3_EXCESSIVE_LOAD = 0x107
SETTINGS_MAX_FIELD_SECTION_SIZE = 0x6
LIMIT = 64 * 1024


def prefixed(value: int, bits: int, flags: int = 0) -> bytes:
    """Encode a prefixed integer (RFC 7541 section 5.1)."""
    mask = (1 << bits) - 1
    if value < mask:
        return bytes([flags | value])
    out = [flags | mask]
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint(value: int) -> bytes:
    """A QUIC variable-length integer (RFC 9000 section 16), 4 bytes."""
    return (0x80000000 | value).to_bytes(4, "big")


def raw_stream(link: Link) -> int:
    """Open a request stream on the client whose bytes the test writes itself."""
    stream_id = link.client.get_available_stream_id()
    link.client._streams[stream_id] = _Stream(stream_id)
    return stream_id


def big_headers(total: int, *, value: bytes = b"v") -> list[tuple[bytes, bytes]]:
    """GET with extra fields whose RFC 9114 size adds up to more than *total*."""
    fields: list[tuple[bytes, bytes]] = []
    while field_section_size(fields) <= total:
        fields.append((f"x-filler-{len(fields)}".encode(), value * 4000))
    return GET + fields


def test_server_advertises_max_field_section_size(certs: Certs) -> None:
    """The server's SETTINGS carry SETTINGS_MAX_FIELD_SECTION_SIZE, 64 KiB unless configured."""
    link = make_link(certs)
    assert link.client._h3 is not None and link.client._h3.received_settings is not None
    assert link.client._h3.received_settings[SETTINGS_MAX_FIELD_SECTION_SIZE] == LIMIT
    link = make_link(certs, server_factory=HTTP3ServerFactory(max_field_section_size=1000))
    assert link.client._h3 is not None and link.client._h3.received_settings is not None
    assert link.client._h3.received_settings[SETTINGS_MAX_FIELD_SECTION_SIZE] == 1000


def test_factory_checks_max_field_section_size() -> None:
    """A field section limit below one byte is refused."""
    with pytest.raises(ValueError, match="max_field_section_size"):
        HTTP3ServerFactory(max_field_section_size=0)


@pytest.mark.parametrize("value", [b"\x01", b"a"], ids=["plain", "huffman"])
def test_request_over_the_field_section_limit_gets_431(certs: Certs, value: bytes) -> None:
    """A request whose decoded fields exceed 64 KiB is answered 431; the application never sees it.

    Values of b"a" are Huffman coded in 5 bits, so their HEADERS frame is
    shorter than the limit and only the decoded size tells; b"\\x01" is sent
    plain and its frame is refused from its length.
    """
    link = make_link(certs)
    bad = request(link, big_headers(LIMIT, value=value))
    link.pump()
    assert drain(link.server) == []
    assert drain(link.client) == [
        HeadersReceived(bad, [(b":status", b"431"), (b"content-length", b"0")], True)
    ]
    good = request(link)
    link.pump()
    assert drain(link.server) == [HeadersReceived(good, GET, end_stream=True)]
    assert not link.server._streams.get(bad)


def test_request_within_the_limit_passes(certs: Certs) -> None:
    """A request just under the limit reaches the application whole."""
    link = make_link(certs)
    headers = big_headers(LIMIT - 5000)
    assert field_section_size(headers) <= LIMIT
    stream_id = request(link, headers)
    link.pump()
    assert drain(link.server) == [HeadersReceived(stream_id, headers, end_stream=True)]


def test_huge_headers_frame_is_refused_before_it_completes(certs: Certs) -> None:
    """A HEADERS frame announcing more than the limit gets 431 at once, without being buffered."""
    link = make_link(certs)
    quic = link.client._quic
    assert quic is not None
    bad = raw_stream(link)
    quic.send_stream_data(bad, b"\x01" + varint(LIMIT + 1) + b"\x00" * 1000)
    link.pump()
    assert drain(link.server) == []
    events = drain(link.client)
    assert HeadersReceived(bad, [(b":status", b"431"), (b"content-length", b"0")], True) in events
    h3 = link.server._h3
    assert h3 is not None and h3.buffered(bad) == 0


def _bomb(entry: int, references: int) -> tuple[bytes, bytes]:
    """Encoder-stream bytes inserting one entry of *entry* bytes, and a header block referring to it."""
    value = b"a" * (entry - 1 - 32)
    instructions = prefixed(4096, 5, 0x20)  # Set Dynamic Table Capacity
    instructions += prefixed(1, 5, 0x40) + b"x" + prefixed(len(value), 7) + value  # Insert With Literal Name
    # Required Insert Count 1 (encoded 2, RFC 9204 section 4.5.1.1), Base 1,
    # then indexed field lines for relative index 0.
    block = b"\x02\x00" + b"\x80" * references
    return instructions, block


@pytest.mark.parametrize("order", ["insert-first", "block-first"])
def test_qpack_bomb_is_refused_without_decoding(certs: Certs, order: str) -> None:
    """A small header block referring 1000 times to a 4 KiB table entry (4 MB decoded) is
    answered 431 without being decoded, also when it waits for the entry."""
    link = make_link(certs)
    h3 = link.client._h3
    quic = link.client._quic
    assert h3 is not None and quic is not None and h3._local_encoder_stream_id is not None
    instructions, block = _bomb(4033, 1000)
    bad = raw_stream(link)
    frame = b"\x01" + varint(len(block)) + block
    assert len(frame) < LIMIT
    tracemalloc.start()
    try:
        if order == "insert-first":
            quic.send_stream_data(h3._local_encoder_stream_id, instructions)
            link.pump()
            quic.send_stream_data(bad, frame, end_stream=True)
        else:
            quic.send_stream_data(bad, frame, end_stream=True)
            link.pump()
            quic.send_stream_data(h3._local_encoder_stream_id, instructions)
        link.pump()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert drain(link.server) == []
    assert HeadersReceived(bad, [(b":status", b"431"), (b"content-length", b"0")], True) in drain(link.client)
    # Decoding would have built 4 MB of header values.
    assert peak < 1_000_000, f"{peak} bytes allocated"
    assert link.server._quic is not None and link.server._quic._close_event is None


def test_oversized_trailers_reset_the_stream(certs: Certs) -> None:
    """Trailers over the limit, after the application saw the request, reset it with H3_EXCESSIVE_LOAD."""
    link = make_link(certs)
    stream_id = request(link, end_stream=False)
    link.pump()
    assert drain(link.server) == [HeadersReceived(stream_id, GET, end_stream=False)]
    link.client.submit_data(stream_id, b"body")
    link.client.submit_headers(stream_id, big_headers(LIMIT)[len(GET) :], end_stream=True)
    link.pump()
    assert drain(link.server) == [
        DataReceived(stream_id, b"body", end_stream=False),
        StreamResetSent(stream_id, H3_EXCESSIVE_LOAD),
    ]


def test_oversized_response_is_reset_on_the_client(certs: Certs) -> None:
    """A response whose fields exceed the client's limit is reset with H3_EXCESSIVE_LOAD."""
    link = make_link(certs)
    assert link.server._h3 is not None and link.server._h3.received_settings is not None
    assert link.server._h3.received_settings[SETTINGS_MAX_FIELD_SECTION_SIZE] == LIMIT
    stream_id = request(link)
    link.pump()
    drain(link.server)
    link.server.submit_headers(stream_id, OK + big_headers(LIMIT)[len(GET) :], end_stream=True)
    link.pump()
    assert drain(link.client) == [StreamResetSent(stream_id, H3_EXCESSIVE_LOAD)]
    assert link.client.is_available()


def test_static_table_bounds_hold() -> None:
    """STATIC_ENTRY_MAX and STATIC_NAME_MAX bound every entry of the QPACK static table."""
    for index in range(99):
        decoder = pylsqpack.Decoder(4096, 16)
        _, headers = decoder.feed_header(0, b"\x00\x00" + prefixed(index, 6, 0xC0))
        ((name, _),) = headers
        assert len(name) <= STATIC_NAME_MAX
        assert field_section_size(headers) <= STATIC_ENTRY_MAX


_field = st.tuples(
    st.sampled_from([b"content-type", b"cookie", b"x-custom", b":path", b"accept", b"user-agent"])
    | st.binary(min_size=1, max_size=40).map(lambda b: b.hex().encode()),
    st.sampled_from([b"", b"text/plain", b"*/*", b"gzip"]) | st.binary(max_size=300),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_field, min_size=1, max_size=30), min_size=1, max_size=6))
def test_field_section_bound_is_never_below_the_decoded_size(
    sections: list[list[tuple[bytes, bytes]]],
) -> None:
    """For blocks and encoder streams from pylsqpack (with a dynamic table), the bound holds."""
    encoder = pylsqpack.Encoder()
    decoder = pylsqpack.Decoder(4096, 16)
    scanner = EncoderScanner(4096)
    setup = encoder.apply_settings(max_table_capacity=4096, blocked_streams=16)
    scanner.feed(setup)
    decoder.feed_encoder(setup)
    for n, fields in enumerate(sections):
        stream_id = 4 * n
        instructions, block = encoder.encode(stream_id, fields)
        scanner.feed(instructions[: len(instructions) // 2])
        scanner.feed(instructions[len(instructions) // 2 :])
        decoder.feed_encoder(instructions)
        ack, headers = decoder.feed_header(stream_id, block)
        encoder.feed_decoder(ack)
        bound = field_section_bound(block, dynamic_entry_max=scanner.largest)
        assert bound is not None and bound >= field_section_size(headers)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=4096))
def test_field_section_bound_cap_is_never_below_the_bound(block: bytes, largest: int) -> None:
    """No block, valid or not, has a bound above the cap of its length (which skips the walk)."""
    bound = field_section_bound(block, dynamic_entry_max=largest)
    assert bound is None or bound <= field_section_bound_cap(len(block), dynamic_entry_max=largest)


@settings(max_examples=60, deadline=None)
@given(st.lists(_field, min_size=1, max_size=30))
def test_field_section_bound_cap_holds_for_pylsqpack_blocks(fields: list[tuple[bytes, bytes]]) -> None:
    """Blocks that pylsqpack encodes, with and without a dynamic table, stay under the cap."""
    encoder = pylsqpack.Encoder()
    encoder.apply_settings(max_table_capacity=4096, blocked_streams=16)
    for largest in (0, 4096):
        _, block = encoder.encode(0, fields)
        bound = field_section_bound(block, dynamic_entry_max=largest)
        assert bound is not None and bound <= field_section_bound_cap(len(block), dynamic_entry_max=largest)


def test_request_blocked_on_qpack_with_its_fin_is_delivered(certs: Certs) -> None:
    """A complete request whose header block waits for the encoder stream is delivered once unblocked."""
    link = make_link(certs)
    h3 = link.client._h3
    quic = link.client._quic
    assert h3 is not None and quic is not None and h3._local_encoder_stream_id is not None
    instructions = prefixed(4096, 5, 0x20) + prefixed(3, 5, 0x40) + b"x-a" + prefixed(1, 7) + b"b"
    # :method GET, :scheme https, :path / (static 17, 23, 1), :authority
    # (static name 0) with a literal value, then the dynamic entry.
    block = b"\x02\x00\xd1\xd7\xc1\x50\x09localhost\x80"
    stream_id = raw_stream(link)
    quic.send_stream_data(stream_id, b"\x01" + varint(len(block)) + block, end_stream=True)
    link.pump()
    assert drain(link.server) == []
    quic.send_stream_data(h3._local_encoder_stream_id, instructions)
    link.pump()
    headers = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"localhost")]
    # (The client's own encoder then closes the connection with
    # QPACK_DECODER_STREAM_ERROR: it never encoded the block acknowledged.)
    assert drain(link.server)[0] == HeadersReceived(stream_id, [*headers, (b"x-a", b"b")], end_stream=True)


_field_bytes = st.binary(max_size=12) | st.sampled_from(
    [
        b"",
        b":path",
        b"a:b",
        b"Host",
        b"x\x7f",
        b" v",
        b"v ",
        b"\tv",
        b"v\t",
        b"a\rb",
        b"a\nb",
        b"a\x00",
        b"ok",
    ]
)


@settings(max_examples=500, deadline=None)
@given(_field_bytes, _field_bytes)
def test_field_checks_by_pattern_agree_with_aioquics_byte_loops(name: bytes, value: bytes) -> None:
    """The patterns that replace aioquic's per-byte field checks refuse exactly what those refuse."""
    from aioquic.h3.connection import MessageError

    from trio_hface.protocols.http3 import _h3

    def refused(check: Callable[..., None], *args: bytes) -> bool:
        try:
            check(*args)
        except MessageError:
            return True
        return False

    assert refused(_h3.validate_header_name, name) == refused(_h3._check_name_by_byte, name)
    assert refused(_h3.validate_header_value, name, value) == refused(_h3._check_value_by_byte, name, value)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(min_value=-20, max_value=2**63)
    | st.sampled_from([0, 1, 2, 3, 64, 65, 66, 67, 16385, 16386, 16387, 16388, 16389, 2**30 + 4, 2**30 + 5])
)
def test_data_payload_room_is_the_largest_frame_that_fits(credit: int) -> None:
    """The DATA payload room is the largest payload whose frame (type, varint length, payload) fits."""
    from trio_hface.protocols.http3._protocol import VARINT_LIMITS, _data_payload_room

    def frame_size(payload: int) -> int:
        length_size = next(size for size, largest in VARINT_LIMITS if payload <= largest)
        return 1 + length_size + payload

    room = _data_payload_room(credit)
    assert room >= 0
    assert room == 0 or (room <= VARINT_LIMITS[-1][1] and frame_size(room) <= credit)
    if room < VARINT_LIMITS[-1][1]:
        assert frame_size(room + 1) > credit
