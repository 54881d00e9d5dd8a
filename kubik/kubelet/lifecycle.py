"""Container lifecycle hooks: postStart after a container starts, preStop before it is stopped.

A handler is an exec (run in the container through the CRI's ExecSync), an
httpGet (to the pod's IP unless it names a host; only failing to get an
answer fails it, the status code does not, as upstream) or a sleep. A failure
returns upstream's message ("Exec lifecycle hook ([cmd]) for Container ...
failed - error: ..."); the caller records the event and, for postStart,
kills the container.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import grpc

from kubik.kubelet.cri import api_pb2
from kubik.kubelet.runtimestate import error_text

Object = dict[str, Any]

_MAX_BODY = 10 * 1024


class HookError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def pod_ref(pod: Object) -> str:
    """A pod as upstream's format.Pod prints it: name_namespace(uid)."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta['namespace']}({meta.get('uid', '')})"


def go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def resolve_port(port: Any, container: Object) -> int:
    """An httpGet/tcpSocket port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for spec in container.get("ports") or []:
        if spec.get("name") == text:
            return int(spec["containerPort"])
    raise ValueError(f"couldn't find port: {text} in {container.get('name', '')}")


async def run_handler(
    handler: Object,
    *,
    runtime,
    pod: Object,
    container: Object,
    container_id: str,
    pod_ip: str,
    timeout: float | None = None,  # noqa: ASYNC109 - a bound for ExecSync and HTTP alike
) -> None:
    """Run one handler; HookError with upstream's message when it fails."""
    name = container.get("name", "")
    if handler.get("exec"):
        command = list(handler["exec"].get("command") or [])
        try:
            answer = await runtime.runtime.ExecSync(
                api_pb2.ExecSyncRequest(
                    container_id=container_id, cmd=command, timeout=int(timeout or 0)
                ),
                timeout=None if timeout is None else timeout + 5,
            )
        except grpc.aio.AioRpcError as exc:
            error, output = error_text(exc), ""
        else:
            if answer.exit_code == 0:
                return
            output = (answer.stdout + answer.stderr).decode(errors="replace")
            error = (
                f"command '{' '.join(command)}' exited with {answer.exit_code}: "
                f"{answer.stderr.decode(errors='replace')}"
            )
        raise HookError(
            f"Exec lifecycle hook ({go_list(command)}) for Container {_q(name)} in Pod "
            f"{_q(pod_ref(pod))} failed - error: {error}, message: {_q(output)}"
        )
    if handler.get("httpGet"):
        action = handler["httpGet"]
        try:
            await asyncio.wait_for(http_get(action, container, pod_ip), timeout)
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError) as exc:
            reason = str(exc) or type(exc).__name__
            raise HookError(
                f"HTTP lifecycle hook ({action.get('path', '')}) for Container {_q(name)} in Pod "
                f"{_q(pod_ref(pod))} failed - error: {reason}"
            ) from None
        return
    if handler.get("sleep"):
        await asyncio.sleep(float(handler["sleep"].get("seconds", 0)))
        return
    raise HookError(f"Cannot run handler: invalid handler: {handler}")


async def http_get(action: Object, container: Object, pod_ip: str) -> int:
    """GET the action's URL; its status code (any answer counts as success for a hook)."""
    host = action.get("host") or pod_ip
    if not host:
        raise ValueError("failed to find networking container: the pod has no IP")
    port = resolve_port(action.get("port", 80), container)
    path = action.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    context = None
    if action.get("scheme", "HTTP").upper() == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        headers = {"Host": f"{host}:{port}", "User-Agent": "kube-lifecycle/1.32", "Accept": "*/*"}
        for header in action.get("httpHeaders") or []:
            headers[header.get("name", "")] = header.get("value", "")
        lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines + ["Connection: close", "", ""])).encode())
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.decode(errors="replace").split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"malformed HTTP response {status_line[:80]!r}")
        await reader.read(_MAX_BODY)
        return int(parts[1])
    finally:
        writer.close()


def _q(text: str) -> str:
    """Go's %q for the plain text of these messages."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
