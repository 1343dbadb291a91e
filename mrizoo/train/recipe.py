"""Training recipes: the ``training:`` mapping of a zoo entry file, as validated frozen dataclasses.

A recipe says what to train (a zoo architecture, optionally initialised from weights), on which
data (pools, folders or synthetic volumes), with which masks, loss, optimizer, schedule and
early-stopping rule. ``load_recipe`` reads a shipped recipe by name or any YAML file by path;
``smoke=True`` deep-merges the recipe's ``smoke:`` mapping onto it (a run of seconds on a CPU).

This module finds, reads and merges recipe files and is the public face of the three recipe
modules: the schema with its declared field rules (:mod:`mrizoo.train.recipe_schema`) and the
rules across fields (:mod:`mrizoo.train.recipe_checks`) are importable from here. Every problem
is an :class:`~mrizoo.errors.InputError` naming the file and the dotted key
(``training.optimizer.lr``).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrizoo._dataclass_io import from_dict, with_note
from mrizoo._registry import suggestion_hint
from mrizoo._yaml import read_yaml
from mrizoo.errors import InputError
from mrizoo.models.registry import ARCHITECTURES
from mrizoo.train.recipe_checks import validate_recipe
from mrizoo.train.recipe_schema import (
    LOSS_PARAMS,
    METRIC_HIGHER_IS_BETTER,
    AdlerParams,
    CheckpointSpec,
    DataSource,
    DataSpec,
    DSMParams,
    EarlyStoppingSpec,
    GANParams,
    L1Params,
    LossSpec,
    MaskAlternative,
    MaskSpec,
    OhayonParams,
    OptimizerSpec,
    RCGANParams,
    ScheduleSpec,
    SSIML1Params,
    SSIMParams,
    SyntheticData,
    TrainingRecipe,
    loss_params,
)
from mrizoo.zoo.names import closest_names

__all__ = [
    "SyntheticData",
    "DataSource",
    "DataSpec",
    "MaskSpec",
    "MaskAlternative",
    "LossSpec",
    "OptimizerSpec",
    "ScheduleSpec",
    "EarlyStoppingSpec",
    "CheckpointSpec",
    "TrainingRecipe",
    "RecipeInfo",
    "SSIMParams",
    "L1Params",
    "SSIML1Params",
    "GANParams",
    "RCGANParams",
    "AdlerParams",
    "OhayonParams",
    "DSMParams",
    "LOSS_PARAMS",
    "METRIC_HIGHER_IS_BETTER",
    "SUPERVISED_ARCHS",
    "loss_params",
    "load_recipe",
    "list_recipes",
    "validate_recipe",
    "deep_merge",
]


def __getattr__(name: str) -> Any:
    """``SUPERVISED_ARCHS``: the families trained with an image loss, read from the architecture table
    when asked for (reading it imports the architectures, and with them torch)."""
    if name == "SUPERVISED_ARCHS":
        return tuple(n for n, arch in ARCHITECTURES.items() if arch.task == "supervised")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class RecipeInfo:
    """Where a recipe came from: its name (file stem), file path and the file's sha256."""

    name: str
    path: str
    sha256: str


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` merged into a copy of ``base``: mappings merge recursively, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def list_recipes() -> list[str]:
    """Names of the shipped files that hold a ``training:`` recipe."""
    root = importlib.resources.files("mrizoo.recipes")
    names = []
    for item in root.iterdir():
        if item.name.endswith(".yaml"):
            doc = read_yaml(str(item), item.read_text()) or {}
            if isinstance(doc, dict) and "training" in doc:
                names.append(item.name.removesuffix(".yaml"))
    return sorted(names)


def _resolve(path_or_name: str | Path) -> tuple[str, bytes]:
    """The file a recipe reference names (a path, or a shipped recipe's name) and its bytes."""
    text = str(path_or_name)
    is_path = isinstance(path_or_name, Path) or text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text
    if is_path:
        p = Path(path_or_name).expanduser()
        if not p.is_file():
            raise InputError("recipe file not found", path=str(p), expected="an existing YAML file")
        return str(p), p.read_bytes()
    item = importlib.resources.files("mrizoo.recipes") / f"{text}.yaml"
    if not item.is_file():
        options = list_recipes()
        close = closest_names(text, options)
        raise InputError(f"unknown recipe {text!r}{suggestion_hint(close)}", field="recipe",
                         expected=f"a recipe file path or one of {options}")
    return str(item), item.read_bytes()


def _checked_recipe(mapping: dict[str, Any], source: str, note: str) -> TrainingRecipe:
    """``mapping`` read as a recipe and validated; errors carry ``note``."""
    try:
        recipe = from_dict(TrainingRecipe, mapping, source=source, prefix="training")
    except InputError as err:
        raise with_note(err, note) from None
    validate_recipe(recipe, source, note=note)
    return recipe


_AS_WRITTEN = " (in the recipe as written; --smoke overrides it, but a full run would stop here)"


def _smoke_merged(mapping: dict[str, Any], source: str) -> dict[str, Any]:
    """The recipe with its ``smoke`` mapping merged on, after checking the recipe as written.

    A smoke override must not hide a value a full run would reject, so the written recipe is
    validated first.
    """
    _checked_recipe(mapping, source, _AS_WRITTEN)
    overrides = mapping.get("smoke") or {}
    if not isinstance(overrides, dict):
        raise InputError("expected a mapping", path=source, field="training.smoke", got=type(overrides).__name__)
    if "smoke" in overrides:
        raise InputError("the smoke mapping cannot hold 'smoke'", path=source, field="training.smoke.smoke")
    return deep_merge(mapping, overrides)


def load_recipe(path_or_name: str | Path, *, smoke: bool = False) -> tuple[TrainingRecipe, RecipeInfo]:
    """Read, merge (``smoke``) and validate a recipe; a name means the shipped ``<name>.yaml``."""
    source, raw = _resolve(path_or_name)
    info = RecipeInfo(name=Path(source).name.rsplit(".", 1)[0], path=source, sha256=hashlib.sha256(raw).hexdigest())
    doc = read_yaml(source, raw)
    if not isinstance(doc, dict) or "training" not in doc:
        raise InputError("no 'training' mapping (this file holds no training recipe)", path=source,
                         field="training")
    mapping = doc["training"]
    if not isinstance(mapping, dict):
        raise InputError("expected a mapping", path=source, field="training", got=type(mapping).__name__)
    if smoke:
        return _checked_recipe(_smoke_merged(mapping, source), source, " (after merging training.smoke)"), info
    return _checked_recipe(mapping, source, ""), info
