"""Build (nested) dataclasses from plain dicts (YAML/JSON), with errors that name file and key.

Used for zoo entries, recipes, studies, pools and architecture configs: unknown keys, missing
required keys, wrong types, values outside ``Literal`` choices and values that break a field's
declared :class:`Rule` are reported as ``InputError(path=<file>, field=<dotted.key>)``.

Validation is declared on the field, not written out by hand::

    @dataclass(frozen=True)
    class OptimizerSpec:
        lr: float = checked(gt=0, finite=True, problem="learning rate must be positive")
        betas: tuple[float, float] = checked((0.9, 0.999), each=Rule(ge=0, lt=1))

:func:`checked` is :func:`dataclasses.field` plus a :class:`Rule` kept in the field's metadata;
:func:`from_dict` enforces it on every value it reads and :func:`check_fields` on an instance
built in code. Rules that relate several fields stay small named functions beside the schema.

Why metadata read by this loader rather than pydantic: every config of the package already goes
through :func:`from_dict`, so one mechanism gives all of them declared rules, with the messages
in the one ``InputError`` form (file, dotted key, expected, got) and no translation of another
library's error objects; the classes stay plain frozen dataclasses (``dataclasses.replace``,
``asdict``, hashing and equality as everywhere else), values are never coerced (``"8"`` for an
integer stays an error, as pydantic's lax mode would not report), and no dependency is added
to the core install.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Collection
from typing import Any, TypeVar, Union

from mrizoo._yaml import read_yaml
from mrizoo.errors import InputError

__all__ = ["RULE_KEY", "Rule", "checked", "field_rule", "check_value", "check_fields", "from_dict", "to_dict",
           "read_yaml_section", "with_note"]

T = TypeVar("T")

#: The key of a field's metadata that holds its :class:`Rule`.
RULE_KEY = "mrizoo.rule"


@dataclasses.dataclass(frozen=True)
class Rule:
    """Constraints on one value; ``None`` always passes (optionality is the type's business).

    Numbers: ``gt``/``ge``/``lt``/``le`` bounds (NaN fails every bound), ``finite``, ``odd``.
    Lists, tuples, mappings: ``min_len``, ``max_len``, ``unique`` (no repeated item).
    Any value: ``choices`` (a collection, or a function returning one, for names registered at
    run time), ``pattern`` (a regular expression a string must match in full).
    ``each`` applies to every item (``key[i]``) or mapping value (``key.name``), ``keys`` to
    every mapping key (``key.name``). ``problem`` and ``expected`` replace the default wording
    of this rule's own failures (not those of ``each``/``keys``).
    """

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    finite: bool = False
    odd: bool = False
    min_len: int | None = None
    max_len: int | None = None
    unique: bool = False
    choices: Collection[Any] | Callable[[], Collection[Any]] | None = None
    pattern: str | None = None
    each: Rule | None = None
    keys: Rule | None = None
    problem: str | None = None
    expected: str | None = None


def checked(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **rule: Any) -> Any:
    """A dataclass field (``default`` or ``default_factory`` as :func:`dataclasses.field`) with a :class:`Rule`."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={RULE_KEY: Rule(**rule)})


def _num(x: float) -> str:
    return str(int(x)) if isinstance(x, (int, float)) and math.isfinite(x) and float(x).is_integer() else str(x)


def _bounds(rule: Rule, value: Any) -> tuple[str, str]:
    """(problem, expected) of a failed bound check, in the words of the bounds given."""
    lo = ("<", rule.gt) if rule.gt is not None else ("<=", rule.ge) if rule.ge is not None else None
    hi = ("<", rule.lt) if rule.lt is not None else ("<=", rule.le) if rule.le is not None else None
    if lo and hi:
        left = "(" if lo[0] == "<" else "["
        right = ")" if hi[0] == "<" else "]"
        return (f"outside {left}{_num(lo[1])}, {_num(hi[1])}{right}",
                f"{_num(lo[1])} {lo[0]} value {hi[0]} {_num(hi[1])}")
    if lo:
        op, bound = (">", lo[1]) if lo[0] == "<" else (">=", lo[1])
        if (op, bound) == (">", 0) or (op == ">=" and bound == 1 and isinstance(value, int)):
            problem = "must be positive"
        elif (op, bound) == (">=", 0):
            problem = "must not be negative"
        else:
            problem = f"must exceed {_num(bound)}" if op == ">" else f"must be at least {_num(bound)}"
        return problem, f"{op} {_num(bound)}"
    assert hi is not None
    op = "<" if hi[0] == "<" else "<="
    problem = f"must be below {_num(hi[1])}" if op == "<" else f"must be at most {_num(hi[1])}"
    return problem, f"{op} {_num(hi[1])}"


def _in_bounds(rule: Rule, x: float) -> bool:
    return ((rule.gt is None or x > rule.gt) and (rule.ge is None or x >= rule.ge)
            and (rule.lt is None or x < rule.lt) and (rule.le is None or x <= rule.le))


def _items(value: Any, key: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(f"{key}.{k}", v) for k, v in value.items()]
    return [(f"{key}[{i}]", v) for i, v in enumerate(value)]


def check_value(value: Any, rule: Rule, *, source: str | None = None, key: str = "") -> None:
    """Raise ``InputError(path=source, field=key)`` when ``value`` breaks ``rule``."""
    if value is None:
        return

    def fail(problem: str, expected: Any, got: Any) -> typing.NoReturn:
        raise InputError(rule.problem or problem, path=source, field=key,
                         expected=rule.expected or expected, got=got)

    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_number:
        has_bounds = any(b is not None for b in (rule.gt, rule.ge, rule.lt, rule.le))
        if has_bounds and not _in_bounds(rule, value):
            fail(*_bounds(rule, value), value)
        if rule.finite and not math.isfinite(value):
            fail("must be finite", "a finite number", value)
        if rule.odd and (not float(value).is_integer() or int(value) % 2 != 1):
            fail("must be odd", "an odd number", value)
    if isinstance(value, (list, tuple, dict)):
        n = len(value)
        if rule.min_len is not None and n < rule.min_len:
            fail(f"needs at least {rule.min_len} item{'s' if rule.min_len != 1 else ''}",
                 f">= {rule.min_len} items", n)
        if rule.max_len is not None and n > rule.max_len:
            fail(f"holds more than {rule.max_len} item{'s' if rule.max_len != 1 else ''}",
                 f"<= {rule.max_len} items", n)
        if rule.unique and not isinstance(value, dict) and any(v in value[:i] for i, v in enumerate(value)):
            fail("items must be distinct", "no repeated item", list(value))
    if rule.choices is not None:
        options = rule.choices() if callable(rule.choices) else rule.choices
        if value not in options:
            listed = sorted(options) if isinstance(options, (set, frozenset)) else list(options)
            fail("value not allowed", f"one of {listed}", repr(value))
    if rule.pattern is not None and (not isinstance(value, str) or not re.fullmatch(rule.pattern, value)):
        fail("does not have the required form", f"text matching {rule.pattern}", repr(value))
    if rule.each is not None and isinstance(value, (list, tuple, dict)):
        for item_key, item in _items(value, key):
            check_value(item, rule.each, source=source, key=item_key)
    if rule.keys is not None and isinstance(value, dict):
        for k in value:
            check_value(k, rule.keys, source=source, key=f"{key}.{k}")


def field_rule(f: dataclasses.Field) -> Rule | None:
    """The :class:`Rule` declared on dataclass field ``f`` (``None`` when it has none)."""
    return f.metadata.get(RULE_KEY)


def check_fields(obj: Any, *, source: str | None = None, prefix: str = "") -> None:
    """Check every declared :class:`Rule` of dataclass instance ``obj`` and of the dataclasses it holds.

    :func:`from_dict` already enforces the rules of what it reads; this is for instances built in
    code (or with defaults a caller wants checked). Fields are named ``<prefix>.<field>``.
    """
    for f in dataclasses.fields(obj):
        key = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(obj, f.name)
        rule = field_rule(f)
        if rule is not None:
            check_value(value, rule, source=source, key=key)
        _check_nested(value, source=source, key=key)


def _check_nested(value: Any, *, source: str | None, key: str) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        check_fields(value, source=source, prefix=key)
    elif isinstance(value, (list, tuple, dict)):
        for item_key, item in _items(value, key):
            _check_nested(item, source=source, key=item_key)


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
    """Instantiate dataclass ``cls`` from ``data``, validating keys, types and declared rules recursively."""
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
            rule = field_rule(f)
            if rule is not None:
                check_value(kwargs[name], rule, source=source, key=key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise InputError("missing required key", path=source, field=key)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(str(err), path=source, field=where) from None


def with_note(err: InputError, note: str) -> InputError:
    """``err`` with ``note`` appended to its problem (e.g. which merge of a file was being checked)."""
    if not note:
        return err
    return InputError(err.problem + note, path=err.path, field=err.field, expected=err.expected, got=err.got)


def read_yaml_section(path: Any, key: str, text: str | None = None) -> tuple[dict[str, Any], Any]:
    """Read a YAML file (or its ``text``) and return ``(document, document[key])``.

    Read with :func:`mrizoo._yaml.read_yaml` (``1e-3`` is a float). Unreadable files, invalid YAML
    and a missing ``key`` are ``InputError``s naming the file.
    """
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
