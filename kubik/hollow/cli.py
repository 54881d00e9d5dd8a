"""`kubik hollow-nodes`: the flags of the role and running it until SIGTERM."""

from __future__ import annotations

import argparse

from kubik import component
from kubik.client.api import ApiError, Client
from kubik.client.kubeconfig import KubeconfigError
from kubik.hollow.nodes import HollowNodes


def add_parser(roles: argparse._SubParsersAction) -> None:
    parser = roles.add_parser(
        "hollow-nodes", help="simulated nodes for tests and benchmarks (as kubemark, kwok)"
    )
    parser.add_argument("--kubeconfig", required=True, help="credentials for the API server")
    parser.add_argument("--count", type=int, required=True, help="how many nodes")
    parser.add_argument("--name-prefix", default="hollow-", help="node names: <prefix><n>")
    parser.add_argument("--cpu", default="4", help="CPU capacity of each node")
    parser.add_argument("--memory", default="16Gi", help="memory capacity of each node")
    parser.add_argument("--pods", type=int, default=110, help="pod capacity of each node")
    parser.add_argument(
        "--labels", type=_labels, default={}, help="extra node labels: key=value,key=value"
    )
    parser.add_argument(
        "--start-delay", type=float, default=0.5, help="seconds a bound pod stays Pending"
    )
    parser.add_argument(
        "--ready-delay", type=float, default=0.5, help="seconds a running pod takes to be Ready"
    )
    parser.add_argument(
        "--fail-ratio", type=_ratio, default=0.0, help="the share of pods that fail at start"
    )
    parser.add_argument(
        "--heartbeat", type=float, default=10.0, help="seconds between lease renewals"
    )
    parser.add_argument(
        "--delete-on-stop", action="store_true", help="delete the nodes when stopping"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


async def serve(args: argparse.Namespace) -> None:
    try:
        # room for the heartbeats' 50 requests at a time and the hollow kubelet's workers
        client = Client.from_kubeconfig(
            args.kubeconfig, user_agent="kubik-hollow-nodes", pool_size=128
        )
    except KubeconfigError as exc:
        raise SystemExit(f"kubik: {exc}") from None
    nodes = HollowNodes(
        client,
        count=args.count,
        name_prefix=args.name_prefix,
        cpu=args.cpu,
        memory=args.memory,
        pods=args.pods,
        labels=args.labels,
        start_delay=args.start_delay,
        ready_delay=args.ready_delay,
        fail_ratio=args.fail_ratio,
        heartbeat=args.heartbeat,
        delete_on_stop=args.delete_on_stop,
    )
    try:
        await component.run([nodes])
    except ApiError as exc:
        raise SystemExit(f"kubik: hollow nodes: {exc}") from None
    finally:
        await client.close()


def _labels(text: str) -> dict[str, str]:
    labels = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise argparse.ArgumentTypeError(f"{pair!r} is not key=value")
        labels[key] = value
    return labels


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value
