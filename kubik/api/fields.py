"""Fields an object holds that its kind's schema does not know.

`fieldValidation=Strict` turns them into a 400 (`strict decoding error:
unknown field "spec.foo"`), `Warn` into Warning headers, `Ignore` (and old
clients) drops them silently, as upstream's decoder does. The schema is
upstream's OpenAPI definition of the kind (kubik.api.schemas): object
properties, maps (additionalProperties), arrays (items); a schema with
neither properties nor a map type (RawExtension, FieldsV1, JSON) or one
marked x-kubernetes-preserve-unknown-fields takes anything.

Paths are written as upstream's decoder writes them: `spec.containers[0].foo`,
map keys as a further segment (`metadata.labels.x`).
"""

from __future__ import annotations

from typing import Any

from kubik.api import schemas
from kubik.api.registry import Resource

Schema = dict[str, Any]


def unknown_fields(resource: Resource, obj: dict[str, Any]) -> list[str]:
    """The paths of the fields `obj` holds that its kind does not define, in document order."""
    return _unknown(resource, obj, drop=False)


def drop_unknown_fields(resource: Resource, obj: dict[str, Any]) -> list[str]:
    """Remove the fields the kind does not define (as upstream's decoder drops them);
    returns their paths."""
    return _unknown(resource, obj, drop=True)


def _unknown(resource: Resource, obj: dict[str, Any], *, drop: bool) -> list[str]:
    if not resource.schema_name:
        return []  # custom resources: their CRD's schema governs (pruning), not this
    found: list[str] = []
    _walk(obj, schemas.named(resource.schema_name), "", found, drop)
    return found


def _walk(value: Any, schema: Schema | None, path: str, found: list[str], drop: bool) -> None:
    schema = schemas.resolve(schema)
    if not schema or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        if properties is None and not isinstance(additional, dict):
            return  # an object of any shape
        for key, item in list(value.items()):
            at = f"{path}.{key}" if path else key
            if properties is not None and key in properties:
                _walk(item, properties[key], at, found, drop)
            elif isinstance(additional, dict):
                _walk(item, additional, at, found, drop)
            else:
                found.append(at)
                if drop:
                    del value[key]
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _walk(item, schema["items"], f"{path}[{index}]", found, drop)
