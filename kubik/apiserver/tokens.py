"""Service account tokens: JWTs the API server signs and later accepts.

`kubectl create token SA` (a TokenRequest on `serviceaccounts/token`) gets
an ES256 JWT with upstream's claims (`sub` `system:serviceaccount:NS:NAME`,
audiences, expiry, and the `kubernetes.io` claim naming the namespace and
service account). The signing key lives in `<data-dir>/tls/service-account.key`.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION = 3600
_MIN_EXPIRATION = 600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, key_path: str) -> None:
        if not os.path.exists(key_path):
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(pem)
        with open(key_path, "rb") as handle:
            self._key = serialization.load_pem_private_key(handle.read(), None)
        self._public = self._key.public_key()

    def issue(
        self, *, namespace: str, name: str, uid: str, audiences: list[str], seconds: int
    ) -> tuple[str, int]:
        """(token, expiry as a Unix time) for the service account."""
        now = int(time.time())
        expires = now + max(seconds, _MIN_EXPIRATION)
        claims = {
            "aud": audiences or [ISSUER],
            "exp": expires,
            "iat": now,
            "iss": ISSUER,
            "nbf": now,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
        header = {"alg": "ES256", "typ": "JWT"}
        signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64(signature)}", expires

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid, unexpired token this server signed; else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            signature = _unb64(parts[2])
            if len(signature) != 64:
                return None
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            self._public.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
            claims = orjson.loads(_unb64(parts[1]))
        except (InvalidSignature, ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(claims, dict) or claims.get("exp", 0) < time.time():
            return None
        return claims
