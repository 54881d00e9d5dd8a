"""SPDY/3.1 framing and a client connection, as Kubernetes' streaming uses it.

Kubernetes multiplexes exec/attach/port-forward streams over SPDY (the
moby/spdystream implementation): each stream opens with a SYN_STREAM whose
headers say what it carries (`streamtype: stdout`, `port: 80`…), data flows
in DATA frames, FIN half-closes a stream, GOAWAY ends the connection.
spdystream implements no flow control, so WINDOW_UPDATE and SETTINGS are
read and ignored, and none are sent.

Header blocks are zlib-compressed with SPDY/3's preset dictionary (section
2.6.10.1 of the draft), one compression context per direction for the
whole connection, flushed (not finished) after each block.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01

# RST_STREAM status codes
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5

MAX_FRAME_BYTES = (1 << 24) - 1

_DICTIONARY_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control connection "
    "content-base content-encoding content-language content-length content-location "
    "content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status"
).split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]

_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct"
    " Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
    "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)

# The dictionary is each word with a 4-byte big-endian length before it, then the tail.
DICTIONARY = (
    b"".join(struct.pack("!I", len(w)) + w.encode() for w in _DICTIONARY_WORDS)
    + _DICTIONARY_TAIL.encode()
)

Headers = dict[str, list[str]]


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3."""


# ---------------------------------------------------------------- frames


@dataclass(slots=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(slots=True)
class SynStream:
    stream_id: int
    headers: Headers
    fin: bool = False
    associated_to: int = 0
    priority: int = 0


@dataclass(slots=True)
class SynReply:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(slots=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(slots=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(slots=True)
class Settings:
    entries: list[tuple[int, int, int]] = field(default_factory=list)  # (flags, id, value)


@dataclass(slots=True)
class Ping:
    ping_id: int


@dataclass(slots=True)
class GoAway:
    last_stream_id: int
    status: int = 0


@dataclass(slots=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = (
    Data | SynStream | SynReply | HeadersFrame | RstStream | Settings | Ping | GoAway | WindowUpdate
)


# -------------------------------------------------------- header blocks


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed name/value block; names must be lower case, values join with NUL."""
    out = [struct.pack("!I", len(headers))]
    for name, values in headers.items():
        if name != name.lower():
            raise ValueError(f"SPDY header names are lower case: {name!r}")
        raw_name = name.encode("latin-1")
        raw_value = "\0".join(values).encode("latin-1")
        out += [struct.pack("!I", len(raw_name)), raw_name, struct.pack("!I", len(raw_value))]
        out.append(raw_value)
    return b"".join(out)


def decode_header_block(block: bytes) -> Headers:
    try:
        (count,) = struct.unpack_from("!I", block, 0)
        offset = 4
        headers: Headers = {}
        for _ in range(count):
            (length,) = struct.unpack_from("!I", block, offset)
            name = block[offset + 4 : offset + 4 + length].decode("latin-1")
            offset += 4 + length
            (length,) = struct.unpack_from("!I", block, offset)
            value = block[offset + 4 : offset + 4 + length].decode("latin-1")
            offset += 4 + length
            if name in headers:
                raise ProtocolError(f"header {name!r} appears twice")
            headers[name] = value.split("\0")
    except struct.error:
        raise ProtocolError("truncated header block") from None
    return headers


class HeaderCompressor:
    """One direction's zlib context: every block is flushed, never finished."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(
            zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 9, zdict=DICTIONARY
        )

    def compress(self, headers: Headers) -> bytes:
        block = encode_header_block(headers)
        return self._zlib.compress(block) + self._zlib.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)

    def decompress(self, data: bytes) -> Headers:
        try:
            block = self._zlib.decompress(data)
        except zlib.error as exc:
            raise ProtocolError(f"bad header block: {exc}") from None
        return decode_header_block(block)


# --------------------------------------------------------------- codec


def _control(frame_type: int, flags: int, payload: bytes) -> bytes:
    return struct.pack("!HHI", 0x8000 | VERSION, frame_type, (flags << 24) | len(payload)) + payload


class Encoder:
    """Frames to bytes, with this direction's header compression."""

    def __init__(self) -> None:
        self._headers = HeaderCompressor()

    def encode(self, frame: Frame) -> bytes:
        match frame:
            case Data(stream_id, data, fin):
                if len(data) > MAX_FRAME_BYTES:
                    raise ValueError("DATA frame too long")
                flags = FLAG_FIN if fin else 0
                return struct.pack("!II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data
            case SynStream(stream_id, headers, fin, associated_to, priority):
                payload = struct.pack("!IIBB", stream_id, associated_to, (priority & 7) << 5, 0)
                payload += self._headers.compress(headers)
                return _control(SYN_STREAM, FLAG_FIN if fin else 0, payload)
            case SynReply(stream_id, headers, fin):
                payload = struct.pack("!I", stream_id) + self._headers.compress(headers)
                return _control(SYN_REPLY, FLAG_FIN if fin else 0, payload)
            case HeadersFrame(stream_id, headers, fin):
                payload = struct.pack("!I", stream_id) + self._headers.compress(headers)
                return _control(HEADERS, FLAG_FIN if fin else 0, payload)
            case RstStream(stream_id, status):
                return _control(RST_STREAM, 0, struct.pack("!II", stream_id, status))
            case Settings(entries):
                payload = struct.pack("!I", len(entries))
                for flags, key, value in entries:
                    payload += struct.pack("!II", (flags << 24) | key, value)
                return _control(SETTINGS, 0, payload)
            case Ping(ping_id):
                return _control(PING, 0, struct.pack("!I", ping_id))
            case GoAway(last_stream_id, status):
                return _control(GOAWAY, 0, struct.pack("!II", last_stream_id, status))
            case WindowUpdate(stream_id, delta):
                return _control(WINDOW_UPDATE, 0, struct.pack("!II", stream_id, delta))
        raise TypeError(f"not a SPDY frame: {frame!r}")


class Decoder:
    """Bytes to frames, with the other direction's header decompression."""

    def __init__(self) -> None:
        self._headers = HeaderDecompressor()

    async def read(self, reader: asyncio.StreamReader) -> Frame | None:
        """The next frame; None for an unknown control frame type (skipped, as the spec says)."""
        head = await reader.readexactly(8)
        word, flags_length = struct.unpack("!II", head)
        flags, length = flags_length >> 24, flags_length & 0xFFFFFF
        payload = await reader.readexactly(length)
        if not word & 0x80000000:
            return Data(word & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN))
        return self.control((word >> 16) & 0x7FFF, word & 0xFFFF, flags, payload)

    def control(self, version: int, frame_type: int, flags: int, payload: bytes) -> Frame | None:
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version} (only 3)")
        fin = bool(flags & FLAG_FIN)
        try:
            if frame_type == SYN_STREAM:
                stream_id, associated, priority = struct.unpack_from("!IIB", payload)
                headers = self._headers.decompress(payload[10:])
                return SynStream(
                    stream_id & 0x7FFFFFFF, headers, fin, associated & 0x7FFFFFFF, priority >> 5
                )
            if frame_type in (SYN_REPLY, HEADERS):
                (stream_id,) = struct.unpack_from("!I", payload)
                headers = self._headers.decompress(payload[4:])
                kind = SynReply if frame_type == SYN_REPLY else HeadersFrame
                return kind(stream_id & 0x7FFFFFFF, headers, fin)
            if frame_type == RST_STREAM:
                stream_id, status = struct.unpack_from("!II", payload)
                return RstStream(stream_id & 0x7FFFFFFF, status)
            if frame_type == SETTINGS:
                (count,) = struct.unpack_from("!I", payload)
                entries = []
                for i in range(count):
                    key, value = struct.unpack_from("!II", payload, 4 + 8 * i)
                    entries.append((key >> 24, key & 0xFFFFFF, value))
                return Settings(entries)
            if frame_type == PING:
                return Ping(struct.unpack_from("!I", payload)[0])
            if frame_type == GOAWAY:
                last, status = struct.unpack_from("!II", payload)
                return GoAway(last & 0x7FFFFFFF, status)
            if frame_type == WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from("!II", payload)
                return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error:
            raise ProtocolError(f"truncated control frame of type {frame_type}") from None
        return None


# ---------------------------------------------------------- connection


class Stream:
    """One stream this side opened."""

    def __init__(self, connection: ClientConnection, stream_id: int) -> None:
        self.connection = connection
        self.id = stream_id
        self.local_closed = False
        self.remote_closed = False
        self.reset = False

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.reset or not data:
            return
        for start in range(0, len(data), MAX_FRAME_BYTES):
            await self.connection.send(Data(self.id, data[start : start + MAX_FRAME_BYTES]))

    async def close(self) -> None:
        """Half-close: this side sends nothing more on the stream (an empty DATA with FIN)."""
        if self.local_closed or self.reset:
            return
        self.local_closed = True
        await self.connection.send(Data(self.id, b"", fin=True))


class ClientConnection:
    """The client end of a SPDY connection over an upgraded stream pair.

    Streams are opened with `open_stream`; incoming frames are read with
    `receive`, which answers the peer's pings itself and returns the frames
    that matter to the caller (DATA, SYN_REPLY, HEADERS, RST_STREAM, GOAWAY,
    or None at end of connection), keeping each stream's state up to date.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.streams: dict[int, Stream] = {}
        self._next_id = 1  # clients use odd stream ids
        self._encoder = Encoder()
        self._decoder = Decoder()
        self.gone_away = False

    async def send(self, frame: Frame) -> None:
        # Encoding and writing happen without an await in between, so the
        # header compression context stays in the order frames hit the wire.
        self.writer.write(self._encoder.encode(frame))
        await self.writer.drain()

    async def open_stream(self, headers: dict[str, str], *, fin: bool = False) -> Stream:
        stream_id = self._next_id
        self._next_id += 2
        block = {name.lower(): [value] for name, value in headers.items()}
        stream = Stream(self, stream_id)
        stream.local_closed = fin
        self.streams[stream_id] = stream
        await self.send(SynStream(stream_id, block, fin=fin))
        return stream

    async def receive(self) -> Frame | None:
        while True:
            try:
                frame = await self._decoder.read(self.reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            match frame:
                case Ping(ping_id):
                    if ping_id % 2 == 0:  # the server's ping: echo it; odd ids answer ours
                        await self.send(frame)
                    continue
                case (
                    Data(stream_id, _, fin)
                    | SynReply(stream_id, _, fin)
                    | HeadersFrame(stream_id, _, fin)
                ):
                    stream = self.streams.get(stream_id)
                    if stream is None:
                        log.debug("SPDY frame for unknown stream %d dropped", stream_id)
                        continue
                    if fin:
                        stream.remote_closed = True
                    return frame
                case RstStream(stream_id, _):
                    stream = self.streams.get(stream_id)
                    if stream is not None:
                        stream.reset = stream.remote_closed = stream.local_closed = True
                    return frame
                case GoAway():
                    self.gone_away = True
                    return frame
                case SynStream(stream_id, _, _, _, _):
                    # Servers of these protocols never push streams: refuse.
                    await self.send(RstStream(stream_id, REFUSED_STREAM))
                case _:
                    continue  # SETTINGS, WINDOW_UPDATE, unknown types

    async def close(self) -> None:
        """Hang up (the server cleans its streams up when the connection drops)."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
