"""Cell formatting several kinds share: names, labels, selectors, containers, lists.

Each helper renders a value the way upstream's printers do (apimachinery's
label and selector stringers, the "+ N more..." lists), so every kind prints
a selector or a container list identically.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubik.api.quantity import QuantityError, canonical

if TYPE_CHECKING:  # tables imports the printers, which import this module
    from kubik.api.tables import Object

_SET_OPERATORS = {"In": "in", "NotIn": "notin"}
_ACCESS_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def get(obj: Any, *path: str) -> Any:
    """The value at a path of keys, None where any step is missing or not an object."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def name(obj: Object) -> str:
    return get(obj, "metadata", "name") or ""


def number(value: Any) -> int:
    """An integer field as Go reads it: unset is zero."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def format_labels(labels: dict[str, str] | None) -> str:
    """labels.FormatLabels: k=v pairs sorted by key, "<none>" when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def selector_string(selector: Object | None) -> str | None:
    """metav1.LabelSelectorAsSelector(selector).String(); None for an invalid selector.

    No selector and the empty selector both print "" (nothing / everything).
    """
    if not selector:
        return ""
    terms: list[tuple[str, str]] = []
    for key, value in sorted((selector.get("matchLabels") or {}).items()):
        terms.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, operator = expr.get("key", ""), expr.get("operator", "")
        values = expr.get("values") or []
        if operator in _SET_OPERATORS and values:
            terms.append((key, f"{key} {_SET_OPERATORS[operator]} ({','.join(sorted(values))})"))
        elif operator in ("Exists", "DoesNotExist") and not values:
            terms.append((key, key if operator == "Exists" else f"!{key}"))
        else:
            return None
    terms.sort(key=lambda term: term[0])
    return ",".join(text for _, text in terms)


def format_label_selector(selector: Object | None) -> str:
    """metav1.FormatLabelSelector: "<none>" for an empty selector, "<error>" for a bad one."""
    text = selector_string(selector)
    if text is None:
        return "<error>"
    return text or "<none>"


def containers(pod_spec: Object | None) -> list[str]:
    """The container names and images of a pod spec, each comma-joined (wide columns)."""
    listed = get(pod_spec, "containers") or []
    return [
        ",".join(c.get("name", "") for c in listed),
        ",".join(c.get("image", "") for c in listed),
    ]


def template_spec(obj: Object) -> Object:
    """The pod spec of a workload's pod template."""
    return get(obj, "spec", "template", "spec") or {}


def capped(items: list[str], limit: int = 3, *, empty: str = "<unset>") -> str:
    """The first `limit` items comma-joined, then " + N more...", or `empty` if there are none."""
    text = ",".join(items[:limit])
    if len(items) > limit:
        return f"{text} + {len(items) - limit} more..."
    return text or empty


def condition(obj: Object, kind: str) -> Object | None:
    """The first status condition of a type, if any."""
    for cond in get(obj, "status", "conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def condition_true(obj: Object, kind: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == "True"


def quantity(value: Any) -> str:
    """A resource quantity as Quantity.String() prints it (canonical), "0" when unset."""
    if value is None:
        return "0"
    try:
        return canonical(value)
    except QuantityError:
        return str(value)


def access_modes(modes: list[str] | None) -> str:
    """The short forms of a volume's access modes, in upstream's fixed order."""
    return ",".join(short for mode, short in _ACCESS_MODES.items() if mode in (modes or []))


def deleting(obj: Object) -> bool:
    return bool(get(obj, "metadata", "deletionTimestamp"))
