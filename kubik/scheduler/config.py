"""The scheduler's configuration: upstream's KubeSchedulerConfiguration, plus plugin modules.

`kubik scheduler --config FILE` reads YAML of this shape (every field optional):

```yaml
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 0        # 0: adaptive (50% at 100 nodes down to 5%)
podInitialBackoffSeconds: 1
podMaxBackoffSeconds: 10
leaderElection: {leaderElect: true, resourceName: kube-scheduler, resourceNamespace: kube-system}
pluginModules:                     # kubik's: where plugins beyond the built-in ones come from
- my.plugins                       #   a module whose classes register themselves (@register)
- {name: Spread, path: "my.plugins:SpreadPlugin"}   # or one class, under a name
profiles:
- schedulerName: default-scheduler
  percentageOfNodesToScore: 50
  plugins:
    multiPoint: {enabled: [{name: Spread, weight: 5}]}   # at every point the class implements
    filter: {disabled: [{name: NodePorts}]}
    score: {enabled: [{name: NodeResourcesFit, weight: 2}], disabled: [{name: "*"}]}
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
```

As upstream's v1 defaults, each profile starts from the default plugins (all
enabled through `multiPoint`, with upstream's score weights); `disabled`
removes plugins (`"*"`: all the defaults) from one extension point or from
`multiPoint`; `enabled` adds them, or re-configures (e.g. re-weights) a
default one in place. A plugin enabled at one point only runs there (use
`multiPoint` for a plugin with several methods). Plugins named by the
defaults that kubik does not have yet are left out. `clientConnection`,
`parallelism` and the profiling switches are accepted and ignored.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubik.scheduler import framework

Object = dict[str, Any]

DEFAULT_SCHEDULER_NAME = "default-scheduler"
API_VERSIONS = ("kubescheduler.config.k8s.io/v1", "kubescheduler.config.k8s.io/v1beta3")

# upstream's default plugins, in order, with their score weights (v1 `multiPoint`)
DEFAULT_PLUGINS: list[tuple[str, int]] = [
    ("SchedulingGates", 0),
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeRestrictions", 0),
    ("NodeVolumeLimits", 0),
    ("VolumeBinding", 0),
    ("VolumeZone", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
]
# the queue's order is fixed (priority, then time queued): the one sort plugin there is
QUEUE_SORT = "PrioritySort"

_TOP_FIELDS = {
    "apiVersion",
    "kind",
    "profiles",
    "percentageOfNodesToScore",
    "podInitialBackoffSeconds",
    "podMaxBackoffSeconds",
    "leaderElection",
    "pluginModules",
}
_IGNORED_FIELDS = {
    "clientConnection",
    "parallelism",
    "enableProfiling",
    "enableContentionProfiling",
    "delayCacheUntilActive",
    "healthzBindAddress",
    "metricsBindAddress",
}
_PROFILE_FIELDS = {"schedulerName", "plugins", "pluginConfig", "percentageOfNodesToScore"}


class ConfigError(ValueError):
    """A scheduler configuration that cannot be used; the message says why."""


@dataclass
class Profile:
    scheduler_name: str
    plugins: dict[str, list[tuple[str, int]]]  # extension point → (plugin, weight), in order
    classes: dict[str, type]  # plugin name → class
    plugin_args: dict[str, Object] = field(default_factory=dict)
    percentage_of_nodes_to_score: int | None = None


@dataclass
class SchedulerConfig:
    profiles: list[Profile]
    percentage_of_nodes_to_score: int = 0
    initial_backoff: float = 1.0
    max_backoff: float = 10.0
    leader_elect: bool = True
    lease_name: str = "kube-scheduler"
    lease_namespace: str = "kube-system"


def registered_plugins() -> dict[str, type]:
    """Every registered plugin (importing the built-in ones first): name → class."""
    package = importlib.import_module("kubik.scheduler.plugins")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"kubik.scheduler.plugins.{module.name}")
    return dict(framework.PLUGINS)


def load(path: str | None) -> SchedulerConfig:
    """The configuration in the YAML file at `path`; the defaults when None."""
    if path is None:
        return parse({})
    try:
        with open(path) as handle:
            document = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read the scheduler configuration: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a KubeSchedulerConfiguration must be a mapping")
    return parse(document)


def parse(document: Object) -> SchedulerConfig:
    _check_fields(document, _TOP_FIELDS | _IGNORED_FIELDS, "KubeSchedulerConfiguration")
    if document.get("kind", "KubeSchedulerConfiguration") != "KubeSchedulerConfiguration":
        raise ConfigError(f"kind {document['kind']!r} is not KubeSchedulerConfiguration")
    if document.get("apiVersion", API_VERSIONS[0]) not in API_VERSIONS:
        raise ConfigError(f"apiVersion {document['apiVersion']!r} is not one of {API_VERSIONS}")
    named = {}
    for entry in document.get("pluginModules") or []:
        named.update(_load_module(entry))
    classes = registered_plugins() | named
    percentage = _percentage(document.get("percentageOfNodesToScore"), "")
    specs = document.get("profiles") or [{}]
    profiles = [_profile(spec, classes) for spec in specs]
    names = [p.scheduler_name for p in profiles]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"duplicate profiles for scheduler name(s) {', '.join(duplicates)}")
    election = document.get("leaderElection") or {}
    initial = _seconds(document.get("podInitialBackoffSeconds"), 1, "podInitialBackoffSeconds")
    maximum = _seconds(document.get("podMaxBackoffSeconds"), 10, "podMaxBackoffSeconds")
    if maximum < initial:
        raise ConfigError("podMaxBackoffSeconds must not be less than podInitialBackoffSeconds")
    return SchedulerConfig(
        profiles=profiles,
        percentage_of_nodes_to_score=percentage or 0,
        initial_backoff=initial,
        max_backoff=maximum,
        leader_elect=bool(election.get("leaderElect", True)),
        lease_name=election.get("resourceName") or "kube-scheduler",
        lease_namespace=election.get("resourceNamespace") or "kube-system",
    )


def _check_fields(obj: Any, known: set[str], what: str) -> None:
    if not isinstance(obj, dict):
        raise ConfigError(f"{what} must be a mapping")
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ConfigError(f"{what}: unknown field(s) {', '.join(unknown)}")


def _percentage(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or not 0 <= value <= 100:
        raise ConfigError(f"{where}percentageOfNodesToScore must be an integer from 0 to 100")
    return value


def _seconds(value: Any, default: float, name: str) -> float:
    if value is None:
        return float(default)
    if not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{name} must be a positive number")
    return float(value)


def _load_module(entry: Any) -> dict[str, type]:
    """Import one `pluginModules` entry: a module (its plugins register), or one named class."""
    if isinstance(entry, str):
        _import(entry)
        return {}
    if not isinstance(entry, dict) or not entry.get("name") or not entry.get("path"):
        raise ConfigError(
            f"pluginModules entry {entry!r}: a module name, or {{name: ..., path: 'module:Class'}}"
        )
    module_name, _, class_name = str(entry["path"]).partition(":")
    module = _import(module_name)
    cls = getattr(module, class_name, None) if class_name else None
    if not isinstance(cls, type):
        raise ConfigError(f"pluginModules: {entry['path']!r} names no class")
    return {entry["name"]: cls}


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise ConfigError(f"pluginModules: cannot import {name!r}: {exc}") from exc


def _plugin_set(spec: Any, where: str) -> tuple[list[tuple[str, int]], set[str]]:
    """(enabled (name, weight) in order, disabled names) of one extension point's settings."""
    if spec is None:
        return [], set()
    _check_fields(spec, {"enabled", "disabled"}, where)
    enabled, disabled = [], set()
    for item in spec.get("enabled") or []:
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"{where}.enabled: every entry needs a name")
        enabled.append((item["name"], int(item.get("weight") or 0)))
    for item in spec.get("disabled") or []:
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"{where}.disabled: every entry needs a name")
        disabled.add(item["name"])
    return enabled, disabled


def _merge(
    defaults: list[tuple[str, int]], enabled: list[tuple[str, int]], disabled: set[str]
) -> list[tuple[str, int]]:
    """Upstream's mergePluginSet: defaults minus disabled, re-configured in place, then new."""
    custom = dict(enabled)
    merged = []
    if "*" not in disabled:
        merged = [(n, w) for n, w in defaults if n not in disabled]
        merged = [(n, custom[n]) if n in custom else (n, w) for n, w in merged]
    present = {n for n, _ in merged}
    return merged + [(n, w) for n, w in enabled if n not in present]


def _implements(cls: type, point: str) -> bool:
    return callable(getattr(cls, framework.POINTS[point], None))


def _profile(spec: Any, classes: dict[str, type]) -> Profile:
    _check_fields(spec, _PROFILE_FIELDS, "profile")
    name = spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME
    where = f"profile {name}: "
    plugins_spec = spec.get("plugins") or {}
    _check_fields(
        plugins_spec, set(framework.POINTS) | {"multiPoint", "queueSort"}, where + "plugins"
    )
    sort_enabled, _ = _plugin_set(plugins_spec.get("queueSort"), where + "queueSort")
    if any(n != QUEUE_SORT for n, _ in sort_enabled):
        raise ConfigError(f"{where}the only queueSort plugin is {QUEUE_SORT}")
    defaults = [(n, w) for n, w in DEFAULT_PLUGINS if n in classes]
    multi_enabled, multi_disabled = _plugin_set(
        plugins_spec.get("multiPoint"), where + "multiPoint"
    )
    multi = _merge(defaults, multi_enabled, multi_disabled)
    for plugin, _ in multi:
        if plugin not in classes:
            raise ConfigError(
                f"{where}unknown plugin {plugin!r}; known: {', '.join(sorted(classes))}"
            )
    points: dict[str, list[tuple[str, int]]] = {}
    for point in framework.POINTS:
        enabled, disabled = _plugin_set(plugins_spec.get(point), f"{where}{point}")
        points[point] = _expand(point, multi, enabled, disabled, classes, where)
    if not points["bind"]:
        raise ConfigError(f"{where}at least one bind plugin is needed")
    plugin_args: dict[str, Object] = {}
    for entry in spec.get("pluginConfig") or []:
        if not isinstance(entry, dict) or entry.get("name") not in classes:
            raise ConfigError(f"{where}pluginConfig: unknown plugin in {entry!r}")
        if entry["name"] in plugin_args:
            raise ConfigError(f"{where}pluginConfig: {entry['name']} is configured twice")
        plugin_args[entry["name"]] = entry.get("args") or {}
    used = {n for entries in points.values() for n, _ in entries}
    return Profile(
        scheduler_name=name,
        plugins=points,
        classes={n: classes[n] for n in used},
        plugin_args=plugin_args,
        percentage_of_nodes_to_score=_percentage(spec.get("percentageOfNodesToScore"), where),
    )


def _expand(
    point: str,
    multi: list[tuple[str, int]],
    enabled: list[tuple[str, int]],
    disabled: set[str],
    classes: dict[str, type],
    where: str,
) -> list[tuple[str, int]]:
    """One point's plugins: re-configured multiPoint ones, other multiPoint ones, then the rest."""
    for plugin, _ in enabled:
        if plugin not in classes:
            raise ConfigError(
                f"{where}unknown plugin {plugin!r}; known: {', '.join(sorted(classes))}"
            )
        if not _implements(classes[plugin], point):
            raise ConfigError(f"{where}plugin {plugin!r} has no {framework.POINTS[point]} method")
    explicit = {n for n, _ in enabled}
    multi_weights = dict(multi)
    from_multi = []
    if "*" not in disabled:
        from_multi = [
            (n, w)
            for n, w in multi
            if n not in disabled and n not in explicit and _implements(classes[n], point)
        ]
    overrides = [(n, w or multi_weights[n]) for n, w in enabled if n in multi_weights]
    rest = [(n, w) for n, w in enabled if n not in multi_weights]
    return overrides + from_multi + rest
