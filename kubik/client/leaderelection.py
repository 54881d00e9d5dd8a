"""Leader election on a coordination.k8s.io/v1 Lease, with upstream's timing.

The leader renews `spec.renewTime` every `retry_period`; it steps down if it
could not renew within `renew_deadline`. A candidate takes the lease when
the holder's renewal is older than `lease_duration` (15 s / 10 s / 2 s, as
kube-controller-manager and kube-scheduler default). Every write is a
compare-and-swap on the lease's resourceVersion, so two candidates can never
both believe they lead.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable

from kubik.api import builtin, meta
from kubik.client.api import ApiError, Client

log = logging.getLogger(__name__)

LEASES = builtin.lookup("coordination.k8s.io", "v1", "leases")


def _parse(timestamp: str | None) -> datetime.datetime | None:
    if not timestamp:
        return None
    try:
        return datetime.datetime.strptime(
            timestamp[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f"
        ).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


class LeaderElector:
    def __init__(
        self,
        client: Client,
        *,
        name: str,
        identity: str,
        namespace: str = "kube-system",
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        self._client = client
        self.name = name
        self.identity = identity
        self._namespace = namespace
        self._duration = lease_duration
        self._deadline = renew_deadline
        self._period = retry_period
        self.leading = False

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Wait to become leader, run `lead` until leadership is lost, then wait again."""
        while True:
            await self._acquire()
            log.info("%s became the leader of %s", self.identity, self.name)
            self.leading = True
            work = asyncio.create_task(lead())
            renew = asyncio.create_task(self._keep())
            try:
                done, _ = await asyncio.wait({work, renew}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when this task is cancelled: the work must not outlive it
                self.leading = False
                for task in (work, renew):
                    task.cancel()
                await asyncio.gather(work, renew, return_exceptions=True)
            if work in done and work.exception() is None:
                await self._release()
                return
            log.warning("%s lost the leadership of %s", self.identity, self.name)

    async def _acquire(self) -> None:
        """Poll until this candidate holds the lease."""
        acquired = await self._try_acquire()
        while not acquired:
            await asyncio.sleep(self._period)
            acquired = await self._try_acquire()

    async def _keep(self) -> None:
        """Renew until a renewal fails for longer than the renew deadline."""
        last = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self._period)
            if await self._try_acquire():
                last = asyncio.get_running_loop().time()
            elif asyncio.get_running_loop().time() - last > self._deadline:
                return

    async def _try_acquire(self) -> bool:
        now = meta.now_micro()
        try:
            lease = await self._client.get(LEASES, self._namespace, self.name)
        except ApiError as exc:
            if not exc.not_found:
                log.warning("reading lease %s: %s", self.name, exc)
                return False
            return await self._create(now)
        spec = lease.setdefault("spec", {})
        holder = spec.get("holderIdentity")
        if holder and holder != self.identity and not self._expired(spec):
            return False
        if holder != self.identity:
            spec["leaseTransitions"] = spec.get("leaseTransitions", 0) + 1
            spec["acquireTime"] = now
        spec.update(
            holderIdentity=self.identity, renewTime=now, leaseDurationSeconds=int(self._duration)
        )
        try:
            await self._client.update(LEASES, lease)
        except ApiError as exc:
            log.debug("renewing lease %s: %s", self.name, exc)
            return False
        return True

    def _expired(self, spec: dict) -> bool:
        renewed = _parse(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds") or self._duration
        if renewed is None:
            return True
        age = (datetime.datetime.now(datetime.UTC) - renewed).total_seconds()
        return age > duration

    async def _create(self, now: str) -> bool:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self._namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self._duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            await self._client.create(LEASES, lease)
        except ApiError:
            return False
        return True

    async def _release(self) -> None:
        """Give the lease up on a clean stop, so a standby takes over at once."""
        try:
            lease = await self._client.get(LEASES, self._namespace, self.name)
            if lease.get("spec", {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                await self._client.update(LEASES, lease)
        except ApiError as exc:
            log.debug("releasing lease %s: %s", self.name, exc)
