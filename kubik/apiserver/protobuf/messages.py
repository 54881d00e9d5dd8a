"""Table-driven decoding of Kubernetes protobuf messages into their JSON form.

Each message type is a table `{field number: "jsonName type"}`, where type is
`string`, `int` (any varint integer, read as signed 64-bit), `bool`, `bytes`
(base64 in JSON, as Go renders `[]byte`), `raw` (the bytes themselves) or the
name of another message; `[]type` is a repeated field and `{}type` a map with
string keys (proto2 writes a map as repeated {1: key, 2: value} entries). The
name `...` inlines the nested message's fields into the parent, as Go does
with embedded structs (`ProbeHandler` in `Probe`).

Go's protobuf encoder writes every non-pointer scalar, even when it is zero,
while its JSON encoder leaves out zero `omitempty` fields; so a zero scalar
is dropped unless its type is marked `*` (a Go pointer, or a field without
`omitempty`), where zero is a value the client meant. A message type may
have a *form*: a function that turns its decoded fields into its JSON value
(a Time into an RFC 3339 string, an IntOrString into an int or a string).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubik.apiserver.protobuf import wire
from kubik.apiserver.protobuf.wire import WireError

Table = dict[int, str]
Form = Callable[[dict[str, Any]], Any]

# The scalar types and the zero value of each in JSON.
_ZEROS: dict[str, Any] = {"string": "", "int": 0, "bool": False, "bytes": "", "raw": b""}
_SIGN_BIT = 1 << 63


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # the JSON name; "" when the message's fields are inlined in the parent
    type: str  # a scalar type or a message name
    shape: str  # "one", "list" or "map"
    keep_zero: bool


def parse_field(spec: str) -> Field:
    """A table entry such as "ports []ContainerPort" or "replicas *int"."""
    name, type_ = spec.split()
    shape = "one"
    if type_.startswith("[]"):
        shape, type_ = "list", type_[2:]
    elif type_.startswith("{}"):
        shape, type_ = "map", type_[2:]
    keep_zero = type_.startswith("*")
    return Field("" if name == "..." else name, type_.removeprefix("*"), shape, keep_zero)


class Schema:
    """A set of message tables, and the decoder that follows them."""

    def __init__(self, tables: dict[str, Table], forms: dict[str, Form]) -> None:
        self._messages = {
            name: {number: parse_field(spec) for number, spec in table.items()}
            for name, table in tables.items()
        }
        self._forms = forms
        for name, fields in self._messages.items():
            for field in fields.values():
                if field.type not in _ZEROS and field.type not in self._messages:
                    raise ValueError(f"{name}.{field.name}: unknown type {field.type}")

    def fields(self, message: str) -> dict[int, Field]:
        return self._messages[message]

    def decode(self, message: str, data: bytes) -> Any:
        """The JSON value of `data`, a message of type `message`."""
        decoded = self._fill(message, data, {})
        form = self._forms.get(message)
        return form(decoded) if form else decoded

    def _fill(self, message: str, data: bytes, out: dict[str, Any]) -> dict[str, Any]:
        fields = self._messages[message]
        for number, wire_type, value in wire.fields(data):
            field = fields.get(number)
            if field is None:
                continue  # a field newer than these tables: Go skips it too
            try:
                self._set(field, wire_type, value, out)
            except WireError as exc:
                raise exc.within(field.name or field.type) from None
        return out

    def _set(self, field: Field, wire_type: int, raw: int | bytes, out: dict[str, Any]) -> None:
        if not field.name:
            self._fill(field.type, _expect(wire_type, wire.LENGTH, raw), out)
        elif field.shape == "list":
            items = out.setdefault(field.name, [])
            if wire_type == wire.LENGTH and field.type in ("int", "bool"):  # packed
                items.extend(_number(field.type, v) for v in wire.varints(raw))
            else:
                items.append(self._value(field.type, wire_type, raw))
        elif field.shape == "map":
            key, value = self._entry(field.type, _expect(wire_type, wire.LENGTH, raw))
            out.setdefault(field.name, {})[key] = value
        else:
            value = self._value(field.type, wire_type, raw)
            if value is None or (not field.keep_zero and value == _ZEROS.get(field.type)):
                out.pop(field.name, None)
            else:
                out[field.name] = value

    def _entry(self, type_: str, data: bytes) -> tuple[str, Any]:
        key, value = "", None
        for number, wire_type, raw in wire.fields(data):
            if number == 1:
                key = self._value("string", wire_type, raw)
            elif number == 2:
                value = self._value(type_, wire_type, raw)
        if value is None:
            value = _ZEROS[type_] if type_ in _ZEROS else self.decode(type_, b"")
        return key, value

    def _value(self, type_: str, wire_type: int, raw: int | bytes) -> Any:
        if type_ in ("int", "bool"):
            return _number(type_, _expect(wire_type, wire.VARINT, raw))
        data = _expect(wire_type, wire.LENGTH, raw)
        if type_ == "string":
            return data.decode("utf-8", "replace")  # as Go's JSON encoder writes bad UTF-8
        if type_ == "bytes":
            return base64.b64encode(data).decode("ascii")
        if type_ == "raw":
            return bytes(data)
        return self.decode(type_, data)


def _expect(wire_type: int, expected: int, raw: Any) -> Any:
    if wire_type != expected:
        raise WireError(f"wire type {wire_type} where {expected} was expected")
    return raw


def _number(type_: str, value: int) -> int | bool:
    if type_ == "bool":
        return value != 0
    return value - (_SIGN_BIT << 1) if value & _SIGN_BIT else value
