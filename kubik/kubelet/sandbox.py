"""A pod's sandbox as the CRI wants it: names, hostname, DNS, ports, cgroup, namespaces.

The sandbox holds the pod's network namespace (and its IP), so everything
that is the pod's rather than one container's is decided here, as upstream's
generatePodSandboxConfig does. DNS follows the pod's dnsPolicy: ClusterFirst
points at the cluster DNS service with the namespace's search path and
ndots:5; Default (and ClusterFirst on the host network) copies the node's
resolv.conf; None only takes the pod's dnsConfig, which the others append.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubik.api.kinds import qos
from kubik.kubelet import runtimestate
from kubik.kubelet.cri import api_pb2

Object = dict[str, Any]

MAX_NAMESERVERS = 3
MAX_SEARCH_DOMAINS = 32
MAX_SEARCH_CHARS = 2048
MAX_HOSTNAME = 63
CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROTOCOLS = {"TCP": api_pb2.TCP, "UDP": api_pb2.UDP, "SCTP": api_pb2.SCTP}


@dataclass
class SandboxSettings:
    """What every sandbox of this node shares."""

    logs_dir: Path  # <root>/logs: one directory per pod below it
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    cgroup_parent: str = "/kubik"
    resolv_conf: str = "/etc/resolv.conf"


@dataclass
class DnsResult:
    config: api_pb2.DNSConfig | None
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (event reason, message)


def pod_log_dir(logs_dir: Path, pod: Object) -> Path:
    meta = pod["metadata"]
    return logs_dir / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"


def hostname_and_domain(pod: Object, cluster_domain: str) -> tuple[str, str]:
    """The pod's hostname (spec.hostname or its name, at most 63 characters) and its domain
    (<subdomain>.<namespace>.svc.<cluster domain> when it has a subdomain)."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    hostname = spec.get("hostname") or meta["name"][:MAX_HOSTNAME].rstrip("-.")
    domain = ""
    if spec.get("subdomain"):
        domain = f"{spec['subdomain']}.{meta['namespace']}.svc.{cluster_domain}"
    return hostname, domain


def qos_tier(pod: Object) -> str:
    qos_class = (pod.get("status") or {}).get("qosClass") or qos.qos_class(pod.get("spec") or {})
    return {"Guaranteed": "", "Burstable": "burstable", "BestEffort": "besteffort"}[qos_class]


def pod_cgroup(pod: Object, cgroup_parent: str) -> str:
    """The pod's cgroup under the node's root, by QoS class (as upstream's cgroupfs layout)."""
    tier = qos_tier(pod)
    parts = (
        [cgroup_parent.rstrip("/")] + ([tier] if tier else []) + [f"pod{pod['metadata']['uid']}"]
    )
    return "/".join(parts)


def remove_pod_cgroups(cgroup_parent: str, uid: str) -> None:
    """rmdir the pod's cgroup in every hierarchy (runc leaves the empty parents behind)."""
    parent = cgroup_parent.strip("/")
    for tier in ("", "burstable", "besteffort"):
        relative = "/".join(p for p in (parent, tier, f"pod{uid}") if p)
        for hierarchy in _hierarchies():
            _rmdir_tree(hierarchy / relative)


def _hierarchies() -> list[Path]:
    try:
        return [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def _rmdir_tree(path: Path) -> None:
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir():
            _rmdir_tree(child)
    try:
        path.rmdir()
    except OSError:
        pass  # still has processes; the next cleanup tries again


def namespace_options(pod: Object) -> api_pb2.NamespaceOption:
    spec = pod.get("spec") or {}
    if spec.get("hostPID"):
        pid = api_pb2.NODE
    elif spec.get("shareProcessNamespace"):
        pid = api_pb2.POD
    else:
        pid = api_pb2.CONTAINER
    return api_pb2.NamespaceOption(
        network=api_pb2.NODE if spec.get("hostNetwork") else api_pb2.POD,
        pid=pid,
        ipc=api_pb2.NODE if spec.get("hostIPC") else api_pb2.POD,
    )


def seccomp_profile(profile: Object | None) -> api_pb2.SecurityProfile | None:
    if not profile:
        return None
    kind = profile.get("type")
    if kind == "RuntimeDefault":
        return api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault)
    if kind == "Localhost":
        return api_pb2.SecurityProfile(
            profile_type=api_pb2.SecurityProfile.Localhost,
            localhost_ref=profile.get("localhostProfile", ""),
        )
    return api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Unconfined)


def _all_containers(pod: Object) -> list[Object]:
    spec = pod.get("spec") or {}
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def sandbox_config(
    pod: Object, attempt: int, settings: SandboxSettings, dns: api_pb2.DNSConfig | None
) -> api_pb2.PodSandboxConfig:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    labels = dict(meta.get("labels") or {})
    labels.update(
        {
            runtimestate.POD_NAME: meta["name"],
            runtimestate.POD_NAMESPACE: meta["namespace"],
            runtimestate.POD_UID: meta["uid"],
        }
    )
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(
            name=meta["name"], uid=meta["uid"], namespace=meta["namespace"], attempt=attempt
        ),
        log_directory=str(pod_log_dir(settings.logs_dir, pod)),
        labels=labels,
        annotations=dict(meta.get("annotations") or {}),
    )
    if not spec.get("hostNetwork"):
        hostname, domain = hostname_and_domain(pod, settings.cluster_domain)
        if spec.get("setHostnameAsFQDN") and domain:
            hostname = f"{hostname}.{domain}"
        config.hostname = hostname
    if dns is not None:
        config.dns_config.CopyFrom(dns)
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if not port.get("hostPort"):
                continue
            config.port_mappings.append(
                api_pb2.PortMapping(
                    protocol=_PROTOCOLS.get(port.get("protocol", "TCP"), api_pb2.TCP),
                    container_port=int(port["containerPort"]),
                    host_port=int(port["hostPort"]),
                    host_ip=port.get("hostIP", ""),
                )
            )
    linux = config.linux
    linux.cgroup_parent = pod_cgroup(pod, settings.cgroup_parent)
    security = spec.get("securityContext") or {}
    context = linux.security_context
    context.namespace_options.CopyFrom(namespace_options(pod))
    if security.get("runAsUser") is not None:
        context.run_as_user.value = int(security["runAsUser"])
    if security.get("runAsGroup") is not None:
        context.run_as_group.value = int(security["runAsGroup"])
    context.supplemental_groups.extend(supplemental_groups(pod))
    context.privileged = any(
        (c.get("securityContext") or {}).get("privileged") for c in _all_containers(pod)
    )
    profile = seccomp_profile(security.get("seccompProfile"))
    if profile is not None:
        context.seccomp.CopyFrom(profile)
    for sysctl in security.get("sysctls") or []:
        linux.sysctls[sysctl["name"].replace("/", ".")] = str(sysctl.get("value", ""))
    return config


def supplemental_groups(pod: Object) -> list[int]:
    security = (pod.get("spec") or {}).get("securityContext") or {}
    groups = [int(g) for g in security.get("supplementalGroups") or []]
    if security.get("fsGroup") is not None and int(security["fsGroup"]) not in groups:
        groups.insert(0, int(security["fsGroup"]))
    return groups


# ------------------------------------------------------------------ DNS


def read_resolv_conf(path: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of a resolv.conf; empty when unreadable."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    try:
        text = Path(path).read_text()
    except OSError:
        return servers, searches, options
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = [d for d in fields[1:] if d != "."]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return servers, searches, options


def dns_config(pod: Object, settings: SandboxSettings) -> DnsResult:
    """The pod's DNS configuration by its dnsPolicy, and the warnings upstream would record."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    warnings: list[tuple[str, str]] = []
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not settings.cluster_dns:
        warnings.append(
            (
                "MissingClusterDNS",
                f'pod: "{meta["name"]}_{meta["namespace"]}({meta["uid"]})". kubelet does not '
                'have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" '
                'policy. Falling back to "Default" policy.',
            )
        )
        policy = "Default"
    host_servers, host_searches, host_options = read_resolv_conf(settings.resolv_conf)
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        domain = settings.cluster_domain
        servers = list(settings.cluster_dns)
        searches = [f"{meta['namespace']}.svc.{domain}", f"svc.{domain}", domain] + host_searches
        options = ["ndots:5"]
    elif policy == "Default":
        servers, searches, options = host_servers, host_searches, host_options
    extra = spec.get("dnsConfig") or {}
    servers = _unique(servers + list(extra.get("nameservers") or []))
    searches = _unique(searches + list(extra.get("searches") or []))
    options = _merge_options(options, extra.get("options") or [])
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        warnings.append(
            (
                "DNSConfigForming",
                "Nameserver limits were exceeded, some nameservers have been omitted, "
                f"the applied nameserver line is: {' '.join(servers)}",
            )
        )
    limited = _limit_searches(searches)
    if limited != searches:
        searches = limited
        warnings.append(
            (
                "DNSConfigForming",
                "Search Line limits were exceeded, some search paths have been omitted, "
                f"the applied search line is: {' '.join(searches)}",
            )
        )
    if policy == "None" and not (servers or searches or options):
        return DnsResult(None, warnings)
    return DnsResult(
        api_pb2.DNSConfig(servers=servers, searches=searches, options=options), warnings
    )


def _unique(items: list[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.append(item)
    return seen


def _merge_options(base: list[str], extra: list[Object]) -> list[str]:
    """The pod's options override the base's of the same name."""
    merged: dict[str, str] = {}
    for option in base:
        name, _, value = option.partition(":")
        merged[name] = option
    for option in extra:
        name = option.get("name", "")
        if name:
            value = option.get("value")
            merged[name] = f"{name}:{value}" if value is not None else name
    return list(merged.values())


def _limit_searches(searches: list[str]) -> list[str]:
    kept: list[str] = []
    length = 0
    for domain in searches:
        if len(kept) == MAX_SEARCH_DOMAINS or length + len(domain) + len(kept) > MAX_SEARCH_CHARS:
            break
        kept.append(domain)
        length += len(domain)
    return kept
