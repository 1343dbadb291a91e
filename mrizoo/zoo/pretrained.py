"""Building the model a checkpoint folder describes: the one step of loading that needs the zoo.

The folder's format (``config.json`` + ``model.safetensors``, the ``weights_sha256`` check) is
:mod:`mrizoo.models.checkpoint`; this module adds what only the zoo knows: the architecture named
in ``config.json`` and the zoo entry the model carries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mrizoo._dataclass_io import from_dict
from mrizoo.errors import InputError
from mrizoo.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_weights, read_config, verify_weights, weights_source
from mrizoo.zoo.architectures import get_architecture
from mrizoo.zoo.entry import ModelEntry, ModelSpec, TaskSpec
from mrizoo.zoo.registry import REGISTRY

__all__ = ["from_pretrained"]


def from_pretrained(directory: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Build the model a checkpoint folder describes and load its weights (sha256-checked, strict).

    The model's ``weights_source`` says ``kind: folder``; :func:`mrizoo.load` replaces it with
    where the folder came from (package, local zoo, Hub, upstream).
    """
    folder = Path(directory)
    doc = read_config(folder)
    source = str(folder / CONFIG_NAME)
    arch = get_architecture(doc["arch"], source)
    # keys a config.json predates take the values that keep its model's behaviour
    legacy = getattr(arch.config_class(), "CHECKPOINT_DEFAULTS", {})
    config = arch.make_config(None, {**legacy, **doc["config"]}, source)
    model = arch.build(config)
    digest = verify_weights(folder, doc)
    load_weights(model, folder / WEIGHTS_NAME)
    model.zoo_entry = _entry_for(doc, source)
    model.zoo_config = config
    model.pretrained_from = str(folder)
    name = doc.get("name") if isinstance(doc.get("name"), str) else ""
    model.weights_source = weights_source("folder", name=name, location=folder, sha256=digest)
    return model.to(map_location).eval()


def _entry_for(doc: dict[str, Any], source: str) -> ModelEntry:
    """The registered entry of the checkpoint's name, or one rebuilt from its config.json."""
    name = doc.get("name")
    if isinstance(name, str) and name in REGISTRY.names():
        return REGISTRY.get(name)
    task = from_dict(TaskSpec, doc.get("task") or {}, source=source, prefix="task")
    try:
        return ModelEntry(name=name, description="", model=ModelSpec(arch=doc["arch"]), task=task,
                          recipe=doc.get("recipe"))
    except (ValueError, TypeError):
        raise InputError("checkpoint name does not fit its architecture and task", path=source, field="name",
                         expected=f"a zoo name starting with {doc['arch']!r}", got=repr(name)) from None
