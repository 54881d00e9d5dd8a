"""The downward API: a pod's own fields and its containers' resources, as text.

Both environment variables (`valueFrom.fieldRef` / `resourceFieldRef`) and
downwardAPI volume files read a pod through these two functions, so a value
is spelled the same wherever it appears: a whole label or annotation map is
`key="quoted value"` lines in key order, a resource is a whole number of the
divisor's unit, rounded up. A limit the container does not set reads as the
node's allocatable amount, since that is the most the container can use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from kubik.api.quantity import Quantity, QuantityError
from kubik.kubelet import machine

Object = dict[str, Any]

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")
_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}
# resources whose limits default to the node's allocatable amount
_DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")


class DownwardAPIError(ValueError):
    """A field or resource the downward API cannot give; the message is upstream's."""


def field_value(
    pod: Object,
    field_path: str,
    *,
    api_version: str = "v1",
    pod_ips: list[str] | None = None,
    host_ips: list[str] | None = None,
) -> str:
    """The text of one pod field (`metadata.name`, `metadata.labels['app']`, `status.podIP`...).

    `pod_ips` and `host_ips` are what the kubelet knows before the pod's status
    says so (the sandbox's address); without them the status is read.
    """
    if api_version not in ("", "v1"):
        raise DownwardAPIError(f"unsupported pod version: {api_version}")
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if match := _SUBSCRIPT.match(field_path):
        return (metadata.get(match.group(1)) or {}).get(match.group(2), "")
    if field_path in ("metadata.labels", "metadata.annotations"):
        return format_map(metadata.get(field_path.split(".")[1]) or {})
    if field_path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(metadata.get(field_path.split(".")[1], ""))
    if field_path in ("spec.nodeName", "spec.serviceAccountName"):
        return str(spec.get(field_path.split(".")[1], ""))
    if field_path in ("status.podIP", "status.podIPs"):
        ips = pod_ips if pod_ips is not None else _ips(status, "podIP", "podIPs")
        return (ips[0] if ips else "") if field_path == "status.podIP" else ",".join(ips)
    if field_path in ("status.hostIP", "status.hostIPs"):
        ips = host_ips if host_ips is not None else _ips(status, "hostIP", "hostIPs")
        return (ips[0] if ips else "") if field_path == "status.hostIP" else ",".join(ips)
    raise DownwardAPIError(f"unsupported fieldPath: {field_path}")


def _ips(status: Object, single: str, plural: str) -> list[str]:
    listed = [entry.get("ip", "") for entry in status.get(plural) or [] if entry.get("ip")]
    if listed:
        return listed
    return [status[single]] if status.get(single) else []


def format_map(values: Mapping[str, str]) -> str:
    """A label or annotation map as upstream writes it: `key="value"` lines, keys sorted."""
    return "\n".join(f"{key}={go_quote(values[key])}" for key in sorted(values))


def go_quote(text: str) -> str:
    """`text` in double quotes with Go's escapes (`strconv.Quote`)."""
    out = []
    for char in text:
        if char in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def resource_value(
    selector: Object,
    pod: Object,
    container: Object | None,
    *,
    allocatable: Mapping[str, Any],
) -> str:
    """A container's request or limit in whole units of the selector's divisor.

    The container is the one the selector names (`containerName`), else
    `container` (an environment variable's own container).
    """
    name = selector.get("containerName") or ""
    if name:
        container = _find_container(pod, name)
    if container is None:
        raise DownwardAPIError(f"container {name} not found")
    divisor = _quantity(selector.get("divisor") or "1")
    if divisor.value == 0:
        divisor = Quantity.parse("1")
    resource = selector.get("resource", "")
    kind, _, resource_name = resource.partition(".")
    if kind not in ("limits", "requests") or not (
        resource_name in _DEFAULTED_LIMITS or resource_name.startswith("hugepages-")
    ):
        raise DownwardAPIError(f"unsupported container resource : {resource}")
    values = (container.get("resources") or {}).get(kind) or {}
    amount = values.get(resource_name)
    if amount is None and kind == "limits" and resource_name in _DEFAULTED_LIMITS:
        amount = allocatable.get(resource_name)
    value = _quantity(amount if amount is not None else "0")
    if resource_name == "cpu":
        return str(_ceil_div(value.milli_value(), divisor.milli_value()))
    return str(_ceil_div(value.int_value(), divisor.int_value()))


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _quantity(text: Any) -> Quantity:
    try:
        return Quantity.parse(text)
    except QuantityError as exc:
        raise DownwardAPIError(f"quantities must be valid: {exc}") from None


def _find_container(pod: Object, name: str) -> Object | None:
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if container.get("name") == name:
            return container
    return None


def node_allocatable() -> dict[str, int]:
    """The machine's size, for a caller that does not know the node's allocatable."""
    return {
        "cpu": machine.cpu_count(),
        "memory": machine.memory_bytes(),
        "ephemeral-storage": machine.disk_bytes(os.sep),
    }
