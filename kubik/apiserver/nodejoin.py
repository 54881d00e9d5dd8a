"""Joining a node to the cluster: the node token, the CA download, node credentials.

k3s's scheme. The server keeps a secret in `<data-dir>/node-token`, written
as `K10<sha256 of the CA certificate PEM>::server:<secret>`; the secret is
made once and kept across restarts. An agent given that token:

1. GETs `/cacerts` (no authentication: it cannot check the server yet) and
   compares the answer's SHA-256 with the hash in the token, so a server
   impersonating the real one is found out before any secret is sent;
2. POSTs `/kubik/v1/node-credentials` over TLS verified by that CA, with
   `Authorization: Bearer <token>` (the whole token or the secret alone) and
   `{"nodeName", "addresses", "hostnames"}`; the answer carries a client
   certificate for `system:node:<name>` (group `system:nodes`) and a serving
   certificate for the node API covering its addresses and names, both with
   their keys, signed by the cluster CA. A wrong token gets 401.

The in-process agent of `kubik server` calls `issue_credentials` directly.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import os
import secrets
from typing import Any

import orjson

from kubik.api import errors, validation
from kubik.apiserver import tls
from kubik.apiserver.http import Request, Response

TOKEN_FILE = "node-token"
TOKEN_PREFIX = "K10"
TOKEN_ROLE = "::server:"
CACERTS_PATH = "/cacerts"
CREDENTIALS_PATH = "/kubik/v1/node-credentials"
PATHS = (CACERTS_PATH, CREDENTIALS_PATH)
NODES_GROUP = "system:nodes"


def ca_hash(ca_pem: bytes) -> str:
    return hashlib.sha256(ca_pem).hexdigest()


def format_token(ca_pem: bytes, secret: str) -> str:
    return f"{TOKEN_PREFIX}{ca_hash(ca_pem)}{TOKEN_ROLE}{secret}"


def parse_token(token: str) -> tuple[str, str]:
    """(CA hash, secret) of a full token; ("", token) for a bare secret."""
    token = token.strip()
    if token.startswith(TOKEN_PREFIX) and TOKEN_ROLE in token:
        head, _, secret = token.partition(TOKEN_ROLE)
        return head.removeprefix(TOKEN_PREFIX), secret
    return "", token


def ensure_node_token(data_dir: str, ca_pem: bytes) -> str:
    """The cluster's node token, written to `<data-dir>/node-token`; its secret is
    reused when the file exists (the CA hash is brought up to date)."""
    path = os.path.join(data_dir, TOKEN_FILE)
    secret = ""
    if os.path.exists(path):
        with open(path) as handle:
            _, secret = parse_token(handle.read())
    token = format_token(ca_pem, secret or secrets.token_hex(16))
    current = ""
    if os.path.exists(path):
        with open(path) as handle:
            current = handle.read().strip()
    if current != token:
        partial = path + ".tmp"
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(token + "\n")
        os.replace(partial, path)
    return token


def issue_credentials(
    ca: tls.ClusterCA, node_name: str, addresses: list[str], hostnames: list[str]
) -> dict[str, str]:
    """A node's certificates and keys (PEM text), and the CA that signed them."""
    client_cert, client_key = ca.issue(
        common_name=f"system:node:{node_name}", organizations=(NODES_GROUP,)
    )
    serving_cert, serving_key = ca.issue(
        common_name=f"system:node:{node_name}",
        organizations=(NODES_GROUP,),
        dns_names=tuple(dict.fromkeys([node_name, *hostnames, "localhost"])),
        ips=tuple(dict.fromkeys([*addresses, "127.0.0.1"])),
        server=True,
    )
    return {
        "ca": ca.cert_pem.decode(),
        "clientCert": client_cert.decode(),
        "clientKey": client_key.decode(),
        "servingCert": serving_cert.decode(),
        "servingKey": serving_key.decode(),
    }


class NodeJoin:
    """The two endpoints a joining agent uses; `handle` serves both of PATHS."""

    def __init__(self, ca: tls.ClusterCA, token: str) -> None:
        self.ca = ca
        self._secret = parse_token(token)[1].encode()

    async def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == CACERTS_PATH:
            _allow(request, "GET", "HEAD")
            return Response(200, self.ca.cert_pem, [], "application/x-pem-file")
        _allow(request, "POST")
        if not self._authorized(request):
            raise errors.unauthorized()
        name, addresses, hostnames = _read_request(request.body)
        issued = await asyncio.to_thread(issue_credentials, self.ca, name, addresses, hostnames)
        return Response(200, orjson.dumps(issued))

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if header[:7].lower() != "bearer ":
            return False
        _, secret = parse_token(header[7:])
        return hmac.compare_digest(secret.encode(), self._secret)


def _allow(request: Request, *methods: str) -> None:
    if request.method not in methods:
        raise errors.APIError(
            405, "MethodNotAllowed", f"method {request.method} is not supported here"
        )


def _read_request(body: bytes) -> tuple[str, list[str], list[str]]:
    try:
        asked: Any = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(f"the body is not JSON: {exc}") from None
    if not isinstance(asked, dict):
        raise errors.bad_request("the body must be a JSON object")
    name = asked.get("nodeName")
    if not isinstance(name, str) or validation.dns1123_subdomain_problems(name):
        raise errors.bad_request(f"nodeName {name!r} is not a valid node name")
    addresses = _strings(asked, "addresses")
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise errors.bad_request(f"address {address!r} is not an IP address") from None
    hostnames = _strings(asked, "hostnames")
    for hostname in hostnames:
        if validation.dns1123_subdomain_problems(hostname):
            raise errors.bad_request(f"hostname {hostname!r} is not a DNS name")
    return name, addresses, hostnames


def _strings(asked: dict, key: str) -> list[str]:
    values = asked.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise errors.bad_request(f"{key} must be a list of strings")
    return values
