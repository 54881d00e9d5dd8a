"""Printers of apps/v1: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision."""

from __future__ import annotations

from typing import Any

from kubik.api.printers.cells import (
    containers,
    format_label_selector,
    format_labels,
    get,
    name,
    number,
    selector_string,
    template_spec,
)
from kubik.api.tables import AGE, NAME, Object, age, column, doc, printer

_APPS = "io.k8s.api.apps.v1."

CONTAINERS = column(
    "Containers", description="Names of each container in the template.", priority=1
)
IMAGES = column(
    "Images", description="Images referenced by each container in the template.", priority=1
)
READY = column("Ready", description="Number of the pod with ready state")


def _doc(definition: str, field: str) -> str:
    return doc(_APPS + definition, field)


def _selector_column(definition: str) -> dict[str, Any]:
    return column("Selector", description=_doc(definition, "selector"), priority=1)


@printer(
    "apps",
    "Deployment",
    [
        NAME,
        READY,
        column("Up-to-date", description=_doc("DeploymentStatus", "updatedReplicas")),
        column("Available", description=_doc("DeploymentStatus", "availableReplicas")),
        AGE,
        CONTAINERS,
        IMAGES,
        _selector_column("DeploymentSpec"),
    ],
)
def deployment_cells(deploy: Object) -> list[Any]:
    status = deploy.get("status") or {}
    selector = selector_string(get(deploy, "spec", "selector"))
    return [
        name(deploy),
        f"{number(status.get('readyReplicas'))}/{number(get(deploy, 'spec', 'replicas'))}",
        number(status.get("updatedReplicas")),
        number(status.get("availableReplicas")),
        age(deploy),
        *containers(template_spec(deploy)),
        "<invalid>" if selector is None else selector,
    ]


@printer(
    "apps",
    "ReplicaSet",
    [
        NAME,
        column("Desired", "integer", _doc("ReplicaSetSpec", "replicas")),
        column("Current", "integer", _doc("ReplicaSetStatus", "replicas")),
        column("Ready", "integer", _doc("ReplicaSetStatus", "readyReplicas")),
        AGE,
        CONTAINERS,
        IMAGES,
        _selector_column("ReplicaSetSpec"),
    ],
)
def replicaset_cells(rs: Object) -> list[Any]:
    status = rs.get("status") or {}
    return [
        name(rs),
        number(get(rs, "spec", "replicas")),
        number(status.get("replicas")),
        number(status.get("readyReplicas")),
        age(rs),
        *containers(template_spec(rs)),
        format_label_selector(get(rs, "spec", "selector")),
    ]


@printer("apps", "StatefulSet", [NAME, READY, AGE, CONTAINERS, IMAGES])
def statefulset_cells(sts: Object) -> list[Any]:
    ready = number(get(sts, "status", "readyReplicas"))
    return [
        name(sts),
        f"{ready}/{number(get(sts, 'spec', 'replicas'))}",
        age(sts),
        *containers(template_spec(sts)),
    ]


@printer(
    "apps",
    "DaemonSet",
    [
        NAME,
        column("Desired", "integer", _doc("DaemonSetStatus", "desiredNumberScheduled")),
        column("Current", "integer", _doc("DaemonSetStatus", "currentNumberScheduled")),
        column("Ready", "integer", _doc("DaemonSetStatus", "numberReady")),
        column("Up-to-date", "integer", _doc("DaemonSetStatus", "updatedNumberScheduled")),
        column("Available", "integer", _doc("DaemonSetStatus", "numberAvailable")),
        column("Node Selector", description=doc("io.k8s.api.core.v1.PodSpec", "nodeSelector")),
        AGE,
        CONTAINERS,
        IMAGES,
        _selector_column("DaemonSetSpec"),
    ],
)
def daemonset_cells(ds: Object) -> list[Any]:
    status = ds.get("status") or {}
    counts = (
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
        "numberAvailable",
    )
    return [
        name(ds),
        *(number(status.get(field)) for field in counts),
        format_labels(template_spec(ds).get("nodeSelector")),
        age(ds),
        *containers(template_spec(ds)),
        format_label_selector(get(ds, "spec", "selector")),
    ]


@printer(
    "apps",
    "ControllerRevision",
    [
        NAME,
        column("Controller", description="Controller of the object"),
        column("Revision", description=_doc("ControllerRevision", "revision")),
        AGE,
    ],
)
def controllerrevision_cells(revision: Object) -> list[Any]:
    return [name(revision), _controller(revision), number(revision.get("revision")), age(revision)]


def _controller(obj: Object) -> str:
    """The controlling owner as kind.group/name in lower case, "<none>" without one."""
    owners = get(obj, "metadata", "ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), None)
    if owner is None:
        return "<none>"
    api_version, kind = owner.get("apiVersion", ""), owner.get("kind", "")
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    if not kind and not group:
        return owner.get("name", "")
    qualified = f"{kind}.{group}" if group else kind
    return f"{qualified.lower()}/{owner.get('name', '')}"
