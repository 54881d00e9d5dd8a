"""`RuntimeClient`: one gRPC channel to a CRI runtime's unix socket.

Callers use the generated stubs directly (`client.runtime.RunPodSandbox(
api_pb2.RunPodSandboxRequest(...))`), so every CRI call and field is available
without a wrapper per RPC; this class only owns the channel and knows when the
runtime is ready to answer.
"""

from __future__ import annotations

import asyncio

import grpc

from kubik.kubelet.cri import api_pb2, api_pb2_grpc

# The CRI version kubik asks for in Version requests.
API_VERSION = "v1"

_CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),  # a local socket: never via a proxy
    # Stats and listings of a busy node can exceed gRPC's 4 MiB default.
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    # containerd may restart under us: reconnect quickly when it is back.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]


class RuntimeClient:
    """The CRI RuntimeService and ImageService of the runtime at `socket_path`."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._channel = grpc.aio.insecure_channel(f"unix://{socket_path}", options=_CHANNEL_OPTIONS)
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self._channel)
        self.images = api_pb2_grpc.ImageServiceStub(self._channel)

    async def version(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, not a wrapper's
    ) -> api_pb2.VersionResponse:
        """The runtime's name, version and CRI version."""
        return await self.runtime.Version(
            api_pb2.VersionRequest(version=API_VERSION), timeout=timeout
        )

    async def wait_ready(
        self,
        timeout: float = 30.0,  # noqa: ASYNC109 - a deadline spanning retries
    ) -> api_pb2.VersionResponse:
        """Wait until the runtime answers Version; raise TimeoutError after `timeout` seconds.

        A runtime that was just started has no socket yet, or one that refuses
        connections for a moment, or (containerd) answers UNKNOWN "server is not
        initialized yet" while it loads its state: all are retried until the deadline.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: grpc.aio.AioRpcError | None = None
        while (remaining := deadline - loop.time()) > 0:
            try:
                return await self.version(timeout=min(remaining, 2.0))
            except grpc.aio.AioRpcError as exc:
                if not _starting_up(exc):
                    raise
                last = exc
            await asyncio.sleep(min(0.05, max(deadline - loop.time(), 0)))
        detail = last.details() if last is not None else "no answer"
        raise TimeoutError(
            f"CRI runtime at {self.socket_path} not ready after {timeout:g}s: {detail}"
        )

    async def close(self) -> None:
        await self._channel.close()


def _starting_up(exc: grpc.aio.AioRpcError) -> bool:
    """Whether an error only says the runtime has not finished starting."""
    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return True
    return exc.code() == grpc.StatusCode.UNKNOWN and "not initialized" in (exc.details() or "")
