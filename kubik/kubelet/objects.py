"""ConfigMaps and Secrets read from the API for one pod's start, as the kubelet's getters.

Environment variables, volumes and image pull secrets all ask "this object, or
None if it does not exist"; a short-lived cache spares the API server from
the same GET for every container of a pod. Only the node's own credentials
are used, so what a node can read stays what the authorizer lets it read.
"""

from __future__ import annotations

import time
from typing import Any

from kubik.api import builtin
from kubik.client.api import ApiError, Client

Object = dict[str, Any]

_RESOURCES = {
    "configmaps": builtin.lookup("", "v1", "configmaps"),
    "secrets": builtin.lookup("", "v1", "secrets"),
}
_TTL = 2.0  # seconds an answer is reused
_MAX_CACHED = 512


class ApiObjects:
    def __init__(self, client: Client, *, ttl: float = _TTL) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[tuple[str, str, str], tuple[float, Object | None]] = {}

    async def get(self, resource: str, namespace: str, name: str) -> Object | None:
        key = (resource, namespace, name)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            obj = await self._client.get(_RESOURCES[resource], namespace, name)
        except ApiError as exc:
            if not exc.not_found:
                raise
            obj = None
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (now, obj)
        return obj
