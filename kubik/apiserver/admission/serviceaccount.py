"""ServiceAccount: every new pod runs as a service account, with its token mounted.

Mutating, on pod create (upstream: plugin/pkg/admission/serviceaccount): a
pod that names no service account gets `default`; unless the pod (first) or
its service account says `automountServiceAccountToken: false`, the pod gets
a projected volume `kube-api-access-<random>` — a bound token for the
account, the cluster CA (`kube-root-ca.crt`) and the pod's namespace — which
every container and init container mounts read-only at
/var/run/secrets/kubernetes.io/serviceaccount, unless it already mounts
something there. A pod without image pull secrets takes its account's.

Unlike upstream, a pod whose service account does not exist (yet) is not
refused: API servers without a controller manager (tests, a split control
plane starting up) would otherwise refuse every pod. The kubelet cannot get
the pod a token until the account exists, and retries until it does.
Mirror pods (of static pods) are left alone.
"""

from __future__ import annotations

from typing import Any

from kubik.api import errors, meta
from kubik.api.registry import Resource
from kubik.apiserver.admission import CREATE, Attributes, Plugin
from kubik.apiserver.storage import Object

DEFAULT_ACCOUNT = "default"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
TOKEN_SECONDS = 3607  # upstream's: an hour and a few seconds, to tell these tokens apart


def token_volume_source() -> dict[str, Any]:
    """The projected volume of a pod's service account token, CA and namespace."""
    return {
        "defaultMode": 0o644,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }


class ServiceAccount(Plugin):
    def handles(self, operation: str, resource: Resource, subresource: str) -> bool:
        return (
            operation == CREATE
            and not subresource
            and resource.group == ""
            and resource.plural == "pods"
        )

    async def admit(self, attrs: Attributes) -> None:
        pod = attrs.obj
        if MIRROR_ANNOTATION in (pod["metadata"].get("annotations") or {}):
            return
        spec = pod.setdefault("spec", {})
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = DEFAULT_ACCOUNT
        spec.setdefault("serviceAccount", spec["serviceAccountName"])  # the deprecated alias
        account = await self._account(attrs.namespace, spec["serviceAccountName"])
        if _automount(account, spec):
            _mount_token(spec)
        if not spec.get("imagePullSecrets") and account and account.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [
                {"name": ref.get("name", "")} for ref in account["imagePullSecrets"]
            ]

    async def _account(self, namespace: str, name: str) -> Object | None:
        store = self.stores.store("", "serviceaccounts")
        try:
            return await store.get(namespace, name, from_cache=True)
        except errors.APIError as exc:
            if exc.code == 404:
                return None
            raise


def _automount(account: Object | None, spec: Object) -> bool:
    """The pod's choice, else the service account's, else yes."""
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if account and account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def _mount_token(spec: Object) -> None:
    volumes = spec.get("volumes") or []
    existing = next((v for v in volumes if v.get("name", "").startswith(VOLUME_PREFIX)), None)
    name = existing["name"] if existing else meta.generated_name(VOLUME_PREFIX)
    mount = {"name": name, "readOnly": True, "mountPath": MOUNT_PATH}
    needed = False
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            mounts = container.get("volumeMounts") or []
            if not any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                container["volumeMounts"] = [*mounts, dict(mount)]
                needed = True
    if needed and existing is None:
        spec["volumes"] = [*volumes, {"name": name, "projected": token_volume_source()}]
