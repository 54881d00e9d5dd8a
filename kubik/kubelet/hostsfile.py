"""The /etc/hosts the kubelet writes for a pod and mounts into its containers.

As upstream: a pod on the pod network gets localhost entries, its own IPs
under its hostname (and FQDN with a subdomain), then its hostAliases; a
host-network pod gets the node's /etc/hosts plus its hostAliases. It is only
mounted once the pod has an IP (or uses the host network), and not into a
container that mounts something at /etc/hosts itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

Object = dict[str, Any]

HOSTS_PATH = "/etc/hosts"
_LOCAL = (
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)
_HOST_NETWORK_HEADER = "# Kubernetes-managed hosts file (host network).\n"


def wanted(pod: Object, container: Object, pod_ips: list[str]) -> bool:
    spec = pod.get("spec") or {}
    if not (pod_ips or spec.get("hostNetwork")):
        return False
    return all(m.get("mountPath") != HOSTS_PATH for m in container.get("volumeMounts") or [])


def content(
    pod: Object, pod_ips: list[str], hostname: str, domain: str, node_hosts: str = HOSTS_PATH
) -> str:
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        try:
            text = Path(node_hosts).read_text()
        except OSError:
            text = ""
        return _HOST_NETWORK_HEADER + text + _aliases(spec)
    lines = [_LOCAL]
    for ip in pod_ips:
        if domain:
            lines.append(f"{ip}\t{hostname}.{domain}\t{hostname}\n")
        else:
            lines.append(f"{ip}\t{hostname}\n")
    return "".join(lines) + _aliases(spec)


def _aliases(spec: Object) -> str:
    aliases = spec.get("hostAliases") or []
    if not aliases:
        return ""
    lines = ["\n# Entries added by HostAliases.\n"]
    for alias in aliases:
        names = "\t".join(alias.get("hostnames") or [])
        lines.append(f"{alias.get('ip', '')}\t{names}\n")
    return "".join(lines)


def write(path: Path, text: str) -> None:
    """Written in place (not renamed over): running containers have this inode mounted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return
    path.write_text(text)
    path.chmod(0o644)
