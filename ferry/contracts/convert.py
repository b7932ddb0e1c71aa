"""One dataclass built from another value's fields of the same names.

The rooms pass the same facts in different types (an event's record, a database
row, an activity's result, a workflow's input): where one type's fields are
another's by name, `build` copies them, and the caller names only what differs.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Hashable, Mapping
from typing import Any, TypeVar, cast, get_type_hints

T = TypeVar("T")


@functools.lru_cache(maxsize=256)
def _fields(cls: Any) -> tuple[tuple[str, Any], ...]:
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def build(cls: type[T], source: Mapping[str, Any] | object, /, **given: Any) -> T:
    """`cls` with each field from `given`, else from `source`'s field of the same name.

    `source` is a mapping (an event's record) or any object (a row, a dataclass).
    A field `source` does not have keeps its default, and one without a default
    is a `TypeError`, as for the constructor, and so is a name in `given` that is
    not a field. From a mapping, a field whose type is a dataclass (a storage or
    bucket reference) is built from the nested record.
    """
    fields = _fields(cast(Hashable, cls))
    unknown = given.keys() - {name for name, _ in fields}
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
    values = {name: given[name] for name, _ in fields if name in given}
    for name, kind in fields:
        if name in values:
            continue
        if isinstance(source, Mapping):
            if name in source:
                value = source[name]
                nested = isinstance(value, Mapping) and dataclasses.is_dataclass(kind)
                values[name] = kind(**value) if nested else value
        elif hasattr(source, name):
            values[name] = getattr(source, name)
    return cls(**values)
