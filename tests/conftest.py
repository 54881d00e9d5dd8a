"""Fixtures test modules share; each module that uses them brings its own `server`."""

from __future__ import annotations

import uuid

import pytest

from kubik.api import builtin
from kubik.client.api import Client

NAMESPACES = builtin.lookup("", "v1", "namespaces")


@pytest.fixture
async def client(server):
    api = Client.from_kubeconfig(server.kubeconfig)
    yield api
    await api.close()


@pytest.fixture
async def namespace(request, client):
    """A fresh namespace named after the test module (test_job → job-1a2b3c4d)."""
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name
