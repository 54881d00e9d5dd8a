"""Validation: one cause per bad field, as upstream's 422 Invalid answers list them.

`validate(resource, obj, old=None)` checks the metadata every object has,
then the kind's own rules (registered by (group, kind) with `@validator`,
in the modules of `kubik.api.kinds`); `old` is the stored object on update,
for immutable fields.

Causes are worded as upstream's `field.Error` bodies: "Required value",
`Invalid value: "Bad_Name": <detail>`, `Unsupported value: "X": supported
values: "A", "B"`… The bad value is written the way Go prints it (`%q` for
strings, `%v` for numbers); values Go prints as structs are rendered by the
caller and passed as `GoValue`. The format checks (DNS names, label keys
and values, ports, config keys) are apimachinery's, with its messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from kubik.api import selectors
from kubik.api.errors import field_cause
from kubik.api.registry import Resource

Object = dict[str, Any]
Cause = dict[str, str]
Causes = list[Cause]
Validator = Callable[[Object, Object | None], Causes]

_VALIDATORS: dict[tuple[str, str], Validator] = {}


def validator(group: str, kind: str) -> Callable[[Validator], Validator]:
    def register(fn: Validator) -> Validator:
        _VALIDATORS[(group, kind)] = fn
        return fn

    return register


def validate(resource: Resource, obj: Object, *, old: Object | None) -> Causes:
    causes = validate_metadata(resource, obj.get("metadata") or {}, old)
    fn = _VALIDATORS.get((resource.group, resource.kind))
    if fn is not None:
        causes += fn(obj, old)
    return causes


# ------------------------------------------------------------- cause wording


class GoValue(str):
    """A bad value already written as Go prints it (a struct, a map): shown verbatim."""


def go_value(value: Any) -> str:
    """A bad value as upstream's error bodies print it."""
    if isinstance(value, GoValue):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    return go_literal(value)


def go_quote(text: str) -> str:
    """Go's %q for the strings API objects hold."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f'"{escaped}"'


def go_literal(value: Any) -> GoValue:
    """Go's %#v of a decoded JSON value (maps as map[string]string when they are)."""
    if isinstance(value, dict):
        if all(isinstance(v, str) for v in value.values()):
            entries = ", ".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in sorted(value.items()))
            return GoValue(f"map[string]string{{{entries}}}")
        entries = ", ".join(f"{go_quote(k)}:{go_literal(v)}" for k, v in sorted(value.items()))
        return GoValue(f"map[string]interface {{}}{{{entries}}}")
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return GoValue("[]string{" + ", ".join(go_quote(v) for v in value) + "}")
        return GoValue("[]interface {}{" + ", ".join(go_literal(v) for v in value) + "}")
    return GoValue(go_value(value))


def go_string_map(value: dict[str, str] | None) -> GoValue:
    """A map[string]string field, nil when absent."""
    if value is None:
        return GoValue("map[string]string(nil)")
    return go_literal(value)


def go_label_selector(selector: Object | None) -> GoValue:
    """A *metav1.LabelSelector as upstream's messages show it."""
    if selector is None:
        return GoValue("null")
    expressions = selector.get("matchExpressions")
    if expressions is None:
        rendered = "[]v1.LabelSelectorRequirement(nil)"
    else:
        items = ", ".join(
            "v1.LabelSelectorRequirement{"
            f"Key:{go_quote(e.get('key', ''))}, Operator:{go_quote(e.get('operator', ''))}, "
            f"Values:{_go_strings(e.get('values'))}}}"
            for e in expressions
        )
        rendered = f"[]v1.LabelSelectorRequirement{{{items}}}"
    labels = go_string_map(selector.get("matchLabels"))
    return GoValue(f"v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{rendered}}}")


def go_int_or_string(value: Any) -> GoValue:
    """An intstr.IntOrString as Go's %#v prints it."""
    if isinstance(value, str):
        return GoValue(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(value)}}}")
    return GoValue(f'intstr.IntOrString{{Type:0, IntVal:{value or 0}, StrVal:""}}')


def _go_strings(values: list[str] | None) -> str:
    return "[]string(nil)" if values is None else go_literal(values)


def _with_detail(text: str, detail: str) -> str:
    return f"{text}: {detail}" if detail else text


def required(path: str, detail: str = "") -> Cause:
    return field_cause(path, _with_detail("Required value", detail), "FieldValueRequired")


def invalid(path: str, value: Any, detail: str = "") -> Cause:
    return field_cause(path, _with_detail(f"Invalid value: {go_value(value)}", detail))


def not_supported(path: str, value: Any, supported: Iterable[str]) -> Cause:
    quoted = ", ".join(go_quote(v) for v in supported)
    detail = f"supported values: {quoted}" if quoted else ""
    return field_cause(
        path,
        _with_detail(f"Unsupported value: {go_value(value)}", detail),
        "FieldValueNotSupported",
    )


def duplicate(path: str, value: Any, detail: str = "") -> Cause:
    return field_cause(
        path, _with_detail(f"Duplicate value: {go_value(value)}", detail), "FieldValueDuplicate"
    )


def not_found(path: str, value: Any, detail: str = "") -> Cause:
    return field_cause(
        path, _with_detail(f"Not found: {go_value(value)}", detail), "FieldValueNotFound"
    )


def forbidden(path: str, detail: str) -> Cause:
    return field_cause(path, _with_detail("Forbidden", detail), "FieldValueForbidden")


def too_long(path: str, max_bytes: int) -> Cause:
    return field_cause(path, f"Too long: must have at most {max_bytes} bytes", "FieldValueTooLong")


def each_invalid(path: str, value: Any, problems: list[str]) -> Causes:
    """One Invalid cause per problem a format check found."""
    return [invalid(path, value, problem) for problem in problems]


# -------------------------------------------------------------- format checks

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + r")*"
_DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = r"(" + _QUALIFIED_NAME + r")?"
_CONFIG_KEY = r"[-._a-zA-Z0-9]+"
_PERCENT = r"[0-9]+%"


def _full(pattern: str) -> re.Pattern[str]:
    return re.compile(f"^(?:{pattern})$")


_DNS1123_LABEL_RE = _full(_DNS1123_LABEL)
_DNS1123_SUBDOMAIN_RE = _full(_DNS1123_SUBDOMAIN)
_DNS1035_LABEL_RE = _full(_DNS1035_LABEL)
_QUALIFIED_NAME_RE = _full(_QUALIFIED_NAME)
_LABEL_VALUE_RE = _full(_LABEL_VALUE)
_CONFIG_KEY_RE = _full(_CONFIG_KEY)
_PERCENT_RE = _full(_PERCENT)
_PORT_NAME_RE = re.compile(r"^[-a-z0-9]+$")


def regex_error(message: str, pattern: str, *examples: str) -> str:
    """apimachinery's RegexError wording (its double spaces included)."""
    if not examples:
        return f"{message} (regex used for validation is '{pattern}')"
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{pattern}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def inclusive_range_error(low: int, high: int) -> str:
    return f"must be between {low} and {high}, inclusive"


def dns1123_label_problems(value: str) -> list[str]:
    problems = [max_len_error(63)] if len(value) > 63 else []
    if not _DNS1123_LABEL_RE.match(value):
        if _DNS1123_SUBDOMAIN_RE.match(value):
            problems.append("must not contain dots")
        else:
            problems.append(
                regex_error(
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                    "characters or '-', and must start and end with an alphanumeric character",
                    _DNS1123_LABEL,
                    "my-name",
                    "123-abc",
                )
            )
    return problems


def dns1123_subdomain_problems(value: str) -> list[str]:
    problems = [max_len_error(253)] if len(value) > 253 else []
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        problems.append(
            regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
                _DNS1123_SUBDOMAIN,
                "example.com",
            )
        )
    return problems


def dns1035_label_problems(value: str) -> list[str]:
    problems = [max_len_error(63)] if len(value) > 63 else []
    if not _DNS1035_LABEL_RE.match(value):
        problems.append(
            regex_error(
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                "start with an alphabetic character, and end with an alphanumeric character",
                _DNS1035_LABEL,
                "my-name",
                "abc-123",
            )
        )
    return problems


def qualified_name_problems(value: str) -> list[str]:
    """A label key, annotation key or finalizer: optional DNS-subdomain prefix, name ≤ 63."""
    parts = value.split("/")
    problems: list[str] = []
    if len(parts) > 2:
        return [
            "a qualified name "
            + regex_error(_QUALIFIED_NAME_MESSAGE, _QUALIFIED_NAME, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems += ["prefix part " + p for p in dns1123_subdomain_problems(prefix)]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part " + max_len_error(63))
    if not _QUALIFIED_NAME_RE.match(name):
        problems.append(
            "name part "
            + regex_error(_QUALIFIED_NAME_MESSAGE, _QUALIFIED_NAME, "MyName", "my.name", "123-abc")
        )
    return problems


_QUALIFIED_NAME_MESSAGE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character"
)


def label_value_problems(value: str) -> list[str]:
    problems = [max_len_error(63)] if len(value) > 63 else []
    if not _LABEL_VALUE_RE.match(value):
        problems.append(
            regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character",
                _LABEL_VALUE,
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return problems


def config_key_problems(value: str) -> list[str]:
    """A ConfigMap/Secret key, also an env var's key reference."""
    problems = [max_len_error(253)] if len(value) > 253 else []
    if not _CONFIG_KEY_RE.match(value):
        problems.append(
            regex_error(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                _CONFIG_KEY,
                "key.name",
                "KEY_NAME",
                "key-name",
            )
        )
    return problems + dot_prefix_problems(value)


def dot_prefix_problems(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"must not be '{value}'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def port_name_problems(name: str) -> list[str]:
    problems = [max_len_error(15)] if len(name) > 15 else []
    if not _PORT_NAME_RE.match(name):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        problems.append("must contain at least one letter (a-z)")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return problems


def port_number_problems(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def percent_problems(value: str) -> list[str]:
    if _PERCENT_RE.match(value):
        return []
    return [
        regex_error(
            "a valid percent string must be a numeric string followed by an ending '%'",
            _PERCENT,
            "1%",
            "93%",
        )
    ]


def path_segment_problems(name: str) -> list[str]:
    """Names that become one URL path segment (RBAC objects)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


MAX_INT32 = 2**31 - 1


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def nonnegative(path: str, value: Any) -> Causes:
    """Upstream's ValidateNonnegativeField, for an int field that is set."""
    if is_int(value) and value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def port_number_or_name(path: str, port: Any) -> Causes:
    """An IntOrString port: a number in range, or an IANA service name."""
    if isinstance(port, str):
        return each_invalid(path, port, port_name_problems(port))
    if is_int(port):
        return each_invalid(path, port, port_number_problems(port))
    return [invalid(path, port, "must be an integer or a port name")]


# ------------------------------------------------------- labels and selectors


def validate_labels(labels: Any, path: str) -> Causes:
    causes: Causes = []
    for key, value in (labels or {}).items():
        causes += each_invalid(path, key, qualified_name_problems(key))
        if isinstance(value, str):
            causes += each_invalid(path, value, label_value_problems(value))
    return causes


_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(selector: Object | None, path: str) -> Causes:
    if not selector:
        return []
    causes = validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    for i, requirement in enumerate(selector.get("matchExpressions") or []):
        causes += validate_requirement(requirement, f"{path}.matchExpressions[{i}]")
    return causes


def validate_requirement(requirement: Object, path: str, *, comparisons: bool = False) -> Causes:
    """One label requirement: a known operator with the values it takes, a qualified key,
    label values. Node selectors also take `Gt` and `Lt` (`comparisons`), with one value."""
    operator, values = requirement.get("operator", ""), requirement.get("values") or []
    causes: Causes = []
    if operator in ("In", "NotIn"):
        if not values:
            causes.append(
                required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")
            )
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            causes.append(
                forbidden(
                    f"{path}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
    elif comparisons and operator in ("Gt", "Lt"):
        if len(values) != 1:
            causes.append(
                required(
                    f"{path}.values",
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                )
            )
    else:
        causes.append(invalid(f"{path}.operator", operator, "not a valid selector operator"))
    key = requirement.get("key", "")
    causes += each_invalid(f"{path}.key", key, qualified_name_problems(key))
    for i, value in enumerate(values):
        causes += each_invalid(f"{path}.values[{i}]", value, label_value_problems(value))
    return causes


def selector_is_parsable(selector: Object | None) -> bool:
    """Would upstream's LabelSelectorAsSelector accept it (known operators only)?"""
    expressions = (selector or {}).get("matchExpressions") or []
    return all(e.get("operator") in _SELECTOR_OPERATORS for e in expressions)


def selector_is_empty(selector: Object | None) -> bool:
    """A present selector with no terms: it selects everything."""
    return selector is not None and not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    )


def template_labels_mismatch(selector: Object | None, template: Object, path: str) -> Causes:
    """A controller's pod template must carry labels its selector selects."""
    if selector_is_empty(selector):
        return []
    labels = (template.get("metadata") or {}).get("labels")
    if selectors.label_selector_matches(selector, labels or {}):
        return []
    return [
        invalid(
            f"{path}.metadata.labels",
            go_string_map(labels),
            "`selector` does not match template `labels`",
        )
    ]


# ------------------------------------------------------------------- metadata

_TOTAL_ANNOTATION_BYTES = 256 * 1024
_STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")


def _subdomain_name(name: str) -> list[str]:
    return dns1123_subdomain_problems(name)


# Name rules differing from the usual DNS subdomain (upstream's per-kind NameFunc).
_NAME_RULES: dict[tuple[str, str], Callable[[str], list[str]]] = {
    ("", "Namespace"): dns1123_label_problems,
    ("", "Service"): dns1035_label_problems,
    ("rbac.authorization.k8s.io", "Role"): path_segment_problems,
    ("rbac.authorization.k8s.io", "ClusterRole"): path_segment_problems,
    ("rbac.authorization.k8s.io", "RoleBinding"): path_segment_problems,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): path_segment_problems,
}


def name_problems(resource: Resource, name: str, *, prefix: bool = False) -> list[str]:
    """The kind's name rule; `prefix` for a generateName (a trailing '-' is fine there)."""
    if prefix and len(name) > 1 and name.endswith("-"):
        name = name[:-1] + "a"
    rule = _NAME_RULES.get((resource.group, resource.kind), _subdomain_name)
    return rule(name)


def validate_metadata(resource: Resource, metadata: Object, old: Object | None) -> Causes:
    causes: Causes = []
    generate_name = metadata.get("generateName") or ""
    if generate_name and old is None:
        causes += each_invalid(
            "metadata.generateName",
            generate_name,
            name_problems(resource, generate_name, prefix=True),
        )
    name = metadata.get("name") or ""
    if not name:
        causes.append(required("metadata.name", "name or generateName is required"))
    else:
        causes += each_invalid("metadata.name", name, name_problems(resource, name))
    namespace = metadata.get("namespace") or ""
    if resource.namespaced:
        if not namespace:
            causes.append(required("metadata.namespace"))
        else:
            causes += each_invalid(
                "metadata.namespace", namespace, dns1123_label_problems(namespace)
            )
    elif namespace:
        causes.append(forbidden("metadata.namespace", "not allowed on this type"))
    causes += nonnegative("metadata.generation", metadata.get("generation"))
    causes += validate_labels(metadata.get("labels"), "metadata.labels")
    causes += validate_annotations(metadata.get("annotations"), "metadata.annotations")
    causes += _validate_owner_references(metadata.get("ownerReferences") or [])
    causes += _validate_finalizers(resource, metadata.get("finalizers") or [])
    if old is not None:
        causes += _validate_metadata_update(metadata, old.get("metadata") or {})
    return causes


def validate_annotations(annotations: dict[str, Any] | None, path: str) -> Causes:
    """Keys are qualified names (case aside); all of them together at most 256 KiB."""
    causes: Causes = []
    for key in annotations or {}:
        causes += each_invalid(path, key, qualified_name_problems(key.lower()))
    size = sum(len(k) + len(str(v)) for k, v in (annotations or {}).items())
    if size > _TOTAL_ANNOTATION_BYTES:
        causes.append(too_long(path, _TOTAL_ANNOTATION_BYTES))
    return causes


def _validate_owner_references(references: list[Object]) -> Causes:
    causes: Causes = []
    path = "metadata.ownerReferences"
    controller = ""
    for reference in references:
        api_version, kind = reference.get("apiVersion", ""), reference.get("kind", "")
        if not api_version.rpartition("/")[2]:
            causes.append(invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not reference.get(key):
                causes.append(invalid(f"{path}.{key}", reference.get(key, ""), "must not be empty"))
        if (api_version, kind) == ("v1", "Event"):
            causes.append(
                invalid(
                    path,
                    _go_owner_reference(reference),
                    "/v1, Kind=Event is disallowed from being an owner",
                )
            )
        if reference.get("controller") is True:
            current = f"{kind}/{reference.get('name', '')}"
            if controller:
                shown = ", ".join(_go_owner_reference(r) for r in references)
                causes.append(
                    invalid(
                        path,
                        GoValue(f"[]v1.OwnerReference{{{shown}}}"),
                        'Only one reference can have Controller set to true. Found "true" in '
                        f"references for {controller} and {current}",
                    )
                )
            else:
                controller = current
    return causes


def _go_owner_reference(reference: Object) -> GoValue:
    """Go's %#v of an OwnerReference (its *bool fields print as pointers, not values)."""
    flags = ", ".join(
        f"{name}:(*bool)({'nil' if reference.get(key) is None else '0xc000000001'})"
        for name, key in (
            ("Controller", "controller"),
            ("BlockOwnerDeletion", "blockOwnerDeletion"),
        )
    )
    fields = ", ".join(
        f"{name}:{go_quote(str(reference.get(key, '')))}"
        for name, key in (
            ("APIVersion", "apiVersion"),
            ("Kind", "kind"),
            ("Name", "name"),
            ("UID", "uid"),
        )
    )
    return GoValue(f"v1.OwnerReference{{{fields}, {flags}}}")


def _validate_finalizers(resource: Resource, finalizers: list[str]) -> Causes:
    causes: Causes = []
    for i, finalizer in enumerate(finalizers):
        causes += each_invalid("metadata.finalizers", finalizer, qualified_name_problems(finalizer))
        builtin = bool(resource.schema_name) and resource.group != "apiextensions.k8s.io"
        if builtin and "/" not in finalizer and finalizer not in _STANDARD_FINALIZERS:
            causes.append(
                invalid(
                    f"metadata.finalizers[{i}]",
                    finalizer,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        causes.append(
            invalid(
                "metadata.finalizers",
                go_literal(finalizers),
                "finalizer orphan and foregroundDeletion cannot be both set",
            )
        )
    return causes


def _validate_metadata_update(metadata: Object, old_meta: Object) -> Causes:
    causes: Causes = []
    if old_meta.get("deletionTimestamp"):
        added = sorted(
            set(metadata.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        )
        if added:
            causes.append(
                forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted, found new "
                    f"finalizers {go_literal(added)}",
                )
            )
    for field in ("name", "namespace"):
        if metadata.get(field, "") != old_meta.get(field, ""):
            causes.append(
                invalid(f"metadata.{field}", metadata.get(field, ""), "field is immutable")
            )
    return causes


# --------------------------------------------------------------- comparisons


def semantic_equal(a: Any, b: Any) -> bool:
    """Upstream's Semantic.DeepEqual on decoded JSON: absent, null, "" and empty are alike."""
    return a == b or _normalized(a) == _normalized(b)  # most updates leave the value as it was


def _normalized(value: Any) -> Any:
    if isinstance(value, dict):
        cleaned = {k: _normalized(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def required_enum(value: Any, path: str, allowed: tuple[str, ...]) -> Causes:
    """A field that must hold one of a few values (upstream: Required, else NotSupported)."""
    if not value:
        return [required(path)]
    if value not in allowed:
        return [not_supported(path, value, allowed)]
    return []


def spec_diff(old: Any, new: Any, path: str = "") -> str:
    """The changed fields, one `-`/`+` pair each (upstream shows a Go struct diff here)."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = [
            spec_diff(old.get(key), new.get(key), f"{path}.{key}" if path else key)
            for key in sorted(set(old) | set(new))
            if not semantic_equal(old.get(key), new.get(key))
        ]
        return "\n".join(line for line in lines if line)
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        lines = [
            spec_diff(a, b, f"{path}[{i}]")
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            if not semantic_equal(a, b)
        ]
        return "\n".join(line for line in lines if line)
    return f"- {path}: {json.dumps(old)}\n+ {path}: {json.dumps(new)}"


def immutable(path: str, new: Any, old: Any, shown: Any = None) -> Causes:
    """Upstream's ValidateImmutableField; `shown` is the value as Go prints it, if not plain."""
    if semantic_equal(new, old):
        return []
    return [invalid(path, new if shown is None else shown, "field is immutable")]


# The kinds' rules register themselves when their modules load.
from kubik.api import kinds  # noqa: E402, F401
