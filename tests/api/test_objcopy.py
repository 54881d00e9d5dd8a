"""Deep copies of API objects: equal, independent, and exact for values JSON cannot hold."""

from __future__ import annotations

import datetime

from kubik.api.objcopy import deep_copy


def test_a_copy_is_equal_and_shares_nothing():
    def make() -> dict:
        return {"metadata": {"labels": {"a": "b"}}, "spec": {"items": [{"n": 1, "f": 0.5}, None]}}

    obj = make()
    copied = deep_copy(obj)
    assert copied == obj
    copied["metadata"]["labels"]["a"] = "c"
    copied["spec"]["items"][0]["n"] = 2
    assert obj == make()


def test_values_json_cannot_hold_keep_their_type():
    obj = {"when": datetime.date(2024, 1, 1), "big": 2**70, "items": [{"x": 1}]}
    copied = deep_copy(obj)
    assert copied == obj
    assert isinstance(copied["when"], datetime.date)
    assert copied["items"][0] is not obj["items"][0]
