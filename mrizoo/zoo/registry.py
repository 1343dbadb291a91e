"""The zoo registry: one table of named entries, filled from the entry files shipped in ``recipes/``.

Names are unique: registering a name twice is an error (no silent overwrite). Unknown names
raise :class:`UnknownModelError` with the closest registered names.
"""

from __future__ import annotations

import importlib.resources
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mrizoo._dataclass_io import from_dict, read_yaml_section
from mrizoo._yaml import parse_yaml
from mrizoo.errors import InputError, MrizooError
from mrizoo.zoo.entry import ModelEntry
from mrizoo.zoo.names import closest_names, match_names

__all__ = ["UnknownModelError", "Registry", "REGISTRY", "read_entry_file", "register_model",
           "list_models", "info"]


class UnknownModelError(MrizooError, KeyError):
    """A name that is not in the zoo."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        self.name, self.suggestions = name, suggestions
        super().__init__(f"unknown zoo model {name!r}{hint} (see mrizoo.list_models())")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def read_entry_file(path: str | Path, text: str | None = None) -> ModelEntry:
    """Parse the ``entry:`` mapping of one entry file into a validated :class:`ModelEntry`."""
    source = str(path)
    _, section = read_yaml_section(path, "entry", text)
    entry = from_dict(ModelEntry, section, source=source, prefix="entry")
    stem = Path(path).name.removesuffix(".yaml")
    if stem != entry.name:
        raise InputError("file name must be the entry name", path=source, field="entry.name",
                         expected=f"{entry.name}.yaml", got=Path(path).name)
    return entry


class Registry:
    """Named :class:`ModelEntry` objects; the shipped entries load on first use."""

    def __init__(self, package: str | None = "mrizoo.recipes") -> None:
        self._entries: dict[str, ModelEntry] = {}
        self._sources: dict[str, str] = {}
        self._package = package
        self._loaded = package is None
        self._lock = threading.Lock()

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            root = importlib.resources.files(self._package)
            for item in sorted(root.iterdir(), key=lambda p: p.name):
                if item.name.endswith(".yaml"):
                    text = item.read_text()
                    # a top-level "entry:" line settles it without parsing the file twice
                    if re.search(r"(?m)^entry\s*:", text) or "entry" in (parse_yaml(text) or {}):
                        self._add(read_entry_file(str(item), text), str(item))
            self._loaded = True

    def _add(self, entry: ModelEntry, source: str) -> None:
        if entry.name in self._entries:
            raise MrizooError(
                f"zoo name {entry.name!r} is already registered (from {self._sources[entry.name]}); "
                f"refusing to register it again from {source}"
            )
        self._entries[entry.name] = entry
        self._sources[entry.name] = source

    def register(self, entry: ModelEntry, source: str = "<code>") -> ModelEntry:
        """Add an entry; a name that exists already is an error."""
        self._ensure_loaded()
        self._add(entry, source)
        return entry

    def get(self, name: str) -> ModelEntry:
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownModelError(name, closest_names(name, list(self._entries))) from None

    def source(self, name: str) -> str:
        self.get(name)
        return self._sources[name]

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def list(
        self,
        pattern: str = "*",
        *,
        arch: str | None = None,
        anatomy: str | None = None,
        acceleration: float | None = None,
        has_weights: bool | None = None,
        tags: Iterable[str] = (),
    ) -> list[str]:
        """Names matching a wildcard pattern and every filter given."""
        wanted_tags = set(tags)
        out = []
        for name in match_names(self.names(), pattern):
            e = self._entries[name]
            if arch is not None and e.model.arch != arch and e.model.arch.split("_")[0] != arch:
                continue
            if anatomy is not None and e.task.anatomy != anatomy:
                continue
            if acceleration is not None and e.task.accelerations and float(acceleration) not in e.task.accelerations:
                continue
            if has_weights is not None and e.weights.available != has_weights:
                continue
            if not wanted_tags <= set(e.tags):
                continue
            out.append(name)
        return out


REGISTRY = Registry()


def register_model(entry: ModelEntry | dict[str, Any]) -> ModelEntry:
    """Register an entry (a :class:`ModelEntry` or its mapping) in the global zoo."""
    if isinstance(entry, dict):
        entry = from_dict(ModelEntry, entry, prefix="entry")
    return REGISTRY.register(entry)


def list_models(
    pattern: str = "*",
    *,
    arch: str | None = None,
    anatomy: str | None = None,
    acceleration: float | None = None,
    has_weights: bool | None = None,
    tags: Iterable[str] = (),
) -> list[str]:
    """Zoo names matching ``pattern`` (shell wildcards) and the filters, sorted.

    ``acceleration`` keeps acceleration-agnostic entries (priors, classical baselines) too.
    """
    return REGISTRY.list(pattern, arch=arch, anatomy=anatomy, acceleration=acceleration,
                         has_weights=has_weights, tags=tags)


def info(name: str) -> ModelEntry:
    """The entry behind a zoo name."""
    return REGISTRY.get(name)
