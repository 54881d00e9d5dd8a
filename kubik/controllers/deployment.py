"""The Deployment controller: rollouts as a sequence of ReplicaSet sizes.

(upstream: pkg/controller/deployment)

A Deployment owns ReplicaSets; the one whose template equals the
Deployment's (ignoring the pod-template-hash label) is the new one, named
`<deployment>-<hash>`, and the others are old. Each sync, in upstream's order:

- a Deployment being deleted only gets its status refreshed;
- paused, or resized (a set's desired-replicas annotation differs from
  spec.replicas), it is scaled: every set with replicas gets its share of the
  change in proportion to its size (`_scale`), and nothing rolls;
- otherwise it rolls: RollingUpdate grows the new set within maxSurge and
  shrinks the old ones within maxUnavailable, one step per sync; Recreate
  scales the old sets to zero, waits for their pods to stop, then scales the
  new set up.

Revisions: the new set gets one more than the highest old revision — so a
rollback (kubectl writes an old set's template into the Deployment) makes that
old set new again with a fresh revision. Old sets beyond revisionHistoryLimit
are deleted once scaled down. The status sums the sets' and carries the
Available and Progressing conditions `kubectl rollout status` reads.

Unlike upstream, the Deployment's revision annotation is written through the
main resource: kubik's status subresource keeps metadata as stored.
"""

from __future__ import annotations

import logging
import time

from kubik.api import builtin, meta
from kubik.api.selectors import label_selector_matches
from kubik.client.api import ApiError
from kubik.client.informer import key_of
from kubik.controllers import deployment_util as util
from kubik.controllers.base import Controller, register
from kubik.controllers.podutil import (
    BY_CONTROLLER,
    ORPHANS,
    PODS,
    Object,
    claim,
    controller_ref,
    copy_of,
    error_message,
    fresh_and_alive,
    index_by_controller,
    index_orphans,
    labels_of,
    namespace_terminating,
    new_controller_ref,
    parse_time,
    resolve_owner,
    selector_of,
)
from kubik.controllers.replicaset import REPLICA_SETS

log = logging.getLogger(__name__)

DEPLOYMENTS = builtin.lookup("apps", "v1", "deployments")


@register
class DeploymentController(Controller):
    name = "deployment"
    component = "deployment-controller"

    def setup(self) -> None:
        self.deployments = self.informers.informer(DEPLOYMENTS)
        self.replicasets = self.informers.informer(REPLICA_SETS)
        self.pods = self.informers.informer(PODS)
        self.replicasets.add_index(BY_CONTROLLER, index_by_controller)
        self.replicasets.add_index(ORPHANS, index_orphans)
        self.pods.add_index(BY_CONTROLLER, index_by_controller)
        self.deployments.add_handlers(**self.enqueue_handlers())
        self.replicasets.add_handlers(
            on_add=self._set_added, on_update=self._set_updated, on_delete=self._set_deleted
        )
        self.pods.add_handlers(on_delete=self._pod_deleted)

    # ------------------------------------------------------------ handlers

    def _owner_of(self, replica_set: Object) -> Object | None:
        return resolve_owner(self.deployments, replica_set, "Deployment")

    def _enqueue_owner(self, replica_set: Object) -> None:
        owner = self._owner_of(replica_set)
        if owner is not None:
            self.enqueue(owner)

    def _enqueue_matching(self, replica_set: Object) -> None:
        """An orphaned set: the Deployments selecting it may adopt it."""
        for deployment in self.deployments.list(meta.namespace_of(replica_set)):
            if label_selector_matches(selector_of(deployment), labels_of(replica_set)):
                self.enqueue(deployment)

    def _set_added(self, replica_set: Object) -> None:
        if replica_set["metadata"].get("deletionTimestamp"):
            self._set_deleted(replica_set)
        elif controller_ref(replica_set) is not None:
            self._enqueue_owner(replica_set)
        else:
            self._enqueue_matching(replica_set)

    def _set_updated(self, old: Object, new: Object) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            self._enqueue_owner(old)
        if new_ref is not None:
            self._enqueue_owner(new)
        elif labels_of(old) != labels_of(new) or old_ref != new_ref:
            self._enqueue_matching(new)

    def _set_deleted(self, replica_set: Object) -> None:
        self._enqueue_owner(replica_set)

    def _pod_deleted(self, pod: Object) -> None:
        """A Recreate rollout waits for the old pods to be gone."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        replica_set = self.replicasets.get(f"{meta.namespace_of(pod)}/{ref.get('name')}")
        owner = self._owner_of(replica_set) if replica_set is not None else None
        if owner is not None and not util.is_rolling(owner):
            self.enqueue(owner)

    # ---------------------------------------------------------------- sync

    async def sync(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            return
        try:
            await self._sync(copy_of(cached))
        except ApiError as exc:
            if not exc.conflict:
                raise
            # Something changed under a stale cache; its watch event brings this key back.
            log.debug("deployment %s: %s; waiting for the change to arrive", key, exc)

    async def _sync(self, deployment: Object) -> None:
        sets = await self._claim_sets(deployment)
        if deployment["metadata"].get("deletionTimestamp"):
            new, old = await self._new_and_old(deployment, sets, create=False)
            await self._sync_status(deployment, [*old, new], new)
            return
        await self._check_paused(deployment)
        if deployment["spec"].get("paused") or await self._scaling(deployment, sets):
            await self._scale_only(deployment, sets)
        elif util.is_rolling(deployment):
            await self._roll(deployment, sets)
        else:
            await self._recreate(deployment, sets)

    async def _claim_sets(self, deployment: Object) -> list[Object]:
        """The sets this Deployment controls, adopting and releasing as its selector says."""
        candidates = self.replicasets.by_index(
            BY_CONTROLLER, deployment["metadata"]["uid"]
        ) + self.replicasets.by_index(ORPHANS, meta.namespace_of(deployment))
        return await claim(
            self.client,
            REPLICA_SETS,
            deployment,
            candidates,
            lambda: fresh_and_alive(self.client, DEPLOYMENTS, deployment),
        )

    async def _check_paused(self, deployment: Object) -> None:
        """Mark pauses and resumes in Progressing, so a pause does not count as no progress."""
        if not util.has_progress_deadline(deployment):
            return
        status = deployment.setdefault("status", {})
        condition = util.get_condition(status, "Progressing")
        if condition is not None and condition.get("reason") == util.TIMED_OUT:
            return
        paused_marked = condition is not None and condition.get("reason") == util.PAUSED
        paused = bool(deployment["spec"].get("paused"))
        if paused and not paused_marked:
            util.set_condition(
                status,
                util.new_condition("Progressing", "Unknown", util.PAUSED, "Deployment is paused"),
            )
        elif not paused and paused_marked:
            util.set_condition(
                status,
                util.new_condition("Progressing", "Unknown", util.RESUMED, "Deployment is resumed"),
            )
        else:
            return
        await self._write_status(deployment)

    async def _scaling(self, deployment: Object, sets: list[Object]) -> bool:
        """Was spec.replicas changed since the sets were last sized (isScalingEvent)?"""
        new, old = await self._new_and_old(deployment, sets, create=False)
        return any(
            util.desired_replicas_annotation(rs) not in (None, util.replicas(deployment))
            for rs in util.active([*old, new])
        )

    # ------------------------------------------------------- new and old

    async def _new_and_old(
        self, deployment: Object, sets: list[Object], *, create: bool
    ) -> tuple[Object | None, list[Object]]:
        """(the new set, brought up to date or created when `create`; the old sets)."""
        old = util.find_old(deployment, sets)
        new = await self._new_set(deployment, sets, old, create)
        return new, old

    async def _new_set(
        self, deployment: Object, sets: list[Object], old: list[Object], create: bool
    ) -> Object | None:
        next_revision = max((util.revision(rs) for rs in old), default=0) + 1
        existing = util.find_new(deployment, sets)
        if existing is not None:
            return await self._refresh_new_set(deployment, sets, existing, next_revision)
        if not create:
            return None
        status = deployment.setdefault("status", {})
        template = copy_of(deployment["spec"]["template"])
        hash_ = util.template_hash(template, status.get("collisionCount"))
        template.setdefault("metadata", {})
        template["metadata"]["labels"] = {**labels_of(template), util.HASH_LABEL: hash_}
        selector = copy_of(deployment["spec"]["selector"])
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), util.HASH_LABEL: hash_}
        name = f"{meta.name_of(deployment)}-{hash_}"
        new: Object = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": meta.namespace_of(deployment),
                "labels": template["metadata"]["labels"],
                "ownerReferences": [new_controller_ref(deployment)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": deployment["spec"].get("minReadySeconds") or 0,
                "selector": selector,
                "template": template,
            },
        }
        count = util.new_rs_replicas(deployment, [*old, new], new)
        new["spec"]["replicas"] = count
        util.set_new_rs_annotations(deployment, new, next_revision, exists=False)
        try:
            created = await self.client.create(REPLICA_SETS, new)
        except ApiError as exc:
            if exc.already_exists:
                return await self._existing_or_collision(deployment, name, exc)
            if not namespace_terminating(exc):
                await self._report_create_failure(deployment, name, exc)
            raise
        if count > 0:
            self._event(deployment, f"Scaled up replica set {name} to {count}")
        await self._set_revision(deployment, next_revision)
        if util.has_progress_deadline(deployment):
            util.set_condition(
                status,
                util.new_condition(
                    "Progressing", "True", util.NEW_RS_CREATED, f'Created new replica set "{name}"'
                ),
            )
            await self._write_status(deployment)
        sets.append(created)
        return created

    async def _refresh_new_set(
        self, deployment: Object, sets: list[Object], existing: Object, next_revision: int
    ) -> Object:
        """The new set with the Deployment's annotations, revision and minReadySeconds;
        the Deployment with the set's revision."""
        replica_set = copy_of(existing)
        changed = util.set_new_rs_annotations(deployment, replica_set, next_revision, exists=True)
        min_ready = deployment["spec"].get("minReadySeconds") or 0
        if changed or (replica_set["spec"].get("minReadySeconds") or 0) != min_ready:
            replica_set["spec"]["minReadySeconds"] = min_ready
            updated = await self.client.update(REPLICA_SETS, replica_set)
            sets[sets.index(existing)] = updated
            return updated
        await self._set_revision(deployment, util.revision(replica_set))
        status = deployment.setdefault("status", {})
        if util.has_progress_deadline(deployment) and not util.get_condition(status, "Progressing"):
            message = f'Found new replica set "{meta.name_of(replica_set)}"'
            util.set_condition(
                status, util.new_condition("Progressing", "True", util.FOUND_NEW_RS, message)
            )
            await self._write_status(deployment)
        return replica_set

    async def _existing_or_collision(self, deployment: Object, name: str, exc: ApiError) -> Object:
        """A set of the new set's name exists: ours (a stale cache), or another template
        whose hash collides — then count the collision, which changes the next name."""
        existing = self.replicasets.get(f"{meta.namespace_of(deployment)}/{name}")
        if existing is None:
            raise exc
        ref = controller_ref(existing)
        if (
            ref is not None
            and ref.get("uid") == deployment["metadata"]["uid"]
            and util.equal_ignore_hash(
                deployment["spec"]["template"], existing["spec"].get("template") or {}
            )
        ):
            return existing
        status = deployment.setdefault("status", {})
        status["collisionCount"] = (status.get("collisionCount") or 0) + 1
        await self._write_status(deployment)
        raise exc

    async def _report_create_failure(self, deployment: Object, name: str, exc: ApiError) -> None:
        message = f'Failed to create new replica set "{name}": {error_message(exc)}'
        if util.has_progress_deadline(deployment):
            util.set_condition(
                deployment.setdefault("status", {}),
                util.new_condition("Progressing", "False", util.RS_CREATE_FAILED, message),
            )
            try:
                await self._write_status(deployment)
            except ApiError:
                pass  # the failure to create is the news; it is retried anyway
        self.recorder.record(deployment, "Warning", util.RS_CREATE_FAILED, message)

    # ------------------------------------------------------------ scaling

    async def _scale_only(self, deployment: Object, sets: list[Object]) -> None:
        """Paused or resized: size the sets, no rollout (upstream's `sync`)."""
        new, old = await self._new_and_old(deployment, sets, create=False)
        await self._scale(deployment, new, old)
        if deployment["spec"].get("paused"):
            await self._clean_up(deployment, old)
        await self._sync_status(deployment, [*old, new], new)

    async def _scale(self, deployment: Object, new: Object | None, old: list[Object]) -> None:
        """Bring the sets to spec.replicas (plus surge) without moving the rollout on: one
        set with replicas takes it all, several share the change by size (upstream's scale)."""
        desired = util.replicas(deployment)
        only = util.find_active_or_latest(new, old)
        if only is not None:
            if util.replicas(only) != desired:
                await self._scale_set(deployment, only, desired)
            return
        if util.is_saturated(deployment, new):
            for replica_set in util.active(old):
                await self._scale_set(deployment, replica_set, 0)
            return
        if not util.is_rolling(deployment):
            return
        # Several sets have replicas mid-rollout: share the change out by size.
        sets = util.active([*old, new])
        allowed = desired + util.max_surge(deployment) if desired > 0 else 0
        to_add = allowed - util.total(sets)
        if to_add > 0:
            sets, direction = util.largest_newer_first(sets), "up"
        elif to_add < 0:
            sets, direction = util.largest_older_first(sets), "down"
        else:
            direction = ""
        sizes: dict[str, int] = {}
        added = 0
        for replica_set in sets:
            share = util.proportion(replica_set, deployment, to_add, added) if to_add else 0
            sizes[meta.name_of(replica_set)] = util.replicas(replica_set) + share
            added += share
        for i, replica_set in enumerate(sets):
            name = meta.name_of(replica_set)
            if i == 0 and to_add:
                sizes[name] = max(sizes[name] + to_add - added, 0)  # leftovers: the largest set
            await self._resize(deployment, replica_set, sizes[name], direction)

    async def _scale_set(
        self, deployment: Object, replica_set: Object, size: int
    ) -> tuple[bool, Object]:
        """Resize one set, recording the event: (whether its size changed, the set)."""
        if util.replicas(replica_set) == size:
            return False, replica_set
        direction = "up" if util.replicas(replica_set) < size else "down"
        return await self._resize(deployment, replica_set, size, direction)

    async def _resize(
        self, deployment: Object, replica_set: Object, size: int, direction: str
    ) -> tuple[bool, Object]:
        """Write a set's size and the Deployment's replica annotations (scaleReplicaSet)."""
        desired = util.replicas(deployment)
        maximum = desired + util.max_surge(deployment)
        before = util.replicas(replica_set)
        resizing = before != size
        if not resizing and not util.replicas_annotations_differ(replica_set, desired, maximum):
            return False, replica_set
        changed = copy_of(replica_set)
        changed["spec"]["replicas"] = size
        util.set_replicas_annotations(changed, desired, maximum)
        updated = await self.client.update(REPLICA_SETS, changed)
        if resizing:
            self._event(
                deployment,
                f"Scaled {direction} replica set {meta.name_of(updated)} to {size} from {before}",
            )
        return resizing, updated

    # ------------------------------------------------------------ rolling

    async def _roll(self, deployment: Object, sets: list[Object]) -> None:
        new, old = await self._new_and_old(deployment, sets, create=True)
        every = [*old, new]
        if await self._grow_new(deployment, every, new):
            await self._sync_rollout_status(deployment, every, new)
            return
        if await self._shrink_old(deployment, every, util.active(old), new):
            await self._sync_rollout_status(deployment, every, new)
            return
        if util.complete(deployment, deployment.get("status") or {}):
            await self._clean_up(deployment, old)
        await self._sync_rollout_status(deployment, every, new)

    async def _grow_new(self, deployment: Object, every: list[Object], new: Object) -> bool:
        desired = util.replicas(deployment)
        if util.replicas(new) == desired:
            return False
        size = min(desired, util.new_rs_replicas(deployment, every, new))
        scaled, _ = await self._scale_set(deployment, new, size)
        return scaled

    async def _shrink_old(
        self, deployment: Object, every: list[Object], old: list[Object], new: Object
    ) -> bool:
        """Scale old sets down as far as availability allows (reconcileOldReplicaSets)."""
        if util.total(old) == 0:
            return False
        min_available = util.replicas(deployment) - util.max_unavailable(deployment)
        new_unavailable = util.replicas(new) - _available(new)
        max_scaled_down = util.total(every) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        old, cleaned = await self._drop_unhealthy(deployment, old, max_scaled_down)
        scaled = await self._shrink_for_rolling(deployment, [*old, new], old)
        return cleaned + scaled > 0

    async def _drop_unhealthy(
        self, deployment: Object, old: list[Object], limit: int
    ) -> tuple[list[Object], int]:
        """Scale old sets down by their unavailable replicas first: losing those costs no
        availability, and they could block the rollout."""
        old = util.oldest_first(old)
        dropped = 0
        for i, replica_set in enumerate(old):
            if dropped >= limit:
                break
            unhealthy = util.replicas(replica_set) - _available(replica_set)
            if util.replicas(replica_set) == 0 or unhealthy == 0:
                continue
            count = min(limit - dropped, unhealthy)
            _, old[i] = await self._scale_set(
                deployment, replica_set, util.replicas(replica_set) - count
            )
            dropped += count
        return old, dropped

    async def _shrink_for_rolling(
        self, deployment: Object, every: list[Object], old: list[Object]
    ) -> int:
        """Scale old sets down, oldest first, while availability stays above the minimum."""
        min_available = util.replicas(deployment) - util.max_unavailable(deployment)
        available = sum(_available(rs) for rs in every if rs)
        if available <= min_available:
            return 0
        budget = available - min_available
        done = 0
        for replica_set in util.oldest_first(old):
            if done >= budget:
                break
            if util.replicas(replica_set) == 0:
                continue
            count = min(util.replicas(replica_set), budget - done)
            await self._scale_set(deployment, replica_set, util.replicas(replica_set) - count)
            done += count
        return done

    # ----------------------------------------------------------- recreate

    async def _recreate(self, deployment: Object, sets: list[Object]) -> None:
        new, old = await self._new_and_old(deployment, sets, create=False)
        every = [*old, new]
        scaled = False
        for replica_set in util.active(old):
            scaled |= (await self._scale_set(deployment, replica_set, 0))[0]
        if scaled or self._old_pods_running(new, old):
            await self._sync_rollout_status(deployment, every, new)
            return
        if new is None:
            new, old = await self._new_and_old(deployment, sets, create=True)
            every = [*old, new]
        await self._scale_set(deployment, new, util.replicas(deployment))
        if util.complete(deployment, deployment.get("status") or {}):
            await self._clean_up(deployment, old)
        await self._sync_rollout_status(deployment, every, new)

    def _old_pods_running(self, new: Object | None, old: list[Object]) -> bool:
        """Recreate never runs old and new pods together: are old ones still there?"""
        if util.total(old, "replicas") > 0:
            return True
        new_uid = new["metadata"]["uid"] if new is not None else None
        for replica_set in old:
            if replica_set["metadata"]["uid"] == new_uid:
                continue
            for pod in self.pods.by_index(BY_CONTROLLER, replica_set["metadata"]["uid"]):
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    return True
        return False

    # ------------------------------------------------------------ cleanup

    async def _clean_up(self, deployment: Object, old: list[Object]) -> None:
        """Delete the oldest revisions beyond revisionHistoryLimit, once scaled to zero."""
        if not util.has_history_limit(deployment):
            return
        alive = [rs for rs in old if not rs["metadata"].get("deletionTimestamp")]
        excess = len(alive) - deployment["spec"]["revisionHistoryLimit"]
        for replica_set in util.by_revision(alive)[: max(excess, 0)]:
            status = replica_set.get("status") or {}
            if (
                status.get("replicas", 0)
                or util.replicas(replica_set)
                or replica_set["metadata"].get("generation", 0)
                > status.get("observedGeneration", 0)
            ):
                continue
            try:
                await self.client.delete(
                    REPLICA_SETS, meta.namespace_of(replica_set), meta.name_of(replica_set)
                )
            except ApiError as exc:
                if not exc.not_found:
                    raise

    # ------------------------------------------------------------- status

    async def _sync_status(
        self, deployment: Object, every: list[Object | None], new: Object | None
    ) -> None:
        status = util.calculate_status([rs for rs in every if rs], new, deployment)
        if status != (deployment.get("status") or {}):
            deployment["status"] = status
            await self._write_status(deployment)

    async def _sync_rollout_status(
        self, deployment: Object, every: list[Object | None], new: Object | None
    ) -> None:
        """The status, with Progressing saying whether the rollout moves, finished or stalled."""
        sets = [rs for rs in every if rs]
        status = util.calculate_status(sets, new, deployment)
        has_deadline = util.has_progress_deadline(deployment)
        if not has_deadline:
            util.remove_condition(status, "Progressing")
        current = util.get_condition(deployment.get("status") or {}, "Progressing")
        settled = (
            status.get("replicas", 0) == status.get("updatedReplicas", 0)
            and current is not None
            and current.get("reason") == util.NEW_RS_AVAILABLE
        )
        if has_deadline and not settled:
            _judge_progress(deployment, status, new, current)
        failure = _replica_failure(sets, new)
        if failure is not None:
            util.set_condition(status, failure)
        else:
            util.remove_condition(status, "ReplicaFailure")
        if status == (deployment.get("status") or {}):
            self._requeue_if_stuck(deployment, status)
            return
        deployment["status"] = status
        await self._write_status(deployment)

    def _requeue_if_stuck(self, deployment: Object, status: Object) -> None:
        """Come back when the progress deadline passes, to report it."""
        current = util.get_condition(deployment.get("status") or {}, "Progressing")
        if not util.has_progress_deadline(deployment) or current is None:
            return
        if util.complete(deployment, status) or current.get("reason") == util.TIMED_OUT:
            return
        updated = parse_time(current.get("lastUpdateTime")) or time.time()
        after = updated + deployment["spec"]["progressDeadlineSeconds"] - time.time()
        if after < 1:
            self.queue.add_rate_limited(key_of(deployment))
        else:
            self.queue.add_after(key_of(deployment), after + 1)

    async def _set_revision(self, deployment: Object, revision: int) -> None:
        """The Deployment's revision annotation follows its new set's."""
        annotations = deployment["metadata"].get("annotations") or {}
        if annotations.get(util.REVISION) == str(revision):
            return
        patch = {
            "metadata": {
                "resourceVersion": deployment["metadata"]["resourceVersion"],
                "annotations": {util.REVISION: str(revision)},
            }
        }
        updated = await self.client.patch(
            DEPLOYMENTS, meta.namespace_of(deployment), meta.name_of(deployment), patch
        )
        _replace(deployment, updated, keep_status=True)

    async def _write_status(self, deployment: Object) -> None:
        updated = await self.client.update_status(DEPLOYMENTS, deployment)
        _replace(deployment, updated, keep_status=False)

    def _event(self, deployment: Object, message: str) -> None:
        self.recorder.record(deployment, "Normal", "ScalingReplicaSet", message)


def _available(replica_set: Object | None) -> int:
    """Available replicas a set will keep: at most its size, so a set just scaled down
    whose status still counts the pods it is deleting never looks more available."""
    return min(util.status_count(replica_set, "availableReplicas"), util.replicas(replica_set))


def _replace(deployment: Object, stored: Object, *, keep_status: bool) -> None:
    """Continue the sync with the Deployment as stored (its new resourceVersion)."""
    status = deployment.get("status")
    deployment.clear()
    deployment.update(stored)
    if keep_status and status is not None:
        deployment["status"] = status


def _judge_progress(
    deployment: Object, status: Object, new: Object | None, current: Object | None
) -> None:
    """Set Progressing: complete, progressing (the update time moves), or timed out."""
    subject = (
        f'ReplicaSet "{meta.name_of(new)}"' if new else f'Deployment "{meta.name_of(deployment)}"'
    )
    if util.complete(deployment, status):
        util.set_condition(
            status,
            util.new_condition(
                "Progressing",
                "True",
                util.NEW_RS_AVAILABLE,
                f"{subject} has successfully progressed.",
            ),
        )
    elif util.progressing(deployment, status):
        condition = util.new_condition(
            "Progressing", "True", util.RS_UPDATED, f"{subject} is progressing."
        )
        if current is not None:
            if current.get("status") == "True":
                condition["lastTransitionTime"] = current.get("lastTransitionTime")
            util.remove_condition(status, "Progressing")
        util.set_condition(status, condition)
    elif util.timed_out(deployment, status):
        util.set_condition(
            status,
            util.new_condition(
                "Progressing", "False", util.TIMED_OUT, f"{subject} has timed out progressing."
            ),
        )


def _replica_failure(sets: list[Object], new: Object | None) -> Object | None:
    """A ReplicaFailure of the new set (or else of any set), as a Deployment condition."""
    for candidates in ([new] if new else [], sets):
        for replica_set in candidates:
            for condition in (replica_set.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "ReplicaFailure":
                    return {
                        "type": "ReplicaFailure",
                        "status": condition.get("status"),
                        "lastUpdateTime": condition.get("lastTransitionTime"),
                        "lastTransitionTime": condition.get("lastTransitionTime"),
                        "reason": condition.get("reason"),
                        "message": condition.get("message"),
                    }
    return None
