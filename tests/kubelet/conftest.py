"""A real containerd for kubelet tests, inside a network namespace of the test's own.

The `containerd` fixture (one per test module) is
`tests.support.containerd.running_containerd()`: offline images imported,
pods under the fixture's own cgroup parent, and everything undone afterwards.

Its `client` is bound to the module's event loop, so the tests that use it
run in that loop: `pytestmark = pytest.mark.asyncio(loop_scope="module")`
in the module, or the same mark on each such test. Tests in function loops
use the `cri` fixture instead: a RuntimeClient of their own loop on the same
containerd.
"""

from __future__ import annotations

import pytest
import pytest_asyncio

from kubik.kubelet.cri.client import RuntimeClient
from tests.support.containerd import running_containerd


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def containerd():
    async with running_containerd() as env:
        yield env


@pytest.fixture
async def cri(containerd):
    """A RuntimeClient on the module's containerd, in the test's own event loop."""
    client = RuntimeClient(containerd.socket)
    yield client
    await client.close()
