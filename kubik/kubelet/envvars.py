"""A container's environment, built as upstream's kubelet builds it.

Sources, lowest precedence first: the service links (variables naming each
service of the pod's namespace, Docker-link style, plus the `kubernetes`
service of `default` always), then `envFrom` (ConfigMaps and Secrets, whole,
with an optional prefix), then `env` in its order. An `env` value may refer
to variables defined before it, or to a service variable, as `$(NAME)`; `$$`
is a literal `$`, and a reference to nothing stays as written. Missing
ConfigMaps, Secrets or keys that are not optional make the container
unstartable (ContainerConfigError, with upstream's message).
"""

from __future__ import annotations

import base64
import logging
import re
from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from kubik.kubelet import downwardapi
from kubik.kubelet.errors import ContainerConfigError

log = logging.getLogger(__name__)

Object = dict[str, Any]

# upstream's IsEnvVarName: what envFrom keys must look like to be used
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# services every pod sees, from the default namespace, even without service links
_MASTER_SERVICES = ("kubernetes",)


class Objects(Protocol):
    """Where ConfigMaps and Secrets are read from; None when there is no such object."""

    async def get(self, resource: str, namespace: str, name: str) -> Object | None: ...


async def container_env(
    pod: Object,
    container: Object,
    *,
    objects: Objects,
    services: Iterable[Object],
    pod_ips: list[str] | None = None,
    host_ips: list[str] | None = None,
    allocatable: Mapping[str, Any] | None = None,
    warn: Callable[[str, str], None] | None = None,
) -> list[tuple[str, str]]:
    """The container's environment as (name, value) pairs, for CRI's `envs`.

    `services` are the Services the pod may be linked to: those of its
    namespace and the `kubernetes` Service of `default` (others are ignored).
    `pod_ips`/`host_ips` are the addresses the kubelet knows (the sandbox's),
    `allocatable` the node's (limits a container leaves unset read as it).
    `warn(reason, message)` receives upstream's warning events, such as the
    envFrom keys skipped for not being variable names.
    """
    namespace = pod["metadata"].get("namespace", "")
    links = (pod.get("spec") or {}).get("enableServiceLinks", True) is not False
    service_vars = service_env(services, namespace, enable_links=links)
    cache = _Cache(objects, namespace)
    env: dict[str, str] = {}

    for source in container.get("envFrom") or []:
        await _add_env_from(source, env, cache, namespace, warn)

    for var in container.get("env") or []:
        value = var.get("value") or ""
        if value:
            env[var["name"]] = expand(value, ChainMap(env, service_vars))
            continue
        resolved = await _value_from(
            var.get("valueFrom"),
            pod,
            container,
            cache,
            namespace,
            pod_ips=pod_ips,
            host_ips=host_ips,
            allocatable=allocatable,
        )
        if resolved is not None:
            env[var["name"]] = resolved

    pairs = list(env.items())
    pairs += [(name, value) for name, value in service_vars.items() if name not in env]
    return pairs


class _Cache:
    """Each ConfigMap and Secret read once per environment, as upstream does."""

    def __init__(self, objects: Objects, namespace: str) -> None:
        self._objects = objects
        self._namespace = namespace
        self._seen: dict[tuple[str, str], Object | None] = {}

    async def get(self, resource: str, name: str) -> Object | None:
        key = (resource, name)
        if key not in self._seen:
            self._seen[key] = await self._objects.get(resource, self._namespace, name)
        return self._seen[key]


def _data(resource: str, obj: Object) -> dict[str, str]:
    """A ConfigMap's `data`, or a Secret's `data` decoded."""
    if resource == "configmaps":
        return dict(obj.get("data") or {})
    return {
        key: base64.b64decode(value).decode("utf-8", "replace")
        for key, value in (obj.get("data") or {}).items()
    }


async def _add_env_from(
    source: Object,
    env: dict[str, str],
    cache: _Cache,
    namespace: str,
    warn: Callable[[str, str], None] | None,
) -> None:
    if source.get("configMapRef") is not None:
        ref, resource, kind = source["configMapRef"], "configmaps", "configMap"
    elif source.get("secretRef") is not None:
        ref, resource, kind = source["secretRef"], "secrets", "secret"
    else:
        return
    name = ref.get("name", "")
    obj = await cache.get(resource, name)
    if obj is None:
        if ref.get("optional"):
            return
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    prefix = source.get("prefix") or ""
    invalid = []
    for key, value in _data(resource, obj).items():
        if not _ENV_NAME.match(prefix + key):
            invalid.append(prefix + key)
            continue
        env[prefix + key] = value
    if invalid:
        message = (
            f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {kind} {namespace}/{name} "
            "were skipped since they are considered invalid environment variable names."
        )
        log.warning("%s", message)
        if warn is not None:
            warn("InvalidEnvironmentVariableNames", message)


async def _value_from(
    source: Object | None,
    pod: Object,
    container: Object,
    cache: _Cache,
    namespace: str,
    *,
    pod_ips: list[str] | None,
    host_ips: list[str] | None,
    allocatable: Mapping[str, Any] | None,
) -> str | None:
    """A `valueFrom`'s value; None for an optional reference to nothing (no variable)."""
    if not source:
        return ""
    try:
        if (ref := source.get("fieldRef")) is not None:
            return downwardapi.field_value(
                pod,
                ref.get("fieldPath", ""),
                api_version=ref.get("apiVersion", "v1"),
                pod_ips=pod_ips,
                host_ips=host_ips,
            )
        if (ref := source.get("resourceFieldRef")) is not None:
            return downwardapi.resource_value(
                ref, pod, container, allocatable=allocatable or downwardapi.node_allocatable()
            )
    except downwardapi.DownwardAPIError as exc:
        raise ContainerConfigError(str(exc)) from None
    for field, resource, kind in (
        ("configMapKeyRef", "configmaps", "ConfigMap"),
        ("secretKeyRef", "secrets", "Secret"),
    ):
        if (ref := source.get(field)) is None:
            continue
        name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
        obj = await cache.get(resource, name)
        if obj is None:
            if optional:
                return None
            raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
        data = _data(resource, obj)
        if key not in data:
            if optional:
                return None
            raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
        return data[key]
    return ""


# ------------------------------------------------------------------ service links


def service_env(
    services: Iterable[Object], namespace: str, *, enable_links: bool
) -> dict[str, str]:
    """The variables that point a pod at services (upstream's getServiceEnvVarMap).

    The master services of `default` are always there; the pod's namespace's
    own services when links are enabled, and one of them that shares a master
    service's name takes its place.
    """
    services = list(services)
    chosen: dict[str, Object] = {}
    for service in services:
        meta = service.get("metadata") or {}
        if not _has_cluster_ip(service):
            continue
        name = meta.get("name", "")
        if meta.get("namespace") == "default" and name in _MASTER_SERVICES:
            chosen.setdefault(name, service)
    for service in services:
        meta = service.get("metadata") or {}
        if _has_cluster_ip(service) and meta.get("namespace") == namespace and enable_links:
            chosen[meta.get("name", "")] = service
    variables: dict[str, str] = {}
    for name in sorted(chosen):
        variables.update(_service_vars(chosen[name]))
    return variables


def _has_cluster_ip(service: Object) -> bool:
    ip = (service.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def _variable_name(text: str) -> str:
    name = text.replace(".", "_").replace("-", "_").upper()
    return "_" + name if name[:1].isdigit() else name


def _service_vars(service: Object) -> dict[str, str]:
    spec = service["spec"]
    ip = spec["clusterIP"]
    ports = spec.get("ports") or []
    prefix = _variable_name(service["metadata"]["name"])
    found = {f"{prefix}_SERVICE_HOST": ip}
    if not ports:
        return found
    found[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
    for port in ports:
        if port.get("name"):
            found[f"{prefix}_SERVICE_PORT_{_variable_name(port['name'])}"] = str(port["port"])
    # the Docker link variables
    for index, port in enumerate(ports):
        protocol = port.get("protocol") or "TCP"
        number = port.get("port")
        url = f"{protocol.lower()}://{ip}:{number}"
        if index == 0:
            found[f"{prefix}_PORT"] = url
        port_prefix = f"{prefix}_PORT_{number}_{protocol.upper()}"
        found[port_prefix] = url
        found[f"{port_prefix}_PROTO"] = protocol.lower()
        found[f"{port_prefix}_PORT"] = str(number)
        found[f"{port_prefix}_ADDR"] = ip
    return found


# ------------------------------------------------------------------ $(VAR) expansion


def expand(text: str, env: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """`text` with each `$(NAME)` replaced by NAME's value in `env`.

    `$$` is a literal `$` (so `$$(NAME)` stays `$(NAME)`); a `$(NAME)` that
    names nothing, an unclosed `$(`, and a `$` before anything else stay as
    written. This is the syntax of env values and of command and args.
    """
    lookup = env if isinstance(env, Mapping) else dict(env)
    return "".join(
        piece if name is None else lookup.get(name, piece) for piece, name in _pieces(text)
    )


def references(text: str) -> list[str]:
    """The names `text` refers to as `$(NAME)`, in order."""
    return [name for _, name in _pieces(text) if name is not None]


def _pieces(text: str) -> Iterator[tuple[str, str | None]]:
    """`text` cut into literal pieces (name None) and references (`$(NAME)`, NAME)."""
    i, size = 0, len(text)
    while i < size:
        if text[i] != "$" or i + 1 == size:
            yield text[i], None
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            yield "$", None
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close < 0:
                yield "$(", None
                i += 2
                continue
            yield text[i : close + 1], text[i + 2 : close]
            i = close + 1
        else:
            yield "$" + following, None
            i += 2
