"""The OpenAPI documents: what kubectl reads before `create`, `apply` and `explain`.

kubectl fetches `/openapi/v3` (an index of one document per group-version,
each URL carrying the hash of its document) and then the documents it needs.
Two things in them change what kubectl does: a `fieldValidation` parameter on
the `patch` operations of a kind tells it the server validates fields itself
(without one, and without a v2 document, `create -f` fails unless
`--validate=false`), and `components.schemas` entries carrying
`x-kubernetes-group-version-kind` are what `explain` prints. Older kubectl
(1.27, 1.28) reads the single Swagger 2.0 document at `/openapi/v2` instead.

The schemas are upstream's (`kubik.api.schemas`), turned from JSON Schema back
into OpenAPI: references renamed, the `null` types the JSON Schema form adds
removed, int-or-string and quantities written as upstream writes them. The
paths come from the registry, so they follow the resources kubik serves.
Rendered documents are kept as bytes until the registry or a custom schema
changes; every document is rendered at once because the index needs the
hash of each.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from kubik.api import errors, schemas
from kubik.api.registry import Registry, Resource
from kubik.apiserver import discovery
from kubik.apiserver.app import KUBERNETES_VERSION
from kubik.apiserver.http import Request, Response

Schema = dict[str, Any]

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_STATUS = _META + "Status"
_DELETE_OPTIONS = _META + "DeleteOptions"
_PATCH = _META + "Patch"
PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_ANSWER_TYPES = ("application/json", "application/yaml")
_WATCH_TYPES = (*_ANSWER_TYPES, "application/json;stream=watch")
# Subresources that stream or tunnel (logs, exec, proxy…) have no object body to describe.
_STREAMING = frozenset({"log", "exec", "attach", "portforward", "proxy"})
_INFO = {"title": "Kubernetes", "version": KUBERNETES_VERSION[2]}
_BEARER = {
    "type": "apiKey",
    "name": "authorization",
    "in": "header",
    "description": "Bearer token authentication",
}


# ----------------------------------------------------------------- schemas


@dataclass(frozen=True, slots=True)
class _Dialect:
    """How one OpenAPI version writes what the JSON Schema form says."""

    ref_prefix: str
    # v3 puts a reference with sibling keywords (a description) inside allOf,
    # as upstream does; Swagger 2.0 keeps the siblings beside `$ref`.
    wrap_refs: bool
    # v3 says int-or-string and quantity with oneOf; Swagger 2.0 cannot, and
    # calls them strings (int-or-string by format), as upstream does.
    one_of: bool


V3 = _Dialect("#/components/schemas/", wrap_refs=True, one_of=True)
V2 = _Dialect("#/definitions/", wrap_refs=False, one_of=False)
_SCHEMA_MAPS = ("properties", "patternProperties")
_SCHEMA_LISTS = ("allOf", "anyOf")
_V3_ONLY = frozenset({"anyOf", "not", "nullable"})


def convert(schema: Any, dialect: _Dialect) -> Any:
    """One schema in `dialect`, from kubik's JSON Schema form (or a CRD's OpenAPI v3)."""
    if not isinstance(schema, dict):
        return schema
    out: Schema = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = dialect.ref_prefix + (schemas.ref_name(schema) or value.rsplit("/", 1)[-1])
        elif key == "type":
            kind = _single_type(value)
            if kind:
                out[key] = kind
        elif key == "oneOf":
            out.update(_one_of(value, dialect))
        elif key in _V3_ONLY and not dialect.one_of:
            continue
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: convert(sub, dialect) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [convert(sub, dialect) for sub in value]
        elif key in ("items", "additionalProperties", "not"):
            out[key] = convert(value, dialect)
        else:
            out[key] = value
    if dialect.wrap_refs and "$ref" in out and len(out) > 1:
        out = {"allOf": [{"$ref": out.pop("$ref")}], **out}
    return out


def _single_type(value: str | list[str]) -> str:
    """The one type a schema has once JSON Schema's "null" is left out."""
    if isinstance(value, str):
        return value if value != "null" else ""
    kinds = [kind for kind in value if kind != "null"]
    return kinds[0] if len(kinds) == 1 else ""


def _one_of(alternatives: list[Schema], dialect: _Dialect) -> Schema:
    kinds = [_single_type(alt.get("type", "")) for alt in alternatives]
    int_or_string = set(kinds) == {"integer", "string"}
    out: Schema = {"format": "int-or-string"} if int_or_string else {}
    if dialect.one_of:
        out["oneOf"] = [convert(alt, dialect) for alt in alternatives]
    else:
        out["type"] = "string"
    return out


@functools.cache
def _builtin_component(name: str, dialect: _Dialect) -> Schema:
    """An upstream definition in `dialect` (cached: the same for every document)."""
    component = convert(schemas.named(name), dialect)
    if component.get("x-kubernetes-group-version-kind"):
        # The JSON Schema form pins apiVersion and kind with an enum; upstream does not.
        for key in ("apiVersion", "kind"):
            component.get("properties", {}).get(key, {}).pop("enum", None)
    return component


def _references(schema: Any, found: set[str]) -> None:
    """Add the definition names `schema` refers to (at any depth) to `found`."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value.rsplit("/", 1)[-1])
            else:
                _references(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _references(value, found)


def custom_schema_name(resource: Resource) -> str:
    """Upstream's definition name of a custom resource: reversed group, version, kind."""
    reversed_group = ".".join(reversed(resource.group.split(".")))
    return f"{reversed_group}.{resource.version}.{resource.kind}"


def _custom_components(resource: Resource, schema: Schema | None) -> dict[str, Schema]:
    """The object and list definitions of a custom resource, from its CRD schema."""
    gvk = {"group": resource.group, "version": resource.version}
    base = schemas.named(_META + "ListMeta")["properties"]
    type_meta = {key: base.get(key) or _typed(key) for key in ("apiVersion", "kind")}
    obj = dict(schema or {"x-kubernetes-preserve-unknown-fields": True})
    obj["type"] = "object"
    obj["properties"] = {
        **(obj.get("properties") or {}),
        **type_meta,
        "metadata": {"$ref": f"#/$defs/{_META}ObjectMeta"},
    }
    obj["x-kubernetes-group-version-kind"] = [{**gvk, "kind": resource.kind}]
    name = resource.schema_name or custom_schema_name(resource)
    listing = {
        "type": "object",
        "properties": {
            **type_meta,
            "items": {"type": "array", "items": {"$ref": f"#/$defs/{name}"}},
            "metadata": {"$ref": f"#/$defs/{_META}ListMeta"},
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [{**gvk, "kind": resource.list_kind}],
    }
    return {name: obj, name + "List": listing}


def _typed(key: str) -> Schema:
    return {"type": "string", "description": f"{key} of the object"}


# ------------------------------------------------------------------ paths


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    kind: str  # the parameter's type
    description: str
    where: str = "query"


_QUERY = {
    p.name: p
    for p in (
        _Param("pretty", "string", "Pretty-print the answer when 'true'."),
        _Param(
            "dryRun",
            "string",
            "When 'All', the request is fully processed but nothing is persisted.",
        ),
        _Param(
            "fieldManager",
            "string",
            "The name of the actor making the change, recorded in managedFields. "
            "Required for apply patches.",
        ),
        _Param(
            "fieldValidation",
            "string",
            "What to do with unknown or duplicate fields in the object: Ignore them, "
            "Warn (answer with a warning for each), or Strict (fail the request).",
        ),
        _Param(
            "force",
            "boolean",
            "Apply patches only: take over fields other managers own instead of "
            "failing with a conflict.",
        ),
        _Param(
            "gracePeriodSeconds",
            "integer",
            "Seconds before the object is deleted; 0 deletes at once, unset uses the "
            "kind's default.",
        ),
        _Param(
            "orphanDependents",
            "boolean",
            "Deprecated, use propagationPolicy: whether the dependents are orphaned.",
        ),
        _Param(
            "propagationPolicy",
            "string",
            "What happens to dependents: Orphan, Background or Foreground deletion.",
        ),
        _Param("labelSelector", "string", "Only objects whose labels match this selector."),
        _Param("fieldSelector", "string", "Only objects whose fields match this selector."),
        _Param(
            "resourceVersion",
            "string",
            "The resource version the answer is served at or after (see "
            "resourceVersionMatch).",
        ),
        _Param(
            "resourceVersionMatch",
            "string",
            "How resourceVersion applies to a list: NotOlderThan or Exact.",
        ),
        _Param(
            "limit",
            "integer",
            "The most objects to return; the list metadata carries a continue token "
            "when more remain.",
        ),
        _Param("continue", "string", "The token of a previous limited list, to read on."),
        _Param("timeoutSeconds", "integer", "End the list or watch after this many seconds."),
        _Param("watch", "boolean", "Stream the changes to the objects instead of listing them."),
        _Param("allowWatchBookmarks", "boolean", "Send BOOKMARK events in the watch."),
        _Param(
            "sendInitialEvents",
            "boolean",
            "Begin the watch with an ADDED event for every existing object, then a bookmark.",
        ),
    )
}


def _query(*names: str) -> tuple[_Param, ...]:
    return tuple(_QUERY[name] for name in names)


_WRITE = _query("dryRun", "fieldManager", "fieldValidation")
_PATCHING = _query("dryRun", "force", "fieldManager", "fieldValidation")
_DELETE = _query("gracePeriodSeconds", "orphanDependents", "propagationPolicy", "dryRun")
_SELECT = _query(
    "labelSelector",
    "fieldSelector",
    "resourceVersion",
    "resourceVersionMatch",
    "timeoutSeconds",
    "limit",
    "continue",
)
_LIST = (*_SELECT, *_query("watch", "allowWatchBookmarks", "sendInitialEvents"))


