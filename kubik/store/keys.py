"""The shape of store keys, and prefix ranges.

Keys are absolute paths of printable ASCII, like
`/registry/pods/default/web-1`: they begin with `/`, have no empty, `.` or
`..` segment, no whitespace or control characters, and are at most 1024
bytes (Kubernetes names are shorter; etcd's own limit is much larger, but a
bounded key keeps indexes small). A prefix follows the same rules but may
end with `/`.
"""

from __future__ import annotations

import re

from kubik.store.errors import InvalidKeyError

MAX_KEY_BYTES = 1024

_ALLOWED = re.compile(r"^/[\x21-\x7e]*$")


def check_key(key: str) -> None:
    _check_path(key, what="key", trailing_slash=False)


def check_prefix(prefix: str) -> None:
    _check_path(prefix, what="prefix", trailing_slash=True)


def _check_path(path: object, *, what: str, trailing_slash: bool) -> None:
    if not isinstance(path, str):
        raise InvalidKeyError(f"{what} must be a string, not {type(path).__name__}")
    if len(path) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"{what} is {len(path)} bytes long; the limit is {MAX_KEY_BYTES}")
    if not _ALLOWED.match(path):
        raise InvalidKeyError(
            f"{what} {path!r} must start with '/' and hold only printable ASCII without spaces"
        )
    segments = path[1:].split("/")
    if trailing_slash and segments[-1] == "":
        segments = segments[:-1]
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidKeyError(f"{what} {path!r} has an empty, '.' or '..' segment")


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix`.

    Valid prefixes are printable ASCII below '~' + 1, so bumping the last
    character never overflows.
    """
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
