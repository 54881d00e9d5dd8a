"""Discovery for clients: every resource the server serves, read from its discovery documents.

The garbage collector and the namespace controller must act on every kind,
custom resources included, so they ask the server rather than a fixed table.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubik.api import builtin
from kubik.api.registry import Resource
from kubik.client.api import ApiError, Client

Object = dict[str, Any]


async def served_resources(client: Client) -> tuple[list[Resource], dict[str, str]]:
    """Every top-level resource the server serves, at its group's preferred version.

    Also the group versions whose resource list could not be read, with the
    reason: discovery goes on without them, as client-go's
    ServerPreferredResources does. Built-in resources are the shared
    `kubik.api.builtin` entries, so informers on them are shared with the
    other controllers.
    """
    groups = await client.request("GET", "/apis")
    versions = ["v1"] + [
        group["preferredVersion"]["groupVersion"] for group in groups.get("groups") or []
    ]
    answers = await asyncio.gather(
        *(client.request("GET", _discovery_path(gv)) for gv in versions),
        return_exceptions=True,
    )
    resources: list[Resource] = []
    failed: dict[str, str] = {}
    for group_version, answer in zip(versions, answers, strict=True):
        if isinstance(answer, ApiError):
            failed[group_version] = answer.status.get("message") or str(answer)
            continue
        if isinstance(answer, BaseException):
            raise answer
        group, _, version = group_version.rpartition("/")
        for entry in answer.get("resources") or []:
            if "/" not in entry["name"]:
                resources.append(_resource(group, version, entry))
    return resources, failed


def _discovery_path(group_version: str) -> str:
    return "/api/v1" if group_version == "v1" else f"/apis/{group_version}"


def _resource(group: str, version: str, entry: Object) -> Resource:
    try:
        return builtin.lookup(group, version, entry["name"])
    except KeyError:
        return Resource(
            group,
            version,
            entry["kind"],
            entry["name"],
            bool(entry.get("namespaced")),
            verbs=tuple(entry.get("verbs") or ()),
        )
