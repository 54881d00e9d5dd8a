"""Checking, in tests, that admission refuses a write as upstream does."""

from __future__ import annotations

import pytest

from kubik.client.api import ApiError, Client


async def refused(client: Client, namespace: str, resource, obj: dict) -> str:
    """Create `obj`, which must be refused with 403 Forbidden; the Status's message."""
    with pytest.raises(ApiError) as caught:
        await client.create(resource, obj, namespace=namespace)
    assert caught.value.code == 403, caught.value
    assert caught.value.reason == "Forbidden"
    return caught.value.status["message"]
