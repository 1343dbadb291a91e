"""Turning zoo names into models: ``create`` (random init) and ``load`` (pretrained)."""

from __future__ import annotations

import os

import torch

from mrizoo.errors import WeightsUnavailableError
from mrizoo.models.base import ReconModel
from mrizoo.zoo.build import create, model_config
from mrizoo.zoo.pretrained import from_pretrained
from mrizoo.zoo.resolve import resolve_checkpoint

__all__ = ["model_config", "create", "load", "WeightsUnavailableError"]


def load(
    name: str | os.PathLike[str],
    *,
    revision: str | None = None,
    prefer_local: bool = True,
    map_location: str | torch.device = "cpu",
) -> ReconModel:
    """A model with pretrained weights, in eval mode; ``name`` is one of:

    - a zoo name (``mrizoo.load("varnet-fastmri-knee")``): locally trained weights in
      ``$MRIZOO_HOME/zoo/<name>/`` win when present (a warning on stderr says so; ``prefer_local=False``
      skips them), else the entry's source: a Hub repo at its pinned revision (sha256
      checked), an upstream file downloaded, checked and converted once, or nothing for
      classical methods. Entries without weights say which recipe trains them.
    - ``"hf-hub:org/repo[/subfolder][@revision]"``: any mrizoo checkpoint on the Hub. The
      revision defaults to ``main``; pinning a commit sha is advised, since a branch can move.
    - a path to a checkpoint folder (``config.json`` + ``model.safetensors``).

    ``revision`` picks another revision of a Hub source (the entry's sha256 then no longer
    applies). Downloads use the Hugging Face cache and honour ``HF_HOME``, ``HF_ENDPOINT``,
    ``HF_TOKEN`` and ``HF_HUB_OFFLINE``; ``MRIZOO_HOME`` (default ``~/.cache/mrizoo``) holds the
    local zoo and converted upstream checkpoints. Weights load from safetensors only, with
    strict key and shape checks, after their sha256 is checked against ``config.json``.
    ``model.weights_source`` says which weights were loaded (see
    :func:`mrizoo.models.checkpoint.describe_weights`).
    """
    resolved = resolve_checkpoint(name, revision=revision, prefer_local=prefer_local)
    if resolved.folder is None:  # builtin: a method without learned weights
        return create(str(resolved.name)).to(map_location).eval()
    model = from_pretrained(resolved.folder, map_location=map_location)
    model.weights_source = {**model.weights_source, "kind": resolved.kind, "location": resolved.location,
                            "revision": resolved.revision or "", "name": resolved.name or model.weights_source["name"]}
    return model
