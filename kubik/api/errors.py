"""API errors, each answered as a Kubernetes `Status` object.

Every failure the API server reports goes through `APIError`: the HTTP code,
the machine-readable `reason` clients switch on (kubectl prints
`Error from server (NotFound): …` from it), a message a person can act on,
and `details` (name, group, kind, causes) as upstream fills them
(apimachinery `pkg/api/errors`).
"""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or []

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status


def _details(name: str, group: str, kind: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = (
        {"name": name, "group": group, "kind": kind}
        if name
        else {
            "group": group,
            "kind": kind,
        }
    )
    if not group:
        details.pop("group")
    details.update(extra)
    return details


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> APIError:
    return APIError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        details=_details(name, group, resource),
    )


def already_exists(resource: str, group: str, name: str) -> APIError:
    return APIError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        details=_details(name, group, resource),
    )


def conflict(resource: str, group: str, name: str, why: str) -> APIError:
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        details=_details(name, group, resource),
    )


def stale(resource: str, group: str, name: str) -> APIError:
    """409 for a write based on an old resourceVersion (optimistic concurrency)."""
    return conflict(
        resource,
        group,
        name,
        "the object has been modified; please apply your changes to the latest version and "
        "try again",
    )


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> APIError:
    """422 with one cause per bad field: {"reason", "message", "field"}."""
    messages = list(
        dict.fromkeys(
            f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes
        )
    )
    # upstream brackets the list when there is more than one distinct problem
    summary = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    return APIError(
        422,
        "Invalid",
        f'{kind}{"." + group if group else ""} "{name}" is invalid: {summary}',
        details=_details(name, group, kind, causes=causes),
    )


def field_cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str, resource: str, group: str, name: str, why: str) -> APIError:
    target = f'{_qualified(resource, group)} "{name}"' if name else _qualified(resource, group)
    return APIError(
        403,
        "Forbidden",
        f'{target} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
        f'in API group "{group}": {why}',
        details=_details(name, group, resource),
    )


def method_not_supported(resource: str, group: str, verb: str) -> APIError:
    return APIError(
        405,
        "MethodNotAllowed",
        f"{verb} is not supported on resources of kind {_qualified(resource, group)!r}",
        details=_details("", group, resource),
    )


def gone(message: str) -> APIError:
    return APIError(410, "Expired", message)


def too_large(message: str) -> APIError:
    return APIError(413, "RequestEntityTooLarge", message)


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown "
        f"format - accepted media types include: application/json, "
        f"application/yaml, application/vnd.kubernetes.protobuf "
        f"(got {content_type!r})",
    )


def not_acceptable(accept: str) -> APIError:
    return APIError(
        406,
        "NotAcceptable",
        f"only the following media types are accepted: "
        f"application/json, application/yaml (got {accept!r})",
    )


def too_new_revision(message: str) -> APIError:
    return APIError(
        504,
        "Timeout",
        message,
        details={
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
    )


def unavailable(message: str) -> APIError:
    return APIError(503, "ServiceUnavailable", message)


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", message)
