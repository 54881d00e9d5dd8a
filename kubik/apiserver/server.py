"""The API server component: TLS, credentials, watch caches, bootstrap objects, HTTP.

On start it makes (or reuses) the cluster CA, the serving certificate,
`<data-dir>/admin.kubeconfig` and `<data-dir>/node-token` (for joining
agents); opens one watch cache per storage prefix; creates the namespaces
and the `default/kubernetes` service a cluster has from the beginning; then
listens.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Callable

from kubik import component
from kubik.api import builtin, errors, schemas, strategy
from kubik.api.registry import Registry, Resource
from kubik.apiserver import auth, nodejoin, nodeproxy, tls
from kubik.apiserver.admission import priority
from kubik.apiserver.app import App
from kubik.apiserver.crds import CustomResourceManager
from kubik.apiserver.eventttl import SharedLeases
from kubik.apiserver.http import HTTPServer
from kubik.apiserver.openapi import OpenAPI
from kubik.apiserver.rest import RestHandler
from kubik.apiserver.services import ServiceAllocator
from kubik.apiserver.storage import ResourceStore
from kubik.apiserver.tokens import TokenSigner
from kubik.store.interface import Store
from kubik.store.watchcache import WatchCache

log = logging.getLogger(__name__)

BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class APIServer(component.Component):
    name = "apiserver"

    def __init__(
        self,
        *,
        store: Callable[[], Store],
        data_dir: str,
        port: int = 6443,
        bind_address: str = "0.0.0.0",
        advertise_address: str = "127.0.0.1",
        tls_sans: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self._get_store = store
        self._data_dir = data_dir
        self._port = port
        self._bind_address = bind_address
        self._advertise_address = advertise_address
        self._tls_sans = tls_sans
        self._caches: dict[str, WatchCache] = {}
        self._http: HTTPServer | None = None
        self._custom: CustomResourceManager | None = None
        self.registry: Registry = builtin.builtin_registry()
        self.port = 0
        self.kubeconfig = os.path.join(data_dir, "admin.kubeconfig")
        self.ca: tls.ClusterCA | None = None  # once started: signs the in-process agent's certs

    async def start(self) -> None:
        store = self._get_store()
        tls_dir = os.path.join(self._data_dir, "tls")
        ca, cert_path, key_path = await asyncio.to_thread(self._certificates, tls_dir)
        self.ca = ca
        token = await asyncio.to_thread(nodejoin.ensure_node_token, self._data_dir, ca.cert_pem)
        stores = {}
        for resource in self.registry.all():
            stores[resource] = ResourceStore(store, resource, await self._cache(store, resource))
        namespaces = stores[self.registry.get("", "v1", "namespaces")]
        allocator = ServiceAllocator(store)
        rest = RestHandler(stores, namespaces, allocator, SharedLeases(store))
        await _bootstrap(stores, self.registry, allocator)
        openapi = OpenAPI(self.registry)
        crds = self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        self._custom = CustomResourceManager(
            store=store,
            registry=self.registry,
            stores=stores,
            crds=stores[crds],
            open_cache=lambda resource: self._cache(store, resource),
            on_register=openapi.add_custom,
        )
        await self._custom.start()
        signer = TokenSigner(os.path.join(tls_dir, "service-account.key"))
        app = App(
            registry=self.registry,
            rest=rest,
            signer=signer,
            authenticator=auth.Authenticator(
                auth.TokenFile(os.path.join(tls_dir, "tokens.csv")), signer
            ),
            authorizer=auth.Authorizer(),
            server_address=f"{self._advertise_address}:{self._port}",
            openapi=openapi,
            ready=self.ready,
            node_join=nodejoin.NodeJoin(ca, token),
            node_proxy=nodeproxy.NodeProxy(
                stores[self.registry.get("", "v1", "pods")],
                stores[self.registry.get("", "v1", "nodes")],
                await asyncio.to_thread(_kubelet_client_context, ca),
            ),
        )
        self._http = HTTPServer(
            app, ssl_context=tls.server_context(cert_path, key_path, ca.paths.ca_crt)
        )
        self.port = await self._http.listen(self._bind_address, self._port)
        server_url = f"https://127.0.0.1:{self.port}"
        await asyncio.to_thread(self._write_kubeconfig, ca, server_url)
        log.info("serving the Kubernetes API on https://%s:%d", self._bind_address, self.port)
        log.info("kubectl: export KUBECONFIG=%s", self.kubeconfig)
        _settle_memory()
        self.ready.set()

    def _certificates(self, tls_dir: str) -> tuple[tls.ClusterCA, str, str]:
        ca = tls.ClusterCA(tls_dir)
        cert_path, key_path = tls.ensure_serving_cert(ca, self._tls_sans)
        return ca, cert_path, key_path

    def _write_kubeconfig(self, ca: tls.ClusterCA, server_url: str) -> None:
        cert, key = tls.ensure_client_cert(
            ca, "admin", common_name="system:admin", organizations=("system:masters",)
        )
        tls.write_kubeconfig(
            self.kubeconfig, server=server_url, ca_pem=ca.cert_pem, cert_path=cert, key_path=key
        )

    async def _cache(self, store: Store, resource: Resource) -> WatchCache:
        prefix = resource.store_prefix()
        cache = self._caches.get(prefix)
        if cache is None:
            cache = WatchCache(store, prefix)
            await cache.start()
            self._caches[prefix] = cache
        return cache

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._custom is not None:
            await self._custom.stop()
        for cache in self._caches.values():
            await cache.stop()


def _kubelet_client_context(ca: tls.ClusterCA):
    """TLS towards the nodes' API: upstream's kubelet client credential, the CA to check them."""
    cert, key = tls.ensure_client_cert(
        ca,
        "kubelet-client",
        common_name="kube-apiserver-kubelet-client",
        organizations=("system:masters",),
    )
    return nodeproxy.client_context(ca.paths.ca_crt, cert, key)


def _settle_memory() -> None:
    """Load the schemas now and move everything alive at start-up out of the garbage
    collector's sight: hundreds of thousands of long-lived schema objects would
    otherwise be traversed by every full collection, pausing requests."""
    schemas.definitions()
    gc.collect()
    gc.freeze()


async def _bootstrap(
    stores: dict[Resource, ResourceStore], registry: Registry, allocator: ServiceAllocator
) -> None:
    """The namespaces, the system PriorityClasses and the `kubernetes` service every cluster
    starts with."""
    namespaces = registry.get("", "v1", "namespaces")
    for name in BOOTSTRAP_NAMESPACES:
        obj = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name},
            "spec": {"finalizers": ["kubernetes"]},
        }
        await _ensure(stores[namespaces], namespaces, obj)
    priority_classes = registry.get(priority.GROUP, "v1", priority.PLURAL)
    for obj in priority.system_classes():
        await _ensure(stores[priority_classes], priority_classes, obj)
    services = registry.get("", "v1", "services")
    kubernetes = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": allocator.kubernetes_ip,
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    }
    try:
        await allocator.allocate(kubernetes)
    except errors.APIError:
        return  # its address is taken: the service exists already
    await _ensure(stores[services], services, kubernetes)


async def _ensure(store: ResourceStore, resource: Resource, obj: dict) -> None:
    strategy.prepare_create(resource, obj)
    try:
        await store.create(obj)
        log.info("created %s %s", resource.kind, obj["metadata"]["name"])
    except errors.APIError as exc:
        if exc.code != 409:
            raise
