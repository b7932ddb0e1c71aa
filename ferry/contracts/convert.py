"""One dataclass built from another value's fields of the same names.

The rooms pass the same facts in different types (an event's record, a database
row, an activity's result, a workflow's input): where one type's fields are
another's by name, `build` copies them, and the caller names only what differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar, get_type_hints

T = TypeVar("T")


def build(cls: type[T], source: Mapping[str, Any] | object, /, **given: Any) -> T:
    """`cls` with each field from `given`, else from `source`'s field of the same name.

    `source` is a mapping (an event's record) or any object (a row, a dataclass).
    A field `source` does not have keeps its default, and one without a default
    is a `TypeError`, as for the constructor, and so is a name in `given` that is
    not a field. From a mapping, a field whose type is a dataclass (a storage or
    bucket reference) is built from the nested record.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = given.keys() - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
    values = dict(given)
    if isinstance(source, Mapping):
        # Only a record needs the types (nested records); not cached: a workflow's own
        # classes are new in each run's sandbox.
        hints = get_type_hints(cls)
        for name in names:
            if name not in values and name in source:
                value, kind = source[name], hints[name]
                nested = isinstance(value, Mapping) and dataclasses.is_dataclass(kind)
                values[name] = kind(**value) if nested else value
    else:
        for name in names:
            if name not in values and hasattr(source, name):
                values[name] = getattr(source, name)
    return cls(**values)
