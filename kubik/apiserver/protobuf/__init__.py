"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`),
decoded into the same dict a JSON body of the object would give.

kubectl 1.32+ sends protobuf for `kubectl create <kind>` and the access
reviews. A body is the magic `k8s\\x00` and a `runtime.Unknown` envelope: the
object's apiVersion and kind, and the object itself (without its TypeMeta) in
`raw`, encoded by the proto2 schema of its type. The schemas are the tables
of this package's modules, one per API group (core/v1 in three) (see messages.py for their
notation); kinds without a table are refused with 415, as kube-apiserver
refuses protobuf for custom resources.
"""

from __future__ import annotations

from typing import Any

from kubik.api import errors
from kubik.apiserver.protobuf import (
    apps,
    batch,
    core,
    meta,
    networking,
    pods,
    policy,
    rbac,
    reviews,
    scheduling,
    volumes,
)
from kubik.apiserver.protobuf.messages import Schema
from kubik.apiserver.protobuf.wire import WireError

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_GROUPS = (meta, core, pods, volumes, apps, batch, reviews, rbac, policy, networking, scheduling)


def _merged(name: str) -> dict:
    """One attribute of every group module, merged; a name defined twice is a bug."""
    merged: dict = {}
    for module in _GROUPS:
        table = getattr(module, name, {})
        clashes = merged.keys() & table.keys()
        if clashes:
            raise ValueError(f"{module.__name__}.{name} redefines {sorted(clashes)}")
        merged.update(table)
    return merged


SCHEMA = Schema(_merged("MESSAGES"), _merged("FORMS"))
KINDS: dict[tuple[str, str], str] = _merged("KINDS")  # (apiVersion or "*", kind) -> message


def decode(body: bytes) -> dict[str, Any]:
    """The object in a protobuf body, as JSON would give it; 400 or 415 when it cannot be."""
    if not body.startswith(MAGIC):
        raise errors.bad_request(
            "the protobuf body does not start with the Kubernetes magic bytes 'k8s\\x00'"
        )
    try:
        envelope = SCHEMA.decode("Unknown", body[len(MAGIC) :])
        type_meta = envelope.get("typeMeta", {})
        api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
        if not api_version or not kind:
            raise errors.bad_request("the protobuf body does not name its apiVersion and kind")
        _check_encoding(envelope)
        message = KINDS.get((api_version, kind)) or KINDS.get(("*", kind))
        if message is None:
            raise errors.APIError(
                415,
                "UnsupportedMediaType",
                f"{kind} ({api_version}) cannot be sent as {MEDIA_TYPE}; send it as "
                f"application/json",
            )
        obj = SCHEMA.decode(message, envelope.get("raw", b""))
    except WireError as exc:
        raise errors.bad_request(f"the protobuf body is malformed: {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}


def _check_encoding(envelope: dict[str, Any]) -> None:
    encoding = envelope.get("contentEncoding", "")
    content_type = envelope.get("contentType", "")
    if encoding or content_type not in ("", MEDIA_TYPE):
        raise errors.APIError(
            415,
            "UnsupportedMediaType",
            f"the object in the protobuf envelope is {content_type or MEDIA_TYPE}"
            f"{' with content encoding ' + encoding if encoding else ''}; only plain "
            f"{MEDIA_TYPE} is accepted",
        )
