"""Defaults and validation of Services (SetDefaults_Service, ValidateService).

ClusterIPs and NodePorts are not chosen here: they need the cluster's
allocations (kubik.apiserver.services), which also checks the NodePort range.
The IP family fields upstream's Service REST fills in are defaulted here for
a single-stack IPv4 cluster.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from kubik.api import defaults
from kubik.api.validation import (
    Causes,
    GoValue,
    dns1123_label_problems,
    dns1123_subdomain_problems,
    duplicate,
    each_invalid,
    forbidden,
    go_literal,
    go_quote,
    invalid,
    not_supported,
    port_number_or_name,
    port_number_problems,
    qualified_name_problems,
    required,
    validate_labels,
    validator,
)

Object = dict[str, Any]

_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_TRAFFIC_POLICIES = ("Cluster", "Local")
_ALLOCATED_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")  # the types with a ClusterIP
_CLIENT_IP_TIMEOUT = 10800  # 3 hours
_MAX_CLIENT_IP_TIMEOUT = 86400


def _externally_accessible(spec: Object) -> bool:
    kind = spec.get("type")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs"))
    )


def _cluster_ips(spec: Object) -> list[str]:
    """The service's ClusterIPs (the v1 `clusterIP` alone when `clusterIPs` is not given)."""
    if spec.get("clusterIPs"):
        return list(spec["clusterIPs"])
    return [spec["clusterIP"]] if spec.get("clusterIP") else []


def _headless(spec: Object) -> bool:
    return _cluster_ips(spec)[:1] == ["None"]


@defaults.defaulter("", "Service")
def default_service(service: Object) -> None:
    spec = service.setdefault("spec", {})
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        if client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": _CLIENT_IP_TIMEOUT}}
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    for port in spec.get("ports") or []:
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port", 0)
    if _externally_accessible(spec) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and spec["type"] in _ALLOCATED_TYPES:
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get(
            "ingress"
        ) or []:
            if ingress.get("ip") and ingress.get("ipMode") is None:
                ingress["ipMode"] = "VIP"
    if spec["type"] != "ExternalName":
        _default_ip_families(spec)
    service.setdefault("status", {}).setdefault("loadBalancer", {})


def _default_ip_families(spec: Object) -> None:
    """One IPv4 family, or whatever ClusterIPs the client chose show.

    A headless service without a selector may hold endpoints of any family:
    upstream asks for RequireDualStack there.
    """
    if spec.get("ipFamilyPolicy") is None:
        open_family = _headless(spec) and not spec.get("selector")
        spec["ipFamilyPolicy"] = "RequireDualStack" if open_family else "SingleStack"
    if not spec.get("ipFamilies"):
        families = [
            "IPv6" if ":" in ip else "IPv4" for ip in _cluster_ips(spec) if ip not in ("None", "")
        ]
        spec["ipFamilies"] = families or ["IPv4"]


@validator("", "Service")
def validate_service(service: Object, old: Object | None) -> Causes:
    spec = service.get("spec") or {}
    kind = spec.get("type") or ""
    headless = _headless(spec)
    causes: Causes = []
    if not spec.get("ports") and not headless and kind != "ExternalName":
        causes.append(required("spec.ports"))
    causes += _type_rules(spec, kind, headless)
    names: set[str] = set()
    ports = spec.get("ports") or []
    for i, port in enumerate(ports):
        causes += _service_port(port, len(ports) > 1, names, f"spec.ports[{i}]")
    if spec.get("selector") is not None:
        causes += validate_labels(spec["selector"], "spec.selector")
    causes += _session_affinity(spec)
    for i, ip in enumerate(spec.get("externalIPs") or []):
        causes += _external_ip(ip, f"spec.externalIPs[{i}]")
    if not kind:
        causes.append(required("spec.type"))
    elif kind not in _TYPES:
        causes.append(not_supported("spec.type", kind, _TYPES))
    causes += _port_collisions(spec, kind)
    if spec.get("loadBalancerSourceRanges") and kind != "LoadBalancer":
        causes.append(
            forbidden(
                "spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"
            )
        )
    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        causes.append(
            forbidden(
                "spec.allocateLoadBalancerNodePorts",
                "may only be used when `type` is 'LoadBalancer'",
            )
        )
    causes += _traffic_policies(spec, kind)
    if old is not None:
        causes += _cluster_ip_changes(spec, old.get("spec") or {})
    return causes


def _type_rules(spec: Object, kind: str, headless: bool) -> Causes:
    if kind in ("LoadBalancer", "NodePort") and headless:
        return [
            invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services")
        ]
    if kind != "ExternalName":
        return []
    causes: Causes = []
    for key in ("clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        present = _cluster_ips(spec) if key == "clusterIPs" else spec.get(key)
        if present:
            causes.append(forbidden(f"spec.{key}", "may not be set for ExternalName services"))
    name = (spec.get("externalName") or "").removesuffix(".")
    if name:
        causes += each_invalid("spec.externalName", name, dns1123_subdomain_problems(name))
    else:
        causes.append(required("spec.externalName"))
    return causes


def _service_port(port: Object, require_name: bool, names: set[str], path: str) -> Causes:
    causes: Causes = []
    name = port.get("name") or ""
    if require_name and not name:
        causes.append(required(f"{path}.name"))
    elif name:
        causes += each_invalid(f"{path}.name", name, dns1123_label_problems(name))
        if name in names:
            causes.append(duplicate(f"{path}.name", name))
        names.add(name)
    number = port.get("port") or 0
    causes += each_invalid(f"{path}.port", number, port_number_problems(number))
    protocol = port.get("protocol") or ""
    if not protocol:
        causes.append(required(f"{path}.protocol"))
    elif protocol not in _PROTOCOLS:
        causes.append(not_supported(f"{path}.protocol", protocol, _PROTOCOLS))
    causes += port_number_or_name(f"{path}.targetPort", port.get("targetPort"))
    if port.get("appProtocol") is not None:
        causes += each_invalid(
            f"{path}.appProtocol", port["appProtocol"], qualified_name_problems(port["appProtocol"])
        )
    return causes


def _session_affinity(spec: Object) -> Causes:
    affinity = spec.get("sessionAffinity") or ""
    config = spec.get("sessionAffinityConfig")
    if not affinity:
        return [required("spec.sessionAffinity")]
    if affinity not in ("ClientIP", "None"):
        return [not_supported("spec.sessionAffinity", affinity, ("ClientIP", "None"))]
    path = "spec.sessionAffinityConfig"
    if affinity == "None":
        if config is not None:
            return [forbidden(path, "must not be set when session affinity is None")]
        return []
    why = "when session affinity type is ClientIP"
    if config is None:
        return [required(path, why)]
    if config.get("clientIP") is None:
        return [required(f"{path}.clientIP", why)]
    timeout = config["clientIP"].get("timeoutSeconds")
    if timeout is None:
        return [required(f"{path}.clientIP.timeoutSeconds", why)]
    if not 0 < timeout <= _MAX_CLIENT_IP_TIMEOUT:
        return [
            invalid(
                f"{path}.clientIP.timeoutSeconds",
                timeout,
                f"must be greater than 0 and less than {_MAX_CLIENT_IP_TIMEOUT}",
            )
        ]
    return []


def _external_ip(value: str, path: str) -> Causes:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return [
            invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
        ]
    causes: Causes = []
    if ip.is_unspecified:
        causes.append(invalid(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback:
        causes.append(
            invalid(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)")
        )
    if ip.is_link_local:
        causes.append(
            invalid(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        )
    return causes


def _go_service_port(protocol: str, port: int) -> GoValue:
    """The (protocol, port) key upstream reports a repeated port with, as Go prints it."""
    return GoValue(
        f'core.ServicePort{{Name:"", Protocol:{go_quote(protocol)}, AppProtocol:(*string)(nil), '
        f'Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}'
    )


def _port_collisions(spec: Object, kind: str) -> Causes:
    causes: Causes = []
    ports = spec.get("ports") or []
    if kind == "ClusterIP":
        for i, port in enumerate(ports):
            if port.get("nodePort"):
                causes.append(
                    forbidden(
                        f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'"
                    )
                )
    node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        if not port.get("nodePort"):
            continue
        key = (port.get("protocol") or "", port["nodePort"])
        if key in node_ports:
            causes.append(duplicate(f"spec.ports[{i}].nodePort", port["nodePort"]))
        node_ports.add(key)
    seen: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        key = (port.get("protocol") or "", port.get("port") or 0)
        if key in seen:
            causes.append(duplicate(f"spec.ports[{i}]", _go_service_port(*key)))
        seen.add(key)
    return causes


def _traffic_policies(spec: Object, kind: str) -> Causes:
    causes: Causes = []
    external = spec.get("externalTrafficPolicy") or ""
    if not _externally_accessible(spec):
        if external:
            causes.append(
                invalid(
                    "spec.externalTrafficPolicy",
                    external,
                    "may only be set for externally-accessible services",
                )
            )
    elif not external:
        causes.append(required("spec.externalTrafficPolicy"))
    elif external not in _TRAFFIC_POLICIES:
        causes.append(not_supported("spec.externalTrafficPolicy", external, _TRAFFIC_POLICIES))
    health = spec.get("healthCheckNodePort") or 0
    if health and not (kind == "LoadBalancer" and external == "Local"):
        causes.append(
            invalid(
                "spec.healthCheckNodePort",
                health,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is "
                "'Local'",
            )
        )
    elif health:
        causes += each_invalid("spec.healthCheckNodePort", health, port_number_problems(health))
    internal = spec.get("internalTrafficPolicy")
    if internal is None and kind in _ALLOCATED_TYPES:
        causes.append(required("spec.internalTrafficPolicy"))
    elif internal is not None and internal not in _TRAFFIC_POLICIES:
        causes.append(not_supported("spec.internalTrafficPolicy", internal, _TRAFFIC_POLICIES))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        causes.append(not_supported("spec.trafficDistribution", distribution, ("PreferClose",)))
    return causes


def _cluster_ip_changes(spec: Object, old_spec: Object) -> Causes:
    """ClusterIPs stay; a secondary one may be added or released (upstream's upgrade rules)."""
    if "ExternalName" in (spec.get("type"), old_spec.get("type")):
        return []
    if _headless(spec) and _headless(old_spec):
        return []
    new, old = _cluster_ips(spec), _cluster_ips(old_spec)
    if not new:
        return []  # not given: the allocator carries the old ones over
    shown = go_literal(new)
    if len(new) == len(old):
        return [
            invalid(f"spec.clusterIPs[{i}]", shown, "may not change once set")
            for i, ip in enumerate(old)
            if ip != new[i]
        ]
    if old and new[0] != old[0]:
        return [invalid("spec.clusterIPs[0]", shown, "may not change once set")]
    if len(new) < len(old) and spec.get("ipFamilyPolicy") != "SingleStack":
        return [
            invalid(
                "spec.clusterIPs[0]",
                shown,
                "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary "
                "clusterIP",
            )
        ]
    return []
