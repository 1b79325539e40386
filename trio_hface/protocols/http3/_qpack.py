"""Sizes of QPACK field sections, known before they are decoded.

Theory of operation
-------------------

RFC 9114 section 4.2.2 measures a field section as it is *decoded*: the sum,
over its fields, of the name length, the value length and 32. pylsqpack
decodes a header block whole, and a small block can decode to a great deal:
every reference to the dynamic table is one or two bytes on the wire and may
stand for an entry as large as the table (4 KiB), so 16 KiB of references
would decode to 64 MiB. To refuse such a block without decoding it,
:func:`field_section_bound` walks its field lines (RFC 9204 section 4.5)
without decoding anything and adds up, for each line, the most it can decode
to:

* a static-table entry: at most :data:`STATIC_ENTRY_MAX`;
* a dynamic-table entry: at most the largest entry the peer may have
  inserted so far, which :class:`EncoderScanner` follows on the peer's
  encoder stream (RFC 9204 section 4.3) from the lengths of the inserted
  strings, again without decoding them;
* a string literal of *n* bytes: *n* bytes, or ``8 * n // 5`` when Huffman
  coded (no Huffman code is shorter than 5 bits, RFC 7541 appendix B);
* 32 per field.

A block whose bound is within the limit is decoded and measured exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "EncoderScanner",
    "FIELD_OVERHEAD",
    "STATIC_ENTRY_MAX",
    "STATIC_NAME_MAX",
    "field_section_bound",
    "field_section_bound_cap",
    "field_section_size",
]

#: RFC 9114 section 4.2.2 (and RFC 9204 section 3.2.1): each field counts 32
#: bytes besides its name and value.
FIELD_OVERHEAD = 32
#: The largest entry of the QPACK static table (RFC 9204 appendix A), size as
#: in RFC 9204 section 3.2.1: content-security-policy, 23 + 53 + 32 bytes.
STATIC_ENTRY_MAX = 108
#: The longest name in the QPACK static table: access-control-allow-credentials.
STATIC_NAME_MAX = 32
# RFC 7541 appendix B: the shortest Huffman code is 5 bits.
HUFFMAN_SHORTEST_CODE = 5
# RFC 9204 section 4.1.1 (RFC 7541 section 5.1): a prefixed integer larger
# than 2**62 is a decoding error; 10 continuation bytes go beyond it.
MAX_INTEGER_BYTES = 10


class _Truncated(Exception):
    """The input ends inside a prefixed integer."""


class _Malformed(Exception):
    """The input is not valid QPACK."""


def field_section_size(headers: Iterable[tuple[bytes, bytes]]) -> int:
    """Return the size of decoded *headers* as RFC 9114 section 4.2.2 counts it."""
    return sum(len(name) + len(value) + FIELD_OVERHEAD for name, value in headers)


def _integer(data: bytes, offset: int, prefix_bits: int) -> tuple[int, int]:
    """Decode a prefixed integer (RFC 7541 section 5.1); return it and the next offset."""
    if offset >= len(data):
        raise _Truncated
    mask = (1 << prefix_bits) - 1
    value = data[offset] & mask
    offset += 1
    if value < mask:
        return value, offset
    shift = 0
    for _ in range(MAX_INTEGER_BYTES):
        if offset >= len(data):
            raise _Truncated
        byte = data[offset]
        offset += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, offset
    raise _Malformed


def _decoded_length(length: int, huffman: bool) -> int:
    """The most a string literal of *length* bytes decodes to."""
    return length * 8 // HUFFMAN_SHORTEST_CODE if huffman else length


def field_section_bound(block: bytes, *, dynamic_entry_max: int) -> int | None:
    """Return the most that a QPACK header block can decode to, without decoding it.

    :param block: an encoded field section (the payload of a HEADERS frame)
    :param dynamic_entry_max: the size of the largest dynamic-table entry the
        block may refer to
    :returns: an upper bound of :func:`field_section_size` of the decoded
        block, or ``None`` if *block* is not a valid field section (the
        decoder will say why)
    """
    try:
        # RFC 9204 section 4.5.1: Required Insert Count, then the Base.
        _, offset = _integer(block, 0, 8)
        _, offset = _integer(block, offset, 7)
        total = 0
        while offset < len(block):
            first = block[offset]
            if first & 0x80:  # 1T: indexed field line
                static = bool(first & 0x40)
                _, offset = _integer(block, offset, 6)
                total += STATIC_ENTRY_MAX if static else dynamic_entry_max
                continue
            if first & 0x40:  # 01NT: literal with name reference
                static = bool(first & 0x10)
                _, offset = _integer(block, offset, 4)
                name = STATIC_NAME_MAX if static else dynamic_entry_max
            elif first & 0x20:  # 001NH: literal with literal name
                huffman = bool(first & 0x08)
                length, offset = _integer(block, offset, 3)
                offset += length
                name = _decoded_length(length, huffman)
            elif first & 0x10:  # 0001: indexed field line with post-base index
                _, offset = _integer(block, offset, 4)
                total += dynamic_entry_max
                continue
            else:  # 0000N: literal with post-base name reference
                _, offset = _integer(block, offset, 3)
                name = dynamic_entry_max
            if offset >= len(block):
                return None
            huffman = bool(block[offset] & 0x80)
            length, offset = _integer(block, offset, 7)
            offset += length
            total += name + _decoded_length(length, huffman) + FIELD_OVERHEAD
        if offset > len(block):
            return None
        return total
    except (_Truncated, _Malformed):
        return None


def field_section_bound_cap(length: int, *, dynamic_entry_max: int) -> int:
    """Return what :func:`field_section_bound` can at most say of any block of *length* bytes.

    Checked in O(1) before the block is walked: a block that cannot reach a limit this way
    needs no walk. Each field line takes at least one byte per entry it counts: an indexed
    line (one byte or more) counts one entry, at most ``max(STATIC_ENTRY_MAX,
    dynamic_entry_max)``; a literal line takes at least two bytes (the name's index or
    length, the value's length) besides its strings and counts a name of at most
    *dynamic_entry_max* (or ``STATIC_NAME_MAX``), 32 and ``8 / 5`` per string byte. So no
    line counts more than ``max(STATIC_ENTRY_MAX, dynamic_entry_max)`` per byte it takes.
    """
    return length * max(STATIC_ENTRY_MAX, dynamic_entry_max)


class EncoderScanner:
    """Follows the peer's QPACK encoder stream to bound the size of its dynamic-table entries.

    :param max_table_capacity: the table capacity we allowed (no entry is larger)

    Strings are skipped as they arrive, never kept: at most one prefixed
    integer is buffered.
    """

    def __init__(self, max_table_capacity: int) -> None:
        self._capacity = max_table_capacity
        #: No entry the peer inserted is larger than this (RFC 9204 section 3.2.1 size).
        self.largest = 0
        self._buffer = b""
        self._skip = 0
        # The instruction being parsed: the strings still to come (their
        # integer's prefix length and Huffman flag bit), and the entry size so far.
        self._strings: list[tuple[int, int]] = []
        self._size = 0
        self._broken = False

    def feed(self, data: bytes) -> None:
        """Scan more bytes of the encoder stream."""
        if self._broken:
            return
        while data:
            if self._skip:
                step = min(self._skip, len(data))
                self._skip -= step
                data = data[step:]
                if not self._skip and not self._strings:
                    self._entry_done()
                continue
            self._buffer += data
            data = b""
            try:
                consumed = self._parse()
            except _Truncated:
                if len(self._buffer) > MAX_INTEGER_BYTES + 1:
                    self._give_up()
                return
            except _Malformed:
                self._give_up()
                return
            data, self._buffer = self._buffer[consumed:], b""

    def _parse(self) -> int:
        """Parse the next integer of the instruction in the buffer; return the bytes used."""
        buffer = self._buffer
        if self._strings:
            prefix_bits, huffman_bit = self._strings.pop(0)
            huffman = bool(buffer[0] & huffman_bit)
            try:
                length, offset = _integer(buffer, 0, prefix_bits)
            except _Truncated:
                self._strings.insert(0, (prefix_bits, huffman_bit))
                raise
            self._size += _decoded_length(length, huffman)
            self._skip = length
            if not length and not self._strings:
                self._entry_done()
            return offset
        first = buffer[0]
        if first & 0x80:  # 1T: insert with name reference
            _, offset = _integer(buffer, 0, 6)
            self._size = FIELD_OVERHEAD + (STATIC_NAME_MAX if first & 0x40 else self.largest)
            self._strings = [(7, 0x80)]
        elif first & 0x40:  # 01H: insert with literal name
            self._size = FIELD_OVERHEAD
            self._strings = [(5, 0x20), (7, 0x80)]
            return 0  # the name's length is read as the first string
        else:  # 001: set dynamic table capacity; 000: duplicate
            _, offset = _integer(buffer, 0, 5)
        return offset

    def _entry_done(self) -> None:
        self.largest = min(self._capacity, max(self.largest, self._size))
        self._size = 0

    def _give_up(self) -> None:
        # Not valid QPACK: the decoder fails the connection; meanwhile assume the worst.
        self._broken = True
        self.largest = self._capacity
