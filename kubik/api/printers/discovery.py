"""Printer of discovery.k8s.io/v1 EndpointSlice."""

from __future__ import annotations

from typing import Any

from kubik.api.printers.cells import capped, name
from kubik.api.tables import AGE, NAME, Object, age, column, doc, printer

_SLICE = "io.k8s.api.discovery.v1.EndpointSlice"


@printer(
    "discovery.k8s.io",
    "EndpointSlice",
    [
        NAME,
        column("AddressType", description=doc(_SLICE, "addressType")),
        column("Ports", description=doc(_SLICE, "ports")),
        column("Endpoints", description=doc(_SLICE, "endpoints")),
        AGE,
    ],
)
def endpointslice_cells(eps: Object) -> list[Any]:
    ports = [_port(p) for p in eps.get("ports") or []]
    addresses = [a for e in eps.get("endpoints") or [] for a in e.get("addresses") or []]
    return [name(eps), eps.get("addressType", ""), capped(ports), capped(addresses), age(eps)]


def _port(port: dict[str, Any]) -> str:
    """The port number, else its name, else "*" (every port)."""
    if port.get("port") is not None:
        return str(port["port"])
    if port.get("name") is not None:
        return port["name"]
    return "*"
