"""The generic REST machinery: one implementation of every verb for every resource.

The registry entry (`api.registry.Resource`) and the kind's strategy
(`api.strategy`) decide the differences; this module does what upstream's
`k8s.io/apiserver/pkg/registry/generic/registry` and `endpoints/handlers` do:
create, get, list, watch, update, patch, delete and deletecollection, with
preconditions, dry runs, finalizers and graceful deletion.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import datetime
import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from kubik.api import (
    errors,
    fieldmanager,
    fields,
    meta,
    patch,
    selectors,
    strategy,
    tables,
    typecheck,
)
from kubik.api.objcopy import deep_copy
from kubik.api.registry import Resource
from kubik.apiserver import admission, codec, services
from kubik.apiserver.eventttl import SharedLeases
from kubik.apiserver.http import Request, Response, StreamResponse
from kubik.apiserver.recent import Recent
from kubik.apiserver.storage import Object, ResourceStore, decode, with_version

# Node ports allocated ahead of a Service update, and those it gave up (per request).
_spare_ports: contextvars.ContextVar[list[int]] = contextvars.ContextVar("spare_ports")
_unneeded_ports: contextvars.ContextVar[list[int]] = contextvars.ContextVar("unneeded_ports")

_TABLE_KINDS = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")
_DEFAULT_WATCH_SECONDS = 1800
_BOOKMARK_INTERVAL = 60.0
_INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True, slots=True)
class Target:
    """What a resource URL names."""

    resource: Resource
    namespace: str
    name: str
    subresource: str


def respond(obj: Any, request: Request, status: int = 200) -> Response:
    rendering = codec.negotiate(request.headers.get("accept", ""))
    return Response(
        status, codec.encode(obj, rendering), warning_headers(request), rendering.content_type
    )


def warning_headers(request: Request) -> list[tuple[str, str]]:
    """The request's warnings as `Warning: 299 - "text"` headers (kubectl prints them)."""
    unique = dict.fromkeys(request.warnings)
    return [("Warning", "299 - " + orjson.dumps(text).decode()) for text in unique]


def validate_fields(resource: Resource, obj: Object, request: Request) -> None:
    """Unknown fields: 400 under fieldValidation=Strict; dropped otherwise, with a warning
    under Warn (the default), silently under Ignore — as upstream's decoder does."""
    mode = request.param("fieldValidation") or "Warn"
    if mode not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'fieldValidation parameter unsupported: "{mode}" (Strict, Warn or Ignore)'
        )
    if mode == "Strict":
        unknown = fields.unknown_fields(resource, obj)
        if unknown:
            raise errors.bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown)
            )
    dropped = fields.drop_unknown_fields(resource, obj)
    if mode == "Warn":
        request.warnings.extend(f'unknown field "{path}"' for path in dropped)


class RestHandler:
    """Serves one request against a resource; the registry of stores is shared."""

    def __init__(
        self,
        stores: dict[Resource, ResourceStore],
        namespaces: ResourceStore,
        services: services.ServiceAllocator,
        event_leases: SharedLeases,
    ):
        self._stores = stores
        self._namespaces = namespaces
        self._services = services
        self._event_leases = event_leases
        self.admission = admission.Chain(admission.Stores(stores))
        self._lines: Recent[bytes] = Recent()  # encoded watch lines, shared by watchers

    def store_for(self, resource: Resource) -> ResourceStore:
        return self._stores[resource]

    def registry_resource(self, group: str, version: str, plural: str) -> Resource:
        for resource in self._stores:
            if (resource.group, resource.version, resource.plural) == (group, version, plural):
                return resource
        raise errors.not_found(plural, group, "")

    # --------------------------------------------------------------- helpers

    def _rendering(self, request: Request) -> codec.Rendering:
        return codec.negotiate(request.headers.get("accept", ""), allowed_as=_TABLE_KINDS)

    def _render_one(self, target: Target, obj: Object, request: Request) -> Response:
        rendering = self._rendering(request)
        body = _view(target, obj, rendering, request)
        return Response(
            200, codec.encode(body, rendering), warning_headers(request), rendering.content_type
        )

    async def _require_namespace(self, namespace: str, *, creating: bool) -> None:
        """Namespaced objects need an existing namespace, and a live one to be created in."""
        try:
            ns = await self._namespaces.get("", namespace, from_cache=True)
        except errors.APIError:
            raise errors.not_found("namespaces", "", namespace) from None
        if creating and (ns.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.APIError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is "
                "being terminated",
                details={
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ]
                },
            )

    @staticmethod
    def _check_identity(target: Target, obj: Any) -> None:
        resource = target.resource
        if not isinstance(obj, dict):
            raise errors.bad_request(f"the body must be a {resource.kind} object")
        typecheck.check(resource, obj)
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != resource.kind:
            raise errors.bad_request(
                f"the kind in the body ({kind}) does not match the resource ({resource.kind})"
            )
        if api_version and api_version != resource.group_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({resource.group_version})"
            )
        metadata = obj.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise errors.bad_request("metadata must be an object")
        obj["kind"], obj["apiVersion"] = resource.kind, resource.group_version
        metadata = meta.metadata(obj)
        if resource.namespaced:
            body_ns = metadata.get("namespace")
            if body_ns and body_ns != target.namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            metadata["namespace"] = target.namespace
        else:
            metadata.pop("namespace", None)
        if target.name and metadata.get("name") and metadata["name"] != target.name:
            raise errors.bad_request(
                "the name of the object "
                f"({metadata['name']}) does not match the name on the URL ({target.name})"
            )
        if target.name:
            metadata["name"] = target.name

    @staticmethod
    def _invalid_if(resource: Resource, obj: Object, causes: list) -> None:
        if causes:
            raise errors.invalid(resource.kind, resource.group, meta.name_of(obj), causes)

    # ----------------------------------------------------------------- create

    async def create(self, target: Target, request: Request) -> Response:
        resource = target.resource
        obj = codec.decode_body(request.body, request.headers.get("content-type", ""))
        self._check_identity(target, obj)
        validate_fields(resource, obj, request)
        metadata = obj["metadata"]
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = meta.generated_name(metadata["generateName"])
        if resource.namespaced:
            await self._require_namespace(target.namespace, creating=True)
        attributes = _attributes(admission.CREATE, target, request, obj, None)
        mutated = self.admission.mutates(admission.CREATE, resource, target.subresource)
        requested = deep_copy(obj) if mutated else obj
        await self.admission.mutate(attributes)
        strategy.prepare_create(resource, obj)
        self._invalid_if(resource, obj, strategy.validate_create(resource, obj))
        _record_creator(resource, obj, requested, _manager(request))
        await self.admission.validate(attributes)
        if _dry_run(request):
            return self._render_created(target, obj, request)
        return self._render_created(target, await self._store_new(resource, obj), request)

    async def _store_new(self, resource: Resource, obj: Object) -> Object:
        """Store a new object, with its Service addresses when it is a Service."""
        if resource.kind == "Event":
            lease = await self._event_leases.lease()
            return await self.store_for(resource).create(obj, lease=lease)
        if not _is_service(resource):
            return await self.store_for(resource).create(obj)
        await self._services.allocate(obj)
        try:
            return await self.store_for(resource).create(obj)
        except BaseException:
            await self._services.release(obj)
            raise

    async def _removed(self, resource: Resource, obj: Object) -> None:
        """An object left the store: give back what it held."""
        if _is_service(resource):
            await self._services.release(obj)

    def _render_created(self, target: Target, obj: Object, request: Request) -> Response:
        response = self._render_one(target, obj, request)
        response.status = 201
        return response

    # -------------------------------------------------------------------- get

    async def get(self, target: Target, request: Request) -> Response:
        from_cache = request.param("resourceVersion") == "0"
        obj = await self.store_for(target.resource).get(
            target.namespace, target.name, from_cache=from_cache
        )
        return self._render_one(target, obj, request)

    # ------------------------------------------------------------------- list

    async def list(self, target: Target, request: Request) -> Response:
        resource = target.resource
        store = self.store_for(resource)
        labels = selectors.parse_labels(request.param("labelSelector"))
        fields = selectors.parse_fields(request.param("fieldSelector"), resource.kind)
        matches = _matcher(labels, fields)
        limit = _int_param(request, "limit")
        _int_param(request, "timeoutSeconds")  # a list takes it too; it must parse
        version, exact, start = await self._list_position(store, request, limit)
        rendering = self._rendering(request)
        # As JSON, the stored bytes are spliced into the answer: all objects decoding nothing,
        # selected ones decoded only to be matched.
        raw = rendering == codec.Rendering(codec.JSON)
        items: list[Any] = []
        more = False
        while True:
            page = await store.list_page(
                target.namespace,
                revision=version,
                exact=exact,
                limit=(limit - len(items) if limit else 0),
                start=start,
            )
            if raw and matches is _everything:
                items += [with_version(kv) for kv in page.kvs]
            elif raw:
                items += [with_version(kv) for kv in page.kvs if matches(decode(kv))]
            else:
                items += [obj for obj in map(decode, page.kvs) if matches(obj)]
            version, exact = page.revision, True
            more = page.more
            if page.kvs:
                start = page.kvs[-1].key + "\x00"
            if not page.more or not limit or len(items) >= limit:
                break
        body_meta: dict[str, Any] = {"resourceVersion": str(version)}
        if more:
            body_meta["continue"] = _continue_token(version, start)
        if raw:
            return self._raw_list(target, items, body_meta)
        return self._render_list(target, items, body_meta, request)

    @staticmethod
    def _raw_list(target: Target, items: list[bytes], list_meta: dict) -> Response:
        resource = target.resource
        head = orjson.dumps(
            {
                "kind": resource.list_kind,
                "apiVersion": resource.group_version,
                "metadata": list_meta,
            }
        )
        body = head[:-1] + b',"items":[' + b",".join(items) + b"]}"
        return Response(200, body, [], codec.JSON)

    async def _list_position(
        self, store: ResourceStore, request: Request, limit: int
    ) -> tuple[int, bool, str]:
        """(revision, read exactly at it, start key) for a list request."""
        token = request.param("continue")
        if token:
            revision, start = _parse_continue(token)
            return revision, True, start
        version_text = request.param("resourceVersion")
        match = request.param("resourceVersionMatch")
        if version_text == "":
            if match:
                raise errors.bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided"
                )
            # the newest state: read the store's revision, then serve the cache once fresh
            return await store.current_revision(), bool(limit), ""
        version = _parse_version(version_text)
        if match == "Exact":
            if version == 0:
                raise errors.bad_request(
                    'resourceVersionMatch "Exact" is forbidden for resourceVersion "0"'
                )
            return version, True, ""
        if match not in ("", "NotOlderThan"):
            raise errors.bad_request(f"unknown resourceVersionMatch {match!r}")
        return version, False, ""

    def _render_list(
        self, target: Target, items: list[Object], list_meta: dict, request: Request
    ) -> Response:
        resource = target.resource
        rendering = self._rendering(request)
        if rendering.as_kind == "Table":
            body = tables.table(
                resource,
                items,
                rendering.as_version,
                include=request.param("includeObject", "Metadata"),
            )
            body["metadata"] = list_meta
        elif rendering.as_kind.startswith("PartialObjectMetadata"):
            body = {
                "kind": "PartialObjectMetadataList",
                "apiVersion": f"meta.k8s.io/{rendering.as_version}",
                "metadata": list_meta,
                "items": [_partial(obj, rendering.as_version) for obj in items],
            }
        else:
            body = {
                "kind": resource.list_kind,
                "apiVersion": resource.group_version,
                "metadata": list_meta,
                "items": items,
            }
        return Response(
            200, codec.encode(body, rendering), warning_headers(request), rendering.content_type
        )

    # ------------------------------------------------------------------ watch

    async def watch(self, target: Target, request: Request) -> StreamResponse:
        resource = target.resource
        store = self.store_for(resource)
        labels = selectors.parse_labels(request.param("labelSelector"))
        fields = selectors.parse_fields(request.param("fieldSelector"), resource.kind)
        rendering = self._rendering(request)
        version_text = request.param("resourceVersion")
        send_initial = request.param("sendInitialEvents") == "true"
        bookmarks = request.param("allowWatchBookmarks") == "true"
        timeout = _int_param(request, "timeoutSeconds") or _DEFAULT_WATCH_SECONDS
        if send_initial and version_text not in ("", "0"):
            raise errors.bad_request(
                'sendInitialEvents is only supported with resourceVersion unset or "0"'
            )
        # unset: the newest state first, then changes; "0": any state first; N: after N
        from_revision = _parse_version(version_text) if version_text else 0
        if not version_text:
            await store.cache.wait_fresh(await store.current_revision())
        events = store.watch(
            target.namespace,
            from_revision=from_revision,
            progress_interval=_BOOKMARK_INTERVAL if bookmarks else 0.0,
        )
        matches = _matcher(labels, fields)
        lines = self._watch_lines(
            target,
            events,
            rendering,
            request,
            matches=matches,
            bookmarks=bookmarks,
            initial_end=send_initial and bookmarks,
            lifetime=timeout,
        )
        return StreamResponse(200, lines, content_type=rendering.content_type)

    async def _watch_lines(
        self,
        target: Target,
        events: AsyncIterator,
        rendering: codec.Rendering,
        request: Request,
        *,
        matches,
        bookmarks: bool,
        initial_end: bool,
        lifetime: int,
    ) -> AsyncIterator[bytes]:
        resource = target.resource
        try:
            async with asyncio.timeout(lifetime):
                async for kind, obj in events:
                    if kind == "INITIAL_END":
                        if initial_end:
                            mark = _bookmark(resource, obj, {_INITIAL_EVENTS_END: "true"})
                            yield self._watch_line("BOOKMARK", mark, rendering, target, request)
                    elif kind == "BOOKMARK":
                        if bookmarks:
                            mark = _bookmark(resource, obj, {})
                            yield self._watch_line("BOOKMARK", mark, rendering, target, request)
                    elif matches(obj):
                        yield self._watch_line(kind, obj, rendering, target, request)
        except TimeoutError:
            return
        except errors.APIError as exc:
            yield self._watch_line("ERROR", exc.status(), rendering, target, request)
        finally:
            await events.aclose()

    def _watch_line(
        self, kind: str, obj: Object, rendering: codec.Rendering, target: Target, request: Request
    ) -> bytes:
        if kind in ("ERROR", "BOOKMARK"):
            return orjson.dumps({"type": kind, "object": obj}) + b"\n"
        metadata = obj["metadata"]
        key = (
            target.resource,
            kind,
            metadata.get("namespace"),
            metadata["name"],
            metadata.get("resourceVersion"),
            rendering,
            request.param("includeObject", "Metadata"),
        )
        return self._lines.get(
            key, lambda: self._render_watch_line(kind, obj, rendering, target, request)
        )

    @staticmethod
    def _render_watch_line(
        kind: str, obj: Object, rendering: codec.Rendering, target: Target, request: Request
    ) -> bytes:
        view = _view(target, obj, rendering, request)
        return orjson.dumps({"type": kind, "object": view}) + b"\n"

    # ----------------------------------------------------------------- update

    async def update(self, target: Target, request: Request) -> Response:
        resource = target.resource
        body = codec.decode_body(request.body, request.headers.get("content-type", ""))
        self._check_identity(target, body)
        validate_fields(resource, body, request)
        expected = body["metadata"].get("resourceVersion", "")
        manager = _manager(request)
        status_only = target.subresource == "status"

        def change(current: Object) -> Object | None:
            if expected and expected != current["metadata"]["resourceVersion"]:
                raise errors.stale(resource.plural, resource.group, target.name)
            new = deep_copy(body)
            return self.next_version(target, new, current, manager, "Update", status_only)

        return await self._write_update(target, change, request)

    def next_version(
        self,
        target: Target,
        new: Object,
        current: Object,
        manager: str,
        operation: str,
        status_only: bool,
    ) -> Object | None:
        resource = target.resource
        uid = (new.get("metadata") or {}).get("uid")
        if uid and uid != current["metadata"].get("uid"):
            # a write naming another incarnation of the object (deleted and made again)
            raise errors.conflict(
                resource.plural,
                resource.group,
                target.name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{current['metadata'].get('uid')}",
            )
        if status_only:
            new = strategy.prepare_status_update(new, current)
        else:
            strategy.prepare_update(resource, new, current)
            if _is_service(resource):
                _unneeded_ports.set(services.carry_over(new, current, _spare_ports.get()))
        self._invalid_if(resource, new, strategy.validate_update(resource, new, current))
        fieldmanager.record(
            new, current, manager=manager, operation=operation, subresource=target.subresource
        )
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if new == current:
            return None
        return new

    async def _write_update(self, target: Target, change, request: Request) -> Response:
        store = self.store_for(target.resource)
        change = self._admitted(target, change, request)
        if _dry_run(request):
            current = await store.get(target.namespace, target.name)
            new = change(deep_copy(current))
            if inspect.isawaitable(new):
                new = await new
            return self._render_one(target, new or current, request)
        old, new = await self._update_with_ports(target, change)
        if _finished_deleting(new):
            await self._finish_delete(target, new)
        return self._render_one(target, new, request)

    def _admitted(self, target: Target, change, request: Request):
        """The update's change followed by admission, when a plugin cares about the write
        (a coroutine then: the store awaits it inside its compare-and-swap loop)."""
        if not self.admission.wants(admission.UPDATE, target.resource, target.subresource):
            return change

        async def admitted(current: Object) -> Object | None:
            old = deep_copy(current)
            new = change(current)
            if new is not None:
                attributes = _attributes(admission.UPDATE, target, request, new, old)
                await self.admission.mutate(attributes)
                await self.admission.validate(attributes)
            return new

        return admitted

    async def _update_with_ports(self, target: Target, change) -> tuple[Object, Object]:
        """store.update, allocating node ports first when a Service update turns out to need
        them (the change function runs inside the compare-and-swap loop and cannot wait)."""
        store = self.store_for(target.resource)
        spare: list[int] = []
        _spare_ports.set(spare)
        _unneeded_ports.set([])
        try:
            while True:
                try:
                    old, new = await store.update(target.namespace, target.name, change)
                    break
                except services.NeedNodePorts as need:
                    spare += await self._services.allocate_ports(
                        {"metadata": {"namespace": target.namespace, "name": target.name}},
                        need.count,
                    )
        except BaseException:
            await self._services.release_ports(spare)
            raise
        if _is_service(target.resource) and old is not new:
            used = {p.get("nodePort") for p in (new.get("spec") or {}).get("ports") or []}
            await self._services.release_ports(
                [p for p in spare if p not in used] + _unneeded_ports.get()
            )
        return old, new

    async def _finish_delete(self, target: Target, obj: Object) -> None:
        """The last finalizer went away from an object being deleted: remove it now."""
        try:
            removed = await self.store_for(target.resource).delete(
                target.namespace,
                meta.name_of(obj),
                expected_revision=int(obj["metadata"]["resourceVersion"]),
            )
        except errors.APIError as exc:
            if exc.code not in (404, 409):
                raise
        else:
            await self._removed(target.resource, removed)

    # ------------------------------------------------------------------ patch

    async def patch(self, target: Target, request: Request) -> Response:
        resource = target.resource
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        status_only = target.subresource == "status"
        if content_type == "application/apply-patch+yaml":
            return await self._apply(target, request)
        if content_type not in (
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            raise errors.unsupported_media_type(content_type)
        document = codec.decode_body(request.body, "application/json")
        manager = _manager(request)

        def change(current: Object) -> Object | None:
            original = deep_copy(current)
            try:
                if content_type == "application/json-patch+json":
                    patched = patch.json_patch(current, document)
                elif content_type == "application/merge-patch+json":
                    patched = patch.merge_patch(current, document)
                else:
                    from kubik.api import strategic

                    patched = strategic.apply(current, document, resource)
            except patch.MalformedPatchError as exc:
                raise errors.bad_request(str(exc)) from None
            except patch.PatchError as exc:
                raise errors.APIError(422, "Invalid", f"the patch does not apply: {exc}") from None
            if not isinstance(patched, dict):
                raise errors.bad_request("the patched object is not an object")
            self._check_identity(target, patched)
            validate_fields(resource, patched, request)
            patched_version = patched["metadata"].get("resourceVersion")
            if patched_version and patched_version != original["metadata"]["resourceVersion"]:
                raise errors.stale(resource.plural, resource.group, target.name)
            return self.next_version(target, patched, original, manager, "Update", status_only)

        return await self._write_update(target, change, request)

    async def _apply(self, target: Target, request: Request) -> Response:
        """Server-side apply: create or merge the applied configuration, tracking owners."""
        from kubik.api import apply

        resource = target.resource
        applied = codec.decode_body(request.body, "application/apply-patch+yaml")
        if not isinstance(applied, dict):
            raise errors.bad_request("an apply patch must be an object")
        manager = request.param("fieldManager")
        if not manager:
            raise errors.bad_request(
                "PATCH, application/apply-patch+yaml requests require fieldManager"
            )
        force = request.param("force") == "true"
        store = self.store_for(resource)
        try:
            await store.get(target.namespace, target.name)
        except errors.APIError as exc:
            if exc.code != 404:
                raise
            self._check_identity(target, applied)
            obj = apply.apply(None, applied, manager=manager, force=force, resource=resource)
            if resource.namespaced:
                await self._require_namespace(target.namespace, creating=True)
            attributes = _attributes(admission.CREATE, target, request, obj, None)
            await self.admission.mutate(attributes)
            strategy.prepare_create(resource, obj)
            self._invalid_if(resource, obj, strategy.validate_create(resource, obj))
            await self.admission.validate(attributes)
            if _dry_run(request):
                return self._render_created(target, obj, request)
            return self._render_created(target, await store.create(obj), request)

        def change(current: Object) -> Object | None:
            original = deep_copy(current)
            self._check_identity(target, applied)
            merged = apply.apply(current, applied, manager=manager, force=force, resource=resource)
            if target.subresource == "status":
                merged = strategy.prepare_status_update(merged, original)
            else:
                strategy.prepare_update(resource, merged, original)
            self._invalid_if(resource, merged, strategy.validate_update(resource, merged, original))
            merged["metadata"]["resourceVersion"] = original["metadata"]["resourceVersion"]
            return None if merged == original else merged

        return await self._write_update(target, change, request)

    # ----------------------------------------------------------------- delete

    async def delete(self, target: Target, request: Request) -> Response:
        options = _delete_options(request)
        obj = await self.delete_object(target, target.name, options, _dry_run(request))
        return self._render_one(target, obj, request)

    async def delete_object(
        self, target: Target, name: str, options: dict, dry_run: bool
    ) -> Object:
        resource = target.resource
        store = self.store_for(resource)
        preconditions = options.get("preconditions") or {}
        policy = options.get("propagationPolicy") or ""
        if options.get("orphanDependents") is True and not policy:
            policy = "Orphan"
        if policy not in ("", "Background", "Foreground", "Orphan"):
            raise errors.invalid(
                "DeleteOptions",
                "",
                "",
                [
                    errors.field_cause(
                        "propagationPolicy",
                        f'Unsupported value: "{policy}"',
                        "FieldValueNotSupported",
                    )
                ],
            )
        requested_grace = options.get("gracePeriodSeconds")
        finished: list[Object] = []

        def change(current: Object) -> Object | None:
            current_meta = current["metadata"]
            if preconditions.get("uid") and preconditions["uid"] != current_meta.get("uid"):
                raise errors.conflict(
                    resource.plural,
                    resource.group,
                    name,
                    f"Precondition failed: UID in precondition: "
                    f"{preconditions['uid']}, UID in object meta: "
                    f"{current_meta.get('uid')}",
                )
            if (
                preconditions.get("resourceVersion")
                and preconditions["resourceVersion"] != current_meta["resourceVersion"]
            ):
                raise errors.conflict(
                    resource.plural,
                    resource.group,
                    name,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{preconditions['resourceVersion']}, ResourceVersion in "
                    f"object meta: {current_meta['resourceVersion']}",
                )
            finalizers = list(current_meta.get("finalizers") or [])
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            if resource.kind == "Namespace" and not resource.group:
                return _start_namespace_deletion(current)
            grace = strategy.grace_period(resource, current, requested_grace)
            shorter = grace < current_meta.get("deletionGracePeriodSeconds", 0)
            if current_meta.get("deletionTimestamp") and not shorter and (finalizers or grace):
                return None  # already being deleted; nothing to change
            if not finalizers and grace == 0:
                finished.append(current)
                return None
            if finalizers:
                current_meta["finalizers"] = finalizers
            if not current_meta.get("deletionTimestamp") or shorter:
                current_meta["deletionTimestamp"] = _in_seconds(grace)
                current_meta["deletionGracePeriodSeconds"] = grace
            return current

        if dry_run:
            return await store.get(target.namespace, name)
        old, new = await store.update(target.namespace, name, change)
        if finished:
            removed = await store.delete(
                target.namespace, name, expected_revision=int(old["metadata"]["resourceVersion"])
            )
            await self._removed(resource, removed)
            return removed
        return new

    async def delete_collection(self, target: Target, request: Request) -> Response:
        options = _delete_options(request)
        store = self.store_for(target.resource)
        labels = selectors.parse_labels(request.param("labelSelector"))
        fields = selectors.parse_fields(request.param("fieldSelector"), target.resource.kind)
        matches = _matcher(labels, fields)
        page = await store.list_page(target.namespace, revision=0, exact=True, limit=0, start="")
        deleted = []
        for kv in page.kvs:
            obj = orjson.loads(kv.value)
            if matches(obj):
                try:
                    deleted.append(
                        await self.delete_object(
                            target, meta.name_of(obj), options, _dry_run(request)
                        )
                    )
                except errors.APIError as exc:
                    if exc.code != 404:
                        raise
        return self._render_list(target, deleted, {"resourceVersion": str(page.revision)}, request)


# ------------------------------------------------------------------- helpers


def _attributes(
    operation: str, target: Target, request: Request, obj: Object, old: Object | None
) -> admission.Attributes:
    return admission.Attributes(
        operation,
        target.resource,
        target.namespace,
        target.subresource,
        obj,
        old,
        request.user,
        _dry_run(request),
    )


def _record_creator(resource: Resource, obj: Object, requested: Object, manager: str) -> None:
    """Give the creator of `obj` the fields of its request, as upstream's field manager does
    before mutating admission: with the kind's defaults (upstream's come with decoding), not
    what admission added (the service account volume, LimitRanger's resources). Server-side
    apply's create owns what it applies, before admission, by the same rule."""
    if requested is obj:  # no plugin could have changed it
        fieldmanager.record(obj, None, manager=manager, operation="Update")
        return
    strategy.prepare_create(resource, requested)
    fieldmanager.record(requested, None, manager=manager, operation="Update")
    managed = requested["metadata"].get("managedFields")
    if managed is None:
        obj["metadata"].pop("managedFields", None)
    else:
        obj["metadata"]["managedFields"] = managed


def _is_service(resource: Resource) -> bool:
    return resource.kind == "Service" and not resource.group


def _everything(obj: Object) -> bool:
    return True


def _matcher(labels, fields):
    """One predicate for a label and a field selector (either may be None)."""
    if labels is None and fields is None:
        return _everything
    return lambda obj: (labels is None or labels(obj)) and (fields is None or fields(obj))


def _manager(request: Request) -> str:
    manager = request.param("fieldManager")
    if manager:
        return manager
    agent = request.headers.get("user-agent", "unknown")
    return agent.split("/")[0][:128] or "unknown"


def _dry_run(request: Request) -> bool:
    values = request.query.get("dryRun") or []
    for value in values:
        if value != "All":
            raise errors.bad_request(f"unsupported dryRun value {value!r}: only All")
    return bool(values)


def _int_param(request: Request, name: str) -> int:
    text = request.param(name)
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise errors.bad_request(f"{name} must be an integer, not {text!r}") from None
    if value < 0:
        raise errors.bad_request(f"{name} must not be negative")
    return value


def _parse_version(text: str) -> int:
    try:
        version = int(text)
    except ValueError:
        version = -1
    if version < 0:
        raise errors.bad_request(f"invalid resource version: {text!r}")
    return version


def _continue_token(revision: int, start: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_continue(token: str) -> tuple[int, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise errors.bad_request("continue key is not valid") from None


def _view(target: Target, obj: Object, rendering: codec.Rendering, request: Request) -> Object:
    """One object as the client asked to see it: itself, a one-row Table, or its metadata."""
    if rendering.as_kind == "Table":
        return tables.table(
            target.resource,
            [obj],
            rendering.as_version,
            include=request.param("includeObject", "Metadata"),
        )
    if rendering.as_kind.startswith("PartialObjectMetadata"):
        return _partial(obj, rendering.as_version)
    return obj


def _partial(obj: Object, version: str) -> Object:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj.get("metadata", {}),
    }


def _bookmark(resource: Resource, revision: int, annotations: dict) -> Object:
    metadata: dict[str, Any] = {"resourceVersion": str(revision)}
    if annotations:
        metadata["annotations"] = annotations
    return {"kind": resource.kind, "apiVersion": resource.group_version, "metadata": metadata}


def _delete_options(request: Request) -> dict:
    options: dict[str, Any] = {}
    if request.body.strip():
        body = codec.decode_body(request.body, request.headers.get("content-type", ""))
        if not isinstance(body, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        options.update(body)
    for name in ("propagationPolicy",):
        if request.param(name):
            options[name] = request.param(name)
    if request.param("gracePeriodSeconds"):
        options["gracePeriodSeconds"] = _parse_version(request.param("gracePeriodSeconds"))
    if request.param("orphanDependents"):
        options["orphanDependents"] = request.param("orphanDependents") == "true"
    return options


def _in_seconds(seconds: int) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _finished_deleting(obj: Object) -> bool:
    metadata = obj.get("metadata") or {}
    return (
        bool(metadata.get("deletionTimestamp"))
        and not metadata.get("finalizers")
        and (not metadata.get("deletionGracePeriodSeconds"))
        and obj.get("kind") != "Namespace"
    )


def _start_namespace_deletion(current: Object) -> Object | None:
    """Namespaces are finalized by the namespace controller: mark them Terminating."""
    metadata = current["metadata"]
    if metadata.get("deletionTimestamp"):
        return None
    metadata["deletionTimestamp"] = meta.now()
    metadata["deletionGracePeriodSeconds"] = 0
    current.setdefault("status", {})["phase"] = "Terminating"
    return current
