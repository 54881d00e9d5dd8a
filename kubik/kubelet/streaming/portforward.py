"""port-forward with SPDY tunnelled in WebSocket (kubectl 1.31+), unwrapped for containerd.

kubectl opens a WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io`
and then speaks plain SPDY port-forward inside it: each binary message is a
piece of the SPDY byte stream, with no framing of its own. containerd's
streaming server speaks that SPDY directly, so the node only moves the bytes
between WebSocket messages and a SPDY-upgraded connection to containerd,
parsing none of it. Upstream unwraps the tunnel in the API server; kubik
does it on the node, next to the other bridges, and the API server relays
every upgrade unchanged.
"""

from __future__ import annotations

import asyncio

from kubik.kubelet.streaming import relay
from kubik.kubelet.streaming.websocket import WebSocket, run_session

PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+" + PROTOCOL

_READ_SIZE = 64 * 1024


async def dial(url: str) -> relay.Answer:
    """Upgrade a connection to containerd's port-forward URL to SPDY."""
    return await relay.request_url(
        url,
        "POST",
        [
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", PROTOCOL),
        ],
    )


async def tunnel(ws: WebSocket, backend: relay.Answer) -> None:
    """Carry the SPDY byte stream between the WebSocket client and containerd."""

    async def hang_up() -> None:
        backend.close()

    await run_session(
        ws,
        _from_client(ws, backend.writer),
        _to_client(ws, backend.reader),
        hang_up=hang_up,
    )


async def _from_client(ws: WebSocket, writer: asyncio.StreamWriter) -> None:
    while (message := await ws.receive()) is not None:
        writer.write(message[1])
        await writer.drain()


async def _to_client(ws: WebSocket, reader: asyncio.StreamReader) -> None:
    while data := await reader.read(_READ_SIZE):
        await ws.send(data)
