"""The store as a component: opened from the datastore endpoint, compacted periodically."""

from __future__ import annotations

import logging

from kubik import component
from kubik.store import compactor, endpoint, open_store
from kubik.store.interface import Store

log = logging.getLogger(__name__)


class StoreService(component.Component):
    name = "store"

    def __init__(
        self, *, datastore_endpoint: str, data_dir: str, compaction_interval: float = 300.0
    ) -> None:
        super().__init__()
        self._endpoint = datastore_endpoint
        self._data_dir = data_dir
        self._compaction_interval = compaction_interval
        self.store: Store | None = None
        self._compactor: compactor.Compactor | None = None

    async def start(self) -> None:
        parsed = endpoint.parse(self._endpoint, data_dir=self._data_dir)
        log.info("opening the store: %s", _describe(parsed))
        self.store = await open_store(self._endpoint, data_dir=self._data_dir)
        revision = await self.store.current_revision()
        log.info("store open at revision %d", revision)
        self._compactor = compactor.Compactor(self.store, interval=self._compaction_interval)
        self._compactor.start()
        self.ready.set()

    async def stop(self) -> None:
        if self._compactor is not None:
            await self._compactor.stop()
        if self.store is not None:
            await self.store.close()


def _describe(parsed: endpoint.Endpoint) -> str:
    if isinstance(parsed, endpoint.SqliteEndpoint):
        return f"embedded SQLite at {parsed.path}"
    members = ", ".join(f"{host}:{port}" for host, port in parsed.members)
    return f"etcd at {members}"
