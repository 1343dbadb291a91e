"""Pool files: declarative training pools and named test sets over the slice index.

A pool selects slices by metadata, as in Lin & Heckel (ICML 2024): a list of *selections*,
each a mapping of conditions. Conditions inside one mapping must all hold (AND); a slice
belongs to the pool when any mapping matches (OR). A condition value is one value, a list
(any of), ``null`` (unknown), or for numeric columns a range ``{min: 8, max: 32}``::

    name: knee-pd-vs-pdfs
    description: PD and PDFS knee, 2048 training slices per scanner
    train:
      - {dataset: fastmri_knee, contrast: PD, scanner: [Skyra, Aera], split: train}
      - {dataset: fastmri_knee, contrast: PDFS, split: train, max_slices: 2048}
    test:
      pdfs: [{dataset: fastmri_knee, contrast: PDFS, split: val, max_slices: 128}]
    weights: {fastmri_knee: 1.0}   # share of training batches per dataset (sampling)
    caps: {fastmri_knee: 5000}     # at most this many training slices per dataset
    seed: 0                        # picks the volumes kept under max_slices / caps

``max_slices`` (inside a selection) keeps whole volumes of that selection, in a seeded random
order, while their slices add up to at most that number. Columns are those of
:data:`mrizoo.pools.columns.SELECTABLE_COLUMNS`; anything else is an :class:`InputError` that
names the file and the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mrizoo._yaml import read_yaml
from mrizoo.errors import InputError
from mrizoo.pools.columns import NUMERIC_COLUMNS, SELECTABLE_COLUMNS

__all__ = [
    "PoolSpec",
    "Range",
    "Selection",
    "list_pools",
    "load_pool",
    "parse_selections",
    "pool_from_dict",
    "shipped_pool_path",
]

_TOP_KEYS = ("name", "description", "reference", "train", "test", "weights", "caps", "seed")
_OPTION_KEYS = ("max_slices",)
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_DATASET = re.compile(r"^[a-z0-9][a-z0-9_]*$")


@dataclass(frozen=True)
class Range:
    """Numeric condition ``min <= value <= max`` (either bound may be None)."""

    min: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}


@dataclass(frozen=True)
class Selection:
    """One mapping of conditions (ANDed) and an optional cap on the slices it keeps.

    ``conditions`` maps a column to a tuple of accepted values (``None`` = unknown) or a
    :class:`Range`.
    """

    conditions: Mapping[str, tuple[Any, ...] | Range]
    max_slices: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.conditions.items():
            if isinstance(value, Range):
                out[key] = value.to_dict()
            else:
                out[key] = value[0] if len(value) == 1 else list(value)
        if self.max_slices is not None:
            out["max_slices"] = self.max_slices
        return out


@dataclass(frozen=True)
class PoolSpec:
    """A training pool (``train`` selections) and named test sets, with sampling weights and caps."""

    name: str
    train: tuple[Selection, ...] = ()
    test: Mapping[str, tuple[Selection, ...]] = field(default_factory=dict)
    description: str = ""
    reference: str = ""
    weights: Mapping[str, float] = field(default_factory=dict)
    caps: Mapping[str, int] = field(default_factory=dict)
    seed: int = 0
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping in the pool-file layout (``pool_from_dict(spec.to_dict())`` round-trips)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.reference:
            out["reference"] = self.reference
        out["train"] = [s.to_dict() for s in self.train]
        if self.test:
            out["test"] = {k: [s.to_dict() for s in v] for k, v in self.test.items()}
        if self.weights:
            out["weights"] = dict(self.weights)
        if self.caps:
            out["caps"] = dict(self.caps)
        out["seed"] = self.seed
        return out


def _scalar(value: Any, column: str, source: str | None, where: str) -> Any:
    if value is None:
        return None
    kind = NUMERIC_COLUMNS.get(column)
    if kind is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError("must be a number", path=source, field=where,
                             expected=f"a number, a list of numbers or {{min:, max:}} for '{column}'",
                             got=repr(value))
        if kind is int and float(value) != int(value):
            raise InputError("must be a whole number", path=source, field=where, got=repr(value))
        return kind(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError("must be a text value", path=source, field=where,
                         expected=f"a value or a list of values for '{column}'", got=repr(value))
    text = str(value).strip()
    if not text:
        raise InputError("empty value", path=source, field=where, expected="a value, or null for unknown")
    return text


def _condition(value: Any, column: str, source: str | None, where: str) -> tuple[Any, ...] | Range:
    if isinstance(value, Mapping):
        if column not in NUMERIC_COLUMNS:
            raise InputError("a range needs a numeric column", path=source, field=where,
                             expected=f"one of {list(NUMERIC_COLUMNS)}")
        extra = sorted(set(value) - {"min", "max"})
        if extra or not value:
            raise InputError("a range takes 'min' and/or 'max'", path=source, field=where,
                             got=f"keys {sorted(value)}")
        lo = _scalar(value.get("min"), column, source, f"{where}.min")
        hi = _scalar(value.get("max"), column, source, f"{where}.max")
        if lo is not None and hi is not None and lo > hi:
            raise InputError("empty range (min > max)", path=source, field=where, got=f"{lo} > {hi}")
        return Range(lo, hi)
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise InputError("empty list matches nothing", path=source, field=where,
                         expected="at least one value")
    return tuple(_scalar(v, column, source, f"{where}[{i}]" if value is values else where)
                 for i, v in enumerate(values))


def parse_selections(raw: Any, *, source: str | None = None, where: str = "train") -> tuple[Selection, ...]:
    """Validate a list of condition mappings (a single mapping counts as a list of one)."""
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        raise InputError("must be a list of condition mappings", path=source, field=where,
                         got=type(raw).__name__)
    out = []
    for i, item in enumerate(raw):
        here = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise InputError("must be a mapping of conditions", path=source, field=here,
                             expected="e.g. {dataset: fastmri_knee, contrast: PD}", got=repr(item))
        conditions: dict[str, tuple[Any, ...] | Range] = {}
        max_slices = None
        for key, value in item.items():
            key_s = str(key)
            if key_s == "max_slices":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise InputError("must be a positive whole number", path=source, field=f"{here}.max_slices",
                                     got=repr(value))
                max_slices = int(value)
            elif key_s in SELECTABLE_COLUMNS:
                conditions[key_s] = _condition(value, key_s, source, f"{here}.{key_s}")
            else:
                raise InputError("unknown column", path=source, field=f"{here}.{key_s}",
                                 expected=f"one of {list(SELECTABLE_COLUMNS)} or {list(_OPTION_KEYS)}")
        if "dataset" in conditions and not isinstance(conditions["dataset"], Range):
            for name in conditions["dataset"]:
                if name is not None and not _DATASET.match(str(name)):
                    raise InputError("dataset names are lower-case snake", path=source, field=f"{here}.dataset",
                                     expected="e.g. fastmri_knee, cc359_sagittal, 7t_axial", got=repr(name))
        out.append(Selection(conditions, max_slices))
    return tuple(out)


def _number_map(raw: Any, key: str, source: str | None, *, integer: bool) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InputError("must be a mapping of dataset name to number", path=source, field=key,
                         got=type(raw).__name__)
    out: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"{key}.{name}"
        if not _DATASET.match(str(name)):
            raise InputError("dataset names are lower-case snake", path=source, field=where, got=repr(name))
        if integer:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError("must be a positive whole number of slices", path=source, field=where,
                                 got=repr(value))
            out[str(name)] = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value >= 0
            ):
                raise InputError("must be a number >= 0", path=source, field=where, got=repr(value))
            out[str(name)] = float(value)
    if not integer and out and not any(v > 0 for v in out.values()):
        raise InputError("all weights are zero", path=source, field=key, expected="at least one weight > 0")
    return out


def pool_from_dict(data: Any, *, source: str | None = None) -> PoolSpec:
    """Build a validated :class:`PoolSpec` from a pool-file mapping."""
    if not isinstance(data, Mapping):
        raise InputError("a pool file holds a mapping", path=source, expected=f"keys among {list(_TOP_KEYS)}",
                         got=type(data).__name__)
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise InputError(f"unknown key(s) {unknown}", path=source, field=unknown[0],
                         expected=f"keys among {list(_TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not _SET_NAME.match(name):
        raise InputError("missing or invalid pool name", path=source, field="name",
                         expected="letters, digits, '_', '.', '+', '-'", got=repr(name))
    for key in ("description", "reference"):
        if not isinstance(data.get(key, ""), str):
            raise InputError("must be text", path=source, field=key, got=type(data[key]).__name__)
    train = parse_selections(data.get("train", []) or [], source=source, where="train")
    raw_test = data.get("test", {}) or {}
    if not isinstance(raw_test, Mapping):
        raise InputError("must map test-set names to selections", path=source, field="test",
                         expected="e.g. {nyu: [{dataset: nyu, split: val}]}", got=type(raw_test).__name__)
    test: dict[str, tuple[Selection, ...]] = {}
    for set_name, raw in raw_test.items():
        if not isinstance(set_name, str) or not _SET_NAME.match(set_name):
            raise InputError("invalid test-set name", path=source, field=f"test.{set_name}",
                             expected="letters, digits, '_', '.', '+', '-'")
        test[set_name] = parse_selections(raw, source=source, where=f"test.{set_name}")
    if not train and not test:
        raise InputError("the pool selects nothing", path=source, field="train",
                         expected="'train' selections and/or 'test' sets")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError("must be a whole number", path=source, field="seed", got=repr(seed))
    return PoolSpec(
        name=name, train=train, test=test,
        description=data.get("description", "") or "", reference=data.get("reference", "") or "",
        weights=_number_map(data.get("weights"), "weights", source, integer=False),
        caps=_number_map(data.get("caps"), "caps", source, integer=True),
        seed=int(seed), source=source,
    )


def _shipped_dir() -> Path:
    return Path(str(resources.files("mrizoo.pools").joinpath("shipped")))


def list_pools() -> list[str]:
    """Names of the pools shipped with mrizoo."""
    folder = _shipped_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def shipped_pool_path(name: str) -> Path:
    """Path of a shipped pool file."""
    path = _shipped_dir() / f"{name}.yaml"
    if not path.is_file():
        raise InputError("no shipped pool of that name", field="pool", expected=f"one of {list_pools()}",
                         got=repr(name))
    return path


def load_pool(name_or_path: str | Path) -> PoolSpec:
    """Read a pool: a YAML file path, or the name of a shipped pool (see :func:`list_pools`)."""
    path = Path(name_or_path)
    if not path.is_file():
        if isinstance(name_or_path, str) and name_or_path in list_pools():
            path = shipped_pool_path(name_or_path)
        elif path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
            raise InputError("pool file not found", path=path)
        else:
            raise InputError("neither a pool file nor a shipped pool", field="pool",
                             expected=f"a .yaml path or one of {list_pools()}", got=repr(str(name_or_path)))
    data = read_yaml(path)
    return pool_from_dict(data, source=str(path))


def _as_selections(value: PoolSpec | Sequence[Selection] | Sequence[Mapping[str, Any]]) -> tuple[Selection, ...]:
    if isinstance(value, PoolSpec):
        return value.train
    items = list(value)
    if all(isinstance(v, Selection) for v in items):
        return tuple(items)
    return parse_selections(items, where="selections")
