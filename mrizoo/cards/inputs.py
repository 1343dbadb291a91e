"""What a card is built from besides the zoo entry: the training pool, the recipe's training
settings, and where the shipped cards and their results and training summaries live."""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrizoo._yaml import parse_yaml, read_yaml
from mrizoo.errors import InputError
from mrizoo.zoo.registry import read_entry_file

__all__ = ["CARDS_DIR", "PoolDataset", "PoolDescription", "card_path", "training_path", "recipe_training_section",
           "shipped_entry_names"]

#: Folder of the shipped cards, with ``results/<name>.json`` and ``training/<name>.json`` beside them.
CARDS_DIR = "model_cards"


@dataclass(frozen=True)
class PoolDataset:
    """One dataset of a training pool."""

    name: str
    slices: int
    volumes: int | None = None
    anatomy: str = ""
    contrasts: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True)
class PoolDescription:
    """The training pool of a model: its datasets and slice counts (filled in when a pool is built)."""

    name: str
    datasets: tuple[PoolDataset, ...]
    notes: str = ""

    @property
    def total_slices(self) -> int:
        return sum(d.slices for d in self.datasets)


def card_path(name: str, cards_dir: str | os.PathLike[str] = CARDS_DIR) -> Path:
    """Where the card of zoo model ``name`` lives."""
    return Path(cards_dir) / f"{name}.md"


def training_path(name: str, cards_dir: str | os.PathLike[str] = CARDS_DIR) -> Path:
    """Where the training summary of zoo model ``name`` lives next to its card."""
    return Path(cards_dir) / "training" / f"{name}.json"


def recipe_training_section(recipe: str | None) -> dict[str, Any] | None:
    """The ``training:`` mapping of ``recipes/<recipe>.yaml`` (None when absent or no recipe)."""
    if not recipe:
        return None
    item = importlib.resources.files("mrizoo.recipes") / f"{recipe}.yaml"
    if not item.is_file():
        return None
    source = f"recipes/{recipe}.yaml"
    doc = read_yaml(source, item.read_text())
    section = (doc or {}).get("training") if isinstance(doc, dict) else None
    if section is not None and not isinstance(section, dict):
        raise InputError("the training section must be a mapping", path=source, field="training",
                         got=type(section).__name__)
    return section


def shipped_entry_names() -> list[str]:
    """Names of the entries declared by the entry files shipped in ``recipes/`` (sorted)."""
    names = []
    root = importlib.resources.files("mrizoo.recipes")
    for item in root.iterdir():
        if item.name.endswith(".yaml"):
            text = item.read_text()
            if "entry" in (parse_yaml(text) or {}):
                names.append(read_entry_file(str(item), text).name)
    return sorted(names)
