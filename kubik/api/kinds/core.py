"""Defaults and validation of the core/v1 kinds other than Services, volumes and events.

Pods delegate to the pod spec modules; the rest are small: a Namespace's
name label and finalizer, a Secret's type and stringData, config keys and
the 1 MiB size limit of ConfigMaps and Secrets, a Node's allocatable.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from typing import Any

from kubik.api import defaults
from kubik.api.kinds import podspec
from kubik.api.kinds.pod_validation import validate_pod
from kubik.api.kinds.resources import quantity_value_problems
from kubik.api.quantity import Quantity, QuantityError
from kubik.api.validation import (
    Causes,
    GoValue,
    config_key_problems,
    dns1123_label_problems,
    duplicate,
    each_invalid,
    forbidden,
    go_literal,
    immutable,
    invalid,
    label_value_problems,
    not_supported,
    port_number_problems,
    qualified_name_problems,
    required,
    semantic_equal,
    too_long,
    validator,
)

Object = dict[str, Any]

MAX_DATA_BYTES = 1024 * 1024  # a ConfigMap's or Secret's data, all keys together
_NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_IMMUTABLE_DATA = "field is immutable when `immutable` is set"


# ------------------------------------------------------------------------ Pod


@defaults.defaulter("", "Pod")
def default_pod(pod: Object) -> None:
    podspec.default_pod(pod)


@validator("", "Pod")
def validate_pod_object(pod: Object, old: Object | None) -> Causes:
    return validate_pod(pod, old)


# ------------------------------------------------------------------ Namespace


@defaults.defaulter("", "Namespace")
def default_namespace(namespace: Object) -> None:
    """Every namespace carries its own name as a label (for namespace selectors)."""
    name = (namespace.get("metadata") or {}).get("name")
    if name:
        namespace["metadata"].setdefault("labels", {})
        namespace["metadata"]["labels"][_NAMESPACE_NAME_LABEL] = name


@defaults.on_create("", "Namespace")
def finalize_new_namespace(namespace: Object) -> None:
    """A new namespace holds the `kubernetes` finalizer until its controller has emptied it."""
    finalizers = namespace.setdefault("spec", {}).setdefault("finalizers", [])
    if "kubernetes" not in finalizers:
        finalizers.append("kubernetes")


@validator("", "Namespace")
def validate_namespace(namespace: Object, old: Object | None) -> Causes:
    causes: Causes = []
    for finalizer in (namespace.get("spec") or {}).get("finalizers") or []:
        causes += each_invalid("spec.finalizers", finalizer, qualified_name_problems(finalizer))
        if "/" not in finalizer and finalizer not in _STANDARD_FINALIZERS:
            causes.append(
                invalid(
                    "spec.finalizers",
                    finalizer,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    return causes


# ----------------------------------------------------------- ConfigMap, Secret


@validator("", "ConfigMap")
def validate_config_map(config_map: Object, old: Object | None) -> Causes:
    data = config_map.get("data") or {}
    binary = config_map.get("binaryData") or {}
    causes: Causes = []
    for key in data:
        causes += each_invalid(f"data[{key}]", key, config_key_problems(key))
        if key in binary:
            causes.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
    for key in binary:
        causes += each_invalid(f"binaryData[{key}]", key, config_key_problems(key))
    size = sum(len(str(v).encode()) for v in data.values()) + sum(
        _decoded_size(v) for v in binary.values()
    )
    if size > MAX_DATA_BYTES:
        causes.append(too_long("[]", MAX_DATA_BYTES))  # upstream: a root path
    if old is not None:
        causes += _immutable_data(config_map, old, ("data", "binaryData"))
    return causes


@defaults.defaulter("", "Secret")
def default_secret(secret: Object) -> None:
    """Type Opaque; stringData is written into data (base64) and is never stored itself."""
    if not secret.get("type"):
        secret["type"] = "Opaque"
    string_data = secret.pop("stringData", None)
    if string_data:
        data = secret.get("data") or {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        secret["data"] = data


@validator("", "Secret")
def validate_secret(secret: Object, old: Object | None) -> Causes:
    data = secret.get("data") or {}
    causes: Causes = []
    for key in data:
        causes += each_invalid(f"data[{key}]", key, config_key_problems(key))
    if sum(_decoded_size(v) for v in data.values()) > MAX_DATA_BYTES:
        causes.append(too_long("data", MAX_DATA_BYTES))
    causes += _secret_type_keys(secret, data)
    if old is not None:
        causes += immutable("type", secret.get("type"), old.get("type"))
        causes += _immutable_data(secret, old, ("data",))
    return causes


_SECRET_TYPE_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _secret_type_keys(secret: Object, data: Object) -> Causes:
    """The keys (and annotation) each well-known secret type must carry."""
    kind = secret.get("type") or ""
    if kind == "kubernetes.io/service-account-token":
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        if not annotations.get("kubernetes.io/service-account.name"):
            return [required("metadata.annotations[kubernetes.io/service-account.name]")]
        return []
    if kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
        return []
    causes = [
        required(f"data[{key}]") for key in _SECRET_TYPE_KEYS.get(kind, ()) if key not in data
    ]
    if kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson") and not causes:
        key = _SECRET_TYPE_KEYS[kind][0]
        try:
            json.loads(base64.b64decode(data[key]))
        except (ValueError, binascii.Error) as exc:
            causes.append(invalid(f"data[{key}]", "<secret contents redacted>", str(exc)))
    return causes


def _decoded_size(value: Any) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (ValueError, binascii.Error):
        return len(str(value))


def _immutable_data(obj: Object, old: Object, fields: tuple[str, ...]) -> Causes:
    if old.get("immutable") is not True:
        return []
    causes: Causes = []
    if obj.get("immutable") is not True:
        causes.append(forbidden("immutable", _IMMUTABLE_DATA))
    for field in fields:
        if not semantic_equal(obj.get(field), old.get(field)):
            causes.append(forbidden(field, _IMMUTABLE_DATA))
    return causes


# ----------------------------------------------------------------------- Node


@defaults.defaulter("", "Node")
def default_node(node: Object) -> None:
    """Go always writes the (possibly empty) spec; allocatable defaults to capacity."""
    node.setdefault("spec", {})
    status = node.get("status")
    if isinstance(status, dict):
        podspec.default_resource_list(status.get("capacity"))
        if status.get("allocatable") is None and status.get("capacity") is not None:
            status["allocatable"] = dict(status["capacity"])
        podspec.default_resource_list(status.get("allocatable"))


@validator("", "Node")
def validate_node(node: Object, old: Object | None) -> Causes:
    spec = node.get("spec") or {}
    # Upstream reports taints under metadata (its path is built from the metadata path).
    causes = _taints(spec.get("taints") or [], "metadata.taints")
    status = node.get("status") or {}
    for kind in ("capacity", "allocatable"):
        for name, value in (status.get(kind) or {}).items():
            causes += _resource_quantity(name, value, f"status.{kind}.{name}")
    cidrs = spec.get("podCIDRs") or []
    for i, cidr in enumerate(cidrs):
        causes += _cidr(cidr, f"spec.podCIDRs[{i}]")
    if old is not None:
        old_spec = old.get("spec") or {}
        if old_spec.get("podCIDRs") and old_spec["podCIDRs"] != cidrs:
            causes.append(
                forbidden(
                    "spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'
                )
            )
        provider = old_spec.get("providerID")
        if provider and provider != spec.get("providerID"):
            causes.append(
                forbidden(
                    "spec.providerID",
                    'node updates may not change providerID except from "" to valid',
                )
            )
    return causes


def _taints(taints: list[Object], path: str) -> Causes:
    causes: Causes = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        at = f"{path}[{i}]"
        key, value, effect = taint.get("key", ""), taint.get("value", ""), taint.get("effect", "")
        causes += each_invalid(f"{at}.key", key, qualified_name_problems(key))
        problems = label_value_problems(value)
        if problems:
            causes.append(invalid(f"{at}.value", value, ";".join(problems)))
        if not effect:
            causes.append(required(f"{at}.effect"))
        elif effect not in _TAINT_EFFECTS:
            causes.append(not_supported(f"{at}.effect", effect, _TAINT_EFFECTS))
        if (key, effect) in seen:
            shown = GoValue(
                f"core.Taint{{Key:{go_literal(key)}, Value:{go_literal(value)}, "
                f"Effect:{go_literal(effect)}, TimeAdded:(*v1.Time)(nil)}}"
            )
            causes.append(duplicate(at, shown, "taints must be unique by key and effect pair"))
            continue
        seen.add((key, effect))
    return causes


def _cidr(value: str, path: str) -> Causes:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return [
            invalid(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")
        ]
    return []


def _resource_quantity(name: str, value: Any, path: str) -> Causes:
    try:
        parsed = Quantity.parse(value)
    except QuantityError as exc:
        return [invalid(path, value, str(exc))]
    return quantity_value_problems(name, parsed, path)


# ------------------------------------------------- Endpoints, quotas, limits


@defaults.defaulter("", "Endpoints")
def default_endpoints(endpoints: Object) -> None:
    for subset in endpoints.get("subsets") or []:
        for port in subset.get("ports") or []:
            if not port.get("protocol"):
                port["protocol"] = "TCP"


@validator("", "Endpoints")
def validate_endpoints(endpoints: Object, old: Object | None) -> Causes:
    causes: Causes = []
    for i, subset in enumerate(endpoints.get("subsets") or []):
        at = f"subsets[{i}]"
        if not subset.get("addresses") and not subset.get("notReadyAddresses"):
            causes.append(required(at, "must specify `addresses` or `notReadyAddresses`"))
        for kind in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(subset.get(kind) or []):
                causes += _endpoint_address(address, f"{at}.{kind}[{j}]")
        ports = subset.get("ports") or []
        for j, port in enumerate(ports):
            causes += _endpoint_port(port, len(ports) > 1, f"{at}.ports[{j}]")
    return causes


def _endpoint_address(address: Object, path: str) -> Causes:
    ip = address.get("ip", "")
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return [
            invalid(
                f"{path}.ip", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
            )
        ]
    hostname = address.get("hostname") or ""
    problems = dns1123_label_problems(hostname) if hostname else []
    causes = each_invalid(f"{path}.hostname", hostname, problems)
    if parsed.is_unspecified:
        causes.append(invalid(f"{path}.ip", ip, f"may not be unspecified ({ip})"))
    if parsed.is_loopback:
        causes.append(
            invalid(f"{path}.ip", ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)")
        )
    if parsed.is_link_local:
        causes.append(
            invalid(
                f"{path}.ip", ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
            )
        )
    return causes


def _endpoint_port(port: Object, require_name: bool, path: str) -> Causes:
    causes: Causes = []
    name = port.get("name") or ""
    if require_name and not name:
        causes.append(required(f"{path}.name"))
    elif name:
        causes += each_invalid(f"{path}.name", name, dns1123_label_problems(name))
    number = port.get("port") or 0
    causes += each_invalid(f"{path}.port", number, port_number_problems(number))
    protocol = port.get("protocol") or ""
    if not protocol:
        causes.append(required(f"{path}.protocol"))
    elif protocol not in ("SCTP", "TCP", "UDP"):
        causes.append(not_supported(f"{path}.protocol", protocol, ("SCTP", "TCP", "UDP")))
    return causes


@defaults.defaulter("", "ResourceQuota")
def default_resource_quota(quota: Object) -> None:
    podspec.default_resource_list((quota.get("spec") or {}).get("hard"))
    for key in ("hard", "used"):
        podspec.default_resource_list((quota.get("status") or {}).get(key))


@defaults.defaulter("", "LimitRange")
def default_limit_range(limit_range: Object) -> None:
    """Container items: default ← max; defaultRequest ← default, then ← min (upstream)."""
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            podspec.default_resource_list(item.get(key))
        if item.get("type") != "Container":
            continue
        default = item["default"] = item.get("default") or {}
        request = item["defaultRequest"] = item.get("defaultRequest") or {}
        for name, value in (item.get("max") or {}).items():
            default.setdefault(name, value)
        for name, value in default.items():
            request.setdefault(name, value)
        for name, value in (item.get("min") or {}).items():
            request.setdefault(name, value)
