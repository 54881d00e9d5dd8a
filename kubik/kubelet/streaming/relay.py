"""HTTP/1.1 client requests whose answer is streamed or upgraded, and byte pumping.

Used twice on the way from kubectl to a container: by the API server towards
the node (logs, and exec/attach/port-forward upgrades) and by the node
towards containerd's streaming server. Each request gets a connection of its
own, which the answer's body or the upgraded protocol then owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from kubik.apiserver.http import Response, Upgrade

log = logging.getLogger(__name__)

_HEAD_LIMIT = 64 * 1024
_READ_SIZE = 64 * 1024

# What an upgrade request carries on to the next hop. Compression extensions
# are left out: no hop negotiates them.
UPGRADE_HEADERS = (
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
)


class DialError(Exception):
    """The next hop could not be reached or did not answer HTTP."""


@dataclass(slots=True)
class Answer:
    """A response head; the body (or the upgraded protocol) is still on `reader`."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def header(self, name: str) -> str:
        name = name.lower()
        return ", ".join(v for k, v in self.headers if k.lower() == name)

    def close(self) -> None:
        self.writer.close()


def forwarded_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The upgrade headers of a request (lower-cased names) for the next hop.

    A client sending X-Stream-Protocol-Version several times reaches us as
    one comma-joined value; older Go servers want one header per protocol.
    """
    out: list[tuple[str, str]] = []
    for name in UPGRADE_HEADERS:
        value = headers.get(name)
        if not value:
            continue
        if name == "x-stream-protocol-version":
            out += [(name, v.strip()) for v in value.split(",") if v.strip()]
        else:
            out.append((name, value))
    return out


async def request(
    host: str,
    port: int,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] = (),
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 - one deadline for connect and head
) -> Answer:
    """Send a bodiless request on a new connection and read the answer's head."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=ssl_context,
                server_hostname=host if ssl_context is not None else None,
                limit=_READ_SIZE,
            )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise DialError(f"dial tcp {_host_port(host, port)}: {exc or 'timeout'}") from None
    try:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {_host_port(host, port)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        async with asyncio.timeout(timeout):
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        writer.close()
        raise DialError(f"no answer from {_host_port(host, port)}: {exc or 'timeout'}") from None
    status, reason, answer_headers = _parse_head(head)
    return Answer(status, reason, answer_headers, reader, writer)


async def request_url(
    url: str, method: str, headers: Iterable[tuple[str, str]] = (), **kwargs
) -> Answer:
    """`request` for an http:// URL (containerd's streaming URLs)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return await request(parts.hostname or "", parts.port or 80, method, target, headers, **kwargs)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise DialError(f"malformed HTTP answer: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip(), value.strip()))
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


async def body_chunks(answer: Answer) -> AsyncIterator[bytes]:
    """The answer's body as it arrives (chunked, sized, or up to end of connection)."""
    reader = answer.reader
    try:
        if "chunked" in answer.header("transfer-encoding").lower():
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    return
                chunk = await reader.readexactly(size)
                await reader.readexactly(2)
                yield chunk
        elif length := answer.header("content-length"):
            remaining = int(length)
            while remaining > 0:
                chunk = await reader.read(min(remaining, _READ_SIZE))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk
        else:
            while chunk := await reader.read(_READ_SIZE):
                yield chunk
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, ValueError):
        return
    finally:
        answer.close()


async def read_body(answer: Answer, limit: int = 1024 * 1024) -> bytes:
    """The whole body of a (short) answer, at most `limit` bytes; closes the connection."""
    body = bytearray()
    chunks = body_chunks(answer)
    try:
        async for chunk in chunks:
            body += chunk
            if len(body) >= limit:
                break
    finally:
        await chunks.aclose()
    return bytes(body[:limit])


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
        while data := await reader.read(_READ_SIZE):
            writer.write(data)
            await writer.drain()


async def splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Copy bytes both ways until either side closes, then close both.

    TLS connections cannot be half-closed, and none of the protocols
    relayed here half-closes at the TCP level: the first end is the end.
    """
    tasks = [asyncio.create_task(_copy(a[0], b[1])), asyncio.create_task(_copy(b[0], a[1]))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, writer in (a, b):
            writer.close()


async def pass_on(answer: Answer) -> Response | Upgrade:
    """The next hop's answer to an upgrade request, as our answer to our own client.

    A 101 is relayed with its headers (the next hop did the handshake with
    the client's own keys), then bytes flow unchanged both ways; anything
    else is relayed as a plain response, which is how clients learn why.
    """
    if answer.status != 101:
        body = await read_body(answer)
        content_type = answer.header("content-type") or "text/plain; charset=utf-8"
        return Response(answer.status, body, content_type=content_type)
    headers = [
        (name, value)
        for name, value in answer.headers
        if name.lower() not in ("content-length", "transfer-encoding", "date")
    ]

    async def takeover(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await splice((reader, writer), (answer.reader, answer.writer))

    return Upgrade(headers, takeover)
