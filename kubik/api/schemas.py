"""Upstream's schemas of the built-in kinds, from the `kubernetes-validate` package.

That package ships the OpenAPI definitions of each Kubernetes release as
JSON Schema (with the `x-kubernetes-*` extensions: patch merge keys and
strategies, list types and map keys, group-version-kind), which is what
strategic merge patch, server-side apply, unknown-field checks and the
served OpenAPI documents need. Definitions are loaded once, lazily.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

import orjson

# The Kubernetes release kubik's API answers as: its schemas, /version, OpenAPI info.
KUBERNETES_VERSION = "v1.32.0"
SCHEMA_VERSION = f"{KUBERNETES_VERSION}-local"
_REF_PREFIX = "#/$defs/"

Schema = dict[str, Any]


@functools.cache
def definitions() -> dict[str, Schema]:
    """Every definition by name (e.g. io.k8s.api.core.v1.Pod)."""
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    data = orjson.loads((root / SCHEMA_VERSION / "_definitions.json").read_bytes())
    return data["$defs"]


def ref_name(schema: Schema) -> str:
    """The definition a `$ref` schema points at ("" when it is not a reference)."""
    ref = schema.get("$ref", "")
    return ref[len(_REF_PREFIX) :] if ref.startswith(_REF_PREFIX) else ""


def resolve(schema: Schema | None) -> Schema:
    """Follow `$ref`s to the schema they name (an empty schema for None).

    Hot: every walk over an object resolves at each step, so references
    are looked up once and remembered by their text.
    """
    if not schema:
        return {}
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return _resolve_ref(ref)


@functools.cache
def _resolve_ref(ref: str) -> Schema:
    schema = definitions().get(ref[len(_REF_PREFIX) :]) if ref.startswith(_REF_PREFIX) else None
    return resolve(schema)


def named(name: str) -> Schema:
    return definitions().get(name, {})


def field(schema: Schema | None, key: str) -> Schema:
    """The schema of property `key` of an object schema (resolved), or {} if unknown."""
    schema = resolve(schema)
    properties = schema.get("properties")
    if properties and key in properties:
        return resolve(properties[key])
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        return resolve(additional)
    return {}


def items(schema: Schema | None) -> Schema:
    """The schema of the items of an array schema (resolved)."""
    return resolve(resolve(schema).get("items"))


def types(schema: Schema | None) -> set[str]:
    """The JSON types a schema allows ("null" left out)."""
    kind = resolve(schema).get("type")
    if isinstance(kind, str):
        return {kind} - {"null"}
    return set(kind or ()) - {"null"}


def property_schema(schema: Schema, key: str) -> Schema:
    """The unresolved property schema (where list extensions live beside a `$ref`)."""
    return (resolve(schema).get("properties") or {}).get(key, {})


def gvk_names() -> dict[tuple[str, str, str], str]:
    """(group, version, kind) → definition name, for every kind with a GVK extension."""
    return _gvk_index()


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            index[(gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))] = name
    return index
