"""A small HTTP/1.1 server on asyncio streams, parsed by httptools.

Why not an ASGI server: the Kubernetes API needs things ASGI cannot give —
the client certificate of the TLS connection (x509 authentication), and the
raw connection after a `101 Switching Protocols` for SPDY (exec, attach,
port-forward), which no ASGI server hands over. This server is just enough
HTTP: keep-alive, Content-Length and chunked request bodies, buffered or
streamed (chunked, flushed per chunk) responses, and connection hand-over.
kubectl speaks HTTP/1.1 when the server's ALPN offers only that.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import httptools

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024  # upstream's request body limit
_READ_SIZE = 65536

# asyncio gives every TLS connection a 256 KiB read buffer; with a thousand
# watch connections that is a quarter of a gigabyte doing nothing. A TLS
# record is at most 16 KiB, so 32 KiB loses nothing.
asyncio.sslproto.SSLProtocol.max_size = 32 * 1024


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    peer_cert: dict | None  # the verified client certificate (ssl's decoded form), if any
    remote: str
    user: Any = None  # who the request is from, once authenticated
    warnings: list[str] = field(default_factory=list)  # sent back as Warning headers

    def param(self, name: str, default: str = "") -> str:
        """The last value of a query parameter."""
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


@dataclass(slots=True)
class StreamResponse:
    """A chunked response; each chunk the iterator yields is flushed at once."""

    status: int
    chunks: AsyncIterator[bytes]
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


@dataclass(slots=True)
class Upgrade:
    """Answer 101 with these headers, then hand the connection to `takeover`."""

    headers: list[tuple[str, str]]
    takeover: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


Handler = Callable[[Request], Awaitable[Response | StreamResponse | Upgrade]]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Parsed:
    """httptools callbacks collecting one request."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.headers_done = False
        self.complete = False
        self.too_large = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if len(self.body) + len(body) > MAX_BODY_BYTES:
            self.too_large = True
        else:
            self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


class HTTPServer:
    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None) -> None:
        self._handler = handler
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    async def listen(self, host: str, port: int) -> int:
        """Start listening; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(
            self._serve_connection, host, port, ssl=self._ssl, limit=_READ_SIZE, backlog=1024
        )
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        remote = f"{peer[0]}:{peer[1]}" if peer else "?"
        peer_cert = writer.get_extra_info("peercert") or None
        handed_over = False
        try:
            while True:
                request = await self._read_request(reader, remote, peer_cert)
                if request is None:
                    return
                keep_alive, handed_over = await self._respond(request, reader, writer)
                if not keep_alive or handed_over:
                    return
        except _BadRequest as bad:
            await _write_simple(writer, bad.status, str(bad))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            if not handed_over:
                writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, remote: str, peer_cert: dict | None
    ) -> Request | None:
        parsed = _Parsed()
        parser = httptools.HttpRequestParser(parsed)
        while not parsed.complete:
            data = await reader.read(_READ_SIZE)
            if not data:
                if parsed.url:
                    raise _BadRequest(400, "incomplete request")
                return None
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                # An upgrade request (no body follows its headers): done.
                parsed.complete = True
            except httptools.HttpParserError as exc:
                raise _BadRequest(400, f"malformed HTTP request: {exc}") from None
        if parsed.too_large:
            raise _BadRequest(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
        url = httptools.parse_url(parsed.url)
        path = url.path.decode("utf-8", "replace")
        query = parse_qs(url.query.decode("utf-8", "replace")) if url.query else {}
        return Request(
            method=parser.get_method().decode(),
            path=path,
            query=query,
            headers=parsed.headers,
            body=bytes(parsed.body),
            peer_cert=peer_cert,
            remote=remote,
        )

    async def _respond(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[bool, bool]:
        """Answer one request; returns (keep the connection, connection handed over)."""
        try:
            result = await self._handler(request)
        except Exception:
            log.exception("unhandled error serving %s %s", request.method, request.path)
            result = Response(
                500,
                b'{"kind":"Status","apiVersion":"v1","status":"Failure",'
                b'"message":"internal error","reason":"InternalError","code":500}',
            )
        keep_alive = request.headers.get("connection", "").lower() != "close"
        if isinstance(result, Upgrade):
            head = _head(101, result.headers)
            writer.write(head)
            await writer.drain()
            await result.takeover(reader, writer)
            return False, True
        if isinstance(result, StreamResponse):
            await self._stream(result, reader, writer)
            return False, False  # its read side was watched for hang-ups: not reusable
        headers = [
            ("Content-Type", result.content_type),
            ("Content-Length", str(len(result.body))),
            *result.headers,
        ]
        writer.write(_head(result.status, headers) + result.body)
        await writer.drain()
        return keep_alive, False

    @staticmethod
    async def _stream(
        result: StreamResponse, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Send chunks as they come; stop as soon as the client goes away.

        A watch may be idle for minutes, so a client that disconnected would
        otherwise be noticed only at the next event: the read side is watched
        for end-of-file meanwhile (a streaming client sends nothing more).
        """
        headers = [
            ("Content-Type", result.content_type),
            ("Transfer-Encoding", "chunked"),
            *result.headers,
        ]
        writer.write(_head(result.status, headers))
        sending = asyncio.current_task()
        hangup = asyncio.create_task(_until_closed(reader, sending))
        try:
            async for chunk in result.chunks:
                if chunk:
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        finally:
            hangup.cancel()
            aclose = getattr(result.chunks, "aclose", None)
            if aclose is not None:
                await aclose()


async def _until_closed(reader: asyncio.StreamReader, sending: asyncio.Task) -> None:
    """Cancel `sending` when the peer closes the connection."""
    try:
        while await reader.read(_READ_SIZE):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    sending.cancel()


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {400: "BadRequest", 413: "RequestEntityTooLarge"}


async def _write_simple(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    """A Status answer to a request too broken to reach the handler; closes the connection."""
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": _REASONS.get(status, "BadRequest"),
            "code": status,
        }
    ).encode()
    writer.write(
        _head(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
        )
        + body
    )
    try:
        await writer.drain()
    except ConnectionError:
        pass
