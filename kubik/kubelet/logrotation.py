"""Container log rotation by size, as upstream's container log manager does it.

Every few seconds each running container's log file is measured; one past
`max_size` is renamed to `<file>.<YYYYMMDD-HHMMSS>` and the runtime is asked
to reopen the log (ReopenContainerLog), so the container writes a fresh file.
Rotated files but the newest are gzipped, and only `max_files` files per
container are kept, the current one included.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import logging
import os
import shutil
from pathlib import Path

import grpc

from kubik import component
from kubik.api import quantity
from kubik.kubelet import defaults
from kubik.kubelet.cri import api_pb2

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = defaults.LOG_MAX_SIZE
DEFAULT_MAX_FILES = defaults.LOG_MAX_FILES
INTERVAL = 10.0


def parse_size(text: str | int) -> int:
    return quantity.parse(text).int_value()


class LogRotator:
    def __init__(
        self,
        runtime,
        *,
        max_size: int = parse_size(DEFAULT_MAX_SIZE),
        max_files: int = DEFAULT_MAX_FILES,
        interval: float = INTERVAL,
    ) -> None:
        if max_files < 2:
            raise ValueError("container-log-max-files must be at least 2")
        self._runtime = runtime
        self.max_size = max_size
        self.max_files = max_files
        self._interval = interval
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="log-rotation")

    async def stop(self) -> None:
        await component.cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.rotate_all()
            except grpc.aio.AioRpcError as exc:
                log.debug("log rotation: %s", exc.details())
            except Exception:
                log.exception("log rotation failed")

    async def rotate_all(self) -> None:
        running = api_pb2.ContainerFilter(
            state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_RUNNING)
        )
        listing = await self._runtime.runtime.ListContainers(
            api_pb2.ListContainersRequest(filter=running)
        )
        for container in listing.containers:
            try:
                answer = await self._runtime.runtime.ContainerStatus(
                    api_pb2.ContainerStatusRequest(container_id=container.id)
                )
            except grpc.aio.AioRpcError:
                continue  # gone meanwhile
            path = answer.status.log_path
            if not path:
                continue
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            if size > self.max_size:
                await self.rotate(container.id, Path(path))

    async def rotate(self, container_id: str, path: Path) -> None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        rotated = path.with_name(f"{path.name}.{stamp}")
        if rotated.exists() or rotated.with_name(rotated.name + ".gz").exists():
            return  # rotated this very second already
        os.rename(path, rotated)
        try:
            await self._runtime.runtime.ReopenContainerLog(
                api_pb2.ReopenContainerLogRequest(container_id=container_id)
            )
        except grpc.aio.AioRpcError as exc:
            os.rename(rotated, path)  # the container still writes to it: keep its name
            log.warning("cannot reopen the log of %s: %s", container_id, exc.details())
            return
        await asyncio.to_thread(self._tidy, path)

    def _tidy(self, path: Path) -> None:
        """Compress all rotated files but the newest; keep `max_files - 1` of them."""
        rotated = sorted(
            p for p in path.parent.glob(path.name + ".*") if not p.name.endswith(".tmp")
        )
        for older in rotated[:-1]:
            if older.suffix != ".gz":
                _compress(older)
        rotated = sorted(
            p for p in path.parent.glob(path.name + ".*") if not p.name.endswith(".tmp")
        )
        for excess in rotated[: max(0, len(rotated) - (self.max_files - 1))]:
            with contextlib.suppress(OSError):
                excess.unlink()


def _compress(path: Path) -> None:
    scratch = path.with_name(path.name + ".gz.tmp")
    with open(path, "rb") as source, gzip.open(scratch, "wb") as target:
        shutil.copyfileobj(source, target)
    os.replace(scratch, path.with_name(path.name + ".gz"))
    path.unlink()
