"""The async API client every component uses: objects are plain dicts of the wire JSON.

Paths come from the shared resource table (`kubik.api.registry.Resource`),
errors are `ApiError` carrying the server's Status, and calls that are safe
to repeat are retried with backoff when the server is unreachable, busy
(429) or unavailable (5xx), so a restarting API server is a delay, not a
crash, for controllers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from kubik.api.registry import Resource
from kubik.client import kubeconfig
from kubik.client.transport import Transport

log = logging.getLogger(__name__)

Object = dict[str, Any]

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
_RETRIES = 6
_FIRST_BACKOFF = 0.1
_MAX_BACKOFF = 3.0


class ApiError(Exception):
    """A failed call: `code`, `reason` and `message` from the server's Status."""

    def __init__(self, code: int, status: Object) -> None:
        self.code = code
        self.status = status
        self.reason = status.get("reason", "")
        super().__init__(f"{code} {self.reason}: {status.get('message', '')}")

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def conflict(self) -> bool:
        return self.code == 409 and self.reason != "AlreadyExists"

    @property
    def already_exists(self) -> bool:
        return self.code == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        return self.code == 410


def path_of(resource: Resource, namespace: str = "", name: str = "", subresource: str = "") -> str:
    base = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
    if resource.namespaced and namespace:
        base += f"/namespaces/{quote(namespace)}"
    base += f"/{resource.plural}"
    if name:
        base += f"/{quote(name)}"
    if subresource:
        base += f"/{subresource}"
    return base


def _query(**params: Any) -> str:
    pairs = {k: v for k, v in params.items() if v not in (None, "", False)}
    return "?" + urlencode(pairs) if pairs else ""


class Client:
    def __init__(self, transport: Transport, *, user_agent: str = "kubik") -> None:
        self._transport = transport
        self.user_agent = user_agent

    @classmethod
    def from_kubeconfig(
        cls, path: str, *, user_agent: str = "kubik", pool_size: int = 32
    ) -> Client:
        return cls(Transport(kubeconfig.load(path), pool_size=pool_size), user_agent=user_agent)

    async def close(self) -> None:
        await self._transport.close()

    # ------------------------------------------------------------------ core

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        retry: bool = True,
    ) -> Any:
        """One call; the decoded answer, or ApiError. Retried when safe and transient."""
        data = b"" if body is None else orjson.dumps(body)
        headers = [("Accept", "application/json"), ("User-Agent", self.user_agent)]
        if body is not None:
            headers.append(("Content-Type", content_type))
        delay = _FIRST_BACKOFF
        for attempt in range(_RETRIES if retry else 1):
            try:
                answer = await self._transport.request(method, path, body=data, headers=headers)
            except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
                if attempt == _RETRIES - 1 or not retry:
                    raise ApiError(
                        503,
                        {
                            "reason": "ServiceUnavailable",
                            "message": f"cannot reach the API server: {exc}",
                        },
                    ) from None
                log.debug("%s %s: %s; retrying in %.1fs", method, path, exc, delay)
            else:
                if answer.status < 400:
                    return orjson.loads(answer.body) if answer.body else None
                status = _status_of(answer.status, answer.body)
                transient = (
                    answer.status == 429
                    or answer.status >= 502
                    or (answer.status == 500 and status.get("reason") == "ServiceUnavailable")
                )
                if not (retry and transient) or attempt == _RETRIES - 1:
                    raise ApiError(answer.status, status)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- verbs

    async def get(
        self, resource: Resource, namespace: str, name: str, *, subresource: str = ""
    ) -> Object:
        return await self.request("GET", path_of(resource, namespace, name, subresource))

    async def list(
        self,
        resource: Resource,
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
    ) -> Object:
        query = _query(
            labelSelector=label_selector,
            fieldSelector=field_selector,
            limit=limit or None,
            resourceVersion=resource_version,
            **{"continue": continue_token},
        )
        return await self.request("GET", path_of(resource, namespace) + query)

    async def list_all(
        self,
        resource: Resource,
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
        page: int = 500,
    ) -> Object:
        """Every object, fetched in pages read at one revision."""
        selectors = {"label_selector": label_selector, "field_selector": field_selector}
        first = await self.list(resource, namespace, limit=page, **selectors)
        items = list(first.get("items") or [])
        token = first["metadata"].get("continue")
        while token:
            more = await self.list(
                resource, namespace, limit=page, continue_token=token, **selectors
            )
            items += more.get("items") or []
            token = more["metadata"].get("continue")
        return {**first, "items": items, "metadata": {**first["metadata"], "continue": ""}}

    async def create(self, resource: Resource, obj: Object, *, namespace: str = "") -> Object:
        namespace = namespace or (obj.get("metadata") or {}).get("namespace", "")
        # a create is not idempotent: never retried blindly (AlreadyExists tells the caller)
        return await self.request("POST", path_of(resource, namespace), body=obj, retry=False)

    async def post_subresource(
        self, resource: Resource, namespace: str, name: str, subresource: str, body: Object
    ) -> Object:
        """POST to a subresource: pods/binding, pods/eviction, serviceaccounts/token."""
        return await self.request(
            "POST", path_of(resource, namespace, name, subresource), body=body, retry=False
        )

    async def update(self, resource: Resource, obj: Object, *, subresource: str = "") -> Object:
        meta = obj["metadata"]
        path = path_of(resource, meta.get("namespace", ""), meta["name"], subresource)
        return await self.request("PUT", path, body=obj)

    async def update_status(self, resource: Resource, obj: Object) -> Object:
        return await self.update(resource, obj, subresource="status")

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Any,
        *,
        patch_type: str = "merge",
        subresource: str = "",
        field_manager: str = "",
        force: bool = False,
    ) -> Object:
        path = path_of(resource, namespace, name, subresource) + _query(
            fieldManager=field_manager, force="true" if force else ""
        )
        return await self.request("PATCH", path, body=patch, content_type=PATCH_TYPES[patch_type])

    async def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        *,
        propagation_policy: str = "",
        grace_period: int | None = None,
        uid: str = "",
        resource_version: str = "",
    ) -> Object | None:
        options: Object = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if grace_period is not None:
            options["gracePeriodSeconds"] = grace_period
        preconditions = {
            k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v
        }
        if preconditions:
            options["preconditions"] = preconditions
        return await self.request("DELETE", path_of(resource, namespace, name), body=options)

    async def watch(
        self,
        resource: Resource,
        namespace: str = "",
        *,
        resource_version: str,
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, Object]]:
        """(type, object) pairs, BOOKMARKs included; ends when the server closes the stream.

        An ERROR event raises ApiError (410 Gone when the revision is too old).
        """
        query = _query(
            watch="true",
            resourceVersion=resource_version,
            allowWatchBookmarks="true",
            timeoutSeconds=timeout_seconds,
            labelSelector=label_selector,
            fieldSelector=field_selector,
        )
        lines = self._transport.stream_lines(
            path_of(resource, namespace) + query, headers=[("Accept", "application/json")]
        )
        try:
            async for line in lines:
                event = orjson.loads(line)
                if event.get("type") == "ERROR" or "type" not in event:
                    status = event.get("object") or event
                    raise ApiError(int(status.get("code") or 500), status)
                yield event["type"], event["object"]
        finally:
            await lines.aclose()


def _status_of(code: int, body: bytes) -> Object:
    try:
        status = orjson.loads(body)
        if isinstance(status, dict):
            return status
    except orjson.JSONDecodeError:
        pass
    return {"reason": "Unknown", "message": body[:200].decode(errors="replace"), "code": code}
