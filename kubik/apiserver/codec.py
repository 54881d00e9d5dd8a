"""Request bodies in, response bodies out: content types and Accept negotiation.

Bodies arrive as JSON, YAML or Kubernetes protobuf (kubectl 1.32+ sends
protobuf for some `create` commands); answers are JSON unless the client
asks for YAML, or for a Table / PartialObjectMetadata rendering through the
`as=…;g=meta.k8s.io;v=…` media type parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from kubik.api import errors

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"


@dataclass(frozen=True, slots=True)
class Rendering:
    """What the client asked the answer to be."""

    media_type: str  # JSON or YAML
    as_kind: str = ""  # "", "Table", "PartialObjectMetadata", "PartialObjectMetadataList"
    as_version: str = ""  # v1 or v1beta1 (meta.k8s.io)

    @property
    def content_type(self) -> str:
        if self.as_kind:
            return f"{self.media_type};as={self.as_kind};g=meta.k8s.io;v={self.as_version}"
        return self.media_type


def parse_media_types(header: str) -> list[tuple[str, dict[str, str]]]:
    """An Accept header's media types with their parameters, in the client's order."""
    result = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params = {}
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            params[key.strip()] = value.strip()
        result.append((pieces[0].lower(), params))
    return result


def negotiate(accept: str, *, allowed_as: tuple[str, ...] = ()) -> Rendering:
    """The first acceptable rendering the Accept header lists (JSON when none is given)."""
    if not accept:
        return Rendering(JSON)
    for media_type, params in parse_media_types(accept):
        as_kind = params.get("as", "")
        if as_kind:
            if (
                as_kind in allowed_as
                and params.get("g") == "meta.k8s.io"
                and params.get("v")
                in (
                    "v1",
                    "v1beta1",
                )
            ):
                base = YAML if media_type == YAML else JSON
                return Rendering(base, as_kind, params["v"])
            continue
        if media_type in (JSON, "application/*", "*/*", PROTOBUF, "application/json-patch+json"):
            # protobuf answers are not produced; clients that ask accept JSON too
            return Rendering(JSON)
        if media_type in (YAML, "application/x-yaml", "text/yaml"):
            return Rendering(YAML)
    raise errors.not_acceptable(accept)


def encode(obj: Any, rendering: Rendering) -> bytes:
    if rendering.media_type == YAML:
        return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).encode()
    return orjson.dumps(obj)


def decode_body(body: bytes, content_type: str) -> Any:
    """Decode a request body by its Content-Type; 400/415 when it cannot be read."""
    media_type = content_type.split(";")[0].strip().lower() or JSON
    if not body.strip():
        raise errors.bad_request("the request body is empty")
    if media_type == PROTOBUF:
        from kubik.apiserver import protobuf

        return protobuf.decode(body)
    if media_type in (YAML, "application/x-yaml", "text/yaml", "application/apply-patch+yaml"):
        return decode_yaml(body)
    if media_type.endswith("json") or media_type == "*/*":
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"the request body is not valid JSON: {exc}") from None
    raise errors.unsupported_media_type(content_type)


def decode_yaml(body: bytes) -> Any:
    try:
        # JSON is YAML; try the fast parser first.
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"the request body is not valid YAML: {exc}") from None
