"""DefaultBinder: binds through the API (POST pods/binding), as every pod's last step."""

from __future__ import annotations

from typing import Any

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.scheduler.framework import Code, CycleState, Framework, Status, register

PODS = builtin.lookup("", "v1", "pods")


@register
class DefaultBinder:
    name = "DefaultBinder"

    def __init__(self, handle: Framework) -> None:
        self._handle = handle

    async def bind(self, state: CycleState, pod: dict[str, Any], node: str) -> Status | None:
        metadata = pod["metadata"]
        namespace, name = metadata.get("namespace", ""), metadata["name"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": metadata.get("uid", "")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self._handle.client.post_subresource(PODS, namespace, name, "binding", binding)
        except ApiError as exc:
            return Status(Code.ERROR, str(exc))
        return None
