"""SPDY/3 framing and header compression, against frames built by hand."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
import zlib

import pytest

from kubik.kubelet.streaming import spdy

# The SPDY/3 header dictionary as Go's spdy package (moby/spdystream) carries it.
DICTIONARY_SHA256 = "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"


def block(*pairs: tuple[str, str]) -> bytes:
    """An uncompressed header block written out by hand."""
    out = struct.pack("!I", len(pairs))
    for name, value in pairs:
        out += struct.pack("!I", len(name)) + name.encode()
        out += struct.pack("!I", len(value)) + value.encode()
    return out


def control(frame_type: int, flags: int, payload: bytes) -> bytes:
    return struct.pack("!HHI", 0x8003, frame_type, (flags << 24) | len(payload)) + payload


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_the_dictionary_is_spdy3s():
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == DICTIONARY_SHA256


def test_header_block_layout():
    assert spdy.encode_header_block({"streamtype": ["error"]}) == block(("streamtype", "error"))
    assert spdy.encode_header_block({"port": ["80", "81"]}) == block(("port", "80\x0081"))
    assert spdy.decode_header_block(block(("port", "80\x0081"))) == {"port": ["80", "81"]}
    with pytest.raises(ValueError):
        spdy.encode_header_block({"StreamType": ["error"]})
    with pytest.raises(spdy.ProtocolError):
        spdy.decode_header_block(block(("a", "1"), ("a", "2")))
    with pytest.raises(spdy.ProtocolError):
        spdy.decode_header_block(b"\x00\x00\x00\x02\x00\x00")


def test_compressed_blocks_share_one_context_with_the_dictionary():
    compressor = spdy.HeaderCompressor()
    first = compressor.compress({"streamtype": ["stdout"]})
    second = compressor.compress({"streamtype": ["stderr"]})
    # An independent zlib decoder with the preset dictionary reads them in order...
    decoder = zlib.decompressobj(zdict=spdy.DICTIONARY)
    assert decoder.decompress(first) == block(("streamtype", "stdout"))
    assert decoder.decompress(second) == block(("streamtype", "stderr"))
    # ...and the second alone is not a stream of its own: the context carries over.
    with pytest.raises(zlib.error):
        zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(second)
    # The first asks for the dictionary (FDICT set, with SPDY/3's dictionary id).
    assert first[1] & 0x20
    assert struct.unpack("!I", first[2:6])[0] == zlib.adler32(spdy.DICTIONARY)


def test_decompressing_blocks_written_by_another_zlib():
    writer = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=spdy.DICTIONARY)
    reader = spdy.HeaderDecompressor()
    for value in ("error", "stdin", "resize"):
        raw = writer.compress(block(("streamtype", value))) + writer.flush(zlib.Z_SYNC_FLUSH)
        assert reader.decompress(raw) == {"streamtype": [value]}


def test_simple_frames_encode_byte_for_byte():
    encoder = spdy.Encoder()
    assert encoder.encode(spdy.Data(3, b"hi", fin=True)) == b"\x00\x00\x00\x03\x01\x00\x00\x02hi"
    assert encoder.encode(spdy.Data(5, b"")) == b"\x00\x00\x00\x05\x00\x00\x00\x00"
    assert encoder.encode(spdy.RstStream(3, spdy.CANCEL)) == control(3, 0, struct.pack("!II", 3, 5))
    assert encoder.encode(spdy.Ping(2)) == control(6, 0, struct.pack("!I", 2))
    assert encoder.encode(spdy.GoAway(7, 0)) == control(7, 0, struct.pack("!II", 7, 0))
    assert encoder.encode(spdy.WindowUpdate(1, 65536)) == control(
        9, 0, struct.pack("!II", 1, 65536)
    )


def test_syn_stream_layout():
    raw = spdy.Encoder().encode(spdy.SynStream(1, {"streamtype": ["error"]}, fin=True))
    word, flags_length = struct.unpack("!II", raw[:8])
    assert word == 0x80030001  # control bit, version 3, SYN_STREAM
    assert flags_length >> 24 == spdy.FLAG_FIN
    assert flags_length & 0xFFFFFF == len(raw) - 8
    stream_id, associated, priority, slot = struct.unpack("!IIBB", raw[8:18])
    assert (stream_id, associated, priority, slot) == (1, 0, 0, 0)
    headers = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(raw[18:])
    assert headers == block(("streamtype", "error"))


async def test_hand_made_frames_decode():
    compressor = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=spdy.DICTIONARY)

    def headers(*pairs):
        return compressor.compress(block(*pairs)) + compressor.flush(zlib.Z_SYNC_FLUSH)

    wire = (
        control(2, 0, struct.pack("!I", 1) + headers(("streamtype", "error")))  # SYN_REPLY
        + control(1, 1, struct.pack("!IIBB", 2, 0, 0x60, 0) + headers(("port", "80")))
        + b"\x00\x00\x00\x01\x01\x00\x00\x03abc"  # DATA, FIN
        + control(4, 0, struct.pack("!III", 1, (0x01 << 24) | 7, 1000))  # SETTINGS
        + control(8, 0, struct.pack("!I", 1) + headers(("x", "y")))  # HEADERS
        + control(3, 0, struct.pack("!II", 1, 2))  # RST_STREAM
        + control(6, 0, struct.pack("!I", 4))  # PING
        + control(9, 0, struct.pack("!II", 1, 10))  # WINDOW_UPDATE
        + control(7, 0, struct.pack("!II", 5, 0))  # GOAWAY
        + control(0x20, 0, b"\x01\x02")  # unknown type: skipped
    )
    reader = reader_of(wire)
    decoder = spdy.Decoder()
    frames = [await decoder.read(reader) for _ in range(10)]
    assert frames == [
        spdy.SynReply(1, {"streamtype": ["error"]}),
        spdy.SynStream(2, {"port": ["80"]}, fin=True, priority=3),
        spdy.Data(1, b"abc", fin=True),
        spdy.Settings([(1, 7, 1000)]),
        spdy.HeadersFrame(1, {"x": ["y"]}),
        spdy.RstStream(1, 2),
        spdy.Ping(4),
        spdy.WindowUpdate(1, 10),
        spdy.GoAway(5, 0),
        None,
    ]


async def test_another_version_is_refused():
    raw = struct.pack("!HHI", 0x8002, 6, 4) + b"\x00\x00\x00\x01"
    with pytest.raises(spdy.ProtocolError):
        await spdy.Decoder().read(reader_of(raw))


async def test_encoder_and_decoder_round_trip_a_conversation():
    encoder, decoder = spdy.Encoder(), spdy.Decoder()
    frames = [
        spdy.SynStream(1, {"streamtype": ["error"]}),
        spdy.SynStream(3, {"streamtype": ["stdin"]}),
        spdy.Data(3, b"x" * 100_000),
        spdy.Data(3, b"", fin=True),
        spdy.SynReply(1, {}),
    ]
    reader = reader_of(b"".join(encoder.encode(f) for f in frames))
    assert [await decoder.read(reader) for _ in frames] == frames


async def test_client_connection_with_a_fake_server():
    left, right = socket.socketpair()
    client_r, client_w = await asyncio.open_connection(sock=left)
    server_r, server_w = await asyncio.open_connection(sock=right)
    conn = spdy.ClientConnection(client_r, client_w)
    server_in, server_out = spdy.Decoder(), spdy.Encoder()

    error = await conn.open_stream({"streamType": "error"})
    stdin = await conn.open_stream({"streamType": "stdin"})
    assert (error.id, stdin.id) == (1, 3)
    assert await server_in.read(server_r) == spdy.SynStream(1, {"streamtype": ["error"]})
    assert await server_in.read(server_r) == spdy.SynStream(3, {"streamtype": ["stdin"]})
    await stdin.write(b"input")
    await stdin.close()
    await stdin.write(b"ignored after FIN")
    assert await server_in.read(server_r) == spdy.Data(3, b"input")
    assert await server_in.read(server_r) == spdy.Data(3, b"", fin=True)

    for frame in (
        spdy.SynReply(1, {}),
        spdy.Ping(2),  # the server's ping: the client echoes it
        spdy.WindowUpdate(1, 5),  # ignored
        spdy.Data(1, b"status", fin=True),
        spdy.Data(99, b"unknown stream"),  # dropped
        spdy.SynStream(2, {"pushed": ["x"]}),  # refused
        spdy.GoAway(3),
    ):
        server_w.write(server_out.encode(frame))
    await server_w.drain()
    assert await conn.receive() == spdy.SynReply(1, {})
    assert await conn.receive() == spdy.Data(1, b"status", fin=True)
    assert error.remote_closed
    assert await conn.receive() == spdy.GoAway(3)
    assert conn.gone_away
    assert await server_in.read(server_r) == spdy.Ping(2)
    assert await server_in.read(server_r) == spdy.RstStream(2, spdy.REFUSED_STREAM)
    await conn.close()
    assert await conn.receive() is None
    server_w.close()
