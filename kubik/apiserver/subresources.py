"""Subresources that are not plain views of the object: scale, binding, eviction, reviews.

- `*/scale` (deployments, replicasets, statefulsets): an autoscaling/v1 Scale
  view of `spec.replicas`; `kubectl scale` PATCHes it with a merge patch.
- `pods/binding` (and the `bindings` resource): the scheduler's way of
  setting a pod's node, once.
- `pods/eviction`: a deletion that respects PodDisruptionBudgets.
- `selfsubjectaccessreviews`: answered, never stored (`kubectl auth can-i`).
"""

from __future__ import annotations

import time
from typing import Any

from kubik.api import errors, meta, patch, selectors
from kubik.api.objcopy import deep_copy
from kubik.apiserver import codec, tokens
from kubik.apiserver.http import Request, Response
from kubik.apiserver.rest import RestHandler, Target, respond
from kubik.apiserver.storage import decode
from kubik.apiserver.tokens import TokenSigner

Object = dict[str, Any]


def _success(request: Request, code: int = 201) -> Response:
    return respond(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code},
        request,
        code,
    )


class Subresources:
    def __init__(self, rest: RestHandler, signer: TokenSigner) -> None:
        self._rest = rest
        self._signer = signer

    async def handle(self, target: Target, verb: str, request: Request) -> Response:
        name = target.subresource or target.resource.plural
        handlers = {
            ("scale", "get"): self.get_scale,
            ("scale", "update"): self.update_scale,
            ("scale", "patch"): self.update_scale,
            ("binding", "create"): self.bind,
            ("bindings", "create"): self.bind,
            ("eviction", "create"): self.evict,
            ("selfsubjectaccessreviews", "create"): self.access_review,
            ("selfsubjectreviews", "create"): self.self_review,
            ("finalize", "update"): self.finalize,
            ("token", "create"): self.token,
        }
        handler = handlers.get((name, verb))
        if handler is None:
            raise errors.method_not_supported(
                f"{target.resource.plural}/{target.subresource}", target.resource.group, verb
            )
        return await handler(target, request)

    # ------------------------------------------------------------------ scale

    @staticmethod
    def _scale_of(obj: Object) -> Object:
        metadata = obj["metadata"]
        selector = (obj.get("spec") or {}).get("selector") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                key: metadata[key]
                for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if key in metadata
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": _selector_string(selector),
            },
        }

    async def get_scale(self, target: Target, request: Request) -> Response:
        obj = await self._rest.store_for(target.resource).get(target.namespace, target.name)
        return respond(self._scale_of(obj), request)

    async def update_scale(self, target: Target, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        body = codec.decode_body(request.body, content_type)
        is_patch = request.method == "PATCH"

        def change(current: Object) -> Object | None:
            scale = self._scale_of(current)
            if is_patch:
                try:
                    if content_type.startswith("application/json-patch+json"):
                        scale = patch.json_patch(scale, body)
                    else:
                        scale = patch.merge_patch(scale, body)
                except patch.PatchError as exc:
                    raise errors.APIError(
                        422, "Invalid", f"the patch does not apply: {exc}"
                    ) from None
            elif not isinstance(body, dict):
                raise errors.bad_request("the body must be a Scale object")
            else:
                scale = body
                expected = (scale.get("metadata") or {}).get("resourceVersion")
                if expected and expected != current["metadata"]["resourceVersion"]:
                    raise errors.stale(target.resource.plural, target.resource.group, target.name)
            replicas = (scale.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid(
                    "Scale",
                    "autoscaling",
                    target.name,
                    [
                        errors.field_cause(
                            "spec.replicas",
                            f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                        )
                    ],
                )
            if (current.get("spec") or {}).get("replicas") == replicas:
                return None
            new = deep_copy(current)
            new.setdefault("spec", {})["replicas"] = replicas
            return self._rest.next_version(target, new, current, "scale", "Update", False)

        _, new = await self._rest.store_for(target.resource).update(
            target.namespace, target.name, change
        )
        return respond(self._scale_of(new), request)

    # ---------------------------------------------------------------- binding

    async def bind(self, target: Target, request: Request) -> Response:
        binding = codec.decode_body(request.body, request.headers.get("content-type", ""))
        if not isinstance(binding, dict):
            raise errors.bad_request("the body must be a Binding")
        pod_name = target.name or meta.name_of(binding)
        node = (binding.get("target") or {}).get("name", "")
        if not node:
            raise errors.invalid(
                "Binding",
                "",
                pod_name,
                [errors.field_cause("target.name", "Required value", "FieldValueRequired")],
            )
        pods = self._rest.registry_resource("", "v1", "pods")

        def change(current: Object) -> Object:
            spec = current.setdefault("spec", {})
            if current["metadata"].get("deletionTimestamp"):
                raise errors.conflict("pods", "", pod_name, "pod is being deleted")
            if spec.get("nodeName"):
                raise errors.conflict(
                    "pods",
                    "",
                    pod_name,
                    f'pod {pod_name} is already assigned to node "{spec["nodeName"]}"',
                )
            spec["nodeName"] = node
            annotations = (binding.get("metadata") or {}).get("annotations")
            if annotations:
                current["metadata"].setdefault("annotations", {}).update(annotations)
            _set_condition(current, "PodScheduled", "True")
            return current

        await self._rest.store_for(pods).update(target.namespace, pod_name, change)
        return _success(request)

    # --------------------------------------------------------------- eviction

    async def evict(self, target: Target, request: Request) -> Response:
        eviction = codec.decode_body(request.body, request.headers.get("content-type", ""))
        if not isinstance(eviction, dict):
            raise errors.bad_request("the body must be an Eviction")
        pods = self._rest.store_for(target.resource)
        pod = await pods.get(target.namespace, target.name)
        phase = (pod.get("status") or {}).get("phase")
        if phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
            await self._charge_budget(target.namespace, pod)
        options = eviction.get("deleteOptions") or {}
        await self._rest.delete_object(target, target.name, options, dry_run=False)
        return _success(request)

    async def _charge_budget(self, namespace: str, pod: Object) -> None:
        """Take one allowed disruption from the budget covering the pod, or refuse (429)."""
        budgets = self._rest.store_for(
            self._rest.registry_resource("policy", "v1", "poddisruptionbudgets")
        )
        labels = pod["metadata"].get("labels") or {}
        page = await budgets.list_page(namespace, revision=0, exact=True, limit=0, start="")
        for kv in page.kvs:
            budget = decode(kv)
            if not selectors.label_selector_matches(
                (budget.get("spec") or {}).get("selector"), labels
            ):
                continue
            name = meta.name_of(budget)

            def take(current: Object, name: str = name) -> Object:
                status = current.setdefault("status", {})
                if status.get("disruptionsAllowed", 0) < 1:
                    raise errors.APIError(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        details={
                            "causes": [
                                {
                                    "reason": "DisruptionBudget",
                                    "message": f"The disruption budget {name} needs "
                                    f"{status.get('desiredHealthy', 0)} healthy pods "
                                    f"and has {status.get('currentHealthy', 0)} "
                                    "currently",
                                }
                            ]
                        },
                    )
                status["disruptionsAllowed"] -= 1
                status.setdefault("disruptedPods", {})[meta.name_of(pod)] = meta.now()
                return current

            await budgets.update(namespace, name, take)

    # ----------------------------------------------------------------- review

    async def access_review(self, target: Target, request: Request) -> Response:
        review = codec.decode_body(request.body, request.headers.get("content-type", ""))
        if not isinstance(review, dict):
            raise errors.bad_request("the body must be a SelfSubjectAccessReview")
        review = {
            **review,
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
        }
        review.setdefault("metadata", {})["creationTimestamp"] = None
        review["status"] = {"allowed": True, "reason": "kubik allows every authenticated user"}
        return respond(review, request, 201)

    async def self_review(self, target: Target, request: Request) -> Response:
        """Who the server thinks the caller is (`kubectl auth whoami`)."""
        user = request.user
        answer = {
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "status": {
                "userInfo": {
                    "username": user.name,
                    "groups": list(user.groups),
                    **({"uid": user.uid} if user.uid else {}),
                }
            },
        }
        return respond(answer, request, 201)

    # ------------------------------------------------------------------ token

    async def token(self, target: Target, request: Request) -> Response:
        """A TokenRequest: a signed token for the service account (`kubectl create token`)."""
        body = codec.decode_body(request.body, request.headers.get("content-type", ""))
        if not isinstance(body, dict):
            raise errors.bad_request("the body must be a TokenRequest")
        account = await self._rest.store_for(target.resource).get(target.namespace, target.name)
        spec = body.get("spec") or {}
        seconds = spec.get("expirationSeconds") or tokens.DEFAULT_EXPIRATION
        if not isinstance(seconds, int) or seconds < 600:
            raise errors.invalid(
                "TokenRequest",
                "authentication.k8s.io",
                target.name,
                [
                    errors.field_cause(
                        "spec.expirationSeconds",
                        f"Invalid value: {seconds!r}: may not specify a duration "
                        "less than 10 minutes",
                    )
                ],
            )
        token, expires = self._signer.issue(
            namespace=target.namespace,
            name=target.name,
            uid=account["metadata"]["uid"],
            audiences=list(spec.get("audiences") or []),
            seconds=seconds,
        )
        answer = {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": target.name,
                "namespace": target.namespace,
                "creationTimestamp": None,
            },
            "spec": {
                **spec,
                "expirationSeconds": seconds,
                "audiences": list(spec.get("audiences") or [tokens.ISSUER]),
            },
            "status": {
                "token": token,
                "expirationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
            },
        }
        return respond(answer, request, 201)

    # --------------------------------------------------------------- finalize

    async def finalize(self, target: Target, request: Request) -> Response:
        body = codec.decode_body(request.body, request.headers.get("content-type", ""))
        finalizers = ((body or {}).get("spec") or {}).get("finalizers") or []

        def change(current: Object) -> Object:
            current.setdefault("spec", {})["finalizers"] = finalizers
            return current

        store = self._rest.store_for(target.resource)
        _, new = await store.update("", target.name, change)
        if (
            new["metadata"].get("deletionTimestamp")
            and not finalizers
            and not (new["metadata"].get("finalizers"))
        ):
            await store.delete(
                "", target.name, expected_revision=int(new["metadata"]["resourceVersion"])
            )
        return respond(new, request)


def _selector_string(selector: Object) -> str:
    """A LabelSelector as the string form Scale.status.selector carries."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(sorted(expression.get("values") or []))
        terms.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }.get(operator, "")
        )
    return ",".join(t for t in terms if t)


def _set_condition(obj: Object, kind: str, status: str) -> None:
    """Replace the condition of that type whole: an old reason and message do not survive."""
    pod_status = obj.setdefault("status", {})
    conditions = [c for c in pod_status.get("conditions") or [] if c.get("type") != kind]
    conditions.append(
        {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": meta.now()}
    )
    pod_status["conditions"] = conditions
