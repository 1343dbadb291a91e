"""Building zoo models by name with random weights: ``create`` and the entry's ``model_config``."""

from __future__ import annotations

from typing import Any

from mrizoo.models.base import ReconModel
from mrizoo.models.registry import get_architecture
from mrizoo.zoo import registry

__all__ = ["model_config", "create"]


def model_config(name: str, **overrides: Any) -> Any:
    """The architecture config (a dataclass) of a zoo entry, with ``overrides`` applied."""
    entry = registry.REGISTRY.get(name)
    arch = get_architecture(entry.model.arch, registry.REGISTRY.source(name))
    return arch.make_config(entry.model.preset, {**entry.model.config, **overrides}, registry.REGISTRY.source(name))


def create(name: str, **overrides: Any) -> ReconModel:
    """Build a zoo model with random weights (config overrides allowed, e.g. ``chans=8``).

    The model carries its entry as ``model.zoo_entry``, its config as ``model.zoo_config`` and
    ``model.weights_source`` with ``kind`` ``random`` (``builtin`` for methods without weights).
    """
    entry = registry.REGISTRY.get(name)
    config = model_config(name, **overrides)
    model = get_architecture(entry.model.arch).build(config)
    model.zoo_entry = entry
    model.zoo_config = config
    model.weights_source = {"name": name, "kind": "builtin" if entry.weights.kind == "builtin" else "random",
                            "location": "", "revision": "", "sha256": ""}
    return model
