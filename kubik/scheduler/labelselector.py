"""Label selectors parsed once, for plugins that match them against many pods.

As upstream's `LabelSelectorAsSelector`: a missing selector selects
nothing, an empty one (`{}`) everything; `matchLabels` and
`matchExpressions` are ANDed. A selector with an operator the API would
have refused selects nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Object = dict[str, Any]
Requirement = tuple[str, str, frozenset[str]]  # (key, operator, values)

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class LabelSelector:
    """`matches(labels)` is picked when the selector is made: most selectors are
    matchLabels only, tested in one subset comparison."""

    __slots__ = ("_labels", "_expressions", "_nothing", "matches")

    def __init__(
        self,
        labels: dict[str, str] | None = None,
        expressions: tuple[Requirement, ...] = (),
        *,
        nothing: bool = False,
    ) -> None:
        self._labels = labels or {}
        self._expressions = expressions
        self._nothing = nothing
        self.matches: Callable[[dict[str, str]], bool]
        if nothing:
            self.matches = _never
        elif expressions:
            self.matches = self._match
        elif self._labels:
            wanted = self._labels.items()
            self.matches = lambda labels: labels.items() >= wanted
        else:
            self.matches = _always

    @classmethod
    def parse(cls, selector: Object | None) -> LabelSelector:
        if selector is None:
            return NOTHING
        expressions = []
        for expression in selector.get("matchExpressions") or []:
            operator = expression.get("operator")
            if operator not in _OPERATORS:
                return NOTHING
            values = frozenset(expression.get("values") or ())
            expressions.append((expression.get("key", ""), operator, values))
        return cls(dict(selector.get("matchLabels") or {}), tuple(expressions))

    @property
    def empty(self) -> bool:
        """Whether it has no requirement (it selects everything)."""
        return not (self._nothing or self._labels or self._expressions)

    @property
    def nothing(self) -> bool:
        return self._nothing

    def _match(self, labels: dict[str, str]) -> bool:
        if self._labels and not labels.items() >= self._labels.items():
            return False
        for key, operator, values in self._expressions:
            value = labels.get(key)
            if operator == "In":
                if value is None or value not in values:
                    return False
            elif operator == "NotIn":
                if value is not None and value in values:
                    return False
            elif (operator == "Exists") != (value is not None):
                return False
        return True

    def with_requirements(
        self, equal: dict[str, str], unequal: dict[str, str] | None = None
    ) -> LabelSelector:
        """This selector plus `key In (value)` for each of `equal`, `key NotIn (value)` for
        each of `unequal` (matchLabelKeys, mismatchLabelKeys)."""
        if self._nothing:
            return self
        added = [(k, "In", frozenset((v,))) for k, v in equal.items()]
        added += [(k, "NotIn", frozenset((v,))) for k, v in (unequal or {}).items()]
        return LabelSelector(self._labels, self._expressions + tuple(added))

    def combined(self, other: LabelSelector) -> LabelSelector:
        """Both selectors' requirements (a selector that selects nothing adds none, as
        upstream's `Requirements()` of it is empty)."""
        if other._nothing:
            return self
        if self._nothing:
            return other
        labels = tuple((k, "In", frozenset((v,))) for k, v in other._labels.items())
        return LabelSelector(self._labels, self._expressions + labels + other._expressions)

    def __repr__(self) -> str:
        if self._nothing:
            return "LabelSelector(nothing)"
        return f"LabelSelector({self._labels}, {list(self._expressions)})"


def _never(labels: dict[str, str]) -> bool:
    return False


def _always(labels: dict[str, str]) -> bool:
    return True


NOTHING = LabelSelector(nothing=True)
