"""Validation of pod specs and Pods (upstream's ValidatePodSpec and ValidatePodUpdate).

The pod spec rules are shared by Pods and by the pod templates of
workloads; a Pod also gets the checks only a real pod needs (`is_pod`), and
on update the rule that its spec is fixed except for images,
activeDeadlineSeconds, added tolerations and removed scheduling gates.
Containers are checked in `pod_containers`, volumes in `pod_volumes`.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from kubik.api.kinds.nodeselector import validate_node_affinity
from kubik.api.kinds.pod_containers import (
    id_range,
    validate_containers,
    validate_init_containers,
)
from kubik.api.kinds.pod_volumes import validate_volumes
from kubik.api.validation import (
    MAX_INT32,
    Causes,
    dns1123_label_problems,
    dns1123_subdomain_problems,
    duplicate,
    each_invalid,
    forbidden,
    inclusive_range_error,
    invalid,
    is_int,
    label_value_problems,
    not_supported,
    qualified_name_problems,
    required,
    required_enum,
    semantic_equal,
    spec_diff,
    validate_annotations,
    validate_label_selector,
    validate_labels,
)

Object = dict[str, Any]

_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def validate_pod_template(template: Object, path: str) -> Causes:
    """A workload's pod template (upstream's ValidatePodTemplateSpec)."""
    metadata = template.get("metadata") or {}
    spec = template.get("spec") or {}
    causes = validate_labels(metadata.get("labels"), f"{path}.labels")
    causes += validate_annotations(metadata.get("annotations"), f"{path}.annotations")
    causes += validate_pod_spec(spec, f"{path}.spec", is_pod=False)
    if spec.get("ephemeralContainers"):
        causes.append(
            forbidden(
                f"{path}.spec.ephemeralContainers",
                "ephemeral containers not allowed in pod template",
            )
        )
    return causes


def validate_pod(pod: Object, old: Object | None) -> Causes:
    spec = pod.get("spec") or {}
    causes = validate_pod_spec(spec, "spec", is_pod=True)
    for key in ("containers", "initContainers"):
        for i, container in enumerate(spec.get(key) or []):
            image = container.get("image") or ""
            if image != image.strip():
                causes.append(
                    invalid(
                        f"spec.{key}[{i}].image",
                        image,
                        "must not have leading or trailing whitespace",
                    )
                )
    if old is None:
        if spec.get("ephemeralContainers"):
            causes.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
        if spec.get("nodeName") and spec.get("schedulingGates"):
            causes.append(
                forbidden(
                    "spec.nodeName", "cannot be set until all schedulingGates have been cleared"
                )
            )
        return causes
    return causes + _validate_pod_update(spec, old.get("spec") or {})


# ------------------------------------------------------------------ pod spec


def validate_pod_spec(spec: Object, path: str, *, is_pod: bool) -> Causes:
    causes: Causes = []
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is None:
        causes.append(required(f"{path}.terminationGracePeriodSeconds"))
    volumes, volume_causes = validate_volumes(spec.get("volumes") or [], f"{path}.volumes")
    causes += volume_causes
    causes += validate_containers(
        spec.get("containers") or [], volumes, grace, f"{path}.containers"
    )
    causes += validate_init_containers(spec, volumes, grace, f"{path}.initContainers")
    causes += _host_network_ports(spec, path, is_pod)
    causes += required_enum(spec.get("restartPolicy"), f"{path}.restartPolicy", _RESTART_POLICIES)
    causes += required_enum(spec.get("dnsPolicy"), f"{path}.dnsPolicy", _DNS_POLICIES)
    causes += validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    causes += _pod_security_context(spec.get("securityContext") or {}, f"{path}.securityContext")
    causes += _dns_config(spec, f"{path}.dnsConfig")
    for i, gate in enumerate(spec.get("readinessGates") or []):
        kind = gate.get("conditionType", "")
        causes += each_invalid(
            f"{path}.readinessGates[{i}].conditionType", kind, qualified_name_problems(kind)
        )
    causes += _scheduling_gates(spec.get("schedulingGates") or [], f"{path}.schedulingGates")
    causes += _topology_spread(spec.get("topologySpreadConstraints") or [], path)
    affinity = spec.get("affinity") or {}
    if affinity.get("nodeAffinity"):
        causes += validate_node_affinity(affinity["nodeAffinity"], f"{path}.affinity.nodeAffinity")
    causes += _pod_affinity(affinity, f"{path}.affinity")
    for key in ("serviceAccountName", "nodeName", "priorityClassName", "runtimeClassName"):
        if spec.get(key):
            causes += each_invalid(
                f"{path}.{key}", spec[key], dns1123_subdomain_problems(spec[key])
            )
    deadline = spec.get("activeDeadlineSeconds")
    if is_int(deadline) and not 1 <= deadline <= MAX_INT32:
        causes.append(
            invalid(f"{path}.activeDeadlineSeconds", deadline, inclusive_range_error(1, MAX_INT32))
        )
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            causes += each_invalid(f"{path}.{key}", spec[key], dns1123_label_problems(spec[key]))
    causes += validate_tolerations(spec.get("tolerations") or [], f"{path}.tolerations")
    for i, alias in enumerate(spec.get("hostAliases") or []):
        causes += _ip(alias.get("ip", ""), f"{path}.hostAliases[{i}].ip")
        for j, host in enumerate(alias.get("hostnames") or []):
            causes += each_invalid(
                f"{path}.hostAliases[{i}].hostnames[{j}]", host, dns1123_subdomain_problems(host)
            )
    if spec.get("preemptionPolicy") is not None:
        causes += required_enum(
            spec["preemptionPolicy"], f"{path}.preemptionPolicy", ("PreemptLowerPriority", "Never")
        )
    return causes


def _ip(value: str, path: str) -> Causes:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [
            invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
        ]
    return []


def _pod_security_context(context: Object, path: str) -> Causes:
    causes: Causes = []
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        causes += id_range(context.get(key), f"{path}.{key}")
    for i, group in enumerate(context.get("supplementalGroups") or []):
        causes += id_range(group, f"{path}.supplementalGroups[{i}]")
    return causes


def _dns_config(spec: Object, path: str) -> Causes:
    config = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if config is None:
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not config.get("nameservers"):
            return [
                required(
                    f"{path}.nameservers",
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )
            ]
    if config is None:
        return []
    causes: Causes = []
    nameservers = config.get("nameservers") or []
    if len(nameservers) > 3:
        causes.append(
            invalid(f"{path}.nameservers", nameservers, "must not have more than 3 nameservers")
        )
    for i, server in enumerate(nameservers):
        causes += _ip(server, f"{path}.nameservers[{i}]")
    for i, search in enumerate(config.get("searches") or []):
        if search != ".":
            trimmed = search.removesuffix(".")
            causes += each_invalid(f"{path}.searches[{i}]", trimmed, _subdomain_underscore(trimmed))
    for i, option in enumerate(config.get("options") or []):
        if not option.get("name"):
            causes.append(required(f"{path}.options[{i}]", "must not be empty"))
    return causes


def _subdomain_underscore(value: str) -> list[str]:
    """DNS search domains may hold underscores (relaxed DNS search validation)."""
    return dns1123_subdomain_problems(value.replace("_", "a"))


def _scheduling_gates(gates: list[Object], path: str) -> Causes:
    causes: Causes = []
    seen: set[str] = set()
    for i, gate in enumerate(gates):
        name = gate.get("name", "")
        causes += each_invalid(f"{path}[{i}]", name, qualified_name_problems(name))
        if name in seen:
            causes.append(duplicate(f"{path}[{i}]", name))
        seen.add(name)
    return causes


def _topology_spread(constraints: list[Object], path: str) -> Causes:
    causes: Causes = []
    pairs = [(c.get("topologyKey") or "", c.get("whenUnsatisfiable")) for c in constraints]
    for i, constraint in enumerate(constraints):
        at = f"{path}.topologySpreadConstraints[{i}]"
        skew = constraint.get("maxSkew")
        if not is_int(skew) or skew <= 0:
            causes.append(invalid(f"{at}.maxSkew", skew, "must be greater than zero"))
        key = constraint.get("topologyKey") or ""
        if not key:
            causes.append(required(f"{at}.topologyKey", "can not be empty"))
        action = constraint.get("whenUnsatisfiable")
        if not action:
            causes.append(required(f"{at}.whenUnsatisfiable", "can not be empty"))
        elif action not in ("DoNotSchedule", "ScheduleAnyway"):
            causes.append(
                not_supported(
                    f"{at}.whenUnsatisfiable", action, ("DoNotSchedule", "ScheduleAnyway")
                )
            )
        if pairs[i] in pairs[i + 1 :]:  # a constraint is one (topology key, action) pair
            causes.append(
                duplicate(f"{at}.{{topologyKey, whenUnsatisfiable}}", f"{{{key}, {action}}}")
            )
        domains = constraint.get("minDomains")
        if domains is not None:
            if not is_int(domains) or domains <= 0:
                causes.append(invalid(f"{at}.minDomains", domains, "must be greater than zero"))
            if action != "DoNotSchedule":
                causes.append(
                    invalid(
                        f"{at}.minDomains",
                        domains,
                        f"can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}",
                    )
                )
        for policy in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            if constraint.get(policy) is not None:
                causes += required_enum(constraint[policy], f"{at}.{policy}", ("Honor", "Ignore"))
        selector = constraint.get("labelSelector")
        causes += _match_label_keys(constraint.get("matchLabelKeys") or [], selector, at)
        causes += validate_label_selector(selector, f"{at}.labelSelector")
    return causes


def _match_label_keys(keys: list[str], selector: Object | None, at: str) -> Causes:
    """A spread constraint's matchLabelKeys: label keys its label selector does not name."""
    if not keys:
        return []
    path = f"{at}.matchLabelKeys"
    causes: Causes = []
    if selector is None:
        causes.append(forbidden(path, "must not be specified when labelSelector is not set"))
    named = set((selector or {}).get("matchLabels") or {})
    named |= {e.get("key") for e in (selector or {}).get("matchExpressions") or []}
    for i, key in enumerate(keys):
        causes += each_invalid(f"{path}[{i}]", key, qualified_name_problems(key))
        if key in named:
            causes.append(
                invalid(f"{path}[{i}]", key, "exists in both matchLabelKeys and labelSelector")
            )
    return causes


def _pod_affinity(affinity: Object, path: str) -> Causes:
    """Pod affinity and anti-affinity terms (upstream's validatePodAffinityTerm)."""
    causes: Causes = []
    for kind in ("podAffinity", "podAntiAffinity"):
        rules = affinity.get(kind) or {}
        at = f"{path}.{kind}"
        required_terms = "requiredDuringSchedulingIgnoredDuringExecution"
        for i, term in enumerate(rules.get(required_terms) or []):
            causes += _pod_affinity_term(term, f"{at}.{required_terms}[{i}]")
        preferred = "preferredDuringSchedulingIgnoredDuringExecution"
        for i, weighted in enumerate(rules.get(preferred) or []):
            weight = weighted.get("weight")
            if not is_int(weight) or not 1 <= weight <= 100:
                causes.append(
                    invalid(f"{at}.{preferred}[{i}].weight", weight, "must be in the range 1-100")
                )
            causes += _pod_affinity_term(
                weighted.get("podAffinityTerm") or {}, f"{at}.{preferred}[{i}].podAffinityTerm"
            )
    return causes


def _pod_affinity_term(term: Object, path: str) -> Causes:
    selector = term.get("labelSelector")
    causes = validate_label_selector(selector, f"{path}.labelSelector")
    causes += validate_label_selector(term.get("namespaceSelector"), f"{path}.namespaceSelector")
    for name in term.get("namespaces") or []:
        causes += each_invalid(f"{path}.namespace", name, dns1123_label_problems(name))
    match_keys = term.get("matchLabelKeys") or []
    mismatch_keys = term.get("mismatchLabelKeys") or []
    for field, keys in (("matchLabelKeys", match_keys), ("mismatchLabelKeys", mismatch_keys)):
        if keys and selector is None:
            causes.append(
                forbidden(f"{path}.{field}", "must not be specified when labelSelector is not set")
            )
        for i, key in enumerate(keys):
            causes += each_invalid(f"{path}.{field}[{i}]", key, qualified_name_problems(key))
    for i, key in enumerate(match_keys):
        if key in mismatch_keys:
            causes.append(
                invalid(
                    f"{path}.matchLabelKeys[{i}]",
                    key,
                    "exists in both matchLabelKeys and mismatchLabelKeys",
                )
            )
    key = term.get("topologyKey") or ""
    if not key:
        causes.append(required(f"{path}.topologyKey", "can not be empty"))
    return causes + each_invalid(f"{path}.topologyKey", key, qualified_name_problems(key))


def validate_tolerations(tolerations: list[Object], path: str) -> Causes:
    causes: Causes = []
    for i, toleration in enumerate(tolerations):
        at = f"{path}[{i}]"
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or ""
        value = toleration.get("value") or ""
        effect = toleration.get("effect") or ""
        if key:
            causes += each_invalid(f"{at}.key", key, qualified_name_problems(key))
        if not key and operator != "Exists":
            causes.append(
                invalid(
                    f"{at}.operator",
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all values '
                    'and all keys"',
                )
            )
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            causes.append(
                invalid(
                    f"{at}.effect",
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if operator in ("Equal", ""):
            problems = label_value_problems(value)
            if problems:
                causes.append(invalid(f"{at}.operator", value, ";".join(problems)))
        elif operator == "Exists":
            if value:
                causes.append(
                    invalid(
                        f"{at}.operator", value, "value must be empty when `operator` is 'Exists'"
                    )
                )
        else:
            causes.append(not_supported(f"{at}.operator", operator, ("Equal", "Exists")))
        if effect and effect not in _TAINT_EFFECTS:
            causes.append(not_supported(f"{at}.effect", effect, _TAINT_EFFECTS))
    return causes


def _host_network_ports(spec: Object, path: str, is_pod: bool) -> Causes:
    if not spec.get("hostNetwork"):
        return []
    causes: Causes = []
    for i, container in enumerate(spec.get("containers") or []):
        for j, port in enumerate(container.get("ports") or []):
            host, inside = port.get("hostPort") or 0, port.get("containerPort") or 0
            if (is_pod or host) and host != inside:
                causes.append(
                    invalid(
                        f"{path}.containers[{i}].ports[{j}].hostPort",
                        host,
                        "must match `containerPort` when `hostNetwork` is true",
                    )
                )
    return causes


# -------------------------------------------------------------------- update


def _validate_pod_update(spec: Object, old_spec: Object) -> Causes:
    causes: Causes = []
    for key in ("containers", "initContainers"):
        new_list, old_list = spec.get(key) or [], old_spec.get(key) or []
        if len(new_list) != len(old_list):
            causes.append(forbidden(f"spec.{key}", "pod updates may not add or remove containers"))
            return causes
        for i, container in enumerate(new_list):
            if not container.get("image"):
                causes.append(required(f"spec.{key}[{i}].image"))
    deadline, old_deadline = (
        spec.get("activeDeadlineSeconds"),
        old_spec.get("activeDeadlineSeconds"),
    )
    if deadline is not None:
        if not 0 <= deadline <= MAX_INT32:
            causes.append(
                invalid("spec.activeDeadlineSeconds", deadline, inclusive_range_error(0, MAX_INT32))
            )
            return causes
        if old_deadline is not None and old_deadline < deadline:
            causes.append(
                invalid(
                    "spec.activeDeadlineSeconds",
                    deadline,
                    "must be less than or equal to previous value",
                )
            )
            return causes
    elif old_deadline is not None:
        causes.append(
            invalid(
                "spec.activeDeadlineSeconds",
                None,
                "must not update from a positive integer to nil value",
            )
        )
    causes += _only_added_tolerations(
        spec.get("tolerations") or [], old_spec.get("tolerations") or []
    )
    causes += _only_removed_gates(
        spec.get("schedulingGates") or [], old_spec.get("schedulingGates") or []
    )
    if semantic_equal(spec, old_spec):
        return causes
    munged = _munged(spec, old_spec)
    if not semantic_equal(munged, old_spec):
        causes.append(
            forbidden(
                "spec",
                f"pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n"
                + spec_diff(old_spec, munged),
            )
        )
    return causes


def _munged(spec: Object, old_spec: Object) -> Object:
    """The new spec with the fields a pod update may change put back as they were."""
    munged = copy.deepcopy(spec)
    for key in ("containers", "initContainers"):
        for container, old in zip(munged.get(key) or [], old_spec.get(key) or [], strict=True):
            container["image"] = old.get("image")
    for key in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        munged.pop(key, None)
        if key in old_spec:
            munged[key] = old_spec[key]
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if is_int(old_grace) and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    return munged


def _only_added_tolerations(new: list[Object], old: list[Object]) -> Causes:
    def without_seconds(toleration: Object) -> Object:
        return {k: v for k, v in toleration.items() if k != "tolerationSeconds"}

    kept = [without_seconds(t) for t in new]
    for toleration in old:
        if not any(semantic_equal(without_seconds(toleration), t) for t in kept):
            return [
                forbidden(
                    "spec.tolerations",
                    "existing toleration can not be modified except its tolerationSeconds",
                )
            ]
    return validate_tolerations(new, "spec.tolerations")


def _only_removed_gates(new: list[Object], old: list[Object]) -> Causes:
    old_names = {gate.get("name") for gate in old}
    return [
        forbidden(
            f"spec.schedulingGates[{i}].name",
            f"only deletion is allowed, but found new scheduling gate '{gate.get('name')}'",
        )
        for i, gate in enumerate(new)
        if gate.get("name") not in old_names
    ]
