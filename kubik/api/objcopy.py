"""Deep copies of API objects, made often on the write path (the request kept apart from
what admission changes, the stored object kept apart from its next version).

An object is JSON (it is stored as JSON), so it is copied through orjson: several times
faster than `copy.deepcopy`, which must handle any Python value. A value JSON cannot
hold as it is (a YAML body's date or oversized integer, say) is copied the slow way.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

# orjson writes these as strings or dicts; refusing them keeps their type in the copy
_ONLY_JSON = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def deep_copy(obj: Any) -> Any:
    try:
        return orjson.loads(orjson.dumps(obj, option=_ONLY_JSON))
    except TypeError:  # orjson.JSONEncodeError is one
        return copy.deepcopy(obj)
