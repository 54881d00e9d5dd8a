"""ControllerRevision history, shared by the StatefulSet and DaemonSet controllers.

A revision records one pod template as the strategic merge patch that puts
it back (`{"spec": {"template": {..., "$patch": "replace"}}}`), compared as
Go's `encoding/json` writes it (sorted keys, compact, HTML characters
escaped). A StatefulSet names its revisions `<set>-<hash>` after the FNV-1
hash of those bytes (upstream's history package), so the names are
upstream's for the same stored template; a DaemonSet uses the pod template
hash, as Deployments do. Revisions are numbered; a template seen before is
reused with the next number (a roll back), not stored twice.

(upstream: pkg/controller/history)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from kubik.api import builtin
from kubik.client.api import ApiError, Client
from kubik.controllers.podutil import new_controller_ref

Object = dict[str, Any]

REVISIONS = builtin.lookup("apps", "v1", "controllerrevisions")

# The label holding a StatefulSet revision's hash (upstream's history package).
HASH_LABEL = "controller.kubernetes.io/hash"
# The label naming a pod's revision (and a DaemonSet revision's hash).
REVISION_LABEL = "controller-revision-hash"

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_GO_HTML_ESCAPES = {
    b"<": b"\\u003c",
    b">": b"\\u003e",
    b"&": b"\\u0026",
    "\u2028".encode(): b"\\u2028",
    "\u2029".encode(): b"\\u2029",
}

# -------------------------------------------------------------------- history


def template_patch(owner: Object) -> Object:
    """The revision data for `owner`'s pod template: a patch that replaces the template."""
    template = dict((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(data: Object) -> Object:
    """The pod template a revision's data restores."""
    template = dict(((data or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def encode(data: Any) -> bytes:
    """`data` as Go's json.Marshal writes a map: sorted keys, compact, HTML-safe."""
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    for char, escaped in _GO_HTML_ESCAPES.items():
        raw = raw.replace(char, escaped)
    return raw


def hash_of(data: Any, collision_count: int | None) -> str:
    """FNV-1 (32 bit) of the encoded data and the collision count, in upstream's safe alphabet."""
    value = 0x811C9DC5
    probe = b"" if collision_count is None else str(collision_count).encode()
    for byte in encode(data) + probe:
        value = (value * 0x01000193) & 0xFFFFFFFF
        value ^= byte
    return "".join(_SAFE_ALPHABET[ord(char) % len(_SAFE_ALPHABET)] for char in str(value))


def revision_name(prefix: str, hash_: str) -> str:
    """`<prefix>-<hash>`, the prefix cut to 223 characters so the name fits in 253."""
    return f"{prefix[:223]}-{hash_}"


def same_data(left: Object, right: Object) -> bool:
    return encode(left.get("data")) == encode(right.get("data"))


def sort_key(revision: Object) -> tuple:
    """Oldest first: by number, then creation time, then name."""
    meta = revision["metadata"]
    return (revision.get("revision", 0), meta.get("creationTimestamp") or "", meta["name"])


def next_number(revisions: list[Object]) -> int:
    return max((r.get("revision", 0) for r in revisions), default=0) + 1


def new_revision(owner: Object, hash_label: str, hash_: str, revision: int) -> Object:
    """An unsaved revision of `owner`'s current template, labelled with its hash."""
    meta = owner["metadata"]
    template_labels = ((owner["spec"].get("template") or {}).get("metadata") or {}).get("labels")
    revision_meta: Object = {
        "name": revision_name(meta["name"], hash_),
        "namespace": meta["namespace"],
        "labels": {**(template_labels or {}), hash_label: hash_},
        "ownerReferences": [new_controller_ref(owner)],
    }
    if meta.get("annotations"):
        revision_meta["annotations"] = dict(meta["annotations"])
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": revision_meta,
        "data": template_patch(owner),
        "revision": revision,
    }


async def create_revision(
    client: Client, owner: Object, revision: Object, collision_count: int
) -> tuple[Object, int]:
    """Save `revision`; on a name taken by other data, count a collision and rename.

    Returns the saved (or identical existing) revision and the collision count used.
    """
    candidate = {**revision, "metadata": dict(revision["metadata"])}
    while True:
        name = revision_name(owner["metadata"]["name"], hash_of(revision["data"], collision_count))
        candidate["metadata"]["name"] = name
        try:
            return await client.create(REVISIONS, candidate), collision_count
        except ApiError as exc:
            if not exc.already_exists:
                raise
        existing = await client.get(REVISIONS, owner["metadata"]["namespace"], name)
        if same_data(existing, candidate):
            return existing, collision_count
        collision_count += 1


async def renumber(client: Client, revision: Object, number: int) -> Object:
    """Give an existing revision a new number (a roll back to an older template)."""
    if revision.get("revision") == number:
        return revision
    meta = revision["metadata"]
    return await client.patch(
        REVISIONS, meta["namespace"], meta["name"], {"revision": number}, patch_type="merge"
    )


async def prune(
    client: Client, oldest_first: list[Object], excess: int, is_live: Callable[[Object], bool]
) -> None:
    """Delete up to `excess` of the oldest revisions that are not live."""
    for revision in oldest_first:
        if excess <= 0:
            return
        if is_live(revision):
            continue
        meta = revision["metadata"]
        try:
            await client.delete(REVISIONS, meta["namespace"], meta["name"])
        except ApiError as exc:
            if not exc.not_found:
                raise
        excess -= 1
