"""One real `kubik server` per test module and backend: the embedded store, and a real etcd
(a fresh one per module, so modules never see each other's objects)."""

from __future__ import annotations

import pytest

from tests.support.cluster import KubikServer
from tests.support.etcd import EtcdCluster


@pytest.fixture(scope="module", params=["sqlite", "etcd"])
def server(request, tmp_path_factory):
    endpoint = ""
    cluster = None
    if request.param == "etcd":
        cluster = EtcdCluster(size=1, base_dir=tmp_path_factory.mktemp("e2e-etcd"))
        cluster.start()
        endpoint = "etcd://" + ",".join(f"{host}:{port}" for host, port in cluster.endpoints)
    kubik = KubikServer(tmp_path_factory.mktemp("kubik"), datastore_endpoint=endpoint).start()
    yield kubik
    kubik.stop()
    if cluster is not None:
        cluster.stop()
