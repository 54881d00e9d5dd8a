"""Discovery documents: what kubectl reads before every resource command.

Both forms upstream serves: the aggregated document (`apidiscovery.k8s.io`
v2 or v2beta1, chosen by the Accept header: answering v2 to a client that
asked only for v2beta1 breaks it) and the legacy walk (`/api`, `/apis`,
`/api/v1`, `/apis/GROUP/VERSION`).
"""

from __future__ import annotations

from typing import Any

from kubik.api.registry import Registry, Resource
from kubik.apiserver import codec

_GET_PATCH_UPDATE = ["get", "patch", "update"]

# subresource → (verbs, response kind (group, version, kind) or None for the parent's)
SUBRESOURCES: dict[str, tuple[list[str], tuple[str, str, str] | None]] = {
    "status": (_GET_PATCH_UPDATE, None),
    "scale": (_GET_PATCH_UPDATE, ("autoscaling", "v1", "Scale")),
    "binding": (["create"], ("", "v1", "Binding")),
    "eviction": (["create"], ("policy", "v1", "Eviction")),
    "log": (["get"], None),
    "exec": (["create", "get"], ("", "v1", "PodExecOptions")),
    "attach": (["create", "get"], ("", "v1", "PodAttachOptions")),
    "portforward": (["create", "get"], ("", "v1", "PodPortForwardOptions")),
    "proxy": (["create", "delete", "get", "patch", "update"], None),
    "token": (["create"], ("authentication.k8s.io", "v1", "TokenRequest")),
    "finalize": (["update"], None),
    "ephemeralcontainers": (_GET_PATCH_UPDATE, None),
    "resize": (_GET_PATCH_UPDATE, None),
}

_AGGREGATED = ("v2", "v2beta1")


def aggregated_version(accept: str) -> str:
    """The aggregated discovery version the Accept header asks for first ("" for none)."""
    for media_type, params in codec.parse_media_types(accept):
        if (
            media_type == codec.JSON
            and params.get("g") == "apidiscovery.k8s.io"
            and params.get("as") == "APIGroupDiscoveryList"
            and params.get("v") in _AGGREGATED
        ):
            return params["v"]
    return ""


def aggregated_content_type(version: str) -> str:
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def aggregated(registry: Registry, *, legacy: bool, version: str) -> dict[str, Any]:
    """APIGroupDiscoveryList for /api (legacy=True: the core group) or /apis."""
    items = []
    for group, versions in registry.group_versions().items():
        if (group == "") != legacy:
            continue
        items.append(
            {
                "metadata": {"name": group},
                "versions": [
                    {
                        "version": v,
                        "resources": [
                            _aggregated_resource(r)
                            for r in _sorted(registry.in_group_version(group, v))
                        ],
                        "freshness": "Current",
                    }
                    for v in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def _sorted(resources: list[Resource]) -> list[Resource]:
    return sorted(resources, key=lambda r: r.plural)


def _response_kind(resource: Resource, kind: tuple[str, str, str] | None) -> dict[str, str]:
    group, version, name = kind or (resource.group, resource.version, resource.kind)
    return {"group": group, "version": version, "kind": name}


def _aggregated_resource(resource: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource.plural,
        "responseKind": _response_kind(resource, None),
        "scope": "Namespaced" if resource.namespaced else "Cluster",
        "singularResource": resource.singular,
        "verbs": sorted(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    subresources = []
    for name in resource.subresources:
        verbs, kind = SUBRESOURCES[name]
        subresources.append(
            {"subresource": name, "responseKind": _response_kind(resource, kind), "verbs": verbs}
        )
    if subresources:
        entry["subresources"] = subresources
    return entry


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            _group_entry(group, versions)
            for group, versions in registry.group_versions().items()
            if group
        ],
    }


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.group_versions().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    resources = _sorted(registry.in_group_version(group, version))
    if not resources:
        return None
    listed = []
    for resource in resources:
        entry: dict[str, Any] = {
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": sorted(resource.verbs),
        }
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        if resource.categories:
            entry["categories"] = list(resource.categories)
        listed.append(entry)
        for name in resource.subresources:
            verbs, kind = SUBRESOURCES[name]
            sub: dict[str, Any] = {
                "name": f"{resource.plural}/{name}",
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": kind[2] if kind else resource.kind,
                "verbs": verbs,
            }
            if kind and kind[0] != resource.group:
                sub["group"], sub["version"] = kind[0], kind[1]
            listed.append(sub)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": listed,
    }
