"""A checkpoint folder as a zoo model: the folder's model plus the zoo entry it belongs to.

Building the model is :func:`mrizoo.models.pretrained.load_folder`; this module adds what only
the zoo knows, the entry of the checkpoint's name (or one rebuilt from its ``config.json``).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from mrizoo._dataclass_io import from_dict
from mrizoo.errors import InputError
from mrizoo.models.base import ReconModel
from mrizoo.models.checkpoint import CONFIG_NAME
from mrizoo.models.pretrained import load_folder
from mrizoo.zoo import registry
from mrizoo.zoo.entry import ModelEntry, ModelSpec, TaskSpec

__all__ = ["from_pretrained"]


def from_pretrained(directory: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> ReconModel:
    """Build the model a checkpoint folder describes and load its weights (sha256-checked, strict).

    The model's ``weights_source`` says ``kind: folder``; :func:`mrizoo.load` replaces it with
    where the folder came from (package, local zoo, Hub, upstream).
    """
    model, doc = load_folder(directory, map_location=map_location)
    model.zoo_entry = _entry_for(doc, str(os.path.join(os.fspath(directory), CONFIG_NAME)))
    return model


def _entry_for(doc: dict[str, Any], source: str) -> ModelEntry:
    """The registered entry of the checkpoint's name, or one rebuilt from its config.json."""
    name = doc.get("name")
    if isinstance(name, str) and name in registry.REGISTRY.names():
        return registry.REGISTRY.get(name)
    task = from_dict(TaskSpec, doc.get("task") or {}, source=source, prefix="task")
    try:
        return ModelEntry(name=name, description="", model=ModelSpec(arch=doc["arch"]), task=task,
                          recipe=doc.get("recipe"))
    except (ValueError, TypeError):
        raise InputError("checkpoint name does not fit its architecture and task", path=source, field="name",
                         expected=f"a zoo name starting with {doc['arch']!r}", got=repr(name)) from None
