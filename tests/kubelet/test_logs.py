"""Reading CRI log files (parsing, joining pieces, tail/since/limit/timestamps, follow),
and which container instance a log request means."""

from __future__ import annotations

import asyncio
import datetime
import os

import pytest

from kubik.apiserver import nodeproxy
from kubik.kubelet import logs
from kubik.kubelet.logs import LogOptions
from kubik.kubelet.server import Failure, _logged_instance

T0 = 1_700_000_000  # a time in Unix seconds; log times below are T0 + n seconds


def stamp(n: int) -> str:
    moment = datetime.datetime.fromtimestamp(T0 + n, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{n:09d}Z"


def line(n: int, text: str, *, tag: str = "F", stream: str = "stdout") -> str:
    return f"{stamp(n)} {stream} {tag} {text}\n"


def write(path, *lines: str, mode: str = "w") -> None:
    with open(path, mode) as handle:
        handle.write("".join(lines))
        handle.flush()


async def never_stops() -> bool:
    return True


async def stopped() -> bool:
    return False


async def read(path, options: LogOptions, *, running=stopped) -> bytes:
    handle = open(path, "rb")  # noqa: ASYNC230 - a small local file
    chunks = logs.read_logs(handle, str(path), options, running=running)
    return b"".join([chunk async for chunk in chunks])


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "0.log"
    write(
        path,
        line(1, "one"),
        line(2, "two", stream="stderr"),
        line(3, "thr", tag="P"),
        line(4, "ee", tag="P"),
        line(5, " (three)"),
        "not a CRI line at all\n",
        line(6, "four"),
    )
    return path


def test_parse_time():
    assert logs.parse_time("2023-11-14T22:13:20Z") == T0 * 10**9
    assert logs.parse_time("2023-11-14T22:13:20.5Z") == T0 * 10**9 + 500_000_000
    assert logs.parse_time("2023-11-14T22:13:20.000000001Z") == T0 * 10**9 + 1
    assert logs.parse_time("2023-11-15T00:13:20+02:00") == T0 * 10**9
    assert logs.parse_time("2023-11-14T21:13:20.25-01:00") == T0 * 10**9 + 250_000_000
    for bad in ("2023-11-14 22:13:20Z", "2023-11-14T22:13:20", "yesterday"):
        with pytest.raises(ValueError):
            logs.parse_time(bad)


def test_parse_line():
    parsed = logs.parse_line(line(1, "hello world").rstrip("\n").encode())
    assert parsed is not None
    assert (parsed.stream, parsed.partial, parsed.text) == (b"stdout", False, b"hello world")
    assert parsed.timestamp == stamp(1).encode()
    assert parsed.time_ns == (T0 + 1) * 10**9 + 1
    piece = logs.parse_line(f"{stamp(2)} stderr P part".encode())
    assert piece is not None and piece.partial and piece.stream == b"stderr"
    empty = logs.parse_line(f"{stamp(3)} stdout F".encode())
    assert empty is not None and empty.text == b""
    assert logs.parse_line(b"garbage") is None
    assert logs.parse_line(f"{stamp(1)} stdnothing F x".encode()) is None


async def test_whole_log_joins_pieces_and_skips_garbage(log_file):
    assert await read(log_file, LogOptions()) == b"one\ntwo\nthree (three)\nfour\n"


async def test_timestamps_prefix_each_whole_line_once(log_file):
    out = await read(log_file, LogOptions(timestamps=True))
    assert out.decode().splitlines() == [
        f"{stamp(1)} one",
        f"{stamp(2)} two",
        f"{stamp(3)} three (three)",
        f"{stamp(6)} four",
    ]


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (0, b""),
        (1, b"four\n"),
        (2, b"three (three)\nfour\n"),
        (3, b"two\nthree (three)\nfour\n"),
        (100, b"one\ntwo\nthree (three)\nfour\n"),
    ],
)
async def test_tail_counts_whole_lines(log_file, tail, expected):
    assert await read(log_file, LogOptions(tail_lines=tail)) == expected


async def test_tail_counts_an_unfinished_line_as_one(tmp_path):
    path = tmp_path / "0.log"
    write(path, line(1, "done"), line(2, "half", tag="P"))
    assert await read(path, LogOptions(tail_lines=1)) == b"half"
    assert await read(path, LogOptions(tail_lines=2)) == b"done\nhalf"


async def test_tail_of_a_file_larger_than_one_block(tmp_path):
    path = tmp_path / "0.log"
    write(path, *(line(n % 60, f"line {n} " + "x" * 200) for n in range(2000)))
    out = await read(path, LogOptions(tail_lines=700))
    lines = out.decode().splitlines()
    assert len(lines) == 700
    assert lines[0].startswith("line 1300 ") and lines[-1].startswith("line 1999 ")


async def test_since_skips_older_lines(log_file):
    since = (T0 + 3) * 10**9  # the joined line's first piece is at T0+3 (+3 ns)
    assert await read(log_file, LogOptions(since_ns=since)) == b"three (three)\nfour\n"
    assert await read(log_file, LogOptions(since_ns=(T0 + 7) * 10**9)) == b""


async def test_limit_bytes_cuts_the_output(log_file):
    assert await read(log_file, LogOptions(limit_bytes=6)) == b"one\ntw"
    assert await read(log_file, LogOptions(limit_bytes=6, tail_lines=1)) == b"four\n"


def test_options_from_a_query():
    def params(**values):
        return lambda name: values.get(name, "")

    options = LogOptions.from_query(
        params(follow="true", timestamps="true", tailLines="5", limitBytes="10")
    )
    assert options == LogOptions(follow=True, tail_lines=5, timestamps=True, limit_bytes=10)
    options = LogOptions.from_query(params(sinceSeconds="10"), now_ns=100 * 10**9)
    assert options.since_ns == 90 * 10**9
    options = LogOptions.from_query(params(sinceTime="2023-11-14T22:13:20Z"))
    assert options.since_ns == T0 * 10**9
    for bad in (
        params(tailLines="-1"),
        params(tailLines="x"),
        params(limitBytes="0"),
        params(sinceSeconds="0"),
        params(sinceSeconds="5", sinceTime="2023-11-14T22:13:20Z"),
        params(sinceTime="noon"),
    ):
        with pytest.raises(logs.OptionError):
            LogOptions.from_query(bad)


async def next_chunk(chunks) -> bytes:
    return await asyncio.wait_for(anext(chunks), timeout=30)


async def test_follow_reads_new_lines_and_rotations_until_the_container_stops(tmp_path):
    path = tmp_path / "0.log"
    write(path, line(1, "first"))
    state = {"running": True}

    async def running() -> bool:
        return state["running"]

    chunks = logs.read_logs(
        open(path, "rb"),  # noqa: ASYNC230 - a small local file
        str(path),
        LogOptions(follow=True),
        running=running,
        poll_interval=0.01,
        state_interval=0.05,
    )
    assert await next_chunk(chunks) == b"first\n"
    write(path, line(2, "sec", tag="P"), mode="a")
    write(path, line(3, "ond"), mode="a")
    received = b""
    while received != b"second\n":
        received += await next_chunk(chunks)
    # Rotation: the file is renamed away and a new one takes its name.
    os.rename(path, tmp_path / "0.log.20231114-221320")
    write(path, line(4, "after rotation"))
    assert await next_chunk(chunks) == b"after rotation\n"
    # The container stops: what it wrote last is still read, then the stream ends.
    write(path, line(5, "last words"), mode="a")
    state["running"] = False
    rest = [chunk async for chunk in chunks]
    assert b"".join(rest) == b"last words\n"


async def test_follow_of_a_stopped_container_ends_at_end_of_file(log_file):
    out = await asyncio.wait_for(read(log_file, LogOptions(follow=True, tail_lines=1)), 30)
    assert out == b"four\n"


async def test_follow_stops_at_the_byte_limit(tmp_path):
    path = tmp_path / "0.log"
    write(path, line(1, "0123456789"))
    out = await asyncio.wait_for(
        read(path, LogOptions(follow=True, limit_bytes=4), running=never_stops), 30
    )
    assert out == b"0123"


# ------------------------------------------ which container a request means


def test_the_container_a_request_means():
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b"}],
        },
    }
    assert nodeproxy.choose_container(pod, "b") == "b"
    assert nodeproxy.choose_container(pod, "init") == "init"
    with pytest.raises(Exception, match=r"choose one of: \[init a b\]$"):
        nodeproxy.choose_container(pod, "")
    with pytest.raises(Exception, match="container c is not valid for pod p"):
        nodeproxy.choose_container(pod, "c")
    single = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "only"}]}}
    assert nodeproxy.choose_container(single, "") == "only"


def test_which_instance_a_log_request_reads():
    last = {"terminated": {"containerID": "containerd://old", "exitCode": 1}}
    running = {"state": {"running": {}}, "containerID": "containerd://new", "lastState": last}
    assert _logged_instance("p", "c", running, previous=False) == "new"
    assert _logged_instance("p", "c", running, previous=True) == "old"
    backoff = {"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": last}
    assert _logged_instance("p", "c", backoff, previous=False) == "old"
    creating = {"state": {"waiting": {"reason": "ContainerCreating"}}}
    with pytest.raises(
        Failure, match='container "c" in pod "p" is waiting to start: ContainerCreating'
    ):
        _logged_instance("p", "c", creating, previous=False)
    with pytest.raises(Failure, match='previous terminated container "c" in pod "p" not found'):
        _logged_instance("p", "c", creating, previous=True)
