"""The controller manager: every controller, behind one leader election.

It loads each module of `kubik.controllers` (each registers its controllers
with `@register`), and once this instance leads (a Lease named
`kube-controller-manager` in kube-system, upstream's timings) it starts the
chosen controllers on shared informers. `/healthz` and `/metrics`
(Prometheus text) are served on their own HTTP port.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
import socket
import uuid

from kubik import component
from kubik.client import kubeconfig
from kubik.client.api import Client
from kubik.client.events import EventRecorder
from kubik.client.informer import InformerFactory
from kubik.client.leaderelection import LeaderElector
from kubik.controllers import base, metrics
from kubik.metricsserver import MetricsServer

log = logging.getLogger(__name__)

_NOT_CONTROLLERS = {"base", "manager", "metrics"}


def load_controllers() -> dict[str, type[base.Controller]]:
    """Import every controller module; returns name → class."""
    package = importlib.import_module("kubik.controllers")
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _NOT_CONTROLLERS:
            importlib.import_module(f"kubik.controllers.{module.name}")
    return dict(base.CONTROLLERS)


def choose(available: dict[str, type[base.Controller]], wanted: list[str]) -> list[str]:
    """upstream's --controllers: `*` for all, `name` to add, `-name` to leave out."""
    chosen: list[str] = []
    for item in wanted or ["*"]:
        if item == "*":
            chosen += [name for name in sorted(available) if name not in chosen]
        elif item.startswith("-"):
            chosen = [name for name in chosen if name != item[1:]]
        elif item in available and item not in chosen:
            chosen.append(item)
        elif item not in available:
            raise ValueError(f"unknown controller {item!r}; known: {', '.join(sorted(available))}")
    return chosen


def _root_ca(root_ca_file: str, kubeconfig_path: str) -> bytes:
    """upstream's --root-ca-file, else the CA the controller manager's kubeconfig trusts."""
    if root_ca_file:
        with open(root_ca_file, "rb") as handle:
            return handle.read()
    return kubeconfig.load(kubeconfig_path).ca


class ControllerManager(component.Component):
    name = "controller-manager"

    def __init__(
        self,
        *,
        kubeconfig: str,
        controllers: list[str] | None = None,
        workers: dict[str, int] | None = None,
        leader_elect: bool = True,
        metrics_address: tuple[str, int] = ("127.0.0.1", 10257),
        root_ca_file: str = "",
    ) -> None:
        super().__init__()
        self._kubeconfig = kubeconfig
        self._wanted = controllers or ["*"]
        self._workers = workers or {}
        self._leader_elect = leader_elect
        self._metrics_address = metrics_address
        self._root_ca_file = root_ca_file
        self._root_ca = b""
        self._client: Client | None = None
        self._http: MetricsServer | None = None
        self._task: asyncio.Task | None = None
        self._chosen: list[str] = []
        self._classes: dict[str, type[base.Controller]] = {}
        self.identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        self.metrics_port = 0

    async def start(self) -> None:
        available = load_controllers()
        self._chosen = choose(available, self._wanted)
        self._classes = available
        self._root_ca = _root_ca(self._root_ca_file, self._kubeconfig)
        self._client = Client.from_kubeconfig(
            self._kubeconfig, user_agent="kube-controller-manager"
        )
        self._http = MetricsServer(metrics.REGISTRY)
        self.metrics_port = await self._http.listen(*self._metrics_address)
        log.info(
            "controllers: %s; /healthz and /metrics on %s:%d",
            ", ".join(self._chosen),
            self._metrics_address[0],
            self.metrics_port,
        )
        self._task = asyncio.create_task(self._run(), name="controller-manager")
        self.ready.set()

    async def _run(self) -> None:
        if not self._leader_elect:
            await self._lead()
            return
        elector = LeaderElector(
            self._client, name="kube-controller-manager", identity=self.identity
        )
        await elector.run(self._lead)

    async def _lead(self) -> None:
        """Run the chosen controllers until cancelled (leadership lost, or stopping)."""
        factory = InformerFactory(self._client)
        recorder = EventRecorder(self._client, "kube-controller-manager")
        context = base.Context(self._client, factory, recorder, self._root_ca)
        controllers = [self._classes[name](context) for name in self._chosen]
        for controller in controllers:
            controller.setup()
        recorder.start()
        factory.start()
        try:
            await factory.wait_synced()
            log.info("informers synced; running %d controllers", len(controllers))
            await asyncio.gather(
                *(c.run(self._workers.get(c.name, c.workers)) for c in controllers)
            )
        finally:
            for controller in controllers:
                await controller.stop()
            await factory.stop()
            await recorder.stop()

    async def stop(self) -> None:
        await component.cancel_and_wait(self._task)
        if self._http is not None:
            await self._http.close()
        if self._client is not None:
            await self._client.close()
