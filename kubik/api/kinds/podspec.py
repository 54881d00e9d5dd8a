"""Defaults of pod specs, for Pods and for the pod templates of workloads.

Upstream defaults every PodSpec the same way wherever it is embedded
(SetDefaults_PodSpec, _Container, _Probe, _Volume… in
pkg/apis/core/v1/defaults.go); a few defaults apply to Pods only
(SetDefaults_Pod: enableServiceLinks, requests copied from limits, host
ports under hostNetwork), and a few more are added to Pods by admission
plugins every cluster runs (ServiceAccount, Priority).

Go always writes some struct fields even when empty: a container's
`resources: {}`, a template's `metadata: {creationTimestamp: null}`. They are
filled in here too, so objects read back exactly as upstream's do.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from kubik.api import quantity

Object = dict[str, Any]

_MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
# The priority classes every cluster has (created by the API server at start).
SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}

# A Docker image reference: [domain/]name[:tag][@digest] (distribution/reference).
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)

# Volume source fields, with what upstream fills in inside each.
_VOLUME_SOURCE_DEFAULTS: dict[str, Object] = {
    "hostPath": {"type": ""},
    "secret": {"defaultMode": 420},
    "configMap": {"defaultMode": 420},
    "downwardAPI": {"defaultMode": 420},
    "projected": {"defaultMode": 420},
    "iscsi": {"iscsiInterface": "default"},
    "rbd": {"pool": "rbd", "user": "admin", "keyring": "/etc/ceph/keyring"},
    "azureDisk": {
        "cachingMode": "ReadWrite",
        "fsType": "ext4",
        "readOnly": False,
        "kind": "Shared",
    },
    "scaleIO": {"storageMode": "ThinProvisioned", "fsType": "xfs"},
}


def image_pull_policy(image: str) -> str:
    """Always for `:latest` or an untagged, undigested image; IfNotPresent otherwise.

    An image that is not a valid reference has no tag to speak of: IfNotPresent
    (upstream ignores the parse error here and lets the kubelet report it).
    """
    match = _IMAGE.match(image or "")
    if match is None:
        return "IfNotPresent"
    tag = match["tag"] or ("" if match["digest"] else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


def default_resource_list(resources: Object | None) -> None:
    """Quantities in canonical form, rounded up to thousandths (SetDefaults_ResourceList).

    A value that is no quantity is left as it is, for validation to report.
    """
    for name, value in (resources or {}).items():
        try:
            resources[name] = _rounded(value)
        except (quantity.QuantityError, TypeError):
            pass


@functools.lru_cache(maxsize=4096)
def _rounded(value: str | int | float) -> str:
    """Specs repeat the same few quantities: parse each text once."""
    return str(quantity.parse(value).round_up(-3))


def default_pod_template(template: Object) -> None:
    """A pod template in a workload: Go writes its empty creationTimestamp as null."""
    default_object_meta(template)
    default_pod_spec(template.setdefault("spec", {}))


def default_object_meta(embedded: Object) -> None:
    """Embedded ObjectMeta (templates) always carries `creationTimestamp: null`."""
    embedded.setdefault("metadata", {}).setdefault("creationTimestamp", None)


def default_pod_spec(spec: Object) -> None:
    for key, value in (
        ("dnsPolicy", "ClusterFirst"),
        ("restartPolicy", "Always"),
        ("schedulerName", "default-scheduler"),
    ):
        if not spec.get(key):
            spec[key] = value
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    for volume in spec.get("volumes") or []:
        _default_volume(volume)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            default_container(container)
    default_resource_list(spec.get("overhead"))
    if isinstance(spec.get("resources"), dict):
        default_resource_list(spec["resources"].get("limits"))
        default_resource_list(spec["resources"].get("requests"))


def default_pod(pod: Object) -> None:
    """A Pod's own defaults, then its spec's, then what admission adds to every pod."""
    spec = pod.setdefault("spec", {})
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            _requests_from_limits(container)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork"):
        for key in ("containers", "initContainers"):
            for container in spec.get(key) or []:
                for port in container.get("ports") or []:
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort", 0)
    default_pod_spec(spec)
    _default_service_account(pod, spec)
    _default_priority(spec)


def default_container(container: Object) -> None:
    if not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = image_pull_policy(container.get("image", ""))
    if not container.get("terminationMessagePath"):
        container["terminationMessagePath"] = "/dev/termination-log"
    if not container.get("terminationMessagePolicy"):
        container["terminationMessagePolicy"] = "File"
    for port in container.get("ports") or []:
        if not port.get("protocol"):
            port["protocol"] = "TCP"
    for env in container.get("env") or []:
        _default_field_ref((env.get("valueFrom") or {}).get("fieldRef"))
    resources = container.get("resources")
    if not isinstance(resources, dict):
        resources = container["resources"] = {}
    default_resource_list(resources.get("limits"))
    default_resource_list(resources.get("requests"))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(container.get(key), dict):
            _default_probe(container[key])
    for handler in (container.get("lifecycle") or {}).values():
        if isinstance(handler, dict):
            _default_http_get(handler.get("httpGet"))


def _requests_from_limits(container: Object) -> None:
    resources = container.get("resources")
    if not isinstance(resources, dict) or resources.get("limits") is None:
        return
    requests = resources.get("requests")
    if requests is None:
        requests = resources["requests"] = {}
    for name, value in resources["limits"].items():
        requests.setdefault(name, value)


def _default_probe(probe: Object) -> None:
    for key, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        if not probe.get(key):
            probe[key] = value
    _default_http_get(probe.get("httpGet"))
    grpc = probe.get("grpc")
    if isinstance(grpc, dict) and grpc.get("service") is None:
        grpc["service"] = ""


def _default_http_get(action: Object | None) -> None:
    if isinstance(action, dict):
        if not action.get("path"):
            action["path"] = "/"
        if not action.get("scheme"):
            action["scheme"] = "HTTP"


def _default_field_ref(selector: Object | None) -> None:
    if isinstance(selector, dict) and not selector.get("apiVersion"):
        selector["apiVersion"] = "v1"


def _default_volume(volume: Object) -> None:
    if all(value is None for key, value in volume.items() if key != "name"):
        volume["emptyDir"] = {}
    for source, defaults in _VOLUME_SOURCE_DEFAULTS.items():
        if isinstance(volume.get(source), dict):
            for key, value in defaults.items():
                if volume[source].get(key) is None:
                    volume[source][key] = value
    for item in (volume.get("downwardAPI") or {}).get("items") or []:
        _default_field_ref(item.get("fieldRef"))
    for projection in (volume.get("projected") or {}).get("sources") or []:
        for item in (projection.get("downwardAPI") or {}).get("items") or []:
            _default_field_ref(item.get("fieldRef"))
        token = projection.get("serviceAccountToken")
        if isinstance(token, dict) and token.get("expirationSeconds") is None:
            token["expirationSeconds"] = 3600
    claim = (volume.get("ephemeral") or {}).get("volumeClaimTemplate")
    if isinstance(claim, dict):
        default_object_meta(claim)
        default_claim_spec(claim.setdefault("spec", {}))


def default_claim_spec(spec: Object) -> None:
    """A PersistentVolumeClaimSpec, in a claim or in a claim template."""
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    resources = spec.get("resources")
    if isinstance(resources, dict):
        default_resource_list(resources.get("limits"))
        default_resource_list(resources.get("requests"))


def _default_service_account(pod: Object, spec: Object) -> None:
    """The ServiceAccount admission plugin's name; v1 mirrors it in `serviceAccount`."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or ""
    if not name and _MIRROR_POD_ANNOTATION not in annotations:
        name = "default"
    if name:
        spec["serviceAccountName"] = spec["serviceAccount"] = name


def _default_priority(spec: Object) -> None:
    """The Priority admission plugin's value for pods without a (custom) priority class.

    Pods naming another class get its value from that PriorityClass object,
    which is admission's job (it needs the cluster's classes), not this one's.
    """
    class_name = spec.get("priorityClassName") or ""
    if class_name and class_name not in SYSTEM_PRIORITIES:
        return
    if spec.get("priority") is None:
        spec["priority"] = SYSTEM_PRIORITIES.get(class_name, 0)
    if spec.get("preemptionPolicy") is None:
        spec["preemptionPolicy"] = "PreemptLowerPriority"
