"""One real `kubik server` per test module, on the embedded store."""

from __future__ import annotations

import pytest

from tests.support.cluster import KubikServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(tmp_path_factory.mktemp("kubik")).start()
    yield kubik
    kubik.stop()
