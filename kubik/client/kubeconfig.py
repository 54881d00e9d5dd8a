"""Read a kubeconfig: the server URL and the credentials of its current context."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass

import yaml


@dataclass(frozen=True, slots=True)
class Config:
    server: str  # https://host:port
    ssl_context: ssl.SSLContext
    token: str = ""
    ca: bytes = b""  # the cluster's certificate authority (PEM), when the kubeconfig names one


class KubeconfigError(Exception):
    """A kubeconfig that cannot be used; the message says why."""


def load(path: str) -> Config:
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc}") from None
    context_name = data.get("current-context", "")
    context = _named(data, "contexts", context_name, path).get("context") or {}
    cluster = _named(data, "clusters", context.get("cluster", ""), path).get("cluster") or {}
    user = _named(data, "users", context.get("user", ""), path).get("user") or {}
    server = cluster.get("server", "")
    if not server.startswith("https://"):
        raise KubeconfigError(f"{path}: the cluster's server must be an https:// URL")
    context_ssl = ssl.create_default_context(cafile=None)
    context_ssl.set_alpn_protocols(["http/1.1"])
    ca = _data(cluster, "certificate-authority", path)
    if cluster.get("insecure-skip-tls-verify"):
        context_ssl.check_hostname = False
        context_ssl.verify_mode = ssl.CERT_NONE
    elif ca:
        context_ssl.load_verify_locations(cadata=ca.decode())
    cert, key = _data(user, "client-certificate", path), _data(user, "client-key", path)
    if cert and key:
        _load_client_cert(context_ssl, cert, key)
    return Config(server.rstrip("/"), context_ssl, user.get("token", ""), ca)


def _named(data: dict, section: str, name: str, path: str) -> dict:
    for entry in data.get(section) or []:
        if entry.get("name") == name:
            return entry
    raise KubeconfigError(f"{path}: no {section[:-1]} named {name!r}")


def _data(entry: dict, field: str, path: str) -> bytes:
    """An inline `<field>-data` (base64) or the file `<field>` names."""
    inline = entry.get(f"{field}-data")
    if inline:
        return base64.b64decode(inline)
    file_name = entry.get(field)
    if file_name:
        base = os.path.dirname(os.path.abspath(path))
        with open(os.path.join(base, file_name), "rb") as handle:
            return handle.read()
    return b""


def _load_client_cert(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl wants files: write the pair to a private temporary file just long enough."""
    with tempfile.NamedTemporaryFile(prefix="kubik-client-", suffix=".pem") as handle:
        os.chmod(handle.name, 0o600)
        handle.write(cert + b"\n" + key)
        handle.flush()
        context.load_cert_chain(handle.name)
