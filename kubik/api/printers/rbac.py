"""Printers of rbac.authorization.k8s.io/v1 bindings.

Roles and ClusterRoles have none: upstream serves them with the default table
convertor (NAME, CREATED AT).
"""

from __future__ import annotations

from typing import Any

from kubik.api.printers.cells import name
from kubik.api.tables import AGE, NAME, Object, age, column, doc, printer


def _columns(kind: str) -> list[dict[str, Any]]:
    """A binding's columns; the wide ones name the binding kind in lower camel case."""
    owner = kind[0].lower() + kind[1:]
    return [
        NAME,
        column("Role", description=doc(f"io.k8s.api.rbac.v1.{kind}", "roleRef")),
        AGE,
        column("Users", description=f"Users in the {owner}", priority=1),
        column("Groups", description=f"Groups in the {owner}", priority=1),
        column("ServiceAccounts", description=f"ServiceAccounts in the {owner}", priority=1),
    ]


@printer("rbac.authorization.k8s.io", "RoleBinding", _columns("RoleBinding"))
@printer("rbac.authorization.k8s.io", "ClusterRoleBinding", _columns("ClusterRoleBinding"))
def binding_cells(binding: Object) -> list[Any]:
    ref = binding.get("roleRef") or {}
    users, groups, accounts = [], [], []
    for subject in binding.get("subjects") or []:
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            accounts.append(f"{subject.get('namespace', '')}/{subject.get('name', '')}")
        elif kind == "User":
            users.append(subject.get("name", ""))
        elif kind == "Group":
            groups.append(subject.get("name", ""))
    return [
        name(binding),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        age(binding),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(accounts),
    ]
