"""The OpenAPI documents: what kubectl reads before `create`, `apply` and `explain`.

kubectl fetches `/openapi/v3` (an index of one document per group-version,
each URL carrying the hash of its document) and then the documents it needs.
Two things in them change what kubectl does: a `fieldValidation` parameter on
the `patch` operations of a kind tells it the server validates fields itself,
so it skips its own validation (with no OpenAPI at all, `create -f` and
`apply -f` fail unless `--validate=false`), and `components.schemas` entries
carrying `x-kubernetes-group-version-kind` are what `explain` prints.
`/openapi/v2` is the single Swagger 2.0 document of all groups, served as
JSON: kubectl 1.27 and 1.28 ask for it as protobuf and fail when it does not
parse as such, so they need `--validate=false` until it is served that way.

The schemas are upstream's (`kubik.api.schemas`), turned from JSON Schema back
into OpenAPI: references renamed, the `null` types the JSON Schema form adds
removed, int-or-string and quantities written as upstream writes them. The
paths come from the registry, so they follow the resources kubik serves.
Rendered documents are kept as bytes until the registry or a custom schema
changes; every document is rendered at once because the index needs the
hash of each.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from kubik.api import errors, schemas
from kubik.api.registry import Registry, Resource
from kubik.apiserver import discovery
from kubik.apiserver.http import Request, Response
from kubik.apiserver.protobuf.wire import length_delimited

Schema = dict[str, Any]

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_STATUS = _META + "Status"
_DELETE_OPTIONS = _META + "DeleteOptions"
_PATCH = _META + "Patch"
PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_ANSWER_TYPES = ("application/json", "application/yaml")
_WATCH_TYPES = (*_ANSWER_TYPES, "application/json;stream=watch")
# Subresources that stream or tunnel (logs, exec, proxy…) have no object body to describe.
_STREAMING = frozenset({"log", "exec", "attach", "portforward", "proxy"})
# The release of the schemas is the release kubik answers as ("v1.32.0-local" → v1.32.0).
_INFO = {"title": "Kubernetes", "version": schemas.KUBERNETES_VERSION}
_BEARER = {
    "type": "apiKey",
    "name": "authorization",
    "in": "header",
    "description": "Bearer token authentication",
}


# ----------------------------------------------------------------- schemas


# Documents are written for OpenAPI 3.0 (V3) or Swagger 2.0 (V2). V3 puts a
# reference that has sibling keywords (a description) inside allOf and says
# int-or-string and quantity with oneOf, as upstream does; Swagger 2.0 keeps
# the siblings beside `$ref`, has no oneOf and calls those two strings.
V3, V2 = 3, 2
_REF_PREFIX = {V3: "#/components/schemas/", V2: "#/definitions/"}
_SCHEMA_MAPS = ("properties", "patternProperties")
_SCHEMA_LISTS = ("allOf", "anyOf")
_V3_ONLY = frozenset({"anyOf", "not", "nullable"})


def convert(schema: Any, version: int) -> Any:
    """One schema in OpenAPI `version`, from kubik's JSON Schema form (or a CRD's OpenAPI v3)."""
    if not isinstance(schema, dict):
        return schema
    out: Schema = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = _REF_PREFIX[version] + value.rsplit("/", 1)[-1]
        elif key == "type":
            kind = _single_type(value)
            if kind:
                out[key] = kind
        elif key == "oneOf":
            out.update(_one_of(value, version))
        elif key in _V3_ONLY and version == V2:
            continue
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: convert(sub, version) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [convert(sub, version) for sub in value]
        elif key in ("items", "additionalProperties", "not"):
            out[key] = convert(value, version)
        else:
            out[key] = value
    if version == V3 and "$ref" in out and len(out) > 1:
        out = {"allOf": [{"$ref": out.pop("$ref")}], **out}
    return out


def _single_type(value: str | list[str]) -> str:
    """The one type a schema has once JSON Schema's "null" is left out."""
    if isinstance(value, str):
        return value if value != "null" else ""
    kinds = [kind for kind in value if kind != "null"]
    return kinds[0] if len(kinds) == 1 else ""


def _one_of(alternatives: list[Schema], version: int) -> Schema:
    kinds = [_single_type(alt.get("type", "")) for alt in alternatives]
    int_or_string = set(kinds) == {"integer", "string"}
    out: Schema = {"format": "int-or-string"} if int_or_string else {}
    if version == V3:
        out["oneOf"] = [convert(alt, version) for alt in alternatives]
    else:
        out["type"] = "string"
    return out


# The JSON Schema form lost the descriptions of the two types it rewrites.
_DESCRIPTIONS = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": (
        "An int32 or a string, written as either in JSON and YAML: a port can be given by "
        "number or by name, a count as a number or a percentage."
    ),
    "io.k8s.apimachinery.pkg.api.resource.Quantity": (
        "A fixed-point amount with an optional unit suffix: binary (Ki, Mi, Gi…), decimal "
        "(m, k, M, G…) or an exponent (e3). Written as a string, such as '500m' or '1Gi'; "
        "plain numbers are accepted too."
    ),
}


@functools.cache
def _builtin_component(name: str, version: int) -> Schema:
    """An upstream definition in OpenAPI `version` (cached: the same in every document)."""
    component = convert(schemas.named(name), version)
    if name in _DESCRIPTIONS:
        component["description"] = _DESCRIPTIONS[name]
    if component.get("x-kubernetes-group-version-kind"):
        # The JSON Schema form pins apiVersion and kind with an enum; upstream does not.
        for key in ("apiVersion", "kind"):
            component.get("properties", {}).get(key, {}).pop("enum", None)
    return component


def _references(schema: Any, found: set[str]) -> None:
    """Add the definition names `schema` refers to (at any depth) to `found`."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value.rsplit("/", 1)[-1])
            else:
                _references(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _references(value, found)


def custom_schema_name(resource: Resource) -> str:
    """Upstream's definition name of a custom resource: reversed group, version, kind."""
    reversed_group = ".".join(reversed(resource.group.split(".")))
    return f"{reversed_group}.{resource.version}.{resource.kind}"


def _custom_components(resource: Resource, schema: Schema | None) -> dict[str, Schema]:
    """The object and list definitions of a custom resource, from its CRD schema."""
    gvk = {"group": resource.group, "version": resource.version}
    # apiVersion, kind and metadata as every kind has them (less the JSON Schema form's enum)
    standard = schemas.named("io.k8s.api.core.v1.ConfigMap")["properties"]
    type_meta = {
        key: {k: v for k, v in standard[key].items() if k != "enum"}
        for key in ("apiVersion", "kind")
    }
    obj = dict(schema or {"x-kubernetes-preserve-unknown-fields": True})
    obj["type"] = "object"
    obj["properties"] = {
        **(obj.get("properties") or {}),
        **type_meta,
        "metadata": standard["metadata"],
    }
    obj["x-kubernetes-group-version-kind"] = [{**gvk, "kind": resource.kind}]
    name = resource.schema_name or custom_schema_name(resource)
    listing = {
        "type": "object",
        "properties": {
            **type_meta,
            "items": {"type": "array", "items": {"$ref": f"#/$defs/{name}"}},
            "metadata": schemas.named("io.k8s.api.core.v1.ConfigMapList")["properties"]["metadata"],
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [{**gvk, "kind": resource.list_kind}],
    }
    return {name: obj, name + "List": listing}


# ------------------------------------------------------------------ paths


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    kind: str  # the parameter's type
    description: str
    where: str = "query"


_QUERY = {
    p.name: p
    for p in (
        _Param("pretty", "string", "Pretty-print the answer when 'true'."),
        _Param(
            "dryRun",
            "string",
            "When 'All', the request is fully processed but nothing is persisted.",
        ),
        _Param(
            "fieldManager",
            "string",
            "The name of the actor making the change, recorded in managedFields. "
            "Required for apply patches.",
        ),
        _Param(
            "fieldValidation",
            "string",
            "What to do with unknown or duplicate fields in the object: Ignore them, "
            "Warn (answer with a warning for each), or Strict (fail the request).",
        ),
        _Param(
            "force",
            "boolean",
            "Apply patches only: take over fields other managers own instead of "
            "failing with a conflict.",
        ),
        _Param(
            "gracePeriodSeconds",
            "integer",
            "Seconds before the object is deleted; 0 deletes at once, unset uses the "
            "kind's default.",
        ),
        _Param(
            "orphanDependents",
            "boolean",
            "Deprecated, use propagationPolicy: whether the dependents are orphaned.",
        ),
        _Param(
            "propagationPolicy",
            "string",
            "What happens to dependents: Orphan, Background or Foreground deletion.",
        ),
        _Param("labelSelector", "string", "Only objects whose labels match this selector."),
        _Param("fieldSelector", "string", "Only objects whose fields match this selector."),
        _Param(
            "resourceVersion",
            "string",
            "The resource version the answer is served at or after (see resourceVersionMatch).",
        ),
        _Param(
            "resourceVersionMatch",
            "string",
            "How resourceVersion applies to a list: NotOlderThan or Exact.",
        ),
        _Param(
            "limit",
            "integer",
            "The most objects to return; the list metadata carries a continue token "
            "when more remain.",
        ),
        _Param("continue", "string", "The token of a previous limited list, to read on."),
        _Param("timeoutSeconds", "integer", "End the list or watch after this many seconds."),
        _Param("watch", "boolean", "Stream the changes to the objects instead of listing them."),
        _Param("allowWatchBookmarks", "boolean", "Send BOOKMARK events in the watch."),
        _Param(
            "sendInitialEvents",
            "boolean",
            "Begin the watch with an ADDED event for every existing object, then a bookmark.",
        ),
    )
}


def _query(*names: str) -> tuple[_Param, ...]:
    return tuple(_QUERY[name] for name in names)


_WRITE = _query("dryRun", "fieldManager", "fieldValidation")
_PATCHING = _query("dryRun", "force", "fieldManager", "fieldValidation")
_DELETE = _query("gracePeriodSeconds", "orphanDependents", "propagationPolicy", "dryRun")
_SELECT = _query(
    "labelSelector",
    "fieldSelector",
    "resourceVersion",
    "resourceVersionMatch",
    "timeoutSeconds",
    "limit",
    "continue",
)
_LIST = (*_SELECT, *_query("watch", "allowWatchBookmarks", "sendInitialEvents"))


# Stand-ins in `_VERBS` for the definitions of the path's kind and of its list.
_OBJECT, _LISTING = "<object>", "<list>"


@dataclass(frozen=True, slots=True)
class _Operation:
    """How one Kubernetes verb appears in the documents."""

    method: str  # get, put, post, patch or delete
    id_verb: str  # the start of the operation id: list, create, read, replace…
    action: str  # x-kubernetes-action
    description: str  # "{}" is what the path is about
    params: tuple[_Param, ...]
    answer: str  # the definition answered
    codes: tuple[str, ...]
    body: str = ""  # the definition of the request body
    body_types: tuple[str, ...] = ("*/*",)
    answer_types: tuple[str, ...] = _ANSWER_TYPES


_VERBS = {
    "list": _Operation(
        "get",
        "list",
        "list",
        "list or watch {}",
        _LIST,
        _LISTING,
        ("200",),
        answer_types=_WATCH_TYPES,
    ),
    "create": _Operation(
        "post", "create", "post", "create {}", _WRITE, _OBJECT, ("200", "201", "202"), _OBJECT
    ),
    "deletecollection": _Operation(
        "delete",
        "deleteCollection",
        "deletecollection",
        "delete a collection of {}",
        (*_DELETE, *_SELECT),
        _STATUS,
        ("200",),
        _DELETE_OPTIONS,
    ),
    "get": _Operation("get", "read", "get", "read {}", (), _OBJECT, ("200",)),
    "update": _Operation(
        "put", "replace", "put", "replace {}", _WRITE, _OBJECT, ("200", "201"), _OBJECT
    ),
    "patch": _Operation(
        "patch",
        "patch",
        "patch",
        "partially update {}",
        _PATCHING,
        _OBJECT,
        ("200", "201"),
        _PATCH,
        PATCH_TYPES,
    ),
    "delete": _Operation(
        "delete",
        "delete",
        "delete",
        "delete {}",
        _DELETE,
        _STATUS,
        ("200", "202"),
        _DELETE_OPTIONS,
    ),
}
_COLLECTION_VERBS = ("list", "create", "deletecollection")
_CODES = {"200": "OK", "201": "Created", "202": "Accepted"}


@dataclass(frozen=True, slots=True)
class _Path:
    """One URL template and the operations served there."""

    url: str
    params: tuple[_Param, ...]  # the parameters common to all its operations
    verbs: tuple[str, ...]
    ids: str  # operation ids without their verb: CoreV1NamespacedPod, CoreV1NamespacedPodStatus
    what: str  # for descriptions: "the Pod", "Pod objects"
    obj: str  # the definition of the object
    gvk: dict[str, str]
    tag: str

    def operations(self) -> list[_Operation]:
        return [_VERBS[verb] for verb in self.verbs if verb in _VERBS]

    def definition(self, name: str) -> str:
        """`name`, with the `_VERBS` stand-ins replaced by this path's definitions."""
        return {_OBJECT: self.obj, _LISTING: self.obj + "List"}.get(name, name)


def _word(text: str) -> str:
    """Group or version as operation ids spell it (rbac.authorization.k8s.io: RbacAuthorization)."""
    parts = re.split(r"[.\-]", text.removesuffix(".k8s.io"))
    return "".join(part[:1].upper() + part[1:] for part in parts)


def _paths(resource: Resource, obj: str) -> list[_Path]:
    """The URLs of one resource (described by definition `obj`) and the verbs allowed on each."""
    group = _word(resource.group) if resource.group else "Core"
    gv_word = group + _word(resource.version)
    tag = f"{group[:1].lower()}{group[1:]}_{resource.version}"
    prefix = f"/apis/{resource.group_version}" if resource.group else "/api/v1"
    kind = resource.kind
    gvk = {"group": resource.group, "kind": kind, "version": resource.version}
    pretty = _query("pretty")
    scoped: tuple[_Param, ...] = ()
    base = f"{prefix}/{resource.plural}"
    if resource.namespaced:
        scoped = (_Param("namespace", "string", "the namespace of the objects", "path"),)
        base = f"{prefix}/namespaces/{{namespace}}/{resource.plural}"
    ids = f"{gv_word}{'Namespaced' if resource.namespaced else ''}{kind}"
    item = (_Param("name", "string", f"name of the {kind}", "path"), *scoped, *pretty)
    verbs = resource.verbs

    def at(url, params, allowed, ids, what, obj=obj, gvk=gvk) -> _Path:
        return _Path(url, params, tuple(allowed), ids, what, obj, gvk, tag)

    paths = [
        at(
            base,
            (*scoped, *pretty),
            [v for v in verbs if v in _COLLECTION_VERBS],
            ids,
            f"{kind} objects",
        ),
        at(
            f"{base}/{{name}}",
            item,
            [v for v in verbs if v not in _COLLECTION_VERBS],
            ids,
            f"the {kind}",
        ),
    ]
    if resource.namespaced and "list" in verbs:
        paths.append(
            at(
                f"{prefix}/{resource.plural}",
                pretty,
                ["list"],
                f"{gv_word}{kind}ForAllNamespaces",
                f"{kind} objects in all namespaces",
            )
        )
    for subresource in resource.subresources:
        if subresource in _STREAMING or subresource not in discovery.SUBRESOURCES:
            continue
        sub_verbs, sub_kind = discovery.SUBRESOURCES[subresource]
        sub_obj, sub_gvk = obj, gvk
        if sub_kind is not None:  # a kind of its own (Scale, Eviction…)
            sub_obj = schemas.gvk_names()[sub_kind]
            sub_gvk = dict(zip(("group", "version", "kind"), sub_kind, strict=True))
        paths.append(
            at(
                f"{base}/{{name}}/{subresource}",
                item,
                sub_verbs,
                ids + subresource.capitalize(),
                f"{subresource} of the {kind}",
                sub_obj,
                sub_gvk,
            )
        )
    return [path for path in paths if path.operations()]


# -------------------------------------------------------------- documents


def _v3_param(param: _Param) -> Schema:
    out = {
        "name": param.name,
        "in": param.where,
        "description": param.description,
        "schema": {"type": param.kind},
    }
    if param.where == "path":
        out["required"] = True
    return out


def _v2_param(param: _Param) -> Schema:
    out = {
        "name": param.name,
        "in": param.where,
        "description": param.description,
        "type": param.kind,
    }
    if param.where == "path":
        out["required"] = True
    return out


def _ref(name: str, version: int) -> Schema:
    return {"$ref": _REF_PREFIX[version] + name}


def _common(operation: _Operation, path: _Path) -> Schema:
    """What both versions say of an operation alike."""
    return {
        "description": operation.description.format(path.what),
        "operationId": operation.id_verb + path.ids,
        "tags": [path.tag],
        "x-kubernetes-action": operation.action,
        "x-kubernetes-group-version-kind": path.gvk,
    }


def _v3_operation(operation: _Operation, path: _Path) -> Schema:
    answer = _ref(path.definition(operation.answer), V3)
    out: Schema = {
        **_common(operation, path),
        "parameters": [_v3_param(param) for param in operation.params],
        "responses": {
            code: {
                "description": _CODES[code],
                "content": {media: {"schema": answer} for media in operation.answer_types},
            }
            for code in operation.codes
        },
    }
    if operation.body:
        body = _ref(path.definition(operation.body), V3)
        out["requestBody"] = {
            "content": {media: {"schema": body} for media in operation.body_types},
            "required": operation.body != _DELETE_OPTIONS,
        }
    return out


def _v2_operation(operation: _Operation, path: _Path) -> Schema:
    params = [_v2_param(param) for param in operation.params]
    if operation.body:
        body = _ref(path.definition(operation.body), V2)
        required = operation.body != _DELETE_OPTIONS
        params.insert(0, {"name": "body", "in": "body", "required": required, "schema": body})
    answer = _ref(path.definition(operation.answer), V2)
    return {
        **_common(operation, path),
        "consumes": list(operation.body_types),
        "produces": list(operation.answer_types),
        "schemes": ["https"],
        "parameters": params,
        "responses": {
            code: {"description": _CODES[code], "schema": answer} for code in operation.codes
        },
    }


@dataclass(frozen=True, slots=True)
class _Document:
    body: bytes
    hash: str  # upstream's form: SHA-512 of the body, upper-case hex

    @property
    def etag(self) -> str:
        return f'"{self.hash}"'


def _document(content: Schema) -> _Document:
    body = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return _Document(body, hashlib.sha512(body).hexdigest().upper())


def gv_path(resource: Resource) -> str:
    """The index key of a resource's group-version document ("api/v1", "apis/apps/v1")."""
    return f"apis/{resource.group_version}" if resource.group else f"api/{resource.version}"


class OpenAPI:
    """Renders and serves `/openapi/v3` (index and documents) and `/openapi/v2`."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._custom: dict[str, Schema] = {}  # custom resource definitions, JSON Schema form
        self._served: tuple[Resource, ...] = ()  # the registry the documents describe
        self._v3: dict[str, _Document] = {}
        self._index = b""
        self._v2: _Document | None = None

    def add_custom(self, resource: Resource, schema: Schema | None) -> None:
        """Describe a custom resource by its CRD's `openAPIV3Schema` (None: any object)."""
        self._custom.update(_custom_components(resource, schema))
        self.invalidate()

    def invalidate(self) -> None:
        """Forget the rendered documents; the next request renders them again."""
        self._v3, self._index, self._v2 = {}, b"", None

    def serve(self, path: str, request: Request) -> Response:
        served = tuple(self._registry.all())
        if served != self._served:
            self.invalidate()
            self._served = served
        if path == "/openapi/v2":
            if _PROTOBUF_V2 in request.headers.get("accept", ""):
                return Response(200, _minimal_v2_protobuf(), [], _PROTOBUF_V2_CONTENT_TYPE)
            if self._v2 is None:
                self._v2 = self._render_v2()
            return _answer(self._v2, request, path)
        if not self._v3:
            self._render_v3()
        if path == "/openapi/v3":
            return Response(200, self._index, [("Cache-Control", "no-cache, private")])
        document = self._v3.get(path.removeprefix("/openapi/v3/"))
        if document is None:
            raise errors.APIError(
                404, "NotFound", "the server could not find the requested resource"
            )
        return _answer(document, request, path)

    # ------------------------------------------------------------ rendering

    def _schema_name(self, resource: Resource) -> str:
        """The definition describing `resource`; any object when nothing describes it."""
        name = resource.schema_name or custom_schema_name(resource)
        if name not in self._custom and not schemas.named(name):
            self._custom.update(_custom_components(resource, None))
        return name

    def _source(self, name: str) -> Schema:
        return self._custom.get(name) or schemas.named(name)

    def _components(self, paths: list[_Path], version: int) -> dict[str, Schema]:
        """Every definition the operations refer to, directly or through other definitions."""
        todo: set[str] = set()
        for path in paths:
            for operation in path.operations():
                names = (operation.answer, operation.body)
                todo.update(path.definition(name) for name in names if name)
        found: dict[str, Schema] = {}
        while todo:
            name = todo.pop()
            source = self._source(name)
            if name in found or not source:
                continue
            found[name] = (
                convert(source, version)
                if name in self._custom
                else _builtin_component(name, version)
            )
            refs: set[str] = set()
            _references(source, refs)
            todo |= refs - found.keys()
        return found

    def _render_v3(self) -> None:
        by_gv: dict[str, list[_Path]] = {}
        for resource in self._served:
            paths = _paths(resource, self._schema_name(resource))
            by_gv.setdefault(gv_path(resource), []).extend(paths)
        index = {}
        for key, paths in by_gv.items():
            document = _document(
                {
                    "openapi": "3.0.0",
                    "info": _INFO,
                    "paths": {
                        path.url: {
                            "parameters": [_v3_param(param) for param in path.params],
                            **{op.method: _v3_operation(op, path) for op in path.operations()},
                        }
                        for path in paths
                    },
                    "components": {
                        "schemas": self._components(paths, V3),
                        "securitySchemes": {"BearerToken": _BEARER},
                    },
                    "security": [{"BearerToken": []}],
                }
            )
            self._v3[key] = document
            index[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={document.hash}"}
        self._index = orjson.dumps({"paths": index}, option=orjson.OPT_SORT_KEYS)

    def _render_v2(self) -> _Document:
        paths = [
            path
            for resource in self._served
            for path in _paths(resource, self._schema_name(resource))
        ]
        return _document(
            {
                "swagger": "2.0",
                "info": _INFO,
                "paths": {
                    path.url: {
                        "parameters": [_v2_param(param) for param in path.params],
                        **{op.method: _v2_operation(op, path) for op in path.operations()},
                    }
                    for path in paths
                },
                "definitions": self._components(paths, V2),
                "securityDefinitions": {"BearerToken": _BEARER},
                "security": [{"BearerToken": []}],
            }
        )


_PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2"
_PROTOBUF_V2_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _minimal_v2_protobuf() -> bytes:
    """The Swagger 2.0 document as gnostic's protobuf `Document`, with only `swagger` (1)
    and `info` (2: title 1, version 2).

    kubectl 1.27 and 1.28 accept /openapi/v2 only as protobuf; having loaded it,
    they check /openapi/v3 for `fieldValidation` and leave validation to the
    server, and `explain` reads v3 too, so this much is all they need.
    """

    def text(field: int, value: str) -> bytes:
        return length_delimited(field, value.encode())

    info = text(1, "Kubernetes") + text(2, schemas.KUBERNETES_VERSION)
    return text(1, "2.0") + length_delimited(2, info)


def _answer(document: _Document, request: Request, path: str) -> Response:
    """A document with upstream's caching: a URL naming the current hash never changes."""
    if request.headers.get("if-none-match") == document.etag:
        return Response(304, b"", [("ETag", document.etag)])
    asked = request.param("hash")
    if asked and asked != document.hash:
        return Response(301, b"", [("Location", f"{path}?hash={document.hash}")])
    cache = "public, immutable" if asked else "no-cache, private"
    return Response(
        200, document.body, [("ETag", document.etag), ("Cache-Control", cache), ("Vary", "Accept")]
    )
