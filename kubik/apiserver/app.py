"""Routing: from an HTTP request to discovery, health, OpenAPI or a resource verb.

URL shapes (upstream's RequestInfoFactory):
  /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]
  /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]
`/api/v1/namespaces/NAME/status` and `/finalize` are subresources of the
namespace itself, not a resource called "status" inside it.
"""

from __future__ import annotations

import logging
import time

import orjson

from kubik import __version__
from kubik.api import errors, schemas
from kubik.api.registry import Registry
from kubik.apiserver import auth, discovery, nodejoin, nodeproxy
from kubik.apiserver.http import Request, Response, StreamResponse, Upgrade
from kubik.apiserver.openapi import OpenAPI
from kubik.apiserver.rest import RestHandler, Target, respond
from kubik.apiserver.subresources import Subresources
from kubik.apiserver.tokens import TokenSigner

log = logging.getLogger(__name__)


_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_STATUS_OK = b"ok"


class App:
    def __init__(
        self,
        *,
        registry: Registry,
        rest: RestHandler,
        signer: TokenSigner,
        authenticator: auth.Authenticator,
        authorizer: auth.Authorizer,
        server_address: str,
        openapi: OpenAPI,
        ready=None,
        node_join: nodejoin.NodeJoin | None = None,
        node_proxy: nodeproxy.NodeProxy | None = None,
    ) -> None:
        self.registry = registry
        self.rest = rest
        self.subresources = Subresources(rest, signer)
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.server_address = server_address
        self.openapi = openapi
        self.ready = ready
        self.node_join = node_join
        self.node_proxy = node_proxy

    async def __call__(self, request: Request) -> Response | StreamResponse | Upgrade:
        started = time.perf_counter()
        try:
            result = await self._route(request)
        except errors.APIError as exc:
            result = Response(exc.code, orjson.dumps(exc.status()), exc.headers)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %s in %.1f ms",
                request.method,
                request.path,
                getattr(result, "status", 101),
                (time.perf_counter() - started) * 1000,
            )
        return result

    async def _route(self, request: Request) -> Response | StreamResponse | Upgrade:
        path = request.path.rstrip("/") or "/"
        if path in auth.PUBLIC_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return self._public(path, request)
        if self.node_join is not None and path in nodejoin.PATHS:
            return await self.node_join.handle(request)  # checks the node token itself
        user = self.authenticator.authenticate(request)
        if user is None:
            raise errors.unauthorized()
        request.user = user
        if path in ("/api", "/apis"):
            return self._root_discovery(path, request)
        if path.startswith("/openapi/"):
            return self.openapi.serve(path, request)
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[0] == "apis" and len(parts) == 2:
            return self._group(parts[1], request)
        else:
            raise errors.APIError(
                404, "NotFound", "the server could not find the requested resource"
            )
        if not rest:
            document = discovery.api_resource_list(self.registry, group, version)
            if document is None:
                raise errors.APIError(
                    404, "NotFound", "the server could not find the requested resource"
                )
            return respond(document, request)
        target = self._target(group, version, rest)
        return await self._resource_verb(target, request, user)

    def _public(self, path: str, request: Request) -> Response:
        if path == "/version":
            git = schemas.KUBERNETES_VERSION
            major, minor = git.lstrip("v").split(".")[:2]
            return respond(
                {
                    "major": major,
                    "minor": minor,
                    "gitVersion": f"{git}+kubik-{__version__}",
                    "gitCommit": "",
                    "gitTreeState": "clean",
                    "buildDate": "",
                    "goVersion": "python",
                    "compiler": "cpython",
                    "platform": "linux/amd64",
                },
                request,
            )
        ready = self.ready is None or self.ready.is_set()
        if path.startswith("/readyz") and not ready:
            return Response(503, b"[-]store not ready\nreadyz check failed", [], "text/plain")
        if request.param("verbose"):
            name = path.strip("/").split("/")[0]
            body = f"[+]ping ok\n[+]log ok\n[+]etcd ok\n{name} check passed\n".encode()
            return Response(200, body, [], "text/plain; charset=utf-8")
        return Response(200, _STATUS_OK, [], "text/plain; charset=utf-8")

    def _root_discovery(self, path: str, request: Request) -> Response:
        accept = request.headers.get("accept", "")
        version = discovery.aggregated_version(accept)
        legacy = path == "/api"
        if version:
            body = discovery.aggregated(self.registry, legacy=legacy, version=version)
            return Response(
                200,
                orjson.dumps(body),
                [("Vary", "Accept")],
                discovery.aggregated_content_type(version),
            )
        if legacy:
            return respond(discovery.api_versions(self.server_address), request)
        return respond(discovery.api_group_list(self.registry), request)

    def _group(self, group: str, request: Request) -> Response:
        document = discovery.api_group(self.registry, group)
        if document is None:
            raise errors.APIError(
                404, "NotFound", "the server could not find the requested resource"
            )
        return respond(document, request)

    def _target(self, group: str, version: str, parts: list[str]) -> Target:
        namespace = ""
        if parts[0] == "namespaces" and len(parts) >= 2:
            if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
                namespace, parts = parts[1], parts[2:]
        plural = parts[0]
        resource = self.registry.get(group, version, plural)
        if resource is None:
            raise errors.APIError(
                404,
                "NotFound",
                "the server could not find the requested resource",
                details={"group": group, "kind": plural} if group else {"kind": plural},
            )
        name = parts[1] if len(parts) > 1 else ""
        subresource = parts[2] if len(parts) > 2 else ""
        if len(parts) > 3 or (subresource and subresource not in resource.subresources):
            raise errors.APIError(
                404, "NotFound", "the server could not find the requested resource"
            )
        if resource.namespaced and name and not namespace:
            raise errors.APIError(
                404, "NotFound", "the server could not find the requested resource"
            )
        return Target(resource, namespace, name, subresource)

    async def _resource_verb(self, target: Target, request: Request, user: auth.User):
        method = request.method
        verb = _verb(method, target, request)
        resource = target.resource
        name_for_authz = target.name
        allowed, why = self.authorizer.allowed(
            user, verb, resource.group, resource.plural, target.namespace, name_for_authz
        )
        if not allowed:
            raise errors.forbidden(
                user.name, verb, resource.plural, resource.group, target.name, why
            )
        if verb not in resource.verbs and not target.subresource:
            raise errors.method_not_supported(resource.plural, resource.group, verb)
        if (
            self.node_proxy is not None
            and target.subresource in nodeproxy.SUBRESOURCES
            and (resource.group, resource.plural) == ("", "pods")
        ):
            return await self.node_proxy.handle(target, request)
        if (target.subresource and target.subresource != "status") or resource.verbs == ("create",):
            return await self.subresources.handle(target, verb, request)
        handler = {
            "get": self.rest.get,
            "list": self.rest.list,
            "watch": self.rest.watch,
            "create": self.rest.create,
            "update": self.rest.update,
            "patch": self.rest.patch,
            "delete": self.rest.delete,
            "deletecollection": self.rest.delete_collection,
        }[verb]
        return await handler(target, request)


def _verb(method: str, target: Target, request: Request) -> str:
    if method == "GET" or method == "HEAD":
        if target.name:
            return "get"
        return "watch" if request.param("watch") in ("true", "1") else "list"
    if method == "POST":
        if target.name and not target.subresource:
            raise errors.method_not_supported(
                target.resource.plural, target.resource.group, "create"
            )
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    raise errors.APIError(405, "MethodNotAllowed", f"method {method} is not supported")
