"""The StatefulSet controller: pods with stable names, storage and order.

Each StatefulSet `web` of N replicas owns pods `web-0` … `web-<N-1>` (from
`spec.ordinals.start`), each with hostname = its name and subdomain =
`spec.serviceName`, and, for every volumeClaimTemplate `data`, a claim
`data-web-<ordinal>` that outlives the pod unless the retention policy says
otherwise. With OrderedReady (the default) a pod is created only when every
lower ordinal is Running and Ready, and removed highest first; Parallel
creates and removes them all at once. Templates are recorded as
ControllerRevisions; a RollingUpdate deletes pods not at the update revision
from the highest ordinal down to `partition`, at most `maxUnavailable` at a
time, and their replacements come back at the new revision; OnDelete only
replaces pods someone else deleted.

(upstream: pkg/controller/statefulset)
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.client.informer import key_of
from kubik.controllers import revisions as history
from kubik.controllers.base import Controller, register
from kubik.controllers.deployment_util import scaled_value
from kubik.controllers.podutil import (
    BY_CONTROLLER,
    ORPHANS,
    claim,
    controller_ref,
    error_message,
    fresh_and_alive,
    index_by_controller,
    index_orphans,
    is_pod_available,
    is_pod_ready,
    new_controller_ref,
    owned_or_orphaned,
    pod_from_template,
    resolve_owner,
    selecting,
    slow_start,
)
from kubik.controllers.revisions import (
    HASH_LABEL,
    REVISION_LABEL,
)

log = logging.getLogger(__name__)

Object = dict[str, Any]

STATEFULSETS = builtin.lookup("apps", "v1", "statefulsets")
PODS = builtin.lookup("", "v1", "pods")
CLAIMS = builtin.lookup("", "v1", "persistentvolumeclaims")
KIND = "StatefulSet"

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")
_MAX_INT32 = 2**31 - 1
_STATUS_RETRIES = 5


# ------------------------------------------------------------- pod identity


def parent_and_ordinal(pod: Object) -> tuple[str, int]:
    """The set a pod's name says it belongs to, and its ordinal (-1 when it has none)."""
    match = _ORDINAL.match(pod["metadata"].get("name", ""))
    if not match or int(match[2]) > _MAX_INT32:
        return "", -1
    return match[1], int(match[2])


def ordinal_of(pod: Object) -> int:
    return parent_and_ordinal(pod)[1]


def start_ordinal(sts: Object) -> int:
    return ((sts["spec"].get("ordinals") or {}).get("start")) or 0


def replica_count(sts: Object) -> int:
    replicas = sts["spec"].get("replicas")
    return 1 if replicas is None else replicas


def in_range(pod: Object, sts: Object) -> bool:
    ordinal = ordinal_of(pod)
    return start_ordinal(sts) <= ordinal < start_ordinal(sts) + replica_count(sts)


def is_member(sts: Object, pod: Object) -> bool:
    return parent_and_ordinal(pod)[0] == sts["metadata"]["name"]


def identity_matches(sts: Object, pod: Object) -> bool:
    parent, ordinal = parent_and_ordinal(pod)
    meta = pod["metadata"]
    return (
        ordinal >= 0
        and parent == sts["metadata"]["name"]
        and meta.get("namespace") == sts["metadata"]["namespace"]
        and (meta.get("labels") or {}).get(POD_NAME_LABEL) == meta["name"]
    )


def claim_name(sts: Object, template: Object, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{sts['metadata']['name']}-{ordinal}"


def claims_for(sts: Object, ordinal: int) -> dict[str, Object]:
    """Template name → the claim of that template for the pod at `ordinal`."""
    match_labels = (sts["spec"].get("selector") or {}).get("matchLabels") or {}
    claims = {}
    for template in sts["spec"].get("volumeClaimTemplates") or []:
        pvc = copy.deepcopy(template)
        pvc.pop("status", None)
        pvc["apiVersion"], pvc["kind"] = "v1", "PersistentVolumeClaim"
        meta = pvc.setdefault("metadata", {})
        meta["name"] = claim_name(sts, template, ordinal)
        meta["namespace"] = sts["metadata"]["namespace"]
        meta["labels"] = {**(meta.get("labels") or {}), **match_labels}
        claims[template["metadata"]["name"]] = pvc
    return claims


def storage_matches(sts: Object, pod: Object) -> bool:
    """Does every claim template have a volume of the pod pointing at the pod's claim?"""
    ordinal = ordinal_of(pod)
    if ordinal < 0:
        return False
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for template in sts["spec"].get("volumeClaimTemplates") or []:
        source = (volumes.get(template["metadata"]["name"]) or {}).get("persistentVolumeClaim")
        if not source or source.get("claimName") != claim_name(sts, template, ordinal):
            return False
    return True


def update_storage(sts: Object, pod: Object) -> None:
    """Point the pod's volumes at its claims, replacing same-named volumes."""
    claims = claims_for(sts, ordinal_of(pod))
    spec = pod.setdefault("spec", {})
    volumes = [
        {"name": name, "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]}}
        for name, pvc in claims.items()
    ]
    volumes += [v for v in spec.get("volumes") or [] if v.get("name") not in claims]
    if volumes:
        spec["volumes"] = volumes


def update_identity(sts: Object, pod: Object) -> None:
    ordinal = ordinal_of(pod)
    meta = pod["metadata"]
    meta["name"] = f"{sts['metadata']['name']}-{ordinal}"
    meta["namespace"] = sts["metadata"]["namespace"]
    labels = meta.setdefault("labels", {})
    labels[POD_NAME_LABEL] = meta["name"]
    labels[POD_INDEX_LABEL] = str(ordinal)


def new_pod(sts: Object, ordinal: int) -> Object:
    """A pod of `sts`'s template with the identity and storage of `ordinal` (not yet created)."""
    pod = pod_from_template(sts, sts["spec"].get("template") or {})
    name = f"{sts['metadata']['name']}-{ordinal}"
    pod["metadata"]["name"] = name
    pod["metadata"]["labels"] = dict(pod["metadata"].get("labels") or {})
    update_identity(sts, pod)
    pod["spec"]["hostname"] = name
    if sts["spec"].get("serviceName"):
        pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
    update_storage(sts, pod)
    return pod


def revision_of(pod: Object) -> str:
    return (pod["metadata"].get("labels") or {}).get(REVISION_LABEL, "")


def versioned_pod(
    current_set: Object, update_set: Object, current: str, update: str, ordinal: int
) -> Object:
    """A new pod at the current revision when the strategy keeps `ordinal` there, else the update's.

    (Upstream's condition, operator precedence included: a partition keeps
    lower ordinals current even outside RollingUpdate.)
    """
    strategy = current_set["spec"].get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    start = start_ordinal(current_set)
    if (
        strategy.get("type") == "RollingUpdate"
        and rolling is None
        and ordinal < start + ((current_set.get("status") or {}).get("currentReplicas") or 0)
    ) or (rolling is not None and ordinal < start + (rolling.get("partition") or 0)):
        pod, revision = new_pod(current_set, ordinal), current
    else:
        pod, revision = new_pod(update_set, ordinal), update
    pod["metadata"]["labels"][REVISION_LABEL] = revision
    return pod


def apply_revision(sts: Object, revision: Object) -> Object:
    """`sts` with the pod template `revision` records."""
    spec = {**sts["spec"], "template": history.template_of(revision.get("data"))}
    return {**sts, "spec": spec}


# ------------------------------------------------------------------ pod state


def phase_of(pod: Object) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_created(pod: Object) -> bool:
    return phase_of(pod) != ""


def is_terminating(pod: Object) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_running_and_ready(pod: Object) -> bool:
    return phase_of(pod) == "Running" and is_pod_ready(pod)


def is_healthy(pod: Object) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def is_unavailable(pod: Object, min_ready_seconds: int) -> bool:
    return not is_healthy(pod) or not is_pod_available(pod, min_ready_seconds, time.time())


def count_status(status: Object, sts: Object, pods: list[Object]) -> None:
    """Fill the replica counts of `status` from `pods` (not-yet-created ones ignored)."""
    min_ready = sts["spec"].get("minReadySeconds") or 0
    now = time.time()
    counts = dict.fromkeys(
        ("replicas", "readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas"),
        0,
    )
    for pod in pods:
        if is_created(pod):
            counts["replicas"] += 1
        if is_running_and_ready(pod):
            counts["readyReplicas"] += 1
            if is_pod_available(pod, min_ready, now):
                counts["availableReplicas"] += 1
        if is_created(pod) and not is_terminating(pod):
            revision = revision_of(pod)
            counts["currentReplicas"] += revision == status["currentRevision"]
            counts["updatedReplicas"] += revision == status["updateRevision"]
    status.update(counts)


# -------------------------------------------------------------- claim owners


def retention(sts: Object) -> tuple[str, str]:
    """(whenScaled, whenDeleted) of the claim retention policy; Retain unless set."""
    policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
    return policy.get("whenScaled") or "Retain", policy.get("whenDeleted") or "Retain"


def _refers_to(ref: Object, obj: Object, kind: str) -> bool:
    return ref.get("kind") == kind and ref.get("name") == obj["metadata"]["name"]


def wanted_claim_owners(pvc: Object, sts: Object, pod: Object) -> list[Object] | None:
    """The owner references `pvc` should have under the retention policy; None to leave it.

    A claim kept while the pod is scaled away is owned by nothing; Delete when
    the set goes makes the set its controller; Delete on scale-down makes a
    condemned pod its controller. References to a namesake of the set or the
    pod (another UID) mean an older owner still manages the claim: hands off.
    """
    when_scaled, when_deleted = retention(sts)
    refs = (pvc.get("metadata") or {}).get("ownerReferences") or []
    ours = [(ref, sts) for ref in refs if _refers_to(ref, sts, KIND)]
    ours += [(ref, pod) for ref in refs if _refers_to(ref, pod, "Pod")]
    if any(ref.get("uid") != owner["metadata"].get("uid") for ref, owner in ours):
        return None
    others = [r for r in refs if not (_refers_to(r, sts, KIND) or _refers_to(r, pod, "Pod"))]
    if (when_scaled, when_deleted) != ("Retain", "Retain") and any(
        r.get("controller") for r in others
    ):
        return others
    scaled_down = not in_range(pod, sts)
    wanted = list(others)
    if when_deleted == "Delete" and not (when_scaled == "Delete" and scaled_down):
        wanted.append(new_controller_ref(sts))
    if when_scaled == "Delete" and scaled_down and pod["metadata"].get("uid"):
        wanted.append(new_controller_ref(pod))
    return wanted


def claim_owners_match(pvc: Object, sts: Object, pod: Object) -> bool:
    wanted = wanted_claim_owners(pvc, sts, pod)
    return wanted is None or wanted == ((pvc.get("metadata") or {}).get("ownerReferences") or [])


# ---------------------------------------------------------------- controller


@register
class StatefulSetController(Controller):
    name = "statefulset"
    component = "statefulset-controller"

    def setup(self) -> None:
        self.sets = self.informers.informer(STATEFULSETS)
        self.pods = self.informers.informer(PODS)
        self.claims = self.informers.informer(CLAIMS)
        self.revisions = self.informers.informer(history.REVISIONS)
        for informer in (self.pods, self.revisions):
            informer.add_index(BY_CONTROLLER, index_by_controller)
            informer.add_index(ORPHANS, index_orphans)
        self.sets.add_handlers(**self.enqueue_handlers())
        self.pods.add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._enqueue_owner
        )

    # ---------------------------------------------------------- handlers

    def _pod_added(self, pod: Object) -> None:
        if is_terminating(pod) or controller_ref(pod) is not None:
            self._enqueue_owner(pod)
            return
        for sts in selecting(self.sets, pod):
            self.enqueue(sts)

    def _pod_updated(self, old: Object, pod: Object) -> None:
        old_ref, ref = controller_ref(old), controller_ref(pod)
        if ref != old_ref and old_ref is not None:
            self._enqueue_owner(old)
        if ref is not None:
            sts = resolve_owner(self.sets, pod, KIND)
            if sts is None:
                return
            self.enqueue(sts)
            min_ready = sts["spec"].get("minReadySeconds") or 0
            if min_ready and not is_pod_ready(old) and is_pod_ready(pod):
                self.queue.add_after(key_of(sts), min_ready + 1)
            return
        if ref != old_ref or old["metadata"].get("labels") != pod["metadata"].get("labels"):
            for sts in selecting(self.sets, pod):
                self.enqueue(sts)

    def _enqueue_owner(self, pod: Object) -> None:
        sts = resolve_owner(self.sets, pod, KIND)
        if sts is not None:
            self.enqueue(sts)

    # -------------------------------------------------------------- sync

    async def sync(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None:
            return

        async def can_adopt() -> bool:
            return await fresh_and_alive(self.client, STATEFULSETS, sts)

        revisions = await claim(
            self.client,
            history.REVISIONS,
            sts,
            owned_or_orphaned(self.revisions, sts),
            can_adopt,
        )
        revisions.sort(key=history.sort_key)
        # a set's pods are those named after it (upstream also releases owned others)
        candidates = [p for p in owned_or_orphaned(self.pods, sts) if is_member(sts, p)]
        pods = await claim(self.client, PODS, sts, candidates, can_adopt)
        current = update = None
        try:
            current, update, collisions = await self._current_and_update(sts, revisions)
            status, failure = await self._reconcile(sts, current, update, collisions, pods)
            try:
                await self._write_status(sts, status)
            except ApiError as exc:
                if failure is None:
                    raise
                log.warning("statefulset %s: could not update status: %s", key, exc)
            if failure is not None:
                raise failure
        finally:
            await self._truncate_history(sts, pods, revisions, current, update)
        min_ready = sts["spec"].get("minReadySeconds") or 0
        if min_ready and status["availableReplicas"] != replica_count(sts):
            self.queue.add_after(key, min_ready)

    async def _current_and_update(
        self, sts: Object, revisions: list[Object]
    ) -> tuple[Object, Object, int]:
        """The revision pods are at, the one they are going to (created or renumbered here)."""
        collisions = (sts.get("status") or {}).get("collisionCount") or 0
        number = history.next_number(revisions)
        hash_ = history.hash_of(history.template_patch(sts), collisions)
        update = history.new_revision(sts, HASH_LABEL, hash_, number)
        equal = [r for r in revisions if history.same_data(r, update)]
        if equal and history.same_data(revisions[-1], update):
            update = revisions[-1]
        elif equal:
            update = await history.renumber(self.client, equal[-1], number)
        else:
            update, collisions = await history.create_revision(self.client, sts, update, collisions)
        wanted = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == wanted), update)
        return current, update, collisions

    async def _reconcile(
        self, sts: Object, current: Object, update: Object, collisions: int, pods: list[Object]
    ) -> tuple[Object, Exception | None]:
        """One step toward the spec; the status to record, and what failed (if anything)."""
        status: Object = {
            "observedGeneration": sts["metadata"].get("generation"),
            "currentRevision": current["metadata"]["name"],
            "updateRevision": update["metadata"]["name"],
            "collisionCount": collisions,
        }
        count_status(status, sts, pods)
        try:
            await _Pass(self, sts, current, update, pods, status).run()
        except Exception as exc:  # recorded in the status first, then retried
            return status, exc
        return status, None

    async def _write_status(self, sts: Object, status: Object) -> None:
        """Record `status` when it tells something new, completing a finished roll-out."""
        spec_replicas = replica_count(sts)
        strategy = (sts["spec"].get("updateStrategy") or {}).get("type")
        if strategy == "RollingUpdate" and (
            status["updatedReplicas"]
            == status["readyReplicas"]
            == status["replicas"]
            == spec_replicas
        ):
            status["currentReplicas"] = status["updatedReplicas"]
            status["currentRevision"] = status["updateRevision"]
        old = sts.get("status") or {}
        compared = (
            "replicas",
            "currentReplicas",
            "readyReplicas",
            "updatedReplicas",
            "currentRevision",
            "availableReplicas",
            "updateRevision",
        )
        if (status["observedGeneration"] or 0) <= (old.get("observedGeneration") or 0) and all(
            (status[field] or None) == (old.get(field) or None) for field in compared
        ):
            return
        wire = _wire_status(status)
        target = sts
        for attempt in range(_STATUS_RETRIES):
            try:
                await self.client.update_status(STATEFULSETS, {**target, "status": wire})
                return
            except ApiError as exc:
                if not exc.conflict or attempt == _STATUS_RETRIES - 1:
                    raise
            meta = sts["metadata"]
            target = await self.client.get(STATEFULSETS, meta["namespace"], meta["name"])

    async def _truncate_history(
        self,
        sts: Object,
        pods: list[Object],
        revisions: list[Object],
        current: Object | None,
        update: Object | None,
    ) -> None:
        """Delete the oldest revisions no pod uses beyond revisionHistoryLimit."""
        live = {revision_of(pod) for pod in pods}
        live |= {r["metadata"]["name"] for r in (current, update) if r is not None}
        old = [r for r in revisions if r["metadata"]["name"] not in live]
        limit = sts["spec"].get("revisionHistoryLimit")
        limit = 10 if limit is None else limit
        if limit < 0 or len(old) <= limit:
            return
        await history.prune(self.client, old, len(old) - limit, lambda _: False)

    # ------------------------------------------------------ pod control

    async def create_pod(self, sts: Object, pod: Object) -> None:
        """Create the pod's claims, then the pod (upstream's CreateStatefulPod)."""
        try:
            await self.create_claims(sts, pod)
        except Exception as exc:
            self._pod_event(sts, pod, "create", exc)
            raise
        try:
            created = await self.client.create(PODS, pod)
        except ApiError as exc:
            if not exc.already_exists:
                self._pod_event(sts, pod, "create", exc)
            raise
        await self.fix_claim_owners(sts, created)
        self._pod_event(sts, pod, "create", None)

    async def delete_pod(self, sts: Object, pod: Object) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["namespace"], meta["name"])
        except ApiError as exc:
            self._pod_event(sts, pod, "delete", exc)
            raise
        self._pod_event(sts, pod, "delete", None)

    async def update_pod(self, sts: Object, pod: Object) -> None:
        """Restore the pod's identity, storage and claim owners (upstream's UpdateStatefulPod)."""
        pod = copy.deepcopy(pod)
        attempted = False
        try:
            for attempt in range(_STATUS_RETRIES):
                consistent = True
                if not identity_matches(sts, pod):
                    update_identity(sts, pod)
                    consistent = False
                if not storage_matches(sts, pod):
                    update_storage(sts, pod)
                    consistent = False
                    await self.create_claims(sts, pod)
                if not self.claims_match(sts, pod):
                    await self.fix_claim_owners(sts, pod)
                    consistent = False
                if consistent:
                    return
                attempted = True
                try:
                    await self.client.update(PODS, pod)
                    break
                except ApiError as exc:
                    if not exc.conflict or attempt == _STATUS_RETRIES - 1:
                        raise
                fresh = self.pods.get(key_of(pod))
                if fresh is not None:
                    pod = copy.deepcopy(fresh)
        except Exception as exc:
            if attempted:
                self._pod_event(sts, pod, "update", exc)
            raise
        if attempted:
            self._pod_event(sts, pod, "update", None)

    async def create_claims(self, sts: Object, pod: Object) -> None:
        """Create the pod's missing claims; fail while one of them is being deleted."""
        problems = []
        for pvc in claims_for(sts, ordinal_of(pod)).values():
            existing = self.claims.get(key_of(pvc))
            if existing is None:
                try:
                    await self.client.create(CLAIMS, pvc)
                except ApiError as exc:
                    problems.append(f"failed to create PVC {pvc['metadata']['name']}: {exc}")
                    if not exc.already_exists:
                        self._claim_event(sts, pod, pvc, exc)
                else:
                    self._claim_event(sts, pod, pvc, None)
            elif existing["metadata"].get("deletionTimestamp"):
                problems.append(f"pvc {pvc['metadata']['name']} is being deleted")
        if problems:
            raise RuntimeError("; ".join(problems))

    def _existing_claims(self, sts: Object, pod: Object) -> list[Object]:
        claims = [self.claims.get(key_of(c)) for c in claims_for(sts, ordinal_of(pod)).values()]
        return [pvc for pvc in claims if pvc is not None]

    def claims_match(self, sts: Object, pod: Object) -> bool:
        return all(claim_owners_match(c, sts, pod) for c in self._existing_claims(sts, pod))

    def claim_is_stale(self, sts: Object, pod: Object) -> bool:
        """With Delete on scale-down, a claim still owned by a gone pod of this name blocks it."""
        if retention(sts)[0] == "Retain":
            return False
        uid = pod["metadata"].get("uid")
        return any(
            _refers_to(ref, pod, "Pod") and ref.get("uid") != uid
            for pvc in self._existing_claims(sts, pod)
            for ref in pvc["metadata"].get("ownerReferences") or []
        )

    async def fix_claim_owners(self, sts: Object, pod: Object) -> None:
        for pvc in self._existing_claims(sts, pod):
            wanted = wanted_claim_owners(pvc, sts, pod)
            if wanted is None or wanted == (pvc["metadata"].get("ownerReferences") or []):
                continue
            meta = {**pvc["metadata"], "ownerReferences": wanted}
            await self.client.update(CLAIMS, {**pvc, "metadata": meta})

    def _pod_event(self, sts: Object, pod: Object, verb: str, error: Exception | None) -> None:
        name, owner = pod["metadata"]["name"], sts["metadata"]["name"]
        if error is None:
            message = f"{verb} Pod {name} in StatefulSet {owner} successful"
            self.recorder.record(sts, "Normal", f"Successful{verb.title()}", message)
        else:
            message = (
                f"{verb} Pod {name} in StatefulSet {owner} failed error: {error_message(error)}"
            )
            self.recorder.record(sts, "Warning", f"Failed{verb.title()}", message)

    def _claim_event(self, sts: Object, pod: Object, pvc: Object, error: Exception | None) -> None:
        names = (pvc["metadata"]["name"], pod["metadata"]["name"], sts["metadata"]["name"])
        if error is None:
            message = "create Claim {} Pod {} in StatefulSet {} success".format(*names)
            self.recorder.record(sts, "Normal", "SuccessfulCreate", message)
        else:
            message = "create Claim {} for Pod {} in StatefulSet {} failed error: {}".format(
                *names, error_message(error)
            )
            self.recorder.record(sts, "Warning", "FailedCreate", message)


class _Pass:
    """One reconciling pass over a set's pods (upstream's updateStatefulSet)."""

    def __init__(
        self,
        controller: StatefulSetController,
        sts: Object,
        current: Object,
        update: Object,
        pods: list[Object],
        status: Object,
    ) -> None:
        self.c = controller
        self.sts = sts
        self.update_revision = update["metadata"]["name"]
        self.current_set = apply_revision(sts, current)
        self.update_set = apply_revision(sts, update)
        self.status = status
        self.monotonic = sts["spec"].get("podManagementPolicy") != "Parallel"
        self.min_ready = sts["spec"].get("minReadySeconds") or 0
        start, count = start_ordinal(sts), replica_count(sts)
        slots: list[Object | None] = [None] * count
        self.condemned: list[Object] = []
        for pod in pods:
            if in_range(pod, sts):
                slots[ordinal_of(pod) - start] = pod
            elif ordinal_of(pod) >= 0:
                self.condemned.append(pod)
        self.replicas: list[Object] = [
            pod
            or versioned_pod(
                self.current_set,
                self.update_set,
                current["metadata"]["name"],
                self.update_revision,
                start + index,
            )
            for index, pod in enumerate(slots)
        ]
        self.condemned.sort(key=ordinal_of, reverse=True)
        unhealthy = [p for p in self.replicas if not is_healthy(p)]
        unhealthy += [p for p in reversed(self.condemned) if not is_healthy(p)]
        self.first_unhealthy = unhealthy[0] if unhealthy else None

    async def run(self) -> None:
        if self.sts["metadata"].get("deletionTimestamp"):
            return
        try:
            if await self._for_all(self.replicas, self._replica):
                return
            if await self._for_all(self.condemned, self._condemned_claims):
                return
            if await self._for_all(self.condemned, self._condemned):
                return
        finally:
            count_status(self.status, self.sts, self.replicas + self.condemned)
        strategy = self.sts["spec"].get("updateStrategy") or {}
        if strategy.get("type") != "OnDelete":
            await self._roll(strategy.get("rollingUpdate") or {})

    async def _for_all(self, pods: list[Object], step: Callable[[int], Awaitable[bool]]) -> bool:
        """Run `step` over pods: in order, stopping when it says so (monotonic), or in
        slow-start batches of 1, 2, 4… stopping at the first failure (Parallel)."""
        if self.monotonic:
            for index in range(len(pods)):
                if await step(index):
                    return True
            return False
        indexes = iter(range(len(pods)))
        _, failure = await slow_start(len(pods), lambda: step(next(indexes)))
        if failure is not None:
            raise failure
        return False

    async def _replica(self, index: int) -> bool:
        """Bring one wanted pod toward the spec; True when the pass must stop here."""
        pod = self.replicas[index]
        if phase_of(pod) in ("Failed", "Succeeded"):
            if not is_terminating(pod):
                await self.c.delete_pod(self.sts, pod)
            return True
        if not is_created(pod):
            if self.c.claim_is_stale(self.sts, pod):
                return True
            await self.c.create_pod(self.sts, pod)
            if self.monotonic:
                return True
        if phase_of(pod) == "Pending":
            await self.c.create_claims(self.sts, pod)
            await self.c.fix_claim_owners(self.sts, pod)
        if self.monotonic and (
            is_terminating(pod)
            or not is_running_and_ready(pod)
            or not is_pod_available(pod, self.min_ready, time.time())
        ):
            return True
        if (
            identity_matches(self.sts, pod)
            and storage_matches(self.sts, pod)
            and (not is_created(pod) or self.c.claims_match(self.update_set, pod))
        ):
            return False
        await self.c.update_pod(self.update_set, pod)
        return False

    async def _condemned_claims(self, index: int) -> bool:
        pod = self.condemned[index]
        if not self.c.claims_match(self.update_set, pod):
            await self.c.fix_claim_owners(self.update_set, pod)
        return False

    async def _condemned(self, index: int) -> bool:
        """Remove one pod beyond the wanted ordinals (highest first when monotonic)."""
        pod = self.condemned[index]
        if is_terminating(pod):
            return self.monotonic
        if (
            self.monotonic
            and pod is not self.first_unhealthy
            and (
                not is_running_and_ready(pod)
                or not is_pod_available(pod, self.min_ready, time.time())
            )
        ):
            return True
        await self.c.delete_pod(self.sts, pod)
        return True

    async def _roll(self, rolling: Object) -> None:
        """Delete out-of-date pods from the top down to the partition, within maxUnavailable."""
        count = replica_count(self.sts)
        partition = rolling.get("partition") or 0
        # at least one, even when a percentage rounds down to none
        allowed = max(1, scaled_value(rolling.get("maxUnavailable") or 1, count, round_up=False))
        unavailable = sum(is_unavailable(p, self.min_ready) for p in self.replicas)
        if unavailable >= allowed:
            return
        budget = allowed - unavailable
        for index in range(len(self.replicas) - 1, partition - 1, -1):
            if budget <= 0:
                return
            pod = self.replicas[index]
            if revision_of(pod) != self.update_revision and not is_terminating(pod):
                try:
                    await self.c.delete_pod(self.sts, pod)
                except ApiError as exc:
                    if not exc.not_found:
                        raise
                budget -= 1
                self.status["currentReplicas"] -= 1


def _wire_status(status: Object) -> Object:
    """The status as apps/v1 serializes it: zero counts of optional fields left out."""
    wire = {k: v for k, v in status.items() if v or k in ("replicas", "availableReplicas")}
    wire["collisionCount"] = status["collisionCount"]
    return wire
