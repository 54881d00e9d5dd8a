"""WebSocket framing against RFC 6455's own examples and hand-made frames."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from kubik.kubelet.streaming import websocket
from kubik.kubelet.streaming.websocket import WebSocket

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 section 5.7
MASKED_HELLO = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def stream_pair():
    """Two connected stream pairs: (server reader, server writer), (client reader, writer)."""
    left, right = socket.socketpair()
    return await asyncio.open_connection(sock=left), await asyncio.open_connection(sock=right)


def masked(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client frame built by hand: header, length, mask, payload XOR mask."""
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + MASK + body


def test_accept_key_matches_the_rfc_example():
    assert websocket.accept_key(RFC_KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_answers_with_the_chosen_protocol():
    headers = {
        "upgrade": "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": RFC_KEY,
        "sec-websocket-protocol": "v5.channel.k8s.io, v4.channel.k8s.io",
    }
    assert websocket.is_websocket(headers)
    assert websocket.offered_protocols(headers) == ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    answer = dict(websocket.handshake_headers(headers, "v5.channel.k8s.io"))
    assert answer["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert answer["Sec-WebSocket-Protocol"] == "v5.channel.k8s.io"
    assert answer["Upgrade"] == "websocket"


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-websocket-version": "8", "sec-websocket-key": RFC_KEY},
        {"sec-websocket-version": "13", "sec-websocket-key": "short"},
        {"sec-websocket-version": "13"},
    ],
)
def test_a_bad_handshake_is_refused(headers):
    with pytest.raises(websocket.HandshakeError):
        websocket.handshake_headers(headers, "")


def test_frames_encode_as_in_the_rfc():
    assert websocket.encode_frame(websocket.OP_TEXT, b"Hello") == b"\x81\x05Hello"
    assert websocket.encode_frame(websocket.OP_TEXT, b"Hello", mask=MASK) == MASKED_HELLO
    assert websocket.encode_frame(websocket.OP_TEXT, b"Hel", fin=False) == b"\x01\x03Hel"
    assert websocket.encode_frame(websocket.OP_PING, b"Hello") == b"\x89\x05Hello"
    assert websocket.encode_frame(websocket.OP_BINARY, bytes(256))[:4] == b"\x82\x7e\x01\x00"
    big = websocket.encode_frame(websocket.OP_BINARY, bytes(65536))
    assert big[:10] == b"\x82\x7f" + struct.pack("!Q", 65536)


async def test_frames_decode_masked_and_of_every_length():
    frame = await websocket.read_frame(reader_of(MASKED_HELLO))
    assert (frame.fin, frame.opcode, frame.payload) == (True, websocket.OP_TEXT, b"Hello")
    for size in (0, 125, 126, 65535, 65536, 200_000):
        payload = bytes(i % 251 for i in range(size))
        for mask in (None, MASK):
            raw = websocket.encode_frame(websocket.OP_BINARY, payload, mask=mask)
            frame = await websocket.read_frame(reader_of(raw))
            assert frame.payload == payload and frame.opcode == websocket.OP_BINARY


async def test_reserved_bits_and_oversized_frames_are_protocol_errors():
    with pytest.raises(websocket.ProtocolError):
        await websocket.read_frame(reader_of(b"\xc2\x00"))
    with pytest.raises(websocket.ProtocolError):
        await websocket.read_frame(reader_of(b"\x82\x7e\x01\x00"), max_bytes=100)


async def test_receive_joins_fragments_answers_pings_and_closes():
    (server_r, server_w), (client_r, client_w) = await stream_pair()
    ws = WebSocket(server_r, server_w)
    client_w.write(
        masked(websocket.OP_BINARY, b"\x01ab", fin=False)
        + masked(websocket.OP_PING, b"are you there")  # control frames may come between fragments
        + masked(websocket.OP_CONTINUATION, b"cd")
        + masked(websocket.OP_TEXT, b"text")
        + masked(websocket.OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    )
    await client_w.drain()
    assert await ws.receive() == (websocket.OP_BINARY, b"\x01abcd")
    assert await ws.receive() == (websocket.OP_TEXT, b"text")
    assert await ws.receive() is None
    assert ws.close_received == (1000, "bye")
    pong = await websocket.read_frame(client_r)
    assert (pong.opcode, pong.payload) == (websocket.OP_PONG, b"are you there")
    close = await websocket.read_frame(client_r)
    assert close.opcode == websocket.OP_CLOSE
    assert websocket.parse_close(close.payload) == (1000, "")
    server_w.close()
    client_w.close()


async def test_server_frames_are_unmasked_and_client_frames_masked():
    (server_r, server_w), (client_r, client_w) = await stream_pair()
    server, client = WebSocket(server_r, server_w), WebSocket(client_r, client_w, client=True)
    await server.send(b"\x01out")
    raw = await client_r.readexactly(6)
    assert raw == b"\x82\x04\x01out"  # no mask bit
    await client.send(b"\x00in")
    head = await server_r.readexactly(2)
    assert head == b"\x82\x83"  # mask bit set
    server_w.close()
    client_w.close()


async def test_close_handshake_between_two_ends():
    (server_r, server_w), (client_r, client_w) = await stream_pair()
    server, client = WebSocket(server_r, server_w), WebSocket(client_r, client_w, client=True)
    peer = asyncio.create_task(client.receive())
    await server.close(1000, "done")
    assert await peer is None
    assert client.close_received == (1000, "done")
    assert server.close_received == (1000, "")
    client_w.close()


async def test_an_unexpected_continuation_closes_with_a_protocol_error():
    (server_r, server_w), (client_r, client_w) = await stream_pair()
    ws = WebSocket(server_r, server_w)
    client_w.write(masked(websocket.OP_CONTINUATION, b"x"))
    await client_w.drain()
    assert await ws.receive() is None
    close = await websocket.read_frame(client_r)
    assert websocket.parse_close(close.payload)[0] == websocket.CLOSE_PROTOCOL_ERROR
    server_w.close()
    client_w.close()
