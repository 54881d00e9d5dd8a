"""Parse `--datastore-endpoint` (k3s's convention: the string picks the backend).

- empty: SQLite at `<data-dir>/db/state.db`, the embedded default;
- `sqlite:///abs/path.db` or `sqlite://relative.db`: SQLite at that file;
- `etcd://host:port[,host:port...]`: a real etcd cluster over gRPC.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kubik.store.errors import InvalidEndpointError


@dataclass(frozen=True, slots=True)
class SqliteEndpoint:
    path: str


@dataclass(frozen=True, slots=True)
class EtcdEndpoint:
    members: tuple[tuple[str, int], ...]  # (host, port) pairs


Endpoint = SqliteEndpoint | EtcdEndpoint


def parse(endpoint: str, *, data_dir: str) -> Endpoint:
    endpoint = endpoint.strip()
    if not endpoint:
        return SqliteEndpoint(os.path.join(data_dir, "db", "state.db"))
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        raise InvalidEndpointError(
            f"datastore endpoint {endpoint!r} has no scheme: "
            "use etcd://host:port[,host:port] or sqlite:///path"
        )
    if scheme == "sqlite":
        if not rest:
            raise InvalidEndpointError(f"datastore endpoint {endpoint!r} names no file")
        return SqliteEndpoint(rest)
    if scheme == "etcd":
        return EtcdEndpoint(tuple(_member(m, endpoint) for m in rest.split(",")))
    raise InvalidEndpointError(
        f"datastore endpoint {endpoint!r}: unknown scheme {scheme!r} (expected etcd or sqlite)"
    )


def _member(text: str, endpoint: str) -> tuple[str, int]:
    host, sep, port = text.strip().rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidEndpointError(
            f"datastore endpoint {endpoint!r}: member {text!r} is not host:port"
        )
    return host.strip("[]"), int(port)
