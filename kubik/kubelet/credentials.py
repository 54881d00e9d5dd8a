"""The node agent's credentials: who it is to the API server, and what its node API serves.

Three ways to get them, one per role:
- inside `kubik server`, the server's CA signs them directly (`save`, with the
  bundle `kubik.apiserver.nodejoin.issue_credentials` makes);
- `kubik agent` joins with the node token (`join`: fetch the CA, check it
  against the token's hash, then ask for the certificates; see
  kubik/apiserver/nodejoin.py for the protocol);
- `kubik kubelet` is handed a kubeconfig and serving certificate files.

Files live under `<data-dir>/agent/`: `kubelet.kubeconfig` (the client
certificate embedded) and `tls/` (ca.crt, client-kubelet.*, serving-kubelet.*).
They are issued anew at each start, so a new address or name is always covered.
"""

from __future__ import annotations

import asyncio
import hmac
import http.client
import os
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from kubik.apiserver import nodejoin, tls


class JoinError(Exception):
    """Joining the cluster failed; the message says why."""


@dataclass(frozen=True, slots=True)
class NodeCredentials:
    kubeconfig: str  # the client identity system:node:<name>
    serving_cert: str  # the node API's certificate and key
    serving_key: str
    ca_cert: str  # the cluster CA: verifies client certificates presented to the node API

    def server_context(self) -> ssl.SSLContext:
        """TLS for the node API: this node's serving certificate; client certificates
        signed by the cluster CA are verified when offered."""
        return tls.server_context(self.serving_cert, self.serving_key, self.ca_cert)


def save(agent_dir: str, server: str, bundle: dict[str, str]) -> NodeCredentials:
    """Write a credentials bundle (see nodejoin.issue_credentials) under `agent_dir`."""
    folder = os.path.join(agent_dir, "tls")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    files = {
        "ca.crt": bundle["ca"],
        "client-kubelet.crt": bundle["clientCert"],
        "client-kubelet.key": bundle["clientKey"],
        "serving-kubelet.crt": bundle["servingCert"],
        "serving-kubelet.key": bundle["servingKey"],
    }
    paths = {}
    for name, text in files.items():
        paths[name] = os.path.join(folder, name)
        _write(paths[name], text.encode(), 0o600 if name.endswith(".key") else 0o644)
    kubeconfig = os.path.join(agent_dir, "kubelet.kubeconfig")
    tls.write_kubeconfig(
        kubeconfig,
        server=server,
        ca_pem=bundle["ca"].encode(),
        cert_path=paths["client-kubelet.crt"],
        key_path=paths["client-kubelet.key"],
        user="kubelet",
    )
    return NodeCredentials(
        kubeconfig, paths["serving-kubelet.crt"], paths["serving-kubelet.key"], paths["ca.crt"]
    )


async def join(
    agent_dir: str,
    server: str,
    token: str,
    *,
    node_name: str,
    addresses: list[str],
    hostnames: list[str],
) -> NodeCredentials:
    """Get this node's credentials from `server` with the node token; raises JoinError."""
    bundle = await asyncio.to_thread(_ask, server, token, node_name, addresses, hostnames)
    return await asyncio.to_thread(save, agent_dir, server, bundle)


def _ask(
    server: str, token: str, node_name: str, addresses: list[str], hostnames: list[str]
) -> dict[str, str]:
    url = urlsplit(server)
    if url.scheme != "https" or not url.hostname:
        raise JoinError(f"--server {server!r} is not an https:// URL")
    expected, _ = nodejoin.parse_token(token)
    if not expected:
        raise JoinError("the token is not a full node token (K10<ca hash>::server:<secret>)")
    trust_nothing = ssl.create_default_context()
    trust_nothing.check_hostname = False
    trust_nothing.verify_mode = ssl.CERT_NONE  # the answer is checked against the token
    status, ca_pem = _request(url, trust_nothing, "GET", nodejoin.CACERTS_PATH)
    if status != 200:
        raise JoinError(f"GET {nodejoin.CACERTS_PATH}: the server answered {status}")
    if not hmac.compare_digest(nodejoin.ca_hash(ca_pem), expected):
        raise JoinError(f"the CA of {server} does not match the token's CA hash")
    trusted = ssl.create_default_context(cadata=ca_pem.decode())
    body = {"nodeName": node_name, "addresses": addresses, "hostnames": hostnames}
    status, answer = _request(
        url,
        trusted,
        "POST",
        nodejoin.CREDENTIALS_PATH,
        body=orjson.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    if status == 401:
        raise JoinError(f"{server} refused the node token (401 Unauthorized)")
    if status != 200:
        raise JoinError(f"POST {nodejoin.CREDENTIALS_PATH}: {status} {answer[:300]!r}")
    return orjson.loads(answer)


def _request(
    url, context: ssl.SSLContext, method: str, path: str, *, body: bytes = b"", headers=None
) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection(
        url.hostname, url.port or 443, context=context, timeout=30
    )
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    except OSError as exc:
        raise JoinError(f"{method} {path} on {url.geturl()}: {exc}") from exc
    finally:
        connection.close()


def from_files(
    kubeconfig: str, serving_cert: str, serving_key: str, ca_cert: str
) -> NodeCredentials:
    """Credentials given on the command line (`kubik kubelet`)."""
    for path in (kubeconfig, serving_cert, serving_key, ca_cert):
        if not os.path.exists(path):
            raise JoinError(f"{path} does not exist")
    return NodeCredentials(kubeconfig, serving_cert, serving_key, ca_cert)


def _write(path: str, data: bytes, mode: int) -> None:
    partial = path + ".tmp"
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as handle:
        handle.write(data)
    os.replace(partial, path)
