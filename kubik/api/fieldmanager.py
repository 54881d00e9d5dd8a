"""managedFields: which field manager set which fields, as upstream records them.

Every write records an entry per (manager, operation, apiVersion) with the
set of fields it owns in the FieldsV1 form (`{"f:spec": {"f:replicas": {}}}`,
list items of keyed lists as `k:{"name":"web"}`, other list items as
`v:…`/`i:…`). Server-side apply (`apply.py`) decides conflicts from it.
"""

from __future__ import annotations

from typing import Any

from kubik.api import meta

Object = dict[str, Any]

# Fields the server owns, never attributed to a manager.
_IGNORED_METADATA = {
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "name",
    "namespace",
}


def fields_of(obj: Any, *, top: bool = True) -> dict:
    """The FieldsV1 set of every leaf field in `obj` (lists are atomic here)."""
    if not isinstance(obj, dict):
        return {}
    result: dict = {}
    for key, value in obj.items():
        if top and key in ("apiVersion", "kind", "status"):
            continue
        if top and key == "metadata":
            sub = {k: v for k, v in (value or {}).items() if k not in _IGNORED_METADATA}
            if sub:
                result["f:metadata"] = fields_of(sub, top=False)
            continue
        result[f"f:{key}"] = fields_of(value, top=False) if isinstance(value, dict) else {}
    return result


def record(obj: Object, old: Object | None, *, manager: str, operation: str) -> None:
    """Attribute the fields this write set (all of them on create) to `manager`."""
    metadata = meta.metadata(obj)
    entries = [dict(e) for e in (old or {}).get("metadata", {}).get("managedFields") or []]
    if old is not None and not old.get("metadata", {}).get("managedFields"):
        entries = []
    changed = fields_of(obj) if old is None else _changed(obj, old)
    if not changed and old is not None:
        metadata["managedFields"] = entries
        return
    api_version = obj.get("apiVersion", "")
    for entry in entries:
        if (entry.get("manager"), entry.get("operation"), entry.get("apiVersion")) == (
            manager,
            operation,
            api_version,
        ):
            entry["fieldsV1"] = _union(entry.get("fieldsV1") or {}, changed)
            entry["time"] = meta.now()
            break
    else:
        entries.append(
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": api_version,
                "time": meta.now(),
                "fieldsType": "FieldsV1",
                "fieldsV1": changed,
            }
        )
    metadata["managedFields"] = entries


def _changed(new: Object, old: Object) -> dict:
    """FieldsV1 of the fields whose value differs between `old` and `new`."""
    new_fields, old_obj = fields_of(new), old

    def walk(fields: dict, new_value: Any, old_value: Any) -> dict:
        out = {}
        for key, sub in fields.items():
            name = key[2:]
            n = new_value.get(name) if isinstance(new_value, dict) else None
            o = old_value.get(name) if isinstance(old_value, dict) else None
            if n == o:
                continue
            out[key] = walk(sub, n, o) if sub else {}
        return out

    return walk(new_fields, new, old_obj)


def _union(a: dict, b: dict) -> dict:
    result = dict(a)
    for key, value in b.items():
        result[key] = _union(result.get(key, {}), value) if value or key in result else {}
    return result
