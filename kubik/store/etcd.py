"""The HA backend: the store contract on a real etcd cluster, over gRPC.

The contract was modelled on etcd, so the mapping is direct: etcd's revision
is the store revision, its KeyValue's create/mod revisions are ours, and
every compare-and-swap write is one etcd transaction.

Connection: one `grpc.aio` channel whose target lists every member, with
round-robin load balancing, so a dead member is skipped as soon as its
connection drops. Calls that fail with UNAVAILABLE (member gone, no leader
during an election) are retried with a short backoff for up to
`RETRY_BUDGET` seconds. Watches reconnect the same way and resume after the
last revision they delivered.

A write retried after UNAVAILABLE may already have been applied by the
first attempt (the member died after proposing it). Such a write would then
look like a lost race. When the key already holds exactly what we wrote, the
retried write is treated as our own success; see `_retried_write_landed`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from kubik.store import errors, keys
from kubik.store.etcdpb import etcd_pb2 as pb
from kubik.store.etcdpb import etcd_pb2_grpc as rpc
from kubik.store.etcdpb import kv_pb2 as mvccpb
from kubik.store.interface import Event, EventType, KeyValue, ListResult, Store, check_write

log = logging.getLogger(__name__)

RETRY_BUDGET = 10.0  # seconds of UNAVAILABLE retries before giving up
CALL_TIMEOUT = 30.0  # per attempt; etcd gives up on a proposal after ~7 s itself
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 1.0

# A key no kubik key can collide with (ours all start with "/"): the cheapest
# Range there is, used to read the store's revision.
_PROBE_KEY = b"\x00"

_CHANNEL_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.enable_http_proxy", 0),  # loopback and cluster networks: never via a proxy
    ("grpc.max_receive_message_length", -1),  # big lists and watch batches
    ("grpc.max_send_message_length", -1),
    ("grpc.keepalive_time_ms", 10_000),  # notice a silently vanished member
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]

# etcd cancels watches on a member that lost its leader instead of leaving
# them silently stale (clientv3's WithRequireLeader).
_REQUIRE_LEADER = (("hasleader", "true"),)

_COMPACTED = "required revision has been compacted"
_FUTURE = "required revision is a future revision"
_LEASE_NOT_FOUND = "requested lease not found"
_TOO_LARGE = "request is too large"

T = TypeVar("T")
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class EtcdStore(Store):
    """See the module docstring. Open with `await EtcdStore.connect(members)`."""

    def __init__(self, channel: grpc.aio.Channel, members: str) -> None:
        self._channel = channel
        self._members = members  # "host:port, ..." for error messages
        self._kv = rpc.KVStub(channel)
        self._watch = rpc.WatchStub(channel)
        self._lease = rpc.LeaseStub(channel)
        self._closed = False
        # The newest compaction this client knows of: a lower bound for
        # compacted_revision() that saves it a search in the common case.
        self._compacted_hint = 0

    @classmethod
    async def connect(
        cls,
        members: Sequence[tuple[str, int]],
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - the reachability check's bound, not a wrapper's
    ) -> EtcdStore:
        """A store on the etcd cluster at `members`, once one of them answers.

        Raises StoreUnavailableError naming the members when none answers
        within `timeout` seconds.
        """
        members = list(members)
        named = ", ".join(f"{host}:{port}" for host, port in members)
        if not members:
            raise errors.StoreUnavailableError("no etcd members given")
        target = await _channel_target(members)
        channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        store = cls(channel, named)
        try:
            await store._probe(timeout)
        except BaseException:
            await channel.close()
            raise
        return store

    async def _probe(self, within: float) -> None:
        """Wait until a member serves a linearizable read (so a leader exists)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        delay = _BACKOFF_FIRST
        while True:
            remaining = deadline - loop.time()
            try:
                await self._kv.Range(
                    pb.RangeRequest(key=_PROBE_KEY, count_only=True), timeout=max(remaining, 0.01)
                )
                return
            except grpc.aio.AioRpcError as exc:
                retry = exc.code() == grpc.StatusCode.UNAVAILABLE
                if not retry or loop.time() + delay >= deadline:
                    raise errors.StoreUnavailableError(
                        f"cannot reach etcd at {self._members} within {within:g}s: {_describe(exc)}"
                    ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._channel.close()

    # ------------------------------------------------------------ plumbing

    async def _call(
        self,
        method: Callable[..., Awaitable[T]],
        request: Any,
        attempt: _Attempt | None = None,
    ) -> T:
        """Call a unary RPC, retrying UNAVAILABLE for up to RETRY_BUDGET seconds.

        `attempt.retried` tells the caller afterwards whether an earlier try
        failed in a way that leaves open whether etcd applied it. Errors other
        than UNAVAILABLE are raised as AioRpcError for the caller to translate.
        """
        if self._closed:
            raise errors.StoreUnavailableError("the store is closed")
        attempt = attempt or _Attempt()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_BUDGET
        delay = _BACKOFF_FIRST
        while True:
            try:
                return await method(request, timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.CANCELLED and self._closed:
                    raise errors.StoreUnavailableError("the store is closed") from None
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise errors.StoreUnavailableError(
                        f"etcd at {self._members} did not answer within {CALL_TIMEOUT:g}s"
                    ) from None
                if code != grpc.StatusCode.UNAVAILABLE:
                    raise
                if loop.time() + delay >= deadline:
                    raise errors.StoreUnavailableError(
                        f"etcd at {self._members} unavailable for {RETRY_BUDGET:g}s: "
                        f"{_describe(exc)}"
                    ) from None
                log.debug("etcd unavailable, retrying in %.2fs: %s", delay, _describe(exc))
                attempt.retried = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)

    async def _range(self, request: pb.RangeRequest) -> pb.RangeResponse:
        """A Range, with etcd's revision errors turned into the store's."""
        try:
            response = await self._call(self._kv.Range, request)
        except grpc.aio.AioRpcError as exc:
            raise await self._revision_error(exc, request.revision) from None
        return response

    async def _revision_error(self, exc: grpc.aio.AioRpcError, revision: int) -> Exception:
        details = exc.details() or ""
        if _COMPACTED in details:
            return errors.CompactedError(revision, await self.compacted_revision())
        if _FUTURE in details:
            return errors.FutureRevisionError(revision, await self.current_revision())
        return _unexpected(exc)

    async def _txn(
        self, request: pb.TxnRequest, attempt: _Attempt | None = None, *, lease: int = 0
    ) -> pb.TxnResponse:
        try:
            return await self._call(self._kv.Txn, request, attempt)
        except grpc.aio.AioRpcError as exc:
            raise _write_error(exc, lease) from None

    # --------------------------------------------------------------- reads

    async def current_revision(self) -> int:
        response = await self._range(pb.RangeRequest(key=_PROBE_KEY, count_only=True))
        return response.header.revision

    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        keys.check_key(key)
        response = await self._range(pb.RangeRequest(key=_encode(key), revision=revision))
        return _kv(response.kvs[0]) if response.kvs else None

    async def list(
        self, prefix: str, *, revision: int = 0, limit: int = 0, start: str = ""
    ) -> ListResult:
        keys.check_prefix(prefix)
        if start and not start.startswith(prefix):
            raise errors.InvalidKeyError(f"list start {start!r} is not under prefix {prefix!r}")
        end = _encode(keys.prefix_end(prefix))
        # etcd returns keys in key order when no sort is asked for (and with
        # a sort it would read the whole range before applying the limit).
        response = await self._range(
            pb.RangeRequest(
                key=_encode(start or prefix), range_end=end, limit=limit, revision=revision
            )
        )
        at = revision or response.header.revision
        count = response.count
        if start:
            # etcd counted [start, end); the contract counts the whole prefix.
            whole = await self._range(
                pb.RangeRequest(key=_encode(prefix), range_end=end, revision=at, count_only=True)
            )
            count = whole.count
        return ListResult([_kv(kv) for kv in response.kvs], at, response.more, count)

    async def count(self, prefix: str) -> int:
        keys.check_prefix(prefix)
        response = await self._range(
            pb.RangeRequest(
                key=_encode(prefix), range_end=_encode(keys.prefix_end(prefix)), count_only=True
            )
        )
        return response.count

    # -------------------------------------------------------------- writes

    async def create(self, key: str, value: bytes, *, lease: int = 0) -> KeyValue:
        check_write(key, value)
        value = bytes(value)
        k = _encode(key)
        attempt = _Attempt()
        response = await self._txn(
            pb.TxnRequest(
                compare=[_absent(k)],
                success=[_put(k, value, lease)],
                failure=[_get_op(k)],
            ),
            attempt,
            lease=lease,
        )
        if response.succeeded:
            rev = response.header.revision
            return KeyValue(key, value, rev, rev, lease)
        current = _failure_kv(response)
        if (
            current is not None
            and attempt.retried
            and current.create_revision == current.mod_revision
            and _retried_write_landed(current, value, lease)
        ):
            return current
        raise errors.KeyExistsError(key)

    async def update(
        self, key: str, value: bytes, *, expected_mod_revision: int, lease: int = 0
    ) -> KeyValue:
        check_write(key, value)
        value = bytes(value)
        k = _encode(key)
        attempt = _Attempt()
        response = await self._txn(
            pb.TxnRequest(
                # "exists" as well: MOD == 0 would otherwise match an absent key.
                compare=[_present(k), _mod_is(k, expected_mod_revision)],
                success=[_put(k, value, lease, prev_kv=True)],
                failure=[_get_op(k)],
            ),
            attempt,
            lease=lease,
        )
        if response.succeeded:
            prev = response.responses[0].response_put.prev_kv
            return KeyValue(key, value, prev.create_revision, response.header.revision, lease)
        current = _failure_kv(response)
        if current is None:
            raise errors.KeyNotFoundError(key)
        if (
            attempt.retried
            and current.mod_revision > expected_mod_revision
            and _retried_write_landed(current, value, lease)
        ):
            return current
        raise errors.ConflictError(key, expected_mod_revision, current)

    async def delete(self, key: str, *, expected_mod_revision: int = 0) -> KeyValue:
        """Delete in one transaction; see the module docstring on retries.

        A delete retried after UNAVAILABLE that finds the key gone raises
        KeyNotFoundError: the deleted value cannot be recovered then.
        """
        keys.check_key(key)
        k = _encode(key)
        guard = [_present(k)]
        if expected_mod_revision:
            guard.append(_mod_is(k, expected_mod_revision))
        response = await self._txn(
            pb.TxnRequest(compare=guard, success=[_delete_op(k)], failure=[_get_op(k)])
        )
        if response.succeeded:
            return _kv(response.responses[0].response_delete_range.prev_kvs[0])
        current = _failure_kv(response)
        if current is None:
            raise errors.KeyNotFoundError(key)
        raise errors.ConflictError(key, expected_mod_revision, current)

    # -------------------------------------------------------------- leases

    async def grant_lease(self, ttl: int) -> int:
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
            raise errors.InvalidValueError(
                f"lease TTL must be a positive number of seconds: {ttl!r}"
            )
        try:
            response = await self._call(self._lease.LeaseGrant, pb.LeaseGrantRequest(TTL=ttl))
        except grpc.aio.AioRpcError as exc:
            raise _unexpected(exc) from None
        if response.error:
            raise errors.StoreError(f"etcd refused a lease of {ttl}s: {response.error}")
        return response.ID

    async def keepalive_lease(self, lease: int) -> int:
        """One request/response on a LeaseKeepAlive stream (etcd has no unary form)."""
        if self._closed:
            raise errors.StoreUnavailableError("the store is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_BUDGET
        delay = _BACKOFF_FIRST
        while True:
            try:
                ttl = await self._keepalive_once(lease)
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise _unexpected(exc) from None
                if loop.time() + delay >= deadline:
                    raise errors.StoreUnavailableError(
                        f"etcd at {self._members} unavailable: {_describe(exc)}"
                    ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)
        if ttl <= 0:
            raise errors.LeaseNotFoundError(lease)
        return ttl

    async def _keepalive_once(self, lease: int) -> int:
        call = self._lease.LeaseKeepAlive(timeout=CALL_TIMEOUT)
        try:
            await call.write(pb.LeaseKeepAliveRequest(ID=lease))
            await call.done_writing()
            response = await call.read()  # raises AioRpcError if the call failed
            if response is grpc.aio.EOF:
                raise errors.StoreUnavailableError("etcd ended the lease keepalive unanswered")
            return response.TTL
        finally:
            call.cancel()

    async def revoke_lease(self, lease: int) -> None:
        attempt = _Attempt()
        try:
            await self._call(self._lease.LeaseRevoke, pb.LeaseRevokeRequest(ID=lease), attempt)
        except grpc.aio.AioRpcError as exc:
            if _LEASE_NOT_FOUND not in (exc.details() or ""):
                raise _unexpected(exc) from None
            if not attempt.retried:  # else our failed-looking first try revoked it
                raise errors.LeaseNotFoundError(lease) from None

    # --------------------------------------------------------- maintenance

    async def compact(self, revision: int) -> None:
        """Compact etcd's history; an already-compacted revision is a no-op."""
        if revision <= 0:
            return
        try:
            request = pb.CompactionRequest(revision=revision, physical=True)
            await self._call(self._kv.Compact, request)
        except grpc.aio.AioRpcError as exc:
            details = exc.details() or ""
            if _COMPACTED in details:
                return
            if _FUTURE in details:
                raise errors.FutureRevisionError(revision, await self.current_revision()) from None
            raise _unexpected(exc) from None
        self._compacted_hint = max(self._compacted_hint, revision)

    async def compacted_revision(self) -> int:
        """The revision of etcd's last compaction (0 if never).

        etcd 3.4 reports it nowhere cheap, but a read at revision r fails
        exactly when r < the compacted revision, so the answer is the oldest
        readable revision: checked directly at the last compaction this
        client knows of, else found by binary search (a few count-only reads).
        """
        low = max(self._compacted_hint, 1)
        if await self._readable_at(low):
            return self._compacted_hint
        high = await self.current_revision()  # always readable
        while high - low > 1:  # invariant: low unreadable, high readable
            middle = (low + high) // 2
            if await self._readable_at(middle):
                high = middle
            else:
                low = middle
        self._compacted_hint = max(self._compacted_hint, high)
        return high

    async def _readable_at(self, revision: int) -> bool:
        request = pb.RangeRequest(key=_PROBE_KEY, count_only=True, revision=revision)
        try:
            await self._call(self._kv.Range, request)
        except grpc.aio.AioRpcError as exc:
            if _COMPACTED in (exc.details() or ""):
                return False
            raise _unexpected(exc) from None
        return True

    # --------------------------------------------------------------- watch

    def watch(
        self, prefix: str, *, from_revision: int, progress_interval: float = 5.0
    ) -> AsyncIterator[Event]:
        keys.check_prefix(prefix)  # now, not at the first iteration
        return self._watch_events(prefix, from_revision, progress_interval)

    async def _watch_events(
        self, prefix: str, from_revision: int, progress_interval: float
    ) -> AsyncIterator[Event]:
        """Stream events, reconnecting after member failures from the last one seen."""
        delivered = from_revision
        loop = asyncio.get_running_loop()
        give_up_at: float | None = None  # set while reconnecting
        delay = _BACKOFF_FIRST
        while not self._closed:
            stream = _WatchStream(self._watch, prefix, delivered + 1, progress_interval)
            try:
                await stream.start()
                while True:
                    response = await stream.next()
                    give_up_at, delay = None, _BACKOFF_FIRST
                    for event in _events(response, delivered):
                        delivered = max(delivered, event.revision)
                        yield event
            except _WatchBroken as broken:
                if self._closed:
                    return
                now = loop.time()
                give_up_at = give_up_at or now + RETRY_BUDGET
                if now + delay >= give_up_at:
                    raise errors.StoreUnavailableError(
                        f"watch on etcd at {self._members} lost for {RETRY_BUDGET:g}s: {broken}"
                    ) from None
                log.debug("etcd watch broken, resuming after %d: %s", delivered, broken)
            finally:
                await stream.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)


class _WatchBroken(Exception):
    """The watch stream failed in a way a new stream may fix."""


class _Attempt:
    """Whether a call needed retries after a failure etcd may have applied."""

    __slots__ = ("retried",)

    def __init__(self) -> None:
        self.retried = False


class _WatchStream:
    """One Watch RPC carrying one watcher: `start()`, then `next()` responses.

    Asks for a progress report whenever `progress_interval` passes without a
    response. Raises _WatchBroken when the stream fails or ends, and
    CompactedError when etcd says the start revision is gone. `close()`
    always, to cancel the RPC.
    """

    def __init__(
        self, stub: rpc.WatchStub, prefix: str, start: int, progress_interval: float
    ) -> None:
        self._call = stub.Watch(metadata=_REQUIRE_LEADER)
        self._create = pb.WatchRequest(
            create_request=pb.WatchCreateRequest(
                key=_encode(prefix),
                range_end=_encode(keys.prefix_end(prefix)),
                start_revision=start,
                prev_kv=True,
                progress_notify=True,
            )
        )
        self._start = start
        self._interval = progress_interval
        self._reader: asyncio.Future | None = None

    async def start(self) -> None:
        await self._write(self._create)

    async def next(self) -> pb.WatchResponse:
        self._reader = asyncio.ensure_future(self._call.read())
        while not (await asyncio.wait({self._reader}, timeout=self._interval))[0]:
            await self._write(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
        reader, self._reader = self._reader, None
        response = self._result(reader)
        if response.compact_revision:
            raise errors.CompactedError(self._start - 1, response.compact_revision)
        if response.canceled:
            raise _WatchBroken(f"etcd canceled the watch: {response.cancel_reason or '?'}")
        return response

    async def _write(self, request: pb.WatchRequest) -> None:
        try:
            await self._call.write(request)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            raise _WatchBroken(f"cannot send to etcd: {exc}") from None

    @staticmethod
    def _result(reader: asyncio.Future) -> pb.WatchResponse:
        if reader.cancelled():
            raise _WatchBroken("watch stream cancelled")
        try:
            response = reader.result()
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise _WatchBroken(_describe(exc)) from None
            raise _unexpected(exc) from None
        if response is grpc.aio.EOF:
            raise _WatchBroken("etcd ended the watch stream")
        return response

    async def close(self) -> None:
        """Cancel the RPC and wait for the pending read, so no task outlives us."""
        self._call.cancel()
        reader, self._reader = self._reader, None
        if reader is None:
            return
        reader.cancel()
        await asyncio.wait({reader})
        if not reader.cancelled():
            reader.exception()  # mark retrieved: it is the cancellation we caused


def _events(response: pb.WatchResponse, delivered: int) -> list[Event]:
    """The store events in one watch response (PROGRESS when it has none)."""
    if response.created:
        return []
    if not response.events:
        return [Event(EventType.PROGRESS, max(response.header.revision, delivered))]
    return [_event(e) for e in response.events]


def _event(event: mvccpb.Event) -> Event:
    prev = _kv(event.prev_kv) if event.HasField("prev_kv") else None
    revision = event.kv.mod_revision
    if event.type == mvccpb.Event.DELETE:
        created = prev.create_revision if prev else 0
        gone = KeyValue(_decode(event.kv.key), b"", created, revision, 0)
        return Event(EventType.DELETE, revision, gone, prev)
    kv = _kv(event.kv)
    if kv.create_revision == kv.mod_revision:
        return Event(EventType.CREATE, revision, kv, None)
    return Event(EventType.UPDATE, revision, kv, prev)


# ------------------------------------------------------------------ helpers


def _encode(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def _decode(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


def _kv(kv: mvccpb.KeyValue) -> KeyValue:
    return KeyValue(_decode(kv.key), bytes(kv.value), kv.create_revision, kv.mod_revision, kv.lease)


def _absent(key: bytes) -> pb.Compare:
    return pb.Compare(key=key, target=pb.Compare.CREATE, result=pb.Compare.EQUAL, create_revision=0)


def _present(key: bytes) -> pb.Compare:
    return pb.Compare(
        key=key, target=pb.Compare.CREATE, result=pb.Compare.GREATER, create_revision=0
    )


def _mod_is(key: bytes, revision: int) -> pb.Compare:
    return pb.Compare(
        key=key, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=revision
    )


def _put(key: bytes, value: bytes, lease: int, *, prev_kv: bool = False) -> pb.RequestOp:
    return pb.RequestOp(
        request_put=pb.PutRequest(key=key, value=value, lease=lease, prev_kv=prev_kv)
    )


def _get_op(key: bytes) -> pb.RequestOp:
    return pb.RequestOp(request_range=pb.RangeRequest(key=key))


def _delete_op(key: bytes) -> pb.RequestOp:
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, prev_kv=True))


def _failure_kv(response: pb.TxnResponse) -> KeyValue | None:
    """The key's current value, read by the failure branch of a CAS txn."""
    kvs = response.responses[0].response_range.kvs
    return _kv(kvs[0]) if kvs else None


def _retried_write_landed(current: KeyValue, value: bytes, lease: int) -> bool:
    """Did the attempt that failed with UNAVAILABLE apply our write after all?

    We cannot know for sure; the key holding exactly our value and lease is
    the evidence we accept. Another writer storing byte-identical content in
    the same instant is the only way to be wrong, and then the key holds what
    the caller wanted anyway.
    """
    return current.value == value and current.lease == lease


def _write_error(exc: grpc.aio.AioRpcError, lease: int) -> errors.StoreError:
    details = exc.details() or ""
    if _LEASE_NOT_FOUND in details:
        return errors.LeaseNotFoundError(lease)
    if _TOO_LARGE in details or exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return errors.ValueTooLargeError(f"etcd refused the write: {details}")
    return _unexpected(exc)


def _unexpected(exc: grpc.aio.AioRpcError) -> errors.StoreError:
    return errors.StoreError(f"etcd: {_describe(exc)}")


def _describe(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


async def _channel_target(members: Sequence[tuple[str, int]]) -> str:
    """A gRPC target naming every member by IP, e.g. `ipv4:10.0.0.1:2379,10.0.0.2:2379`.

    Names are resolved here, once, because gRPC's static address schemes
    take one address family and IPs only. IPv4 wins when a name has both;
    a mix of families becomes IPv6 with IPv4-mapped addresses.
    """
    addresses = [await _resolve(host, port) for host, port in members]
    if all(ip.version == 4 for ip, _ in addresses):
        return "ipv4:" + ",".join(f"{ip}:{port}" for ip, port in addresses)
    mapped = [
        (ipaddress.IPv6Address(f"::ffff:{ip}") if ip.version == 4 else ip, port)
        for ip, port in addresses
    ]
    return "ipv6:" + ",".join(f"[{ip}]:{port}" for ip, port in mapped)


async def _resolve(host: str, port: int) -> tuple[_IP, int]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise errors.StoreUnavailableError(
            f"cannot resolve etcd member {host}:{port}: {exc}"
        ) from None
    ips = [ipaddress.ip_address(info[4][0]) for info in infos]
    ips.sort(key=lambda ip: ip.version)  # IPv4 first
    return ips[0], port
