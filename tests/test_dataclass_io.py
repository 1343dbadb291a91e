"""Declared field rules of the dataclass loader: each kind rejects a bad value naming the file and
the dotted field, accepts a good one, and the configs that declare rules keep defaults that pass."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from mrizoo._dataclass_io import Rule, check_fields, check_value, checked, field_rule, from_dict
from mrizoo.errors import InputError

SOURCE = "conf.yaml"


@dataclass(frozen=True)
class Inner:
    rate: float = checked(0.5, gt=0, le=1)
    names: dict[str, int] = checked(default_factory=dict, keys=Rule(pattern=r"[a-z]+"), each=Rule(ge=0))


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    count: int = checked(1, ge=1)
    lr: float = checked(1e-3, gt=0, finite=True, problem="learning rate must be positive")
    window: int = checked(7, odd=True)
    sizes: tuple[float, ...] = checked((2.0,), min_len=1, max_len=3, each=Rule(gt=1, problem="must exceed one"))
    seeds: tuple[int, ...] = checked((0,), unique=True)
    kind: str = checked("a", choices=("a", "b"))
    dynamic: str = checked("x", choices=lambda: ["x", "y"], problem="unknown thing")
    tag: str | None = checked(None, pattern=r"[A-Z][a-z]*", expected="a capitalised word")
    low: float = checked(0.0, lt=1)
    plain: int = 0


# (dotted key, bad value, field named in the error, words of the message, a good value)
CASES: list[tuple[str, Any, str, str, Any]] = [
    ("count", 0, "count", "must be positive (expected >= 1, got 0)", 5),
    ("inner.rate", 0.0, "inner.rate", "outside (0, 1] (expected 0 < value <= 1, got 0.0)", 1.0),
    ("inner.rate", 1.5, "inner.rate", "outside (0, 1]", 0.25),
    ("inner.rate", math.nan, "inner.rate", "outside (0, 1]", 0.75),
    ("low", 1.0, "low", "must be below 1 (expected < 1", -3.0),
    ("lr", math.inf, "lr", "learning rate must be positive", 2e-4),
    ("lr", -1.0, "lr", "learning rate must be positive (expected > 0, got -1.0)", 1.0),
    ("window", 6, "window", "must be odd", 5),
    ("sizes", [], "sizes", "needs at least 1 item", [3.0]),
    ("sizes", [2.0, 3.0, 4.0, 5.0], "sizes", "more than 3 items", [2.0, 3.0, 4.0]),
    ("sizes", [2.0, 1.0], "sizes[1]", "must exceed one (expected > 1, got 1.0)", [2.0, 1.5]),
    ("seeds", [1, 2, 1], "seeds", "items must be distinct", [1, 2, 3]),
    ("kind", "c", "kind", "value not allowed (expected one of ['a', 'b'], got 'c')", "b"),
    ("dynamic", "z", "dynamic", "unknown thing (expected one of ['x', 'y']", "y"),
    ("tag", "lower", "tag", "does not have the required form (expected a capitalised word, got 'lower')", "Upper"),
    ("inner.names", {"ok": -1}, "inner.names.ok", "must not be negative", {"ok": 0}),
    ("inner.names", {"Bad": 1}, "inner.names.Bad", "does not have the required form", {"good": 1}),
]


def _mapping(dotted: str, value: Any) -> dict[str, Any]:
    head, _, rest = dotted.partition(".")
    return {head: _mapping(rest, value) if rest else value}


@pytest.mark.parametrize(("key", "bad", "where", "words", "good"), CASES, ids=[f"{c[0]}={c[1]!r}" for c in CASES])
def test_each_rule_rejects_a_bad_value_and_accepts_a_good_one(key: str, bad: Any, where: str, words: str,
                                                              good: Any) -> None:
    with pytest.raises(InputError) as info:
        from_dict(Outer, _mapping(key, bad), source=SOURCE, prefix="conf")
    err = info.value
    assert err.path == SOURCE and err.field == f"conf.{where}"
    assert words in str(err)
    obj = from_dict(Outer, _mapping(key, good), source=SOURCE, prefix="conf")
    node: Any = obj
    for part in key.split("."):
        node = getattr(node, part)
    assert node == (tuple(good) if isinstance(good, list) else good)


def test_defaults_and_none_pass() -> None:
    assert from_dict(Outer, {}) == Outer()
    check_fields(Outer())
    assert from_dict(Outer, {"tag": None}).tag is None


def test_types_are_checked_before_rules_and_never_coerced() -> None:
    with pytest.raises(InputError, match="wrong type") as info:
        from_dict(Outer, {"count": "3"}, source=SOURCE)
    assert info.value.field == "count"
    with pytest.raises(InputError, match="wrong type"):
        from_dict(Outer, {"count": True}, source=SOURCE)


@dataclass(frozen=True)
class Holder:
    items: tuple[Inner, ...] = ()
    table: dict[str, Outer] = field(default_factory=dict)


def test_check_fields_walks_an_instance_built_in_code() -> None:
    with pytest.raises(InputError, match="outside") as info:
        check_fields(Outer(inner=Inner(rate=2.0)), source=SOURCE, prefix="conf")
    assert info.value.path == SOURCE and info.value.field == "conf.inner.rate"
    with pytest.raises(InputError, match="must exceed one") as info:
        check_fields(Holder(table={"a": Outer(), "b": Outer(sizes=(2.0, 0.5))}), prefix="h")
    assert info.value.field == "h.table.b.sizes[1]"
    with pytest.raises(InputError, match="must not be negative") as info:
        check_fields(Holder(items=(Inner(), Inner(names={"k": -2}))))
    assert info.value.field == "items[1].names.k"
    check_fields(Holder(items=(Inner(),), table={"a": Outer()}))


def test_rule_lives_in_the_field_metadata() -> None:
    fields = {f.name: f for f in dataclasses.fields(Outer)}
    assert field_rule(fields["count"]) == Rule(ge=1)
    assert field_rule(fields["plain"]) is None
    assert fields["inner"].default_factory is Inner  # checked() keeps dataclasses.field semantics


@pytest.mark.parametrize("module", ["mrizoo.train.recipe_schema", "mrizoo.study.schema"])
def test_declared_defaults_satisfy_their_rules(module: str) -> None:
    """A default that broke its own rule would pass unchecked (from_dict checks only given values)."""
    import importlib

    mod = importlib.import_module(module)
    seen = 0
    for value in vars(mod).values():
        if not (isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == module):
            continue
        for f in dataclasses.fields(value):
            rule = field_rule(f)
            if rule is None:
                continue
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            check_value(default, rule, key=f"{value.__name__}.{f.name}")
            seen += 1
    assert seen >= 10
