"""The root CA publisher: every namespace has a `kube-root-ca.crt` ConfigMap.

(upstream: pkg/controller/certificates/rootcacertpublisher)

Pods trust the API server through it: the service account volume every pod
gets (`kube-api-access-*`) projects its `ca.crt` next to the token. The CA
is the controller manager's `--root-ca-file`, else the one its kubeconfig
trusts. A ConfigMap that was changed or deleted is put back.
"""

from __future__ import annotations

import logging

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.client.informer import key_of
from kubik.controllers.base import Controller, register
from kubik.controllers.podutil import namespace_terminating

log = logging.getLogger(__name__)

NAMESPACES = builtin.lookup("", "v1", "namespaces")
CONFIG_MAPS = builtin.lookup("", "v1", "configmaps")
NAME = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


@register
class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"

    def setup(self) -> None:
        self.root_ca = self.context.root_ca.decode()
        self.namespaces = self.informers.informer(NAMESPACES)
        self.config_maps = self.informers.informer(CONFIG_MAPS)
        self.namespaces.add_handlers(
            on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new)
        )
        self.config_maps.add_handlers(
            on_update=lambda old, new: self._config_map_changed(new),
            on_delete=self._config_map_changed,
        )

    def enqueue(self, namespace: dict) -> None:
        self.queue.add(namespace["metadata"]["name"])

    def _config_map_changed(self, config_map: dict) -> None:
        meta = config_map["metadata"]
        if meta["name"] == NAME:
            self.queue.add(meta["namespace"])

    async def sync(self, key: str) -> None:
        if not self.root_ca:
            log.debug("no root CA to publish")
            return
        namespace = self.namespaces.get(key)
        if namespace is None or namespace["metadata"].get("deletionTimestamp"):
            return
        data = {"ca.crt": self.root_ca}
        current = self.config_maps.get(key_of({"metadata": {"namespace": key, "name": NAME}}))
        if current is None:
            await self._create(key, data)
            return
        annotations = current["metadata"].get("annotations") or {}
        if current.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
            return
        updated = {
            **current,
            "data": data,
            "metadata": {
                **current["metadata"],
                "annotations": {**annotations, DESCRIPTION_ANNOTATION: DESCRIPTION},
            },
        }
        await self.client.update(CONFIG_MAPS, updated)

    async def _create(self, namespace: str, data: dict[str, str]) -> None:
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": NAME,
                "namespace": namespace,
                "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
            },
            "data": data,
        }
        try:
            await self.client.create(CONFIG_MAPS, config_map)
        except ApiError as exc:
            # a namespace that is gone or going away gets none; one made meanwhile is fine
            if exc.already_exists or exc.not_found or namespace_terminating(exc):
                return
            raise
