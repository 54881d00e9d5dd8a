"""The endpoints controller: each Service with a selector gets an Endpoints object of its pods.

(upstream: pkg/controller/endpoint/endpoints_controller.go)

For every Service with a selector (not ExternalName) the controller writes an
Endpoints object of the same name: the IP of each selected pod that has one,
under `addresses` when the pod is Ready (or the Service publishes not-ready
addresses) and under `notReadyAddresses` otherwise, with the Service's ports
resolved per pod (a named `targetPort` is looked up among the pod's container
ports). Addresses offering the same ports are packed into one subset, as
upstream's RepackSubsets does. Services without a selector are left alone:
their Endpoints are written by whoever manages them. `default/kubernetes` is
skipped: the API server's own endpoints are not this controller's business.
Endpoints whose Service is gone are deleted.

The helpers above the controller (which pods count, their ports and IPs, the
trigger-time tracker) are shared with the EndpointSlice controller, as
upstream shares them through `k8s.io/endpointslice/util`.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import math
from typing import Any

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.client.informer import Informer, key_of, split_key
from kubik.controllers.base import Controller, register

Object = dict[str, Any]

SERVICES = builtin.lookup("", "v1", "services")
PODS = builtin.lookup("", "v1", "pods")
ENDPOINTS = builtin.lookup("", "v1", "endpoints")

TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
HEADLESS = "service.kubernetes.io/headless"
LEADER_RECORD = "control-plane.alpha.kubernetes.io/leader"
KUBERNETES_SERVICE = "default/kubernetes"
MAX_ADDRESSES = 1000  # more are truncated, and the object says so
RECHECK = 0.05  # seconds before a sync that met a stale cache looks again

# ------------------------------------------------------------------ shared helpers


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 with the fraction Go's RFC3339Nano writes: trailing zeros dropped."""
    text = moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0")
    return text.rstrip(".") + "Z"


def condition(obj: Object | None, kind: str) -> Object | None:
    """The status condition of type `kind`, or None."""
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return None


def is_pod_ready(pod: Object) -> bool:
    ready = condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True"


def should_be_in_endpoints(pod: Object, include_terminating: bool) -> bool:
    """A pod that ended, has no IP yet, or (unless asked) is terminating is no endpoint."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    return include_terminating or not pod["metadata"].get("deletionTimestamp")


def pod_ips(pod: Object) -> list[str]:
    """The pod's IPs, normalised (`podIPs`, or `podIP` when only that is set)."""
    status = pod.get("status") or {}
    raw = [item.get("ip", "") for item in status.get("podIPs") or []] or [status.get("podIP")]
    ips = []
    for ip in raw:
        try:
            ips.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            continue
    return ips


def is_ipv6(ip: str) -> bool:
    return ":" in ip


def find_port(pod: Object, service_port: Object) -> int | None:
    """The pod's port for a Service port: a number as is, a name among its container ports
    (sidecar init containers too) of the same protocol; None when the pod has no such port."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or [])
    containers += [
        c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"
    ]
    for container in containers:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return port.get("containerPort")
    return None


def is_headless(service: Object) -> bool:
    return (service.get("spec") or {}).get("clusterIP") in (None, "", "None")


def should_set_hostname(pod: Object, service: Object) -> bool:
    """A pod's hostname is published when it names the Service as its subdomain."""
    spec = pod.get("spec") or {}
    return (
        bool(spec.get("hostname"))
        and spec.get("subdomain") == service["metadata"]["name"]
        and pod["metadata"].get("namespace") == service["metadata"].get("namespace")
    )


def target_ref(pod: Object) -> Object:
    meta = pod["metadata"]
    return {
        "kind": "Pod",
        "namespace": meta.get("namespace", ""),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
    }


def selector_of(service: Object) -> dict[str, str] | None:
    """The Service's pod selector; None when it has none (an empty one is none too)."""
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return None
    return spec.get("selector") or None


def selects(selector: dict[str, str], obj: Object | None) -> bool:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def selected_pods(pods: Informer, service: Object, selector: dict[str, str]) -> list[Object]:
    """The pods of the Service's namespace its selector picks, in name order."""
    namespace = service["metadata"].get("namespace", "")
    chosen = [pod for pod in pods.list(namespace) if selects(selector, pod)]
    return sorted(chosen, key=lambda pod: pod["metadata"]["name"])


def namespace_terminating(exc: ApiError) -> bool:
    """Creating in a namespace being deleted fails for good: nothing to retry."""
    causes = (exc.status.get("details") or {}).get("causes") or []
    return exc.code == 403 and any(c.get("reason") == "NamespaceTerminating" for c in causes)


def pod_handlers(controller: Controller, services: Informer) -> dict:
    """Pod handlers that enqueue every Service selecting the pod, before and after a change."""

    def enqueue_for(*pods: Object | None) -> None:
        for pod in pods:
            if pod is None:
                continue
            namespace = pod["metadata"].get("namespace", "")
            for service in services.list(namespace):
                selector = selector_of(service)
                if selector and selects(selector, pod):
                    controller.queue.add(key_of(service))

    return {
        "on_add": lambda pod: enqueue_for(pod),
        "on_update": lambda old, new: enqueue_for(old, new),
        "on_delete": lambda pod: enqueue_for(pod),
    }


class TriggerTimeTracker:
    """When did the change that the next write of a Service's endpoints reflects happen?

    The `last-change-trigger-time` annotation (upstream's TriggerTimeTracker):
    the Service's creation on its first sync, then the earliest Ready
    transition among its pods that changed since the previous sync; None when
    nothing known changed (the annotation is then cleared).
    """

    def __init__(self) -> None:
        self._services: dict[
            str, tuple[datetime.datetime | None, dict[str, datetime.datetime]]
        ] = {}

    def compute(self, service: Object, pods: list[Object]) -> datetime.datetime | None:
        key = key_of(service)
        known = key in self._services
        last_service, last_pods = self._services.get(key, (None, {}))
        earliest: datetime.datetime | None = None
        pod_times: dict[str, datetime.datetime] = {}
        for pod in pods:
            moment = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
            if moment is None:
                continue
            name = pod["metadata"]["name"]
            pod_times[name] = moment
            previous = last_pods.get(name)
            if previous is None or moment > previous:
                earliest = moment if earliest is None else min(earliest, moment)
        created = parse_time(service["metadata"].get("creationTimestamp"))
        if created is not None and (last_service is None or created > last_service):
            earliest = created if earliest is None else min(earliest, created)
        self._services[key] = (created, pod_times)
        return created if not known else earliest

    def forget(self, key: str) -> None:
        self._services.pop(key, None)


# ------------------------------------------------------------------ subsets


def _address_key(address: Object) -> tuple[str, str]:
    return address["ip"], (address.get("targetRef") or {}).get("uid", "")


def _port_key(port: Object | None) -> tuple:
    if port is None:
        return ()
    return (
        port.get("name", ""),
        port["port"],
        port.get("protocol", "TCP"),
        port.get("appProtocol", ""),
    )


def repack(subsets: list[Object]) -> list[Object]:
    """Subsets in their canonical form: addresses offering the same ports (with the same
    readiness) share one subset; not ready wins over ready for an address seen twice."""
    addresses: dict[tuple[str, str], Object] = {}
    ports: dict[tuple, Object | None] = {}
    readiness: dict[tuple, dict[tuple[str, str], bool]] = {}
    for subset in subsets:
        for port in subset.get("ports") or [None]:  # a headless Service may have no ports
            port_key = _port_key(port)
            ports[port_key] = port
            ready_of = readiness.setdefault(port_key, {})
            for field, ready in (("addresses", True), ("notReadyAddresses", False)):
                for address in subset.get(field) or []:
                    key = _address_key(address)
                    addresses.setdefault(key, address)
                    if ready_of.get(key, True):
                        ready_of[key] = ready
    groups: dict[tuple, list[tuple]] = {}
    for port_key, ready_of in readiness.items():
        groups.setdefault(tuple(sorted(ready_of.items())), []).append(port_key)
    packed = []
    for members, port_keys in groups.items():
        subset: Object = {}
        ready = [addresses[key] for key, is_ready in members if is_ready]
        not_ready = [addresses[key] for key, is_ready in members if not is_ready]
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        chosen = [ports[key] for key in sorted(port_keys) if ports[key] is not None]
        if chosen:
            subset["ports"] = chosen
        packed.append(subset)
    return sorted(packed, key=lambda subset: json.dumps(subset, sort_keys=True))


def _truncate(subsets: list[Object]) -> bool:
    """Keep at most MAX_ADDRESSES addresses, ready ones first, spread over the subsets in
    proportion to their sizes; True when something was cut."""
    ready = sum(len(s.get("addresses") or []) for s in subsets)
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if ready + not_ready <= MAX_ADDRESSES:
        return False
    field, total, room = "notReadyAddresses", not_ready, MAX_ADDRESSES - ready
    if ready > MAX_ADDRESSES:
        field, total, room = "addresses", ready, MAX_ADDRESSES
    left = room
    for subset in subsets:
        if field == "addresses":
            subset.pop("notReadyAddresses", None)
        members = subset.get(field) or []
        share = min(math.ceil(len(members) / total * room), left)
        if members:
            subset[field] = members[:share]
            left -= len(subset[field])
            if not subset[field]:
                del subset[field]
    return True


def build_subsets(service: Object, pods: list[Object]) -> list[Object]:
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    families = spec.get("ipFamilies") or []
    want_ipv6 = families[0] == "IPv6" if families else is_ipv6(spec.get("clusterIP") or "")
    subsets = []
    for pod in pods:
        if not should_be_in_endpoints(pod, publish_not_ready):
            continue
        ip = next((ip for ip in pod_ips(pod) if is_ipv6(ip) == want_ipv6), None)
        if ip is None:
            continue
        address: Object = {"ip": ip}
        if should_set_hostname(pod, service):
            address["hostname"] = pod["spec"]["hostname"]
        if (pod.get("spec") or {}).get("nodeName"):
            address["nodeName"] = pod["spec"]["nodeName"]
        address["targetRef"] = target_ref(pod)
        field = "addresses" if publish_not_ready or is_pod_ready(pod) else "notReadyAddresses"
        service_ports = spec.get("ports") or []
        if not service_ports:
            if is_headless(service):
                subsets.append({field: [address]})
            continue
        for service_port in service_ports:
            number = find_port(pod, service_port)
            if number is None:
                continue
            port: Object = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
            if service_port.get("name"):
                port["name"] = service_port["name"]
            if service_port.get("appProtocol"):
                port["appProtocol"] = service_port["appProtocol"]
            subsets.append({field: [address], "ports": [port]})
    return repack(subsets)


# ------------------------------------------------------------------ controller


@register
class EndpointsController(Controller):
    name = "endpoint"

    def setup(self) -> None:
        self.services = self.informers.informer(SERVICES)
        self.pods = self.informers.informer(PODS)
        self.endpoints = self.informers.informer(ENDPOINTS)
        self.triggers = TriggerTimeTracker()
        self.services.add_handlers(**self.enqueue_handlers())
        self.pods.add_handlers(**pod_handlers(self, self.services))
        # Endpoints left from Services deleted while no controller ran are found at
        # start (every object is "added" then); a deleted one is written again.
        self.endpoints.add_handlers(on_add=self._leftover, on_delete=self.enqueue)

    def _leftover(self, endpoints: Object) -> None:
        if LEADER_RECORD not in (endpoints["metadata"].get("annotations") or {}):
            self.enqueue(endpoints)

    async def sync(self, key: str) -> None:
        if key == KUBERNETES_SERVICE:
            return
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            self.triggers.forget(key)
            if self.endpoints.get(key) is not None:
                await self._delete(namespace, name)
            return
        selector = selector_of(service)
        if selector is None:
            return
        pods = selected_pods(self.pods, service, selector)
        trigger = self.triggers.compute(service, pods)
        subsets = build_subsets(service, pods)
        current = self.endpoints.get(key)
        labels = dict(service["metadata"].get("labels") or {})
        if current is not None and self._up_to_date(current, subsets, labels):
            return
        wanted = (
            copy.deepcopy(current)
            if current
            else {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": namespace},
            }
        )
        meta = wanted["metadata"]
        annotations = dict(meta.get("annotations") or {})
        if trigger is not None:
            annotations[TRIGGER_TIME] = format_time(trigger)
        else:
            annotations.pop(TRIGGER_TIME, None)
        if _truncate(subsets):
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        if is_headless(service):
            labels[HEADLESS] = ""
        set_or_drop(meta, "labels", labels)
        set_or_drop(meta, "annotations", annotations)
        set_or_drop(wanted, "subsets", subsets)
        await self._write(service, wanted, create=current is None)

    @staticmethod
    def _up_to_date(current: Object, subsets: list[Object], labels: dict[str, str]) -> bool:
        meta = current["metadata"]
        stored_labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HEADLESS}
        addresses = sum(
            len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets
        )
        capacity_noted = OVER_CAPACITY in (meta.get("annotations") or {})
        return (
            _without_versions(current.get("subsets") or []) == _without_versions(subsets)
            and stored_labels == labels
            and addresses <= MAX_ADDRESSES
            and not capacity_noted
        )

    async def _write(self, service: Object, endpoints: Object, *, create: bool) -> None:
        try:
            if create:
                await self.client.create(ENDPOINTS, endpoints)
            else:
                await self.client.update(ENDPOINTS, endpoints)
        except ApiError as exc:
            if create and namespace_terminating(exc):
                return
            if exc.conflict or exc.already_exists:
                # the cache is behind a write (often our own): look again once it caught up
                self.queue.add_after(key_of(service), RECHECK)
                return
            verb = "create" if create else "update"
            self.recorder.record(
                endpoints,
                "Warning",
                "FailedToCreateEndpoint" if create else "FailedToUpdateEndpoint",
                f"Failed to {verb} endpoint {key_of(service)}: {exc}",
            )
            raise

    async def _delete(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(ENDPOINTS, namespace, name)
        except ApiError as exc:
            if not exc.not_found:
                raise


def set_or_drop(obj: Object, field: str, value: Any) -> None:
    """Empty fields are left out, as Go's omitempty leaves them out of upstream's objects."""
    if value:
        obj[field] = value
    else:
        obj.pop(field, None)


def _without_versions(subsets: list[Object]) -> list[Object]:
    """Subsets compared regardless of the pods' resourceVersions in targetRefs."""
    plain = copy.deepcopy(subsets)
    for subset in plain:
        for field in ("addresses", "notReadyAddresses"):
            for address in subset.get(field) or []:
                (address.get("targetRef") or {}).pop("resourceVersion", None)
    return plain
