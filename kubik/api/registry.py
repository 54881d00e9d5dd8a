"""The registry of resources the API serves: one table drives every handler.

A `Resource` says everything the generic REST machinery, discovery, OpenAPI
and Tables need about a kind: where it lives (group/version, namespaced or
not, its store prefix), its names (plural, singular, kind, short names,
categories), what can be done to it (verbs, subresources). Custom resources
from CRDs are added to the same registry at run time and are served by the
same code as the built-ins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CLUSTER_VERBS = ALL_VERBS


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    # Store prefix (without trailing slash); shared by several versions of a
    # kind, or by two groups serving one storage (core and events.k8s.io events).
    storage: str = ""
    schema_name: str = ""  # the OpenAPI definition name, e.g. io.k8s.api.core.v1.Pod

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def store_prefix(self, namespace: str = "") -> str:
        """The key prefix of all objects (in one namespace, when given)."""
        base = self.storage or self._default_storage()
        return f"{base}/{namespace}/" if namespace else f"{base}/"

    def store_key(self, namespace: str, name: str) -> str:
        base = self.storage or self._default_storage()
        return f"{base}/{namespace}/{name}" if self.namespaced else f"{base}/{name}"

    def _default_storage(self) -> str:
        return f"/registry/{self.group}/{self.plural}" if self.group else f"/registry/{self.plural}"


@dataclass
class Registry:
    """All served resources, looked up by (group, version, plural)."""

    _by_path: dict[tuple[str, str, str], Resource] = field(default_factory=dict)

    def add(self, resource: Resource) -> None:
        self._by_path[(resource.group, resource.version, resource.plural)] = resource

    def remove(self, group: str, version: str, plural: str) -> None:
        self._by_path.pop((group, version, plural), None)

    def get(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> Resource | None:
        for resource in self._by_path.values():
            if (resource.group, resource.version, resource.kind) == (group, version, kind):
                return resource
        return None

    def all(self) -> Iterable[Resource]:
        return self._by_path.values()

    def group_versions(self) -> dict[str, list[str]]:
        """Group → its versions, in the order they were added (preferred first)."""
        versions: dict[str, list[str]] = {}
        for resource in self._by_path.values():
            group_versions = versions.setdefault(resource.group, [])
            if resource.version not in group_versions:
                group_versions.append(resource.version)
        return versions

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self._by_path.values() if (r.group, r.version) == (group, version)]
