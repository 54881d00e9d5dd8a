"""Reject bodies whose values have the wrong JSON type for the kind's schema.

Upstream decodes every body into typed Go structs, so `"finalizers": true`
or `"replicas": "3"` fail at decoding with 400 BadRequest before any
defaulting or validation runs. kubik keeps objects as dicts, so it checks the
same thing against upstream's schemas (kubik.api.schemas) once, up front;
every later step can then trust the shapes. Unknown fields are left to the
field-validation step; nulls are accepted as Go decodes them (zero values).
"""

from __future__ import annotations

from typing import Any

from kubik.api import errors, schemas
from kubik.api.registry import Resource

_JSON_TYPE = {
    bool: "bool",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def check(resource: Resource, obj: Any) -> None:
    """400 BadRequest naming the first field whose value has the wrong type."""
    if not resource.schema_name:
        return  # custom resources are checked against their CRD schema elsewhere
    problem = _first_problem(obj, schemas.named(resource.schema_name), "")
    if problem:
        raise errors.bad_request(problem)


def _allowed(schema: schemas.Schema) -> set[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return {"integer", "string"}
    allowed = schemas.types(schema)
    if not allowed and "properties" in schema:
        allowed = {"object"}
    return allowed


def _fits(value: Any, allowed: set[str]) -> bool:
    if not allowed:
        return True  # the schema does not say (e.g. a free-form field)
    if isinstance(value, bool):
        return "boolean" in allowed
    if isinstance(value, int):
        return bool(allowed & {"integer", "number"})
    if isinstance(value, float):
        return "number" in allowed or ("integer" in allowed and value.is_integer())
    if isinstance(value, str):
        return "string" in allowed
    if isinstance(value, list):
        return "array" in allowed
    if isinstance(value, dict):
        return "object" in allowed
    return False


def _first_problem(value: Any, schema: schemas.Schema, path: str) -> str:
    if value is None:
        return ""
    schema = schemas.resolve(schema)
    allowed = _allowed(schema)
    if not _fits(value, allowed):
        expected = " or ".join(sorted(allowed))
        return (
            f"the value of {path or 'the body'} is a {_JSON_TYPE.get(type(value), 'value')}, "
            f"but the schema wants {expected}"
        )
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                sub = properties[key]
            elif isinstance(additional, dict):
                sub = additional
            else:
                continue  # unknown: field validation decides
            problem = _first_problem(item, sub, f"{path}.{key}" if path else key)
            if problem:
                return problem
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                problem = _first_problem(item, items, f"{path}[{index}]")
                if problem:
                    return problem
    return ""
