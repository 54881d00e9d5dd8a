"""What the workload controllers share about pods and the objects they own.

(upstream: pkg/controller/controller_utils.go and controller_ref_manager.go)

Controller references and the informer indexes that find an owner's objects
(`BY_CONTROLLER`) and the unowned ones (`ORPHANS`); `claim`, which adopts
matching orphans and releases objects that stopped matching; the pod
predicates (active, ready, available); new pods from a template; the cache
look-ups that find an object's owner or the owners that may adopt it; and
`slow_start`, the 1, 2, 4, … batches creations go in.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from kubik.api import builtin, meta
from kubik.api.selectors import label_selector_matches
from kubik.client.api import ApiError, Client
from kubik.client.informer import Informer

Object = dict[str, Any]

PODS = builtin.lookup("", "v1", "pods")
BY_CONTROLLER = "controller-uid"  # index: the uid of an object's controller
ORPHANS = "orphans"  # index: objects with no controller, by namespace


# ------------------------------------------------------------------ objects


def copy_of(obj: Object) -> Object:
    """A private copy of a cached object (caches are shared: never change them)."""
    return orjson.loads(orjson.dumps(obj))


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp, or None."""
    if not value:
        return None
    return datetime.datetime.fromisoformat(value).timestamp()


def controller_ref(obj: Object) -> Object | None:
    """The owner reference marked controller, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def new_controller_ref(owner: Object) -> Object:
    meta_ = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta_["name"],
        "uid": meta_["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def index_by_controller(obj: Object) -> list[str]:
    ref = controller_ref(obj)
    return [ref["uid"]] if ref and ref.get("uid") else []


def index_orphans(obj: Object) -> list[str]:
    return [] if controller_ref(obj) else [meta.namespace_of(obj)]


def labels_of(obj: Object) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def selector_of(obj: Object) -> Object | None:
    return (obj.get("spec") or {}).get("selector")


def selector_matcher(selector: Object | None) -> Callable[[dict[str, str]], bool]:
    """A fast test of labels against a LabelSelector: syncs match every pod of a set."""
    if selector is not None and not selector.get("matchExpressions"):
        wanted = (selector.get("matchLabels") or {}).items()
        return lambda labels: labels.items() >= wanted
    return functools.partial(label_selector_matches, selector)


def error_message(exc: BaseException) -> str:
    """What upstream prints for an error: a Status's message, not our prefix."""
    if isinstance(exc, ApiError):
        return exc.status.get("message") or str(exc)
    return str(exc)


def namespace_terminating(exc: BaseException) -> bool:
    if not isinstance(exc, ApiError):
        return False
    causes = (exc.status.get("details") or {}).get("causes") or []
    return any(cause.get("reason") == "NamespaceTerminating" for cause in causes)


# --------------------------------------------------------------------- pods


def is_pod_active(pod: Object) -> bool:
    """Neither finished nor being deleted (upstream's IsPodActive)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def _ready_condition(pod: Object) -> Object | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return None


def is_pod_ready(pod: Object) -> bool:
    condition = _ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def is_pod_available(pod: Object, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least minReadySeconds."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = ready_since(pod)
    return since is not None and since + min_ready_seconds < now


def ready_since(pod: Object) -> float | None:
    """When a ready pod became ready (None if it is not, or the time is unknown)."""
    return (
        parse_time(_ready_condition(pod).get("lastTransitionTime")) if is_pod_ready(pod) else None
    )


def pod_from_template(owner: Object, template: Object) -> Object:
    """A new pod of `owner` (upstream's GetPodFromTemplate): `<owner>-` plus a suffix."""
    template_meta = template.get("metadata") or {}
    metadata: Object = {
        "generateName": f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"]["namespace"],
        "ownerReferences": [new_controller_ref(owner)],
    }
    for field in ("labels", "annotations", "finalizers"):
        if template_meta.get(field):
            metadata[field] = template_meta[field]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": copy_of(template.get("spec") or {}),
    }


# ---------------------------------------------------------------- ownership


async def claim(
    client: Client,
    resource: Any,
    owner: Object,
    candidates: list[Object],
    can_adopt: Callable[[], Awaitable[bool]],
    *,
    finalizer: str = "",
) -> list[Object]:
    """The candidates `owner` controls once ownership is reconciled (ControllerRefManager).

    Owned objects its selector still matches are kept, owned ones it no longer
    matches are released, and matching orphans are adopted — if `can_adopt`
    (a fresh read: the owner is not being deleted) allows, asked at most once.
    A `finalizer` (the Job's tracking one) is added on adoption and removed on release.
    """
    owner_uid = owner["metadata"]["uid"]
    owner_deleting = bool(owner["metadata"].get("deletionTimestamp"))
    selects = selector_matcher(selector_of(owner))
    claimed: list[Object] = []
    adopt_allowed: bool | None = None
    for obj in candidates:
        matches = selects(labels_of(obj))
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != owner_uid:
                continue
            if matches:
                claimed.append(obj)
            elif not owner_deleting:
                release = {"$patch": "delete", "uid": owner_uid}
                await _patch_owners(client, resource, obj, release, finalizer)
            continue
        if owner_deleting or not matches or obj["metadata"].get("deletionTimestamp"):
            continue
        if adopt_allowed is None:
            adopt_allowed = await can_adopt()
        if adopt_allowed:
            adopted = await _patch_owners(
                client, resource, obj, new_controller_ref(owner), finalizer
            )
            if adopted is not None:
                claimed.append(adopted)
    return claimed


async def _patch_owners(
    client: Client, resource: Any, obj: Object, ref: Object, finalizer: str
) -> Object | None:
    """Add (or, with `$patch: delete`, remove) one owner reference, and the finalizer alike;
    None if the object is gone."""
    patch: Object = {"metadata": {"ownerReferences": [ref], "uid": obj["metadata"]["uid"]}}
    if finalizer and ref.get("$patch") == "delete":
        patch["metadata"]["$deleteFromPrimitiveList/finalizers"] = [finalizer]
    elif finalizer:
        patch["metadata"]["finalizers"] = [finalizer]
    try:
        return await client.patch(
            resource, meta.namespace_of(obj), meta.name_of(obj), patch, patch_type="strategic"
        )
    except ApiError as exc:
        if exc.not_found or exc.code == 422:  # gone, or a new object of the same name
            return None
        raise


async def fresh_and_alive(client: Client, resource: Any, owner: Object) -> bool:
    """Is `owner` (read from the server, not a cache) the same object and not being deleted?"""
    try:
        current = await client.get(resource, meta.namespace_of(owner), meta.name_of(owner))
    except ApiError as exc:
        if exc.not_found:
            return False
        raise
    same = current["metadata"].get("uid") == owner["metadata"]["uid"]
    return same and not current["metadata"].get("deletionTimestamp")


# ------------------------------------------------------------ cache look-ups


def owned_or_orphaned(informer: Informer, owner: Object) -> list[Object]:
    """What `owner` controls and the orphans of its namespace: the candidates a claim looks
    at (the informer needs the BY_CONTROLLER and ORPHANS indexes)."""
    metadata = owner["metadata"]
    return informer.by_index(BY_CONTROLLER, metadata["uid"]) + informer.by_index(
        ORPHANS, metadata["namespace"]
    )


def resolve_owner(informer: Informer, obj: Object, kind: str) -> Object | None:
    """The object of `kind` that controls `obj`, if the cache holds that very one (same UID)."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    owner = informer.get(f"{obj['metadata'].get('namespace')}/{ref.get('name')}")
    if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
        return None
    return owner


def selecting(informer: Informer, obj: Object) -> list[Object]:
    """The owners in `obj`'s namespace whose non-empty selector matches its labels."""
    labels = obj["metadata"].get("labels") or {}
    return [
        owner
        for owner in informer.list(obj["metadata"].get("namespace", ""))
        if (selector := (owner.get("spec") or {}).get("selector"))
        and label_selector_matches(selector, labels)
    ]


# ------------------------------------------------------------------- writes


async def slow_start(
    count: int, call: Callable[[], Awaitable[None]]
) -> tuple[int, Exception | None]:
    """Run `call` `count` times in batches of 1, 2, 4, …; stop after a batch with a failure.

    Returns (successes, first failure or None).
    """
    done, batch = 0, min(count, 1)
    while batch > 0:
        results = await asyncio.gather(*(call() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception)]
        done += batch - len(failures)
        if failures:
            return done, failures[0]
        count -= batch
        batch = min(2 * batch, count)
    return done, None
