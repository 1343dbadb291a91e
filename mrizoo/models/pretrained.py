"""Building the model a checkpoint folder describes, and fetching folders from the Hub for it.

A folder's ``config.json`` names the architecture (looked up in :mod:`mrizoo.models.registry`)
and its config; the weights are checked against the sha256 recorded there and loaded strictly.
Zoo names are not known here: :func:`mrizoo.load` resolves them and attaches the zoo entry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mrizoo.errors import InputError
from mrizoo.hub.download import FetchOptions, HubLocation, fetch_hub_checkpoint, parse_hub_spec
from mrizoo.hub.layout import CONFIG_NAME, HF_HUB_PREFIX, WEIGHTS_NAME
from mrizoo.models.checkpoint import load_weights, read_config, verify_weights, weights_source
from mrizoo.models.registry import get_architecture

__all__ = ["load_folder", "hub_folder"]


def load_folder(directory: str | os.PathLike[str], *,
                map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """``(model, config.json)``: the model a checkpoint folder describes, weights sha256-checked and strict.

    The model carries ``zoo_config`` (its config dataclass), ``pretrained_from`` and a
    ``weights_source`` of kind ``folder``; it is returned in eval mode on ``map_location``.
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
    model.zoo_config = config
    model.checkpoint_info = {k: doc.get(k) for k in ("name", "task", "recipe")}
    model.pretrained_from = str(folder)
    name = doc.get("name") if isinstance(doc.get("name"), str) else ""
    model.weights_source = weights_source("folder", name=name, location=folder, sha256=digest)
    return model.to(map_location).eval(), doc


def hub_folder(spec: str, *, revision: str | None = None, options: FetchOptions = FetchOptions()
               ) -> tuple[Path, str, HubLocation]:
    """``(folder, weights sha256, location)`` of a checkpoint in a Hub repo (``[hf-hub:]org/repo[/sub][@rev]``)."""
    if not isinstance(spec, str) or not spec:
        raise InputError("not a Hub checkpoint reference", field="repo_or_dir", got=repr(spec))
    loc = parse_hub_spec(spec if spec.startswith(HF_HUB_PREFIX) else HF_HUB_PREFIX + spec, revision)
    folder, digest = fetch_hub_checkpoint(loc, what=f"{HF_HUB_PREFIX}{loc}", options=options)
    return folder, digest, loc
