"""The node agent's command line: `kubik agent`, `kubik kubelet`, and the agent of
`kubik server`, which share their node flags (upstream kubelet's names, k3s's
aliases where k3s has one).

- `kubik server` runs the agent in-process unless --disable-agent; the
  server's CA signs its credentials directly.
- `kubik agent --server URL --token TOKEN` joins a server with its node token
  (`<server data-dir>/node-token`).
- `kubik kubelet --kubeconfig FILE --tls-cert-file F --tls-private-key-file K
  --client-ca-file CA` runs the agent with credentials made elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from kubik import component
from kubik.apiserver import nodejoin, tls
from kubik.kubelet import credentials, defaults, images, machine

if TYPE_CHECKING:  # imported when an agent is made: every role parses these flags
    from kubik.kubelet.agent import Agent, AgentConfig


class AgentError(Exception):
    """The agent cannot start as asked; the message says why."""


# what `kubik` reports as a failure to start rather than a crash
ERRORS = (AgentError, credentials.JoinError, images.BuildError)


class Server(Protocol):
    """What the in-process agent needs of the API server (APIServer, once started)."""

    ca: tls.ClusterCA | None
    port: int


def add_parsers(
    roles: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]
) -> None:
    agent = roles.add_parser("agent", parents=list(parents), help="a worker node joining a server")
    agent.add_argument("--server", required=True, help="the API server URL")
    agent.add_argument(
        "--token", required=True, help="the server's node token (<its data-dir>/node-token)"
    )
    add_agent_flags(agent)
    kubelet = roles.add_parser("kubelet", parents=list(parents), help="the kubelet alone")
    kubelet.add_argument("--kubeconfig", required=True, help="credentials for the API server")
    kubelet.add_argument("--tls-cert-file", required=True, help="the node API's certificate")
    kubelet.add_argument("--tls-private-key-file", required=True, help="its key")
    kubelet.add_argument(
        "--client-ca-file", required=True, help="the CA whose client certificates are accepted"
    )
    add_agent_flags(kubelet)


def add_agent_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-name", help="the Node's name (default: the hostname, lowercased)")
    parser.add_argument(
        "--node-ip",
        help="the node's InternalIP (default: the address of the default route's interface)",
    )
    parser.add_argument(
        "--node-labels",
        "--node-label",
        action="append",
        default=[],
        help="key=value[,key=value] labels to register the node with (repeatable)",
    )
    parser.add_argument(
        "--register-with-taints",
        "--node-taint",
        action="append",
        default=[],
        help="key[=value]:Effect[,...] taints the node is created with (repeatable)",
    )
    parser.add_argument("--max-pods", type=int, default=110)
    for flag in ("--kube-reserved", "--system-reserved"):
        parser.add_argument(
            flag,
            action="append",
            default=[],
            help="resource=quantity[,...] held back from pods (e.g. cpu=200m,memory=500Mi)",
        )
    parser.add_argument("--kubelet-port", type=int, default=10250, help="the node API's port")
    parser.add_argument(
        "--cgroup-root",
        default=defaults.CGROUP_ROOT,
        help="the cgroup the pods' cgroups go under (default %(default)s)",
    )
    parser.add_argument(
        "--container-runtime-endpoint",
        help="an existing CRI socket (default: start containerd under <data-dir>/agent)",
    )
    parser.add_argument(
        "--images-dir",
        default=images.DEFAULT_IMAGES_DIR,
        help="image archives imported at start (default %(default)s; `kubik images build`)",
    )
    parser.add_argument(
        "--cluster-dns",
        action="append",
        default=[],
        help=f"the DNS server pods use (repeatable; default {defaults.CLUSTER_DNS})",
    )
    parser.add_argument("--cluster-domain", default=defaults.CLUSTER_DOMAIN)
    parser.add_argument(
        "--container-log-max-size",
        default=defaults.LOG_MAX_SIZE,
        help="a container log is rotated past this size (default %(default)s)",
    )
    parser.add_argument(
        "--container-log-max-files",
        type=int,
        default=defaults.LOG_MAX_FILES,
        help="rotated log files kept per container (default %(default)s)",
    )


def agent_config(args: argparse.Namespace, *, control_plane: bool) -> AgentConfig:
    from kubik.kubelet import node
    from kubik.kubelet.agent import AgentConfig

    try:
        reserved = node.parse_reserved([*args.kube_reserved, *args.system_reserved])
        labels = node.parse_labels(args.node_labels)
        taints = node.parse_taints(args.register_with_taints)
    except ValueError as exc:
        raise AgentError(str(exc)) from None
    node_config = node.NodeConfig(
        name=args.node_name or machine.hostname(),
        address=args.node_ip or machine.node_ip(),
        data_dir=args.data_dir,
        port=args.kubelet_port,
        labels=labels,
        taints=taints,
        max_pods=args.max_pods,
        reserved=reserved,
        control_plane=control_plane,
    )
    return AgentConfig(
        data_dir=args.data_dir,
        node=node_config,
        runtime_endpoint=args.container_runtime_endpoint,
        images_dir=args.images_dir,
        cgroup_root=args.cgroup_root,
        cluster_dns=args.cluster_dns or [defaults.CLUSTER_DNS],
        cluster_domain=args.cluster_domain,
        container_log_max_size=args.container_log_max_size,
        container_log_max_files=args.container_log_max_files,
    )


def _agent(config: AgentConfig, get_credentials) -> Agent:
    from kubik.kubelet.agent import Agent

    return Agent(config, get_credentials)


def _names(config: AgentConfig) -> tuple[list[str], list[str]]:
    """The node's (addresses, host names) its serving certificate covers."""
    return [config.node.address], list(dict.fromkeys([config.node.name, machine.hostname()]))


def server_agent(args: argparse.Namespace, server: Server) -> Agent:
    """The agent of `kubik server`: its certificates come straight from the server's CA."""
    config = agent_config(args, control_plane=True)
    addresses, hostnames = _names(config)

    async def issue() -> credentials.NodeCredentials:
        if server.ca is None:
            raise AgentError("the API server has not made its CA yet")
        bundle = await asyncio.to_thread(
            nodejoin.issue_credentials, server.ca, config.node.name, addresses, hostnames
        )
        url = f"https://127.0.0.1:{server.port}"
        return await asyncio.to_thread(credentials.save, config.agent_dir, url, bundle)

    return _agent(config, issue)


def joining_agent(args: argparse.Namespace) -> Agent:
    """`kubik agent`: credentials from the server, for the node token."""
    config = agent_config(args, control_plane=False)
    addresses, hostnames = _names(config)

    async def join() -> credentials.NodeCredentials:
        return await credentials.join(
            config.agent_dir,
            args.server,
            args.token,
            node_name=config.node.name,
            addresses=addresses,
            hostnames=hostnames,
        )

    return _agent(config, join)


def kubelet_agent(args: argparse.Namespace) -> Agent:
    """`kubik kubelet`: credentials from files."""
    config = agent_config(args, control_plane=False)
    given = credentials.from_files(
        os.path.abspath(args.kubeconfig),
        args.tls_cert_file,
        args.tls_private_key_file,
        args.client_ca_file,
    )

    async def files() -> credentials.NodeCredentials:
        return given

    return _agent(config, files)


async def serve(args: argparse.Namespace) -> None:
    """Run `kubik agent` or `kubik kubelet` until SIGTERM."""
    agent = joining_agent(args) if args.role == "agent" else kubelet_agent(args)
    await component.run([agent])
