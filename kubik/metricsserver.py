"""The plain-HTTP health and metrics endpoint of a control-plane component.

The scheduler and the controller manager each expose /healthz (and /livez, /readyz) and a
Prometheus /metrics page for their own registry, as their upstream counterparts do on their
secure ports; one server here keeps the two identical.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from kubik.apiserver.http import HTTPServer, Request, Response

_HEALTH_PATHS = ("/healthz", "/livez", "/readyz")


class MetricsServer:
    """Serves the health checks and the metrics of `registry` until closed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._http = HTTPServer(self._serve, ssl_context=None)

    async def listen(self, host: str, port: int) -> int:
        """Start listening; returns the bound port (useful with port 0)."""
        return await self._http.listen(host, port)

    async def close(self) -> None:
        await self._http.close()

    async def _serve(self, request: Request) -> Response:
        if request.path == "/metrics":
            return Response(200, generate_latest(self._registry), [], CONTENT_TYPE_LATEST)
        if request.path in _HEALTH_PATHS:
            return Response(200, b"ok", [], "text/plain")
        return Response(404, b"not found", [], "text/plain")
