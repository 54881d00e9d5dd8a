"""exec/attach: a WebSocket client (`v5.channel.k8s.io` or v4) bridged to containerd's SPDY.

containerd's streaming server speaks the remote-command protocol up to v4,
which over WebSocket cannot close stdin; kubectl 1.30+ speaks only v5. So
the node terminates the WebSocket and plays a SPDY v4 client towards
containerd, as upstream's API server does towards the kubelet:

- WebSocket messages start with a channel byte: 0 stdin, 1 stdout, 2 stderr,
  3 error (the final Status), 4 terminal resize (JSON `{"Width","Height"}`),
  255 close (v5 only: its payload names the channel the client closed).
- SPDY carries one stream per channel, each opened by the client with a
  `streamtype` header (error, stdin, stdout, stderr, resize). containerd
  waits for exactly the streams the CRI request asked for, so the options
  used for the Exec/Attach call and the streams opened here must agree.
- The v4 error stream carries a `metav1.Status` (Success, or Failure with
  reason NonZeroExitCode and the exit code as a cause), which is already the
  v5 channel-3 message: it is passed on unchanged. containerd then sends
  GOAWAY, and the client gets a normal close.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubik.kubelet.streaming import relay, spdy
from kubik.kubelet.streaming.websocket import WebSocket, run_session

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
BRIDGED_PROTOCOLS = (V5, V4)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_STREAM_TYPES = {
    ERROR: "error",
    STDIN: "stdin",
    STDOUT: "stdout",
    STDERR: "stderr",
    RESIZE: "resize",
}


def is_true(value: str) -> bool:
    """Whether a query value means true (what Go's strconv.ParseBool takes as true)."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


@dataclass(frozen=True, slots=True)
class Options:
    """Which streams a session has."""

    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False

    @classmethod
    def from_query(cls, param: Callable[[str], str]) -> Options:
        """From the request's query; a terminal merges stderr into stdout, so tty drops stderr."""
        tty = is_true(param("tty"))
        return cls(
            stdin=is_true(param("input")) or is_true(param("stdin")),
            stdout=is_true(param("output")) or is_true(param("stdout")),
            stderr=(is_true(param("error")) or is_true(param("stderr"))) and not tty,
            tty=tty,
        )

    def channels(self) -> list[int]:
        """The streams in the order client-go creates them (error first)."""
        wanted = {
            ERROR: True,
            STDIN: self.stdin,
            STDOUT: self.stdout,
            STDERR: self.stderr,
            RESIZE: self.tty,
        }
        return [channel for channel, on in wanted.items() if on]


def bridged_protocol(offered: list[str]) -> str:
    """The first offered subprotocol this bridge speaks, or "" (then relay to containerd)."""
    return next((p for p in offered if p in BRIDGED_PROTOCOLS), "")


async def dial(url: str) -> relay.Answer:
    """Upgrade a connection to containerd's streaming URL to SPDY with protocol v4."""
    return await relay.request_url(
        url,
        "POST",
        [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", V4)],
    )


async def bridge(ws: WebSocket, backend: relay.Answer, options: Options, protocol: str) -> None:
    """Run one exec/attach session between the WebSocket client and containerd."""
    conn = spdy.ClientConnection(backend.reader, backend.writer)
    streams: dict[int, spdy.Stream] = {}
    for channel in options.channels():
        streams[channel] = await conn.open_stream({"streamtype": _STREAM_TYPES[channel]})
    await run_session(
        ws,
        _from_client(ws, streams, protocol),
        _to_client(ws, conn, {s.id: ch for ch, s in streams.items()}),
        hang_up=conn.close,
    )


async def _from_client(ws: WebSocket, streams: Mapping[int, spdy.Stream], protocol: str) -> None:
    while (message := await ws.receive()) is not None:
        data = message[1]
        if not data:
            continue
        channel, payload = data[0], data[1:]
        if channel in (STDIN, RESIZE) and channel in streams:
            await streams[channel].write(payload)
        elif channel == CLOSE and protocol == V5:
            for closed in payload:
                if closed in streams:
                    await streams[closed].close()


async def _to_client(ws: WebSocket, conn: spdy.ClientConnection, channels: dict[int, int]) -> None:
    """Forward stdout, stderr and the error Status until containerd says goodbye."""
    while (frame := await conn.receive()) is not None:
        if isinstance(frame, spdy.GoAway):
            return
        if isinstance(frame, spdy.Data) and frame.data:
            channel = channels[frame.stream_id]
            if channel in (STDOUT, STDERR, ERROR):
                await ws.send(bytes([channel]) + frame.data)
