"""Pod subresources the pod's node serves: log, exec, attach, portforward.

The API server checks the request against the pod (which container, is it
scheduled) as upstream's pod registry does, then calls the node API on the
node's InternalIP and kubelet port over TLS, with a client certificate of
the cluster CA and the node's serving certificate verified against that CA:

- `log`: the node's chunked answer is streamed back as it comes (`-f`);
- `exec`, `attach`, `portforward`: the client's upgrade request (SPDY or
  WebSocket) goes on to the node with its upgrade headers; the node's 101
  is relayed, then bytes flow unchanged both ways. Any protocol translation
  (WebSocket v5, the port-forward tunnel) happens on the node.

A node's error answer is relayed too: for logs as a Status (400 → BadRequest
with the node's message, as upstream's response checker), for upgrades as
the node's own response, from which kubectl prints "unable to upgrade
connection: …".
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

from kubik.api import errors
from kubik.apiserver.http import Request, Response, StreamResponse, Upgrade
from kubik.apiserver.rest import Target
from kubik.apiserver.storage import ResourceStore
from kubik.kubelet.logs import parse_time
from kubik.kubelet.streaming import relay
from kubik.kubelet.streaming.remotecommand import is_true

SUBRESOURCES = ("log", "exec", "attach", "portforward")

DEFAULT_KUBELET_PORT = 10250
_ADDRESS_PREFERENCE = ("InternalIP", "Hostname", "ExternalIP")

Object = dict[str, Any]


def client_context(ca_path: str, cert_path: str, key_path: str) -> ssl.SSLContext:
    """TLS towards nodes: our client certificate, their serving certificate checked."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_path)
    context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["http/1.1"])
    return context


class NodeProxy:
    def __init__(
        self, pods: ResourceStore, nodes: ResourceStore, ssl_context: ssl.SSLContext | None
    ) -> None:
        self._pods = pods
        self._nodes = nodes
        self._ssl = ssl_context

    async def handle(self, target: Target, request: Request) -> Response | StreamResponse | Upgrade:
        subresource = target.subresource
        allowed = ("GET",) if subresource == "log" else ("GET", "POST")
        if request.method not in allowed:
            raise errors.method_not_supported(f"pods/{subresource}", "", request.method.lower())
        pod = await self._pods.get(target.namespace, target.name)
        if subresource == "log":
            return await self._log(pod, request)
        if "upgrade" not in request.headers.get("connection", "").lower():
            raise errors.bad_request("Upgrade request required")
        if subresource == "portforward":
            path, query = f"/portForward/{_pod_path(pod)}", _port_query(request)
        else:
            container = choose_container(pod, request.param("container"))
            path = f"/{subresource}/{_pod_path(pod)}/{_segment(container)}"
            query = _stream_query(request, with_command=subresource == "exec")
        headers = relay.forwarded_headers(request.headers)
        return await relay.pass_on(await self._call(pod, request.method, path, query, headers))

    async def _log(self, pod: Object, request: Request) -> Response | StreamResponse:
        container = choose_container(pod, request.param("container"))
        query = _log_query(pod["metadata"]["name"], request)
        if not (pod.get("spec") or {}).get("nodeName"):
            return Response(200, b"", content_type="text/plain")  # upstream: an empty log
        path = f"/containerLogs/{_pod_path(pod)}/{_segment(container)}"
        answer = await self._call(pod, "GET", path, query)
        if 200 <= answer.status <= 206:
            return StreamResponse(200, relay.body_chunks(answer), content_type="text/plain")
        message = (await relay.read_body(answer, 16 * 1024)).decode("utf-8", "replace").strip()
        if answer.status == 400:
            raise errors.bad_request(message)
        if answer.status == 404:
            raise errors.APIError(404, "NotFound", message)
        if answer.status == 500:
            raise errors.internal(f"Internal error occurred: {message}")
        raise errors.APIError(answer.status, "", message)

    async def _call(
        self,
        pod: Object,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> relay.Answer:
        """One request to the node API of the pod's node; its answer's head read."""
        host, port = await self._node_of(pod)
        try:
            return await relay.request(
                host,
                port,
                method,
                path + (f"?{query}" if query else ""),
                headers,
                ssl_context=self._ssl,
            )
        except relay.DialError as exc:
            raise errors.internal(f"error dialing backend: {exc}") from None

    async def _node_of(self, pod: Object) -> tuple[str, int]:
        """(address, port) of the pod's node API."""
        name = pod["metadata"]["name"]
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        node = await self._nodes.get("", node_name)
        status = node.get("status") or {}
        addresses = status.get("addresses") or []
        by_type = {}
        for address in addresses:
            by_type.setdefault(address.get("type"), address.get("address"))
        host = next((by_type[t] for t in _ADDRESS_PREFERENCE if by_type.get(t)), None)
        if host is None:
            raise errors.internal(
                f"no preferred addresses found; known addresses: {addresses or '[]'}"
            )
        endpoint = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
        return host, int(endpoint.get("Port") or DEFAULT_KUBELET_PORT)


def _segment(text: str) -> str:
    return quote(text, safe="")


def _pod_path(pod: Object) -> str:
    """`<namespace>/<name>` of a pod, as the node API's paths take it."""
    metadata = pod["metadata"]
    return f"{_segment(metadata['namespace'])}/{_segment(metadata['name'])}"


def choose_container(pod: Object, container: str) -> str:
    """The container a request means (upstream's validateContainer): named, or the only one."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    names = [
        c.get("name")
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]
    if container:
        if container not in names:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        return container
    regular = spec.get("containers") or []
    if len(regular) == 1:
        return regular[0]["name"]
    if not regular:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    raise errors.bad_request(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    )


def _integer(request: Request, name: str) -> int | None:
    text = request.param(name)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise errors.bad_request(f"{name}: invalid value {text!r}: not an integer") from None


def _log_query(pod_name: str, request: Request) -> str:
    """The node's query for a log request, after upstream's PodLogOptions validation."""
    params: list[tuple[str, str]] = []
    for flag in ("follow", "previous", "timestamps"):
        if is_true(request.param(flag)):
            params.append((flag, "true"))
    causes = []
    since_seconds = _integer(request, "sinceSeconds")
    since_time = request.param("sinceTime")
    tail_lines = _integer(request, "tailLines")
    limit_bytes = _integer(request, "limitBytes")
    if since_seconds is not None:
        if since_seconds < 1:
            causes.append(errors.field_cause("sinceSeconds", "must be greater than 0"))
        params.append(("sinceSeconds", str(since_seconds)))
    if since_time:
        try:
            parse_time(since_time)
        except ValueError:
            raise errors.bad_request(f"sinceTime: invalid value {since_time!r}") from None
        params.append(("sinceTime", since_time))
    if since_seconds is not None and since_time:
        causes.append(
            errors.field_cause("", "at most one of `sinceTime` or `sinceSeconds` may be specified")
        )
    if tail_lines is not None:
        if tail_lines < 0:
            causes.append(errors.field_cause("tailLines", "must be greater than or equal to 0"))
        params.append(("tailLines", str(tail_lines)))
    if limit_bytes is not None:
        if limit_bytes < 1:
            causes.append(errors.field_cause("limitBytes", "must be greater than 0"))
        params.append(("limitBytes", str(limit_bytes)))
    if causes:
        raise errors.invalid("PodLogOptions", "", pod_name, causes)
    return urlencode(params)


def _stream_query(request: Request, *, with_command: bool) -> str:
    """exec/attach options in the node API's spelling (upstream's streamParams)."""
    params = [
        (node_name, "1")
        for node_name, api_name in (
            ("input", "stdin"),
            ("output", "stdout"),
            ("error", "stderr"),
            ("tty", "tty"),
        )
        if is_true(request.param(api_name))
    ]
    if with_command:
        params += [("command", c) for c in request.query.get("command", [])]
    return urlencode(params)


def _port_query(request: Request) -> str:
    ports = []
    for value in request.query.get("ports", []):
        for text in value.split(","):
            if not text.strip().isdigit() or not 0 < int(text) < 65536:
                raise errors.bad_request(f"invalid port {text!r}")
            ports.append(text.strip())
    return urlencode([("port", ",".join(ports))]) if ports else ""
