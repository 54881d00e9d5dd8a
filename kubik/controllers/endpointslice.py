"""The EndpointSlice controller: the endpoints of each selecting Service, in slices.

(upstream: pkg/controller/endpointslice, and the reconciler of k8s.io/endpointslice)

For every Service with a selector the controller keeps discovery.k8s.io/v1
EndpointSlices (labelled `kubernetes.io/service-name` and
`endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`,
owned by the Service): one endpoint per selected pod with an IP of the
slice's address type, its conditions (ready, serving, terminating), node,
zone and pod reference. Pods whose ports resolve alike share slices; a slice
holds at most 100 endpoints. As upstream, changes are made in place where
they can be (endpoints updated or removed in their slice, new ones fill the
slices being written anyway, then the one closest to full, then new slices),
so that slices churn little; a Service with no endpoints keeps one empty
placeholder slice.

Slices of a deleted Service are deleted here too (upstream leaves that to
the garbage collector through their owner reference).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.client.informer import Informer, split_key
from kubik.controllers.base import Controller, register
from kubik.controllers.endpoints import (
    HEADLESS,
    PODS,
    RECHECK,
    SERVICES,
    TRIGGER_TIME,
    TriggerTimeTracker,
    find_port,
    format_time,
    is_headless,
    is_ipv6,
    is_pod_ready,
    namespace_terminating,
    pod_handlers,
    pod_ips,
    selected_pods,
    selector_of,
    set_or_drop,
    should_be_in_endpoints,
    should_set_hostname,
    target_ref,
)

Object = dict[str, Any]

SLICES = builtin.lookup("discovery.k8s.io", "v1", "endpointslices")
NODES = builtin.lookup("", "v1", "nodes")

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE = "topology.kubernetes.io/zone"
MAX_ENDPOINTS = 100
EXPECTATION_TTL = 30.0  # seconds
_RESERVED_LABELS = (SERVICE_NAME, MANAGED_BY, HEADLESS)
_BY_SERVICE = "endpointslice-service"


# ------------------------------------------------------------------ what a slice holds


def address_types(service: Object) -> list[str]:
    """The address types the Service's slices have: its IP families (or, for a Service
    without them, its cluster IP's family; both for a headless one)."""
    spec = service.get("spec") or {}
    types = [f for f in spec.get("ipFamilies") or [] if f in ("IPv4", "IPv6")]
    if types:
        return types
    if not is_headless(service):
        return ["IPv6" if is_ipv6(spec["clusterIP"]) else "IPv4"]
    return ["IPv4", "IPv6"]


def endpoint_ports(service: Object, pod: Object) -> list[Object]:
    """The Service's ports as the pod offers them (ports it lacks are left out)."""
    ports = []
    for service_port in (service.get("spec") or {}).get("ports") or []:
        number = find_port(pod, service_port)
        if number is None:
            continue
        port = {
            "name": service_port.get("name", ""),
            "port": number,
            "protocol": service_port.get("protocol") or "TCP",
        }
        if service_port.get("appProtocol"):
            port["appProtocol"] = service_port["appProtocol"]
        ports.append(port)
    return ports


def ports_key(ports: list[Object] | None) -> tuple:
    """Slices are grouped by their port set, whatever its order."""
    return tuple(
        sorted(
            (
                p.get("name") or "",
                p.get("port") or 0,
                p.get("protocol") or "TCP",
                p.get("appProtocol") or "",
            )
            for p in ports or []
        )
    )


def endpoint_key(endpoint: Object) -> tuple:
    """What identifies an endpoint across updates: its addresses, hostname and pod."""
    ref = endpoint.get("targetRef") or {}
    return (
        tuple(sorted(endpoint.get("addresses") or [])),
        endpoint.get("hostname") or "",
        ref.get("namespace", ""),
        ref.get("name", ""),
    )


def pod_endpoint(pod: Object, node: Object | None, service: Object, address_type: str) -> Object:
    serving = is_pod_ready(pod)
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    endpoint: Object = {
        "addresses": [ip for ip in pod_ips(pod) if is_ipv6(ip) == (address_type == "IPv6")],
        # a terminating pod is never "ready", unless the Service publishes all addresses
        "conditions": {
            "ready": publish or (serving and not terminating),
            "serving": serving,
            "terminating": terminating,
        },
        "targetRef": target_ref(pod),
    }
    if (pod.get("spec") or {}).get("nodeName"):
        endpoint["nodeName"] = pod["spec"]["nodeName"]
    zone = ((node or {}).get("metadata", {}).get("labels") or {}).get(ZONE)
    if zone:
        endpoint["zone"] = zone
    if should_set_hostname(pod, service):
        endpoint["hostname"] = pod["spec"]["hostname"]
    return endpoint


def slice_labels(slice_: Object, service: Object) -> tuple[dict[str, str], bool]:
    """The labels the slice should have (the Service's, plus the reserved ones), and
    whether the Service's own labels differ from the slice's."""
    current = {
        k: v
        for k, v in (slice_["metadata"].get("labels") or {}).items()
        if k not in _RESERVED_LABELS
    }
    wanted = {
        k: v
        for k, v in (service["metadata"].get("labels") or {}).items()
        if k not in _RESERVED_LABELS
    }
    changed = current != wanted
    if is_headless(service):
        wanted[HEADLESS] = ""
    wanted[SERVICE_NAME] = service["metadata"]["name"]
    wanted[MANAGED_BY] = CONTROLLER_NAME
    return wanted, changed


def new_slice(service: Object, ports: list[Object], address_type: str) -> Object:
    meta = service["metadata"]
    slice_: Object = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": f"{meta['name']}-",
            "namespace": meta.get("namespace", ""),
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "addressType": address_type,
        "endpoints": [],
        "ports": ports,
    }
    slice_["metadata"]["labels"], _ = slice_labels(slice_, service)
    return slice_


def owned_by(slice_: Object, service: Object) -> bool:
    uid = service["metadata"].get("uid")
    return any(
        ref.get("uid") == uid and ref.get("kind") == "Service" and ref.get("apiVersion") == "v1"
        for ref in slice_["metadata"].get("ownerReferences") or []
    )


def _is_placeholder_of(slice_: Object, placeholder: Object) -> bool:
    """The same empty slice: namespace, labels, owner, address type; no ports or endpoints."""
    return (
        slice_["metadata"].get("namespace") == placeholder["metadata"]["namespace"]
        and (slice_["metadata"].get("labels") or {}) == placeholder["metadata"]["labels"]
        and slice_["metadata"].get("ownerReferences") == placeholder["metadata"]["ownerReferences"]
        and slice_.get("addressType") == placeholder["addressType"]
        and not slice_.get("endpoints")
        and not slice_.get("ports")
    )


# ------------------------------------------------------------------ reconciling


@dataclass
class Plan:
    """The writes that take a Service's slices to the desired state."""

    create: list[Object] = field(default_factory=list)
    update: list[Object] = field(default_factory=list)
    delete: list[Object] = field(default_factory=list)
    # pods left out because their node is unknown (the sync is retried for them)
    nodeless: list[str] = field(default_factory=list)


def reconcile(
    service: Object,
    pods: list[Object],
    node_of: Callable[[str], Object | None],
    existing: list[Object],
    max_endpoints: int = MAX_ENDPOINTS,
) -> Plan:
    """Compare the slices a Service has with the endpoints its pods make
    (`node_of` finds a node by name)."""
    plan = Plan()
    supported = address_types(service)
    for address_type in supported:
        same_type = [s for s in existing if s.get("addressType") == address_type]
        _reconcile_address_type(
            plan, service, pods, node_of, same_type, address_type, max_endpoints
        )
    plan.delete += [s for s in existing if s.get("addressType") not in supported]
    return plan


def _reconcile_address_type(
    plan: Plan,
    service: Object,
    pods: list[Object],
    node_of: Callable[[str], Object | None],
    existing: list[Object],
    address_type: str,
    max_endpoints: int,
) -> None:
    create: list[Object] = []
    update: list[Object] = []
    delete: list[Object] = []
    existing_by_ports: dict[tuple, list[Object]] = {}
    for slice_ in existing:
        if owned_by(slice_, service):
            existing_by_ports.setdefault(ports_key(slice_.get("ports")), []).append(slice_)
        else:
            delete.append(slice_)

    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    desired: dict[tuple, dict[tuple, Object]] = {}
    desired_ports: dict[tuple, list[Object]] = {}
    for pod in pods:
        if not should_be_in_endpoints(pod, include_terminating=True):
            continue
        ports = endpoint_ports(service, pod)
        key = ports_key(ports)
        wanted = desired.setdefault(key, {})
        desired_ports.setdefault(key, ports)
        node = node_of((pod.get("spec") or {}).get("nodeName") or "")
        if node is None and not publish:
            plan.nodeless.append(pod["metadata"]["name"])
            continue
        endpoint = pod_endpoint(pod, node, service, address_type)
        if endpoint["addresses"]:
            wanted[endpoint_key(endpoint)] = endpoint

    for key, wanted in desired.items():
        made, changed, emptied = _reconcile_ports(
            service,
            existing_by_ports.get(key, []),
            wanted,
            desired_ports[key],
            address_type,
            max_endpoints,
        )
        create += made
        update += changed
        delete += emptied
    for key, slices in existing_by_ports.items():
        if key not in desired:
            delete += slices

    if len(existing) == len(delete) and not create:
        placeholder = new_slice(service, [], address_type)
        if len(delete) == 1 and _is_placeholder_of(delete[0], placeholder):
            delete = []
        else:
            create.append(placeholder)

    # a slice about to be deleted is rather rewritten than a new one made
    index = 0
    while create and index < len(delete):
        if owned_by(delete[index], service):
            update.append(_reuse(delete.pop(index), create.pop()))
        else:
            index += 1
    plan.create += create
    plan.update += update
    plan.delete += delete


def _reconcile_ports(
    service: Object,
    existing: list[Object],
    desired: dict[tuple, Object],
    ports: list[Object],
    address_type: str,
    max_endpoints: int,
) -> tuple[list[Object], list[Object], list[Object]]:
    """Slices to create, update and delete for one port set (consumes `desired`)."""
    by_name: dict[str, Object] = {}
    unchanged: list[str] = []
    to_update: list[str] = []
    to_delete: list[str] = []

    # 1. keep what is still wanted where it is, refreshed; drop the rest
    for slice_ in sorted(existing, key=lambda s: s["metadata"]["name"]):
        name = slice_["metadata"]["name"]
        by_name[name] = slice_
        kept, refreshed = [], False
        for endpoint in slice_.get("endpoints") or []:
            wanted = desired.pop(endpoint_key(endpoint), None)
            if wanted is not None:
                kept.append(wanted)
                refreshed = refreshed or wanted != endpoint
        labels, labels_changed = slice_labels(slice_, service)
        if refreshed or len(kept) != len(slice_.get("endpoints") or []):
            if not kept:
                to_delete.append(name)
                continue
            by_name[name] = {**slice_, "endpoints": kept}
        elif not labels_changed:
            unchanged.append(name)
            continue
        by_name[name] = copy.deepcopy(by_name[name])
        by_name[name]["metadata"]["labels"] = labels
        to_update.append(name)

    # 2. fill the slices written anyway, fullest first
    for name in sorted(to_update, key=lambda n: -len(by_name[n]["endpoints"])):
        _fill(by_name[name], desired, max_endpoints)

    # 3. what is left: into the unchanged slice it fills best, else into new slices
    create: list[Object] = []
    while desired:
        target = None
        if len(desired) < max_endpoints:
            target = _slice_to_fill([by_name[n] for n in unchanged], len(desired), max_endpoints)
        if target is None:
            fresh = new_slice(service, ports, address_type)
            _fill(fresh, desired, max_endpoints)
            create.append(fresh)
            continue
        name = target["metadata"]["name"]
        by_name[name] = copy.deepcopy(target)
        _fill(by_name[name], desired, max_endpoints)
        unchanged.remove(name)
        to_update.append(name)
    return create, [by_name[n] for n in to_update], [by_name[n] for n in to_delete]


def _fill(slice_: Object, desired: dict[tuple, Object], max_endpoints: int) -> None:
    endpoints = slice_.setdefault("endpoints", [])
    while desired and len(endpoints) < max_endpoints:
        endpoints.append(desired.pop(next(iter(desired))))


def _slice_to_fill(slices: list[Object], count: int, max_endpoints: int) -> Object | None:
    """The slice that `count` more endpoints would bring closest to full, if any fits them."""
    best, best_room = None, max_endpoints
    for slice_ in slices:
        room = max_endpoints - count - len(slice_.get("endpoints") or [])
        if 0 <= room < best_room:
            best, best_room = slice_, room
    return best


def _reuse(old: Object, new: Object) -> Object:
    """`new`'s content under the name (and version) of the slice `old`."""
    meta = old["metadata"]
    return {
        **new,
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
            "labels": new["metadata"]["labels"],
            "ownerReferences": new["metadata"]["ownerReferences"],
        },
    }


# ------------------------------------------------------------------ controller


class _Expectations:
    """Slice writes of this controller that its informer has not shown yet.

    A sync that worked from a cache missing a slice it had just created would
    create another (upstream: EndpointSliceTracker), so a Service whose
    writes are not all seen yet waits for the cache. An expectation that is
    never met (the slice came and went unseen) lapses after EXPECTATION_TTL.
    """

    def __init__(self) -> None:
        # service key → slice name → ("created" | "updated" | "deleted", replaced version, until)
        self._pending: dict[str, dict[str, tuple[str, str, float]]] = {}

    def expect(self, service_key: str, name: str, what: str, version: str = "") -> None:
        until = time.monotonic() + EXPECTATION_TTL
        self._pending.setdefault(service_key, {})[name] = (what, version, until)

    def gone(self, service_key: str, name: str) -> None:
        """A slice was deleted: whatever was expected of it is settled."""
        pending = self._pending.get(service_key)
        if pending is not None:
            pending.pop(name, None)

    def forget(self, service_key: str) -> None:
        self._pending.pop(service_key, None)

    def stale(self, service_key: str, slices: Informer) -> bool:
        pending = self._pending.get(service_key)
        if not pending:
            return False
        namespace, _ = split_key(service_key)
        now = time.monotonic()
        for name, (what, version, until) in list(pending.items()):
            cached = slices.get(f"{namespace}/{name}")
            if what == "created":
                seen = cached is not None
            elif what == "deleted":
                seen = cached is None
            else:
                seen = cached is None or cached["metadata"].get("resourceVersion") != version
            if seen or now > until:
                del pending[name]
        return bool(pending)


def _managed_service(slice_: Object) -> list[str]:
    """The key of the Service a slice of this controller belongs to."""
    meta = slice_.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY) != CONTROLLER_NAME or not labels.get(SERVICE_NAME):
        return []
    return [f"{meta.get('namespace', '')}/{labels[SERVICE_NAME]}"]


@register
class EndpointSliceController(Controller):
    name = "endpointslice"

    def setup(self) -> None:
        self.services = self.informers.informer(SERVICES)
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        self.slices = self.informers.informer(SLICES)
        self.slices.add_index(_BY_SERVICE, _managed_service)
        self.triggers = TriggerTimeTracker()
        self.expected = _Expectations()
        self.services.add_handlers(**self.enqueue_handlers())
        self.pods.add_handlers(**pod_handlers(self, self.services))
        self.slices.add_handlers(
            on_add=self._slice_changed,
            on_update=lambda old, new: self._slice_changed(new),
            on_delete=self._slice_deleted,
        )

    def _slice_changed(self, slice_: Object) -> None:
        for key in _managed_service(slice_):
            self.queue.add(key)

    def _slice_deleted(self, slice_: Object) -> None:
        for key in _managed_service(slice_):
            self.expected.gone(key, slice_["metadata"]["name"])
            self.queue.add(key)

    async def sync(self, key: str) -> None:
        service = self.services.get(key)
        existing = self.slices.by_index(_BY_SERVICE, key)
        if service is None:
            self.triggers.forget(key)
            self.expected.forget(key)
            for slice_ in existing:
                await self._delete(slice_)
            return
        selector = selector_of(service)
        if selector is None:
            return
        if self.expected.stale(key, self.slices):
            self.queue.add_after(key, RECHECK)
            return
        pods = selected_pods(self.pods, service, selector)
        trigger = self.triggers.compute(service, pods)
        plan = reconcile(service, pods, self.nodes.get, existing)
        await self._apply(key, service, plan, format_time(trigger) if trigger else None)
        if plan.nodeless:
            raise LookupError(
                f"pods {', '.join(plan.nodeless)} of {key} are on nodes that are not known yet"
            )

    async def _apply(self, key: str, service: Object, plan: Plan, trigger: str | None) -> None:
        # no new slices for a Service on its way out: they would race its garbage collection
        if not service["metadata"].get("deletionTimestamp"):
            for slice_ in plan.create:
                _annotate(slice_, trigger)
                try:
                    created = await self.client.create(SLICES, slice_)
                except ApiError as exc:
                    if namespace_terminating(exc):
                        return
                    raise
                self.expected.expect(key, created["metadata"]["name"], "created")
        for slice_ in plan.update:
            _annotate(slice_, trigger)
            try:
                await self.client.update(SLICES, slice_)
            except ApiError as exc:
                if not exc.conflict:
                    raise
                self.queue.add_after(key, RECHECK)  # the cache was behind: look again
                return
            version = slice_["metadata"].get("resourceVersion", "")
            self.expected.expect(key, slice_["metadata"]["name"], "updated", version)
        for slice_ in plan.delete:
            await self._delete(slice_)
            self.expected.expect(key, slice_["metadata"]["name"], "deleted")

    async def _delete(self, slice_: Object) -> None:
        meta = slice_["metadata"]
        try:
            await self.client.delete(SLICES, meta.get("namespace", ""), meta["name"])
        except ApiError as exc:
            if not exc.not_found:
                raise


def _annotate(slice_: Object, trigger: str | None) -> None:
    meta = slice_["metadata"]
    annotations = dict(meta.get("annotations") or {})
    if trigger:
        annotations[TRIGGER_TIME] = trigger
    else:
        annotations.pop(TRIGGER_TIME, None)
    set_or_drop(meta, "annotations", annotations)
