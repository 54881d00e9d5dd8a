"""The protobuf wire format, read without a schema (and the little of it written by hand).

A message is a run of fields, each a key (field number and wire type, as a
varint) followed by a varint, 8 or 4 little-endian bytes, or a varint length
and that many bytes. Kubernetes' proto2 messages use no groups, so wire types
3 and 4 are refused as malformed input.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message (or not the message expected).

    `path` names the JSON fields leading to the problem, outermost first, so
    that the client is told where in its object the bad bytes are.
    """

    def __init__(self, problem: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path

    def within(self, name: str) -> WireError:
        return WireError(self.problem, (name, *self.path))

    def __str__(self) -> str:
        return f"{'.'.join(self.path)}: {self.problem}" if self.path else self.problem


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at `pos`, and the position after it."""
    value = shift = 0
    for index in range(pos, min(pos + _MAX_VARINT_BYTES, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    if len(data) - pos < _MAX_VARINT_BYTES:
        raise WireError("the message is truncated inside a varint")
    raise WireError("a varint is longer than 10 bytes")


def varint(value: int) -> bytes:
    """`value` (unsigned) as a varint: seven bits a byte, low bits first."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field `number` holding `payload` (a string, bytes or a nested message)."""
    return varint(number << 3 | LENGTH) + varint(len(payload)) + payload


def varints(data: bytes) -> Iterator[int]:
    """The varints packed one after another in `data` (a packed repeated field)."""
    pos = 0
    while pos < len(data):
        value, pos = read_varint(data, pos)
        yield value


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of a message, in wire order.

    The value is an int for varint and fixed fields and the bytes of a
    length-delimited field (a string, bytes, a nested message or a packed list).
    """
    pos, end = 0, len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("a field has number 0")
        if wire_type == VARINT:
            value, pos = read_varint(data, pos)
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if pos + size > end:
                raise WireError(f"the message is truncated inside field {number}")
            value = int.from_bytes(data[pos : pos + size], "little")
            pos += size
        elif wire_type == LENGTH:
            size, pos = read_varint(data, pos)
            if pos + size > end:
                raise WireError(f"the message is truncated inside field {number}")
            value = data[pos : pos + size]
            pos += size
        else:
            raise WireError(f"field {number} has unsupported wire type {wire_type}")
        yield number, wire_type, value
