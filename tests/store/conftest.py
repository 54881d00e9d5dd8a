"""Backends the store contract suite runs against, unchanged.

- `sqlite`: a fresh database file per test;
- `etcd1`: one real etcd member, started once per session on 127.0.0.1;
- `etcd3`: a real 3-member etcd cluster, started once per session.

Each test gets its own key prefix, so tests sharing an etcd cluster never see
each other's keys.
"""

from __future__ import annotations

import uuid

import pytest

from kubik.store import sqlite
from tests.support import etcd as etcd_support

BACKENDS = ["sqlite", "etcd1", "etcd3"]


@pytest.fixture(scope="session")
def etcd1(tmp_path_factory):
    cluster = etcd_support.EtcdCluster(size=1, base_dir=tmp_path_factory.mktemp("etcd1"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def etcd3(tmp_path_factory):
    cluster = etcd_support.EtcdCluster(size=3, base_dir=tmp_path_factory.mktemp("etcd3"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
async def store(request, backend, tmp_path):
    if backend == "sqlite":
        opened = await sqlite.SqliteStore.open(str(tmp_path / "state.db"))
    else:
        from kubik.store import etcd

        cluster = request.getfixturevalue(backend)
        opened = await etcd.EtcdStore.connect(cluster.endpoints)
    yield opened
    await opened.close()


@pytest.fixture
def prefix():
    return f"/registry/test-{uuid.uuid4().hex[:12]}/"
