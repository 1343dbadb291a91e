"""Build (nested) dataclasses from plain dicts (YAML/JSON), with errors that name file and key.

Used for zoo entries, recipes and architecture configs: unknown keys, missing required keys,
wrong types and values outside ``Literal`` choices are reported as
``InputError(path=<file>, field=<dotted.key>)``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar, Union

from mrizoo.errors import InputError

__all__ = ["from_dict", "to_dict", "read_yaml_section"]

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, *, source: str | None, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, source=source, key=key)
            except InputError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise InputError("wrong type", path=source, field=key, expected=_type_name(tp),
                         got=f"{type(value).__name__} {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise InputError("value not allowed", path=source, field=key,
                             expected=f"one of {list(args)}", got=repr(value))
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source=source, prefix=key)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError("wrong type", path=source, field=key, expected="a list",
                             got=f"{type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise InputError("wrong length", path=source, field=key, expected=f"{len(args)} items",
                                 got=len(value))
            return tuple(_convert(v, a, source=source, key=f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_convert(v, item, source=source, key=f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if (origin is tuple or tp is tuple) else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise InputError("wrong type", path=source, field=key, expected="a mapping",
                             got=f"{type(value).__name__} {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _convert(v, vt, source=source, key=f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError("wrong type", path=source, field=key, expected="a number",
                             got=f"{type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError("wrong type", path=source, field=key, expected="an integer",
                             got=f"{type(value).__name__} {value!r}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise InputError("wrong type", path=source, field=key, expected=_type_name(tp),
                             got=f"{type(value).__name__} {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: Any, *, source: str | None = None, prefix: str = "") -> T:
    """Instantiate dataclass ``cls`` from ``data``, validating keys and types recursively."""
    where = prefix or cls.__name__
    if not isinstance(data, dict):
        raise InputError("expected a mapping", path=source, field=where, got=type(data).__name__)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"unknown key(s) {unknown}", path=source, field=where,
                         expected=f"keys among {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], source=source, key=key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise InputError("missing required key", path=source, field=key)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(str(err), path=source, field=where) from None


def read_yaml_section(path: Any, key: str, text: str | None = None) -> tuple[dict[str, Any], Any]:
    """Read a YAML file (or its ``text``) and return ``(document, document[key])``.

    Read with :func:`mrizoo._yaml.read_yaml` (``1e-3`` is a float). Unreadable files, invalid YAML
    and a missing ``key`` are ``InputError``s naming the file.
    """
    from mrizoo._yaml import read_yaml

    source = str(path)
    doc = read_yaml(path, text)
    if not isinstance(doc, dict) or key not in doc:
        raise InputError(f"no '{key}' mapping", path=source, field=key)
    return doc, doc[key]


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) to plain dicts/lists, tuples as lists (YAML/JSON friendly)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
