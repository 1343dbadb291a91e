"""Turning zoo names into models: ``create`` (random init) and ``load`` (pretrained)."""

from __future__ import annotations

from typing import Any

from torch import nn

from mrizoo.errors import WeightsUnavailableError
from mrizoo.zoo.architectures import get_architecture
from mrizoo.zoo.registry import REGISTRY

__all__ = ["model_config", "create", "load", "WeightsUnavailableError"]


def model_config(name: str, **overrides: Any) -> Any:
    """The architecture config (a dataclass) of a zoo entry, with ``overrides`` applied."""
    entry = REGISTRY.get(name)
    arch = get_architecture(entry.model.arch, REGISTRY.source(name))
    return arch.make_config(entry.model.preset, {**entry.model.config, **overrides}, REGISTRY.source(name))


def create(name: str, **overrides: Any) -> nn.Module:
    """Build a zoo model with random weights (config overrides allowed, e.g. ``chans=8``).

    The model carries its entry as ``model.zoo_entry`` and its config as ``model.zoo_config``.
    """
    entry = REGISTRY.get(name)
    config = model_config(name, **overrides)
    model = get_architecture(entry.model.arch).build(config)
    model.zoo_entry = entry
    model.zoo_config = config
    return model


def load(name: str) -> nn.Module:
    """A zoo model with its pretrained weights.

    Entries without weights say which recipe trains them.
    """
    entry = REGISTRY.get(name)
    if not entry.weights.available:
        how = (f"train them with the recipe {entry.recipe!r} (recipes/{entry.recipe}.yaml)"
               if entry.recipe else "none are published")
        raise WeightsUnavailableError(f"zoo model {name!r} has no pretrained weights yet; {how}, "
                                      f"or use mrizoo.create({name!r}) for a randomly initialised model")
    if entry.weights.kind == "builtin":
        return create(name).eval()
    raise WeightsUnavailableError(
        f"zoo model {name!r}: fetching {entry.weights.kind} weights "
        f"({entry.weights.repo_id or entry.weights.url}) is not supported by this mrizoo version; "
        f"use mrizoo.create({name!r}) and load a state dict yourself"
    )
