"""Who is asking (authentication) and may they (authorization).

Authentication: an x509 client certificate verified against the cluster CA
(user = CN, groups = O), or a bearer token from the static token file
(`<data-dir>/tls/tokens.csv`, upstream's format: `token,user,uid,"g1,g2"`).
Anonymous requests are refused (401), except the public health and version
endpoints upstream's default RBAC opens to everyone.

Authorization: an interface (`Authorizer`) with one implementation for now,
allow-all for authenticated users; RBAC will implement the same interface.
"""

from __future__ import annotations

import csv
import hmac
import os
import secrets
from dataclasses import dataclass, field

from kubik.apiserver.http import Request
from kubik.apiserver.tokens import TokenSigner

PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = field(default=())


class TokenFile:
    """Static bearer tokens, read once at start."""

    def __init__(self, path: str) -> None:
        self._tokens: dict[str, User] = {}
        if os.path.exists(path):
            with open(path, newline="") as handle:
                for row in csv.reader(handle):
                    if len(row) >= 2 and row[0] and not row[0].startswith("#"):
                        groups = tuple(g for g in (row[3] if len(row) > 3 else "").split(",") if g)
                        self._tokens[row[0]] = User(row[1], row[2] if len(row) > 2 else "", groups)

    def user(self, token: str) -> User | None:
        for known, user in self._tokens.items():
            if hmac.compare_digest(known, token):
                return user
        return None


def ensure_token(path: str, *, user: str, groups: tuple[str, ...]) -> str:
    """The token of `user` in the token file, adding a new random one if absent."""
    if os.path.exists(path):
        with open(path, newline="") as handle:
            for row in csv.reader(handle):
                if len(row) >= 2 and row[1] == user:
                    return row[0]
    token = secrets.token_hex(24)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as handle:
        csv.writer(handle).writerow([token, user, user, ",".join(groups)])
    return token


class Authenticator:
    def __init__(self, tokens: TokenFile, signer: TokenSigner) -> None:
        self._tokens = tokens
        self._signer = signer

    def authenticate(self, request: Request) -> User | None:
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            token = header[7:].strip()
            return self._tokens.user(token) or _service_account_user(self._signer.verify(token))
        if request.peer_cert:
            return _certificate_user(request.peer_cert)
        return None


def _service_account_user(claims: dict | None) -> User | None:
    if claims is None:
        return None
    scope = claims.get("kubernetes.io") or {}
    namespace = scope.get("namespace", "")
    account = scope.get("serviceaccount") or {}
    return User(
        f"system:serviceaccount:{namespace}:{account.get('name', '')}",
        account.get("uid", ""),
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


def _certificate_user(cert: dict) -> User | None:
    names: list[str] = []
    groups: list[str] = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
            elif key == "organizationName":
                groups.append(value)
    if not names:
        return None
    return User(names[0], "", (*groups, "system:authenticated"))


class Authorizer:
    """Decides whether `user` may do `verb` on a resource; RBAC will subclass this."""

    def allowed(
        self, user: User, verb: str, group: str, resource: str, namespace: str, name: str
    ) -> tuple[bool, str]:
        return True, ""
