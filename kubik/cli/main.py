"""`kubik ROLE [flags]`: one entry point, one subcommand per role (k3s's shape).

- `server`: the whole control plane (and a node agent unless --disable-agent);
- `agent`: a worker node (kubelet + proxy) joining a server;
- `apiserver`, `scheduler`, `controller-manager`, `kubelet`, `proxy`: one part
  alone, for split and HA deployments;
- `version`.

Parts not built yet say so instead of pretending to run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import kubik
from kubik import component
from kubik.apiserver.server import APIServer
from kubik.store import errors as store_errors
from kubik.store.service import StoreService

log = logging.getLogger("kubik")

DEFAULT_DATA_DIR = "/var/lib/kubik"

# Roles whose components do not exist yet, and the issue that builds them.
_NOT_BUILT = {
    "agent": "the kubelet (issue 6)",
    "scheduler": "the scheduler (issue 5)",
    "controller-manager": "the controller manager (issue 4)",
    "kubelet": "the kubelet (issue 6)",
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

    agent = roles.add_parser("agent", parents=[shared], help="a worker node joining a server")
    agent.add_argument("--server", required=True, help="the API server URL")
    agent.add_argument("--token", required=True, help="the server's node token")

    roles.add_parser(
        "apiserver", parents=[shared, store_flags, api_flags], help="the API server alone"
    )
    for role in ("scheduler", "controller-manager", "kubelet", "proxy"):
        sub = roles.add_parser(role, parents=[shared], help=f"the {role} alone")
        sub.add_argument("--kubeconfig", help="credentials for the API server")

    roles.add_parser("version", help="print the version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.role == "version":
        print(f"kubik v{kubik.__version__}")
        return 0
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if args.role in _NOT_BUILT:
        log.error("kubik %s: %s is not built yet", args.role, _NOT_BUILT[args.role])
        return 2
    try:
        asyncio.run(_serve(args))
    except store_errors.StoreError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


async def _serve(args: argparse.Namespace) -> None:
    store = StoreService(datastore_endpoint=args.datastore_endpoint, data_dir=args.data_dir)
    api = APIServer(
        store=lambda: store.store,
        data_dir=args.data_dir,
        port=args.https_listen_port,
        bind_address=args.bind_address,
        tls_sans=tuple(args.tls_san),
    )
    if args.role == "server":
        log.info(
            "kubik server: store and API server; the scheduler, controllers and node agent "
            "are not built yet"
        )
    await component.run([store, api])


if __name__ == "__main__":
    sys.exit(main())
