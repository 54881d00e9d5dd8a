"""HTTP/1.1 over TLS with a pool of keep-alive connections, on asyncio streams.

Small on purpose: the API server speaks HTTP/1.1, requests are JSON, and
watches are chunked streams of JSON lines. httptools parses the answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from kubik.client.kubeconfig import Config


@dataclass(slots=True)
class Answer:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _Collector:
    """httptools callbacks for one response; `on_body` may stream instead of buffer."""

    def __init__(self, stream: asyncio.Queue | None = None) -> None:
        self.answer = Answer()
        self.chunks: list[bytes] = []
        self.headers_done = False
        self.keep_alive = False
        self.complete = False
        self.stream = stream
        self.parser: httptools.HttpResponseParser | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self.answer.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True
        # llhttp only answers this reliably before the message completes
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.stream is not None:
            self.stream.put_nowait(bytes(body))
        else:
            self.chunks.append(bytes(body))

    def on_message_complete(self) -> None:
        self.complete = True


class Transport:
    def __init__(self, config: Config, *, pool_size: int = 64) -> None:
        parts = urlsplit(config.server)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 443
        self._ssl = config.ssl_context
        self._auth = [("Authorization", f"Bearer {config.token}")] if config.token else []
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._pool_size = pool_size
        # at most pool_size requests at once: more would open connections beyond the
        # pool, each paying a TLS handshake and then being thrown away
        self._slots = asyncio.Semaphore(pool_size)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle:
            return self._idle.pop()
        return await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, server_hostname=self._host, limit=1 << 20
        )

    def _head(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self._host}:{self._port}",
            f"Content-Length: {len(body)}",
            "User-Agent: kubik-client",
            *(f"{k}: {v}" for k, v in self._auth + headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> Answer:
        async with self._slots:
            return await self._request(method, path, body, headers or [])

    async def _request(
        self, method: str, path: str, body: bytes, headers: list[tuple[str, str]]
    ) -> Answer:
        reader, writer = await self._connect()
        try:
            writer.write(self._head(method, path, headers, body))
            collector = _Collector()
            parser = collector.parser = httptools.HttpResponseParser(collector)
            while not collector.complete:
                data = await reader.read(1 << 16)
                if not data:
                    raise ConnectionError("the server closed the connection")
                parser.feed_data(data)
            collector.answer.status = parser.get_status_code()
            collector.answer.body = b"".join(collector.chunks)
        except BaseException:
            writer.close()
            raise
        if len(self._idle) < self._pool_size and collector.keep_alive:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return collector.answer

    async def stream_lines(
        self, path: str, *, headers: list[tuple[str, str]] | None = None
    ) -> AsyncIterator[bytes]:
        """GET a streamed answer (a watch) line by line, on its own connection."""
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, server_hostname=self._host, limit=1 << 20
        )
        chunks: asyncio.Queue = asyncio.Queue()
        collector = _Collector(stream=chunks)
        parser = collector.parser = httptools.HttpResponseParser(collector)
        try:
            writer.write(self._head("GET", path, headers or [], b""))
            pending = b""
            while not collector.complete:
                data = await reader.read(1 << 16)
                if not data:
                    break
                parser.feed_data(data)
                while not chunks.empty():
                    pending += chunks.get_nowait()
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield line
            if parser.get_status_code() >= 400 and pending:
                yield pending
        finally:
            writer.close()

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
