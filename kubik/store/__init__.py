"""The cluster store: one async contract (`interface.Store`), two backends.

`open_store(endpoint, data_dir=...)` picks the backend from the datastore
endpoint string (see `endpoint.parse`): SQLite by default, etcd for HA.
"""

from __future__ import annotations

from kubik.store import endpoint as endpoint_mod
from kubik.store.interface import Store


async def open_store(endpoint: str, *, data_dir: str) -> Store:
    """Open the backend the endpoint names; raises StoreError subclasses."""
    parsed = endpoint_mod.parse(endpoint, data_dir=data_dir)
    if isinstance(parsed, endpoint_mod.EtcdEndpoint):
        from kubik.store import etcd

        return await etcd.EtcdStore.connect(parsed.members)
    from kubik.store import sqlite

    return await sqlite.SqliteStore.open(parsed.path)
