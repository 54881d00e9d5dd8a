"""The files of configMap, secret, downwardAPI and projected volumes (their payloads).

Each builder turns a volume source and the objects it names into
relative path → FileProjection, with upstream's rules: `items` pick keys
(and rename them), a missing key is an error unless the source is optional,
modes come from the item or the source's `defaultMode` (0644). Projected
service account tokens are requested from the API server, bound to the
pod, and reused until 80% of their lifetime has passed, as upstream's token
manager does.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from kubik.api import builtin
from kubik.client.api import ApiError, Client
from kubik.kubelet import downwardapi
from kubik.kubelet.volumes.atomicwriter import FileProjection

Object = dict[str, Any]
Payload = dict[str, FileProjection]

SERVICE_ACCOUNTS = builtin.lookup("", "v1", "serviceaccounts")
DEFAULT_MODE = 0o644
DEFAULT_TOKEN_SECONDS = 3600
_MAX_TOKEN_AGE = 24 * 3600  # a token older than this is renewed whatever its lifetime
_REFRESH_FRACTION = 0.2  # renewed once within the last 20% of its lifetime


class Objects(Protocol):
    async def get(self, resource: str, namespace: str, name: str) -> Object | None: ...


class SourceError(Exception):
    """A payload that cannot be made; the message is upstream's."""


def aggregate(messages: list[str]) -> str:
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def _key_data(resource: str, obj: Object) -> dict[str, bytes]:
    """Key → bytes of a ConfigMap (data and binaryData) or a Secret (data)."""
    found: dict[str, bytes] = {}
    if resource == "configmaps":
        found.update((key, value.encode()) for key, value in (obj.get("data") or {}).items())
        found.update(
            (key, base64.b64decode(value)) for key, value in (obj.get("binaryData") or {}).items()
        )
    else:
        found.update(
            (key, base64.b64decode(value)) for key, value in (obj.get("data") or {}).items()
        )
    return found


def key_payload(
    resource: str, obj: Object | None, items: list[Object], default_mode: int, optional: bool
) -> Payload:
    """The files of a ConfigMap or Secret: every key, or the keys `items` name, renamed."""
    data = _key_data(resource, obj or {})
    if not items:
        return {key: FileProjection(value, default_mode) for key, value in data.items()}
    payload = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            if resource == "configmaps":
                raise SourceError(f"configmap references non-existent config key: {key}")
            raise SourceError(f"references non-existent secret key: {key}")
        mode = item.get("mode")
        payload[item.get("path", key)] = FileProjection(
            data[key], default_mode if mode is None else mode
        )
    return payload


def downward_payload(
    pod: Object, items: list[Object], default_mode: int, allocatable: Mapping[str, Any]
) -> Payload:
    payload, errors = {}, []
    for item in items:
        mode = item.get("mode")
        value = ""
        try:
            if (ref := item.get("fieldRef")) is not None:
                value = downwardapi.field_value(
                    pod, ref.get("fieldPath", ""), api_version=ref.get("apiVersion", "v1")
                )
            elif (ref := item.get("resourceFieldRef")) is not None:
                value = downwardapi.resource_value(ref, pod, None, allocatable=allocatable)
        except downwardapi.DownwardAPIError as exc:
            errors.append(str(exc))
        payload[item.get("path", "")] = FileProjection(
            value.encode(), default_mode if mode is None else mode
        )
    if errors:
        raise SourceError(aggregate(errors))
    return payload


@dataclass(slots=True)
class _Token:
    token: str
    expires: float
    lifetime: float  # as granted: the token was issued `lifetime` seconds before it expires

    def needs_refresh(self, now: float) -> bool:
        issued = self.expires - self.lifetime
        due = self.expires - self.lifetime * _REFRESH_FRACTION
        return now > due or now > issued + _MAX_TOKEN_AGE


class Builder:
    """Makes payloads, reading objects through `objects` and tokens through `client`."""

    def __init__(
        self, objects: Objects, client: Client | None, allocatable: Mapping[str, Any]
    ) -> None:
        self._objects = objects
        self._client = client
        self._allocatable = allocatable
        self._tokens: dict[tuple, _Token] = {}

    async def _object(self, resource: str, pod: Object, name: str, optional: bool) -> Object | None:
        obj = await self._objects.get(resource, pod["metadata"]["namespace"], name)
        if obj is None and not optional:
            kind = "configmap" if resource == "configmaps" else "secret"
            raise SourceError(f'{kind} "{name}" not found')
        return obj

    async def configmap(self, pod: Object, source: Object) -> Payload:
        return await self._keys("configmaps", pod, source, source.get("name", ""), DEFAULT_MODE)

    async def secret(self, pod: Object, source: Object) -> Payload:
        return await self._keys("secrets", pod, source, source.get("secretName", ""), DEFAULT_MODE)

    async def _keys(
        self, resource: str, pod: Object, source: Object, name: str, default_mode: int
    ) -> Payload:
        optional = bool(source.get("optional"))
        obj = await self._object(resource, pod, name, optional)
        mode = source.get("defaultMode", default_mode)
        return key_payload(resource, obj, source.get("items") or [], mode, optional)

    def downward(self, pod: Object, source: Object) -> Payload:
        mode = source.get("defaultMode", DEFAULT_MODE)
        return downward_payload(pod, source.get("items") or [], mode, self._allocatable)

    async def projected(self, pod: Object, source: Object) -> Payload:
        mode = source.get("defaultMode", DEFAULT_MODE)
        payload: Payload = {}
        errors: list[str] = []
        for part in source.get("sources") or []:
            try:
                if (ref := part.get("configMap")) is not None:
                    payload |= await self._keys("configmaps", pod, ref, ref.get("name", ""), mode)
                elif (ref := part.get("secret")) is not None:
                    payload |= await self._keys("secrets", pod, ref, ref.get("name", ""), mode)
                elif (ref := part.get("downwardAPI")) is not None:
                    payload |= downward_payload(
                        pod, ref.get("items") or [], mode, self._allocatable
                    )
                elif (ref := part.get("serviceAccountToken")) is not None:
                    token = await self.token(pod, ref)
                    payload[ref.get("path", "token")] = FileProjection(token.encode(), mode)
            except SourceError as exc:
                errors.append(str(exc))
        if errors:
            raise SourceError(aggregate(errors))
        return payload

    async def token(self, pod: Object, projection: Object) -> str:
        """A token for the pod's service account, bound to the pod; renewed when due."""
        meta = pod["metadata"]
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        audience = projection.get("audience") or ""
        seconds = projection.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS
        key = (meta.get("uid", ""), account, audience, seconds)
        now = time.time()
        cached = self._tokens.get(key)
        if cached is not None and not cached.needs_refresh(now):
            return cached.token
        if self._client is None:
            raise SourceError("failed to fetch token: no API client")
        spec: Object = {
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta.get("name", ""),
                "uid": meta.get("uid", ""),
            },
        }
        if audience:
            spec["audiences"] = [audience]
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        try:
            answer = await self._client.post_subresource(
                SERVICE_ACCOUNTS, meta.get("namespace", ""), account, "token", request
            )
        except ApiError as exc:
            if cached is not None and now < cached.expires:
                return cached.token  # still valid: keep it until the API server answers
            raise SourceError(f"failed to fetch token: {exc.status.get('message', exc)}") from None
        status = answer.get("status") or {}
        granted = (answer.get("spec") or {}).get("expirationSeconds") or seconds
        expires = _timestamp(status.get("expirationTimestamp") or "") or now + granted
        self._tokens[key] = _Token(status.get("token", ""), expires, granted)
        return self._tokens[key].token

    def forget(self, pod_uid: str) -> None:
        """Drop the tokens of a pod that is gone."""
        for key in [key for key in self._tokens if key[0] == pod_uid]:
            del self._tokens[key]


def _timestamp(text: str) -> float:
    if not text:
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
