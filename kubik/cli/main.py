"""`kubik ROLE [flags]`: one entry point, one subcommand per role (k3s's shape).

- `server`: the whole control plane (and a node agent unless --disable-agent);
- `agent`: a worker node (kubelet + proxy) joining a server;
- `apiserver`, `scheduler`, `controller-manager`, `kubelet`, `proxy`: one part
  alone, for split and HA deployments;
- `images`: build the node's offline images, import images into containerd;
- `version`.

Parts not built yet say so instead of pretending to run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from typing import TYPE_CHECKING

import kubik
from kubik import component
from kubik.controllers import nodeipam
from kubik.hollow import cli as hollow_cli
from kubik.kubelet import cli as kubelet_cli
from kubik.kubelet import images
from kubik.scheduler import config as scheduler_config
from kubik.store import errors as store_errors

if TYPE_CHECKING:
    from kubik.controllers.manager import ControllerManager
    from kubik.scheduler.scheduler import Scheduler

log = logging.getLogger("kubik")

DEFAULT_DATA_DIR = "/var/lib/kubik"

# Roles whose components do not exist yet, and the issue that builds them.
_NOT_BUILT = {
    "proxy": "the service proxy",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubik", description=kubik.__doc__)
    roles = parser.add_subparsers(dest="role", required=True, metavar="ROLE")

    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help="where kubik keeps its state (default %(default)s)",
    )
    shared.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )

    store_flags = argparse.ArgumentParser(add_help=False)
    store_flags.add_argument(
        "--datastore-endpoint",
        default="",
        help="empty: SQLite at <data-dir>/db/state.db; etcd://host:port[,host:port]: etcd",
    )

    api_flags = argparse.ArgumentParser(add_help=False)
    api_flags.add_argument("--https-listen-port", type=int, default=6443)
    api_flags.add_argument(
        "--bind-address",
        default="0.0.0.0",
        help="the address the API listens on (default %(default)s)",
    )
    api_flags.add_argument(
        "--tls-san", action="append", default=[], help="an extra name or IP to serve TLS for"
    )

    server = roles.add_parser(
        "server",
        parents=[shared, store_flags, api_flags],
        help="the control plane (and a node agent)",
    )
    server.add_argument(
        "--disable-agent", action="store_true", help="run no node agent on this machine"
    )
    server.add_argument(
        "--disable-controller-manager",
        action="store_true",
        help="run no controllers here (run `kubik controller-manager` elsewhere)",
    )
    server.add_argument(
        "--disable-scheduler",
        action="store_true",
        help="run no scheduler here (run `kubik scheduler` elsewhere)",
    )

    kubelet_cli.add_agent_flags(server)
    kubelet_cli.add_parsers(roles, [shared])

    roles.add_parser(
        "apiserver", parents=[shared, store_flags, api_flags], help="the API server alone"
    )
    manager = roles.add_parser("controller-manager", parents=[shared], help="the controllers alone")
    manager.add_argument("--kubeconfig", required=True, help="credentials for the API server")
    _controller_flags(manager)
    _controller_flags(server)
    scheduler = roles.add_parser("scheduler", parents=[shared], help="the scheduler alone")
    scheduler.add_argument("--kubeconfig", required=True, help="credentials for the API server")
    scheduler.add_argument("--config", help="a KubeSchedulerConfiguration file (YAML)")
    scheduler.add_argument(
        "--leader-elect",
        choices=["true", "false"],
        help="elect a leader among schedulers (default: the configuration's, else true)",
    )
    scheduler.add_argument(
        "--metrics-address",
        default="127.0.0.1:10259",
        help="where /healthz and /metrics of the scheduler are served (default %(default)s)",
    )
    server.add_argument(
        "--scheduler-metrics-address",
        default="127.0.0.1:10259",
        help="where /healthz and /metrics of the scheduler are served (default %(default)s)",
    )
    proxy = roles.add_parser("proxy", parents=[shared], help="the proxy alone")
    proxy.add_argument("--kubeconfig", help="credentials for the API server")

    hollow_cli.add_parser(roles)
    images.add_parser(roles, [shared])
    roles.add_parser("version", help="print the version")
    return parser


def _controller_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--controllers",
        default="*",
        help="controllers to run: '*' for all, 'name' to add one, '-name' to leave one out",
    )
    parser.add_argument(
        "--leader-elect",
        default="true",
        choices=["true", "false"],
        help="elect a leader among controller managers (default true)",
    )
    parser.add_argument(
        "--controller-metrics-address",
        default="127.0.0.1:10257",
        help="where /healthz and /metrics of the controllers are served",
    )
    parser.add_argument(
        "--cluster-cidr",
        help=f"the range node pod CIDRs are cut from (default {nodeipam.DEFAULT_CLUSTER_CIDR})",
    )
    parser.add_argument(
        "--root-ca-file",
        default="",
        help="the CA bundle published to pods as kube-root-ca.crt (default: the kubeconfig's CA)",
    )


# upstream flag stems whose controller is named otherwise
_SYNC_FLAG_ALIASES = {"gc": "garbagecollector", "serviceendpoint": "endpointslice"}


def _concurrency(extra: list[str]) -> dict[str, int]:
    """--concurrent-<controller>-syncs=N flags (upstream's names), as {controller: N}."""
    workers = {}
    for flag in extra:
        match = re.fullmatch(r"--concurrent-([a-z-]+)-syncs=(\d+)", flag)
        if not match:
            raise SystemExit(f"kubik: unknown flag {flag}")
        name = match.group(1).replace("-", "")
        workers[_SYNC_FLAG_ALIASES.get(name, name)] = int(match.group(2))
    return workers


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    args.workers = _concurrency(extra)
    if args.role == "version":
        print(f"kubik v{kubik.__version__}")
        return 0
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if args.role == "images":
        return images.run_cli(args)
    if args.role in _NOT_BUILT:
        log.error("kubik %s: %s is not built yet", args.role, _NOT_BUILT[args.role])
        return 2
    try:
        asyncio.run(_serve(args))
    except (store_errors.StoreError, scheduler_config.ConfigError, *kubelet_cli.ERRORS) as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


# The components are imported by the roles that run them: a process carries only its own
# (a controller manager neither the API server nor the kubelet's gRPC stubs).


def _controller_manager(args: argparse.Namespace, kubeconfig: str) -> ControllerManager:
    from kubik.controllers.manager import ControllerManager

    host, _, port = args.controller_metrics_address.rpartition(":")
    if args.cluster_cidr:  # the node IPAM controller reads its settings from the environment
        os.environ[nodeipam.CIDR_VARIABLE] = args.cluster_cidr
    return ControllerManager(
        kubeconfig=kubeconfig,
        controllers=[c.strip() for c in args.controllers.split(",") if c.strip()],
        workers=args.workers,
        leader_elect=args.leader_elect == "true",
        metrics_address=(host or "127.0.0.1", int(port)),
        root_ca_file=args.root_ca_file,
    )


def _scheduler(args: argparse.Namespace, kubeconfig: str) -> Scheduler:
    """`kubik scheduler` with its --config, or the server's scheduler (default profile)."""
    from kubik.scheduler.scheduler import Scheduler

    leader_elect = None if args.leader_elect is None else args.leader_elect == "true"
    address = args.metrics_address if args.role == "scheduler" else args.scheduler_metrics_address
    host, _, port = address.rpartition(":")
    return Scheduler(
        kubeconfig=kubeconfig,
        config=scheduler_config.load(getattr(args, "config", None)),
        leader_elect=leader_elect,
        metrics_address=(host or "127.0.0.1", int(port)),
    )


async def _serve(args: argparse.Namespace) -> None:
    if args.role == "hollow-nodes":
        await hollow_cli.serve(args)
        return
    if args.role == "controller-manager":
        await component.run([_controller_manager(args, args.kubeconfig)])
        return
    if args.role == "scheduler":
        await component.run([_scheduler(args, args.kubeconfig)])
        return
    if args.role in ("agent", "kubelet"):
        await kubelet_cli.serve(args)
        return
    from kubik.apiserver.server import APIServer
    from kubik.store.service import StoreService

    store = StoreService(datastore_endpoint=args.datastore_endpoint, data_dir=args.data_dir)
    api = APIServer(
        store=lambda: store.store,
        data_dir=args.data_dir,
        port=args.https_listen_port,
        bind_address=args.bind_address,
        tls_sans=tuple(args.tls_san),
    )
    if args.role != "server":
        await component.run([store, api])
        return
    agent = None if args.disable_agent else kubelet_cli.server_agent(args, api)
    log.info(
        "kubik server: store, API server, controllers, scheduler%s",
        "" if agent is None else " and a node agent",
    )
    components: list[component.Component] = [store, api]
    if not args.disable_controller_manager:
        components.append(_controller_manager(args, api.kubeconfig))
    if not args.disable_scheduler:
        components.append(_scheduler(args, api.kubeconfig))
    if agent is not None:
        components.append(agent)
    await component.run(components)


if __name__ == "__main__":
    sys.exit(main())
