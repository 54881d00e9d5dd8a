"""Container logs as the CRI runtime writes them, read for `kubectl logs`.

containerd writes each line a container prints as
`<RFC 3339 time> <stdout|stderr> <tag> <text>`, where tag F ends a line and
P marks a piece of a longer one (lines over 16 KiB are cut into P pieces
and a final F). Reading joins the pieces back and applies the pod log
options: tailLines (counted in whole lines), sinceSeconds/sinceTime,
timestamps (the runtime's own time prefix), limitBytes, and follow —
keep reading as the file grows, reopen it when it is rotated (renamed away
and recreated), and stop once the container is no longer running.
"""

from __future__ import annotations

import asyncio
import calendar
import io
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

_BLOCK = 64 * 1024
_TIME = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d\d):(\d\d))"
)


class OptionError(ValueError):
    """A log option has a value that cannot be used (answered with 400)."""


def parse_time(text: str | bytes) -> int:
    """An RFC 3339 time as Unix nanoseconds (nanosecond precision, any offset)."""
    raw = text.encode() if isinstance(text, str) else text
    match = _TIME.fullmatch(raw)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {raw[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, sign, off_hours, off_minutes = match.groups()[6:]
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if sign:
        offset = int(off_hours) * 3600 + int(off_minutes) * 60
        seconds -= offset if sign == b"+" else -offset
    nanos = int(fraction.ljust(9, b"0")) if fraction else 0
    return seconds * 1_000_000_000 + nanos


@dataclass(slots=True)
class LogLine:
    """One line of a CRI log file."""

    timestamp: bytes  # as written, RFC 3339 with nanoseconds
    time_ns: int
    stream: bytes
    partial: bool  # a piece of a longer line: no newline follows its text
    text: bytes


def parse_line(raw: bytes) -> LogLine | None:
    """A log file line (without its newline); None when it is not in the CRI format."""
    parts = raw.split(b" ", 3)
    if len(parts) < 3:
        return None
    try:
        time_ns = parse_time(parts[0])
    except ValueError:
        return None
    if parts[1] not in (b"stdout", b"stderr"):
        return None
    partial = parts[2].split(b":")[0] == b"P"
    return LogLine(parts[0], time_ns, parts[1], partial, parts[3] if len(parts) > 3 else b"")


@dataclass(slots=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since_ns: int | None = None  # skip lines written before this Unix time (ns)
    timestamps: bool = False
    limit_bytes: int | None = None

    @classmethod
    def from_query(cls, param: Callable[[str], str], *, now_ns: int | None = None) -> LogOptions:
        """From the query of a /containerLogs request."""
        options = cls(
            follow=param("follow") in ("true", "1"),
            timestamps=param("timestamps") in ("true", "1"),
            tail_lines=_integer(param, "tailLines", minimum=0),
            limit_bytes=_integer(param, "limitBytes", minimum=1),
        )
        since_seconds = _integer(param, "sinceSeconds", minimum=1)
        since_time = param("sinceTime")
        if since_seconds is not None and since_time:
            raise OptionError("at most one of sinceTime or sinceSeconds may be specified")
        if since_seconds is not None:
            now = time.time_ns() if now_ns is None else now_ns
            options.since_ns = now - since_seconds * 1_000_000_000
        elif since_time:
            try:
                options.since_ns = parse_time(since_time)
            except ValueError:
                raise OptionError(f"invalid sinceTime {since_time!r}") from None
        return options


def _integer(param: Callable[[str], str], name: str, *, minimum: int) -> int | None:
    text = param(name)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise OptionError(f"invalid {name} {text!r}: not an integer") from None
    if value < minimum:
        raise OptionError(f"{name} must be greater than or equal to {minimum}")
    return value


class _Formatter:
    """Log lines to output bytes: pieces joined, since/timestamps/limit applied."""

    def __init__(self, options: LogOptions) -> None:
        self._options = options
        self._at_line_start = True
        self._skipping = False
        self.remaining = options.limit_bytes  # None: no limit

    @property
    def done(self) -> bool:
        return self.remaining == 0

    def format(self, line: LogLine) -> bytes:
        if self._at_line_start:
            since = self._options.since_ns
            self._skipping = since is not None and line.time_ns < since
        starts = self._at_line_start
        self._at_line_start = not line.partial
        if self._skipping or self.done:
            return b""
        out = line.text if line.partial else line.text + b"\n"
        if starts and self._options.timestamps:
            out = line.timestamp + b" " + out
        if self.remaining is not None:
            out = out[: self.remaining]
            self.remaining -= len(out)
        return out


def _lines_backwards(handle: BinaryIO, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of the file's non-empty lines before `end`, last first."""
    position = end
    rest = b""
    while position > 0:
        step = min(_BLOCK, position)
        position -= step
        handle.seek(position)
        rest = handle.read(step) + rest
        pieces = rest.split(b"\n")
        offset = position + len(rest)
        for piece in reversed(pieces[1:]):
            offset -= len(piece)
            if piece:
                yield offset, piece
            offset -= 1
        rest = pieces[0]
    if rest:
        yield 0, rest


def tail_offset(handle: BinaryIO, lines: int) -> int:
    """Where the last `lines` whole log lines of the file begin."""
    end = handle.seek(0, io.SEEK_END)
    if lines == 0:
        return end
    needed = None
    ends_seen = 0
    for offset, raw in _lines_backwards(handle, end):
        line = parse_line(raw)
        if line is None:
            continue  # not output, so not counted
        if needed is None:
            # A last line still in pieces counts as one of the lines asked for.
            needed = lines if line.partial else lines + 1
        if not line.partial:
            ends_seen += 1
            if ends_seen == needed:
                return offset + len(raw) + 1
    return 0


def _rotated(path: str, handle: BinaryIO) -> bool:
    """Whether `path` now names another file than the one open (rotation happened)."""
    try:
        return os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False  # being rotated: the new file is not there yet


async def read_logs(
    handle: BinaryIO,
    path: str,
    options: LogOptions,
    *,
    running: Callable[[], Awaitable[bool]],
    poll_interval: float = 0.1,
    state_interval: float = 1.0,
) -> AsyncIterator[bytes]:
    """The log's output, in chunks of whole lines; `handle` is the open file at `path`.

    Without follow it ends at end of file. With follow it waits for more,
    checking every `state_interval` seconds at end of file whether the
    container still runs (`running`); once it does not, the rest is read
    and the stream ends.
    """
    formatter = _Formatter(options)
    try:
        if options.tail_lines is not None:
            handle.seek(tail_offset(handle, options.tail_lines))
        else:
            handle.seek(0)
        pending = b""
        stopping = not options.follow
        last_check = -float("inf")
        while not formatter.done:
            data = handle.read(_BLOCK)
            if data:
                *complete, pending = (pending + data).split(b"\n")
                out = b"".join(
                    formatter.format(line) for line in map(parse_line, complete) if line is not None
                )
                if out:
                    yield out
                continue
            if options.follow and _rotated(path, handle):
                try:
                    reopened = open(path, "rb")  # noqa: ASYNC230 - a local file, read in blocks
                except FileNotFoundError:
                    await asyncio.sleep(poll_interval)
                    continue
                handle.close()
                handle = reopened
                continue
            if stopping:
                line = parse_line(pending) if pending else None
                if line is not None and (out := formatter.format(line)):
                    yield out
                return
            now = time.monotonic()
            if now - last_check >= state_interval:
                last_check = now
                if not await running():
                    stopping = True  # one more read catches what was written meanwhile
                    continue
            await asyncio.sleep(poll_interval)
    finally:
        handle.close()
