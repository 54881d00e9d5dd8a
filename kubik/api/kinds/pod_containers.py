"""Validation of a pod's containers: names, images, ports, env, mounts, probes, handlers.

Regular and init containers share upstream's validateContainerCommon; init
containers may not have probes or lifecycle hooks unless they are sidecars
(`restartPolicy: Always`). Resource requirements are checked in `resources`.
"""

from __future__ import annotations

from typing import Any

from kubik.api.kinds.pod_volumes import no_backsteps
from kubik.api.kinds.resources import validate_resources
from kubik.api.validation import (
    MAX_INT32,
    Causes,
    config_key_problems,
    dns1123_label_problems,
    dns1123_subdomain_problems,
    duplicate,
    each_invalid,
    forbidden,
    inclusive_range_error,
    invalid,
    is_int,
    nonnegative,
    not_found,
    not_supported,
    port_name_problems,
    port_number_or_name,
    port_number_problems,
    qualified_name_problems,
    required,
    required_enum,
)

Object = dict[str, Any]

_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
_ENV_FIELD_PATHS = (
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
    "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
)  # fmt: skip
# Field paths the downward API converts at all (others fail to convert).
_CONVERTIBLE_FIELD_PATHS = _ENV_FIELD_PATHS + (
    "metadata.annotations", "metadata.labels", "spec.restartPolicy", "spec.schedulerName",
    "status.phase",
)  # fmt: skip
_ENV_RESOURCE_FIELDS = (
    "limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
    "requests.ephemeral-storage", "requests.memory",
)  # fmt: skip


def validate_containers(
    containers: list[Object], volumes: dict[str, Object], grace: Any, path: str
) -> Causes:
    if not containers:
        return [required(path)]
    causes: Causes = []
    names: set[str] = set()
    for i, container in enumerate(containers):
        at = f"{path}[{i}]"
        causes += _validate_container(container, volumes, at)
        name = container.get("name") or ""
        if name in names:
            causes.append(duplicate(f"{at}.name", name))
        names.add(name)
        causes += _lifecycle_and_probes(container, grace, at)
        if container.get("restartPolicy") is not None:
            causes.append(
                forbidden(f"{at}.restartPolicy", "may not be set for non-init containers")
            )
    return causes + _host_port_conflicts(containers, path)


def validate_init_containers(
    spec: Object, volumes: dict[str, Object], grace: Any, path: str
) -> Causes:
    causes: Causes = []
    names = {c.get("name") or "" for c in spec.get("containers") or []}
    for i, container in enumerate(spec.get("initContainers") or []):
        at = f"{path}[{i}]"
        causes += _validate_container(container, volumes, at)
        policy = container.get("restartPolicy")
        if policy is not None and policy != "Always":
            causes.append(not_supported(f"{at}.restartPolicy", policy, ("Always",)))
        name = container.get("name") or ""
        if name in names:
            causes.append(duplicate(f"{at}.name", name))
        elif name:
            names.add(name)
        causes += _host_port_conflicts([container], path)
        if policy == "Always":
            causes += _lifecycle_and_probes(container, grace, at)
        else:
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if container.get(key) is not None:
                    causes.append(
                        forbidden(
                            f"{at}.{key}",
                            "may not be set for init containers without restartPolicy=Always",
                        )
                    )
    return causes


def _validate_container(container: Object, volumes: dict[str, Object], path: str) -> Causes:
    causes: Causes = []
    name = container.get("name") or ""
    if not name:
        causes.append(required(f"{path}.name"))
    else:
        causes += each_invalid(f"{path}.name", name, dns1123_label_problems(name))
    if not container.get("image"):
        causes.append(required(f"{path}.image"))
    causes += required_enum(
        container.get("terminationMessagePolicy"),
        f"{path}.terminationMessagePolicy",
        _TERMINATION_MESSAGE_POLICIES,
    )
    causes += _ports(container.get("ports") or [], f"{path}.ports")
    causes += _env(container.get("env") or [], f"{path}.env")
    causes += _env_from(container.get("envFrom") or [], f"{path}.envFrom")
    causes += _volume_mounts(container, volumes, f"{path}.volumeMounts")
    causes += required_enum(
        container.get("imagePullPolicy"), f"{path}.imagePullPolicy", _PULL_POLICIES
    )
    causes += validate_resources(container.get("resources") or {}, f"{path}.resources")
    context = container.get("securityContext") or {}
    for key in ("runAsUser", "runAsGroup"):
        causes += id_range(context.get(key), f"{path}.securityContext.{key}")
    return causes


def _ports(ports: list[Object], path: str) -> Causes:
    causes: Causes = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        at = f"{path}[{i}]"
        name = port.get("name") or ""
        if name:
            problems = port_name_problems(name)
            if problems:
                causes += each_invalid(f"{at}.name", name, problems)
            elif name in names:
                causes.append(duplicate(f"{at}.name", name))
            else:
                names.add(name)
        number = port.get("containerPort") or 0
        if not number:
            causes.append(required(f"{at}.containerPort"))
        else:
            causes += each_invalid(f"{at}.containerPort", number, port_number_problems(number))
        host = port.get("hostPort") or 0
        if host:
            causes += each_invalid(f"{at}.hostPort", host, port_number_problems(host))
        causes += required_enum(port.get("protocol"), f"{at}.protocol", _PROTOCOLS)
    return causes


def _host_port_conflicts(containers: list[Object], path: str) -> Causes:
    causes: Causes = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        for j, port in enumerate(container.get("ports") or []):
            if not port.get("hostPort"):
                continue
            key = f"{port.get('protocol', '')}/{port.get('hostIP', '')}/{port['hostPort']}"
            if key in seen:
                causes.append(duplicate(f"{path}[{i}].ports[{j}].hostPort", key))
            seen.add(key)
    return causes


def _env_name_problems(name: str) -> list[str]:
    """Relaxed variable names (upstream's default since 1.32): printable ASCII but '='."""
    if all(32 <= ord(c) <= 126 and c != "=" for c in name):
        return []
    return [
        "a valid environment variable name must consist only of printable ASCII characters "
        "other than '='"
    ]


def _env(variables: list[Object], path: str) -> Causes:
    causes: Causes = []
    for i, variable in enumerate(variables):
        at = f"{path}[{i}]"
        name = variable.get("name") or ""
        if not name:
            causes.append(required(f"{at}.name"))
        else:
            causes += each_invalid(f"{at}.name", name, _env_name_problems(name))
        causes += _env_value_from(variable, f"{at}.valueFrom")
    return causes


def _env_value_from(variable: Object, path: str) -> Causes:
    source = variable.get("valueFrom")
    if source is None:
        return []
    causes: Causes = []
    count = 0
    if source.get("fieldRef") is not None:
        count += 1
        causes += _env_field_ref(source["fieldRef"], f"{path}.fieldRef")
    if source.get("resourceFieldRef") is not None:
        count += 1
        resource = source["resourceFieldRef"].get("resource") or ""
        if not resource:
            causes.append(required(f"{path}.resourceFieldRef.resource"))
        elif resource not in _ENV_RESOURCE_FIELDS and not resource.startswith(
            ("requests.hugepages-", "limits.hugepages-")
        ):
            causes.append(
                not_supported(f"{path}.resourceFieldRef.resource", resource, _ENV_RESOURCE_FIELDS)
            )
    for key in ("configMapKeyRef", "secretKeyRef"):
        if source.get(key) is not None:
            count += 1
            causes += _key_selector(source[key], f"{path}.{key}")
    if count == 0:
        causes.append(
            invalid(
                path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                "`secretKeyRef`",
            )
        )
    elif variable.get("value"):
        causes.append(invalid(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        causes.append(invalid(path, "", "may not have more than one field specified at a time"))
    return causes


def _env_field_ref(selector: Object, path: str) -> Causes:
    if not selector.get("apiVersion"):
        return [required(f"{path}.apiVersion")]
    field_path = selector.get("fieldPath") or ""
    if not field_path:
        return [required(f"{path}.fieldPath")]
    base, bracket, subscript = field_path.partition("[")
    if bracket:
        key = subscript.removesuffix("]").strip("'")
        if base == "metadata.annotations":
            return each_invalid(path, key.lower(), qualified_name_problems(key.lower()))
        if base == "metadata.labels":
            return each_invalid(path, key, qualified_name_problems(key))
    if field_path not in _CONVERTIBLE_FIELD_PATHS:
        return [
            invalid(
                f"{path}.fieldPath",
                field_path,
                f"error converting fieldPath: field label not supported: {field_path}",
            )
        ]
    if field_path not in _ENV_FIELD_PATHS:
        return [not_supported(f"{path}.fieldPath", field_path, sorted(_ENV_FIELD_PATHS))]
    return []


def _key_selector(selector: Object, path: str) -> Causes:
    name = selector.get("name") or ""
    causes = each_invalid(f"{path}.name", name, dns1123_subdomain_problems(name))
    key = selector.get("key") or ""
    if not key:
        causes.append(required(f"{path}.key"))
    else:
        causes += each_invalid(f"{path}.key", key, config_key_problems(key))
    return causes


def _env_from(sources: list[Object], path: str) -> Causes:
    causes: Causes = []
    for i, source in enumerate(sources):
        at = f"{path}[{i}]"
        prefix = source.get("prefix") or ""
        if prefix:
            causes += each_invalid(f"{at}.prefix", prefix, _env_name_problems(prefix))
        count = 0
        for key in ("configMapRef", "secretRef"):
            if source.get(key) is not None:
                count += 1
                name = source[key].get("name") or ""
                if not name:
                    causes.append(required(f"{at}.{key}.name"))
                else:
                    masked = name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name
                    causes += each_invalid(
                        f"{at}.{key}.name", name, dns1123_subdomain_problems(masked)
                    )
        if count == 0:
            causes.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            causes.append(invalid(path, "", "may not have more than one field specified at a time"))
    return causes


def _volume_mounts(container: Object, volumes: dict[str, Object], path: str) -> Causes:
    causes: Causes = []
    mount_paths: set[str] = set()
    devices = {d.get("name"): d.get("devicePath") for d in container.get("volumeDevices") or []}
    for i, mount in enumerate(container.get("volumeMounts") or []):
        at = f"{path}[{i}]"
        name = mount.get("name") or ""
        mount_path = mount.get("mountPath") or ""
        if not name:
            causes.append(required(f"{at}.name"))
        if name not in volumes:
            causes.append(not_found(f"{at}.name", name))
        if not mount_path:
            causes.append(required(f"{at}.mountPath"))
        if mount_path in mount_paths:
            causes.append(invalid(f"{at}.mountPath", mount_path, "must be unique"))
        mount_paths.add(mount_path)
        if name in devices:
            causes.append(invalid(f"{at}.name", name, "must not already exist in volumeDevices"))
        if mount_path in devices.values():
            causes.append(
                invalid(
                    f"{at}.mountPath",
                    mount_path,
                    "must not already exist as a path in volumeDevices",
                )
            )
        # Upstream reports subPath problems under the list, not the item.
        sub_path, sub_expr = mount.get("subPath") or "", mount.get("subPathExpr") or ""
        if sub_path:
            if sub_path.startswith("/"):
                causes.append(invalid(f"{path}.subPath", sub_path, "must be a relative path"))
            causes += no_backsteps(sub_path, f"{path}.subPath")
        if sub_expr:
            if sub_path:
                causes.append(
                    invalid(
                        f"{at}.subPathExpr",
                        sub_expr,
                        "subPathExpr and subPath are mutually exclusive",
                    )
                )
            if sub_expr.startswith("/"):
                causes.append(invalid(f"{path}.subPathExpr", sub_expr, "must be a relative path"))
            causes += no_backsteps(sub_expr, f"{path}.subPathExpr")
    return causes


def id_range(value: Any, path: str) -> Causes:
    """A user or group id a container runs as."""
    if is_int(value) and not 0 <= value <= MAX_INT32:
        return [invalid(path, value, inclusive_range_error(0, MAX_INT32))]
    return []


# ------------------------------------------------------ probes and lifecycle


def _lifecycle_and_probes(container: Object, grace: Any, path: str) -> Causes:
    causes: Causes = []
    for stage in ("postStart", "preStop"):
        handler = (container.get("lifecycle") or {}).get(stage)
        if handler is not None:
            causes += _handler(handler, grace, f"{path}.lifecycle.{stage}")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(key)
        if probe is None:
            continue
        at = f"{path}.{key}"
        causes += _handler(probe, grace, at, probe=True)
        for field in (
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
        ):
            causes += nonnegative(f"{at}.{field}", probe.get(field))
        termination = probe.get("terminationGracePeriodSeconds")
        if is_int(termination) and termination <= 0:
            causes.append(
                invalid(
                    f"{at}.terminationGracePeriodSeconds", termination, "must be greater than 0"
                )
            )
        if key == "readinessProbe" and termination is not None:
            causes.append(
                invalid(
                    f"{at}.terminationGracePeriodSeconds",
                    termination,
                    "must not be set for readinessProbes",
                )
            )
        if key != "readinessProbe" and probe.get("successThreshold", 1) != 1:
            causes.append(invalid(f"{at}.successThreshold", probe["successThreshold"], "must be 1"))
    return causes


def _handler(handler: Object, grace: Any, path: str, *, probe: bool = False) -> Causes:
    """Exactly one action: exec, httpGet, tcpSocket, and grpc (probes) or sleep (lifecycle)."""
    kinds = ("exec", "httpGet", "tcpSocket", "grpc") if probe else (
        "exec", "httpGet", "tcpSocket", "sleep"
    )  # fmt: skip
    causes: Causes = []
    found = False
    for kind in kinds:
        action = handler.get(kind)
        if action is None:
            continue
        if found:
            causes.append(forbidden(f"{path}.{kind}", "may not specify more than 1 handler type"))
            continue
        found = True
        causes += _action(kind, action, grace, f"{path}.{kind}")
    if not found:
        causes.append(required(path, "must specify a handler type"))
    return causes


def _action(kind: str, action: Object, grace: Any, path: str) -> Causes:
    if kind == "exec":
        return [] if action.get("command") else [required(f"{path}.command")]
    if kind == "httpGet":
        causes = [] if action.get("path") else [required(f"{path}.path")]
        causes += port_number_or_name(f"{path}.port", action.get("port"))
        scheme = action.get("scheme")
        if scheme not in ("HTTP", "HTTPS"):
            causes.append(not_supported(f"{path}.scheme", scheme or "", ("HTTP", "HTTPS")))
        return causes
    if kind in ("tcpSocket", "grpc"):
        return port_number_or_name(f"{path}.port", action.get("port"))
    seconds = action.get("seconds")
    if is_int(grace) and is_int(seconds) and not 0 < seconds <= grace:
        return [
            invalid(
                path,
                seconds,
                f"must be greater than 0 and less than terminationGracePeriodSeconds ({grace}). "
                "Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep.",
            )
        ]
    return []
