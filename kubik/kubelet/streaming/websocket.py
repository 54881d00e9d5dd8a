"""WebSocket (RFC 6455): the handshake answer, framing, ping/pong and the close handshake.

Only what the Kubernetes streaming protocols use: binary messages (text is
accepted too), no extensions (compression is never negotiated, so clients
send none). The server side is what the node needs; `client=True` masks
outgoing frames as a client must, for tests that play kubectl.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import struct
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009

MAX_MESSAGE_BYTES = 16 * 1024 * 1024

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


class HandshakeError(Exception):
    """The upgrade request is not a valid WebSocket handshake (answer 400)."""


class ProtocolError(Exception):
    """The peer broke the framing rules."""


def is_websocket(headers: Mapping[str, str]) -> bool:
    """Whether a request (lower-cased header names) asks to upgrade to WebSocket."""
    return "websocket" in headers.get("upgrade", "").lower()


def offered_protocols(headers: Mapping[str, str]) -> list[str]:
    """The subprotocols the client offers, in its order of preference."""
    value = headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in value.split(",") if p.strip()]


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    digest = hashlib.sha1(key.strip().encode("latin-1") + _GUID).digest()
    return base64.b64encode(digest).decode()


def handshake_headers(headers: Mapping[str, str], protocol: str) -> list[tuple[str, str]]:
    """The 101 answer's headers accepting `protocol`; raises HandshakeError for a bad request."""
    if headers.get("sec-websocket-version", "").strip() != "13":
        raise HandshakeError("unsupported WebSocket version (only 13)")
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key.strip(), validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise HandshakeError("invalid Sec-WebSocket-Key") from None
    answer = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if protocol:
        answer.append(("Sec-WebSocket-Protocol", protocol))
    return answer


def _apply_mask(data: bytes, mask: bytes) -> bytes:
    if not data:
        return data
    repeated = (mask * (len(data) // 4 + 1))[: len(data)]
    value = int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(data), "big")


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None
) -> bytes:
    """One frame; `mask` (4 bytes) masks it, as frames from a client must be."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask is not None else 0
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask is None:
        return head + payload
    return head + mask + _apply_mask(payload, mask)


@dataclass(slots=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes


async def read_frame(reader: asyncio.StreamReader, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Frame:
    """The next frame, unmasked. Raises IncompleteReadError at end of stream."""
    first, second = await reader.readexactly(2)
    if first & 0x70:
        raise ProtocolError("reserved bits set (no extension was negotiated)")
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    if length > max_bytes:
        raise ProtocolError(f"frame of {length} bytes is too big")
    mask = await reader.readexactly(4) if second & 0x80 else None
    payload = await reader.readexactly(length)
    if mask is not None:
        payload = _apply_mask(payload, mask)
    return Frame(bool(first & 0x80), first & 0x0F, payload)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()[:120]


def parse_close(payload: bytes) -> tuple[int, str]:
    """(code, reason) of a close frame; 1005 (no status) when it carries none."""
    if len(payload) < 2:
        return 1005, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


class WebSocket:
    """A WebSocket connection over an asyncio stream pair (after the 101)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        client: bool = False,
        max_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._client = client
        self._max_bytes = max_bytes
        self.close_sent = False
        self.close_received: tuple[int, str] | None = None

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        return encode_frame(opcode, payload, mask=os.urandom(4) if self._client else None)

    async def send(self, data: bytes, opcode: int = OP_BINARY) -> None:
        """Send one message (whole frames are written at once, so senders may interleave)."""
        if self.close_sent:
            raise ConnectionResetError("WebSocket is closing")
        self.writer.write(self._frame(opcode, data))
        await self.writer.drain()

    async def ping(self, data: bytes = b"") -> None:
        self.writer.write(self._frame(OP_PING, data))
        await self.writer.drain()

    async def send_close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start (or answer) the close handshake; sends at most one close frame."""
        if self.close_sent:
            return
        self.close_sent = True
        try:
            self.writer.write(self._frame(OP_CLOSE, close_payload(code, reason)))
            await self.writer.drain()
        except (ConnectionError, RuntimeError):
            pass

    async def receive(self) -> tuple[int, bytes] | None:
        """The next data message as (opcode, payload); None once the peer closed.

        Pings are answered here, so a connection is only kept alive while
        someone reads it; a close frame is answered before returning None.
        """
        opcode = None
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                frame = await read_frame(self.reader, max_bytes=self._max_bytes)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            except ProtocolError as exc:
                await self.send_close(CLOSE_PROTOCOL_ERROR, str(exc))
                return None
            if frame.opcode == OP_PING:
                if not self.close_sent:
                    self.writer.write(self._frame(OP_PONG, frame.payload))
                    await self.writer.drain()
                continue
            if frame.opcode == OP_PONG:
                continue
            if frame.opcode == OP_CLOSE:
                self.close_received = parse_close(frame.payload)
                code = self.close_received[0]
                await self.send_close(CLOSE_NORMAL if code == 1005 else code)
                return None
            if frame.opcode == OP_CONTINUATION:
                if opcode is None:
                    await self.send_close(CLOSE_PROTOCOL_ERROR, "unexpected continuation")
                    return None
            elif opcode is not None or frame.opcode not in (OP_TEXT, OP_BINARY):
                await self.send_close(CLOSE_PROTOCOL_ERROR, "unexpected frame")
                return None
            else:
                opcode = frame.opcode
            size += len(frame.payload)
            if size > self._max_bytes:
                await self.send_close(CLOSE_TOO_BIG, "message too big")
                return None
            parts.append(frame.payload)
            if frame.fin:
                return opcode, b"".join(parts)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "", *, wait: float = 2.0) -> None:
        """Close cleanly: send a close frame, give the peer `wait` seconds to answer, hang up.

        Hanging up before the peer's answer could reset the connection under
        data the peer has not read yet.
        """
        await self.send_close(code, reason)
        if self.close_received is None:
            try:
                async with asyncio.timeout(wait):
                    while await self.receive() is not None:
                        pass
            except TimeoutError:
                pass
        self.writer.close()


async def run_session(
    ws: WebSocket,
    from_client: Coroutine[Any, Any, None],
    to_client: Coroutine[Any, Any, None],
    *,
    hang_up: Callable[[], Awaitable[None]],
    close_wait: float = 2.0,
) -> None:
    """Run both directions of a bridged session until one ends, then end it cleanly.

    `from_client` reads the WebSocket until the client closes; `to_client`
    forwards the backend's output until the backend is done. When the backend
    is done first, the client gets a normal close frame and `close_wait`
    seconds to answer it. Either way the backend is hung up (`hang_up`) and
    the client's connection closed.
    """
    client = asyncio.create_task(from_client)
    backend = asyncio.create_task(to_client)
    try:
        done, _ = await asyncio.wait({client, backend}, return_when=asyncio.FIRST_COMPLETED)
        if client not in done:
            await ws.send_close(CLOSE_NORMAL)
            await asyncio.wait({client}, timeout=close_wait)
    finally:
        for task in (client, backend):
            task.cancel()
        for result in await asyncio.gather(client, backend, return_exceptions=True):
            if isinstance(result, Exception) and not isinstance(result, ConnectionError):
                log.warning("streaming session ended with an error: %r", result)
        await hang_up()
        ws.writer.close()
