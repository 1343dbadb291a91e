"""Check a checkpoint folder before it is published: config, architecture, every tensor.

The check builds the model on the meta device (no weights allocated) to learn the expected
tensor names and shapes, then reads ``model.safetensors`` tensor by tensor: all present, no
extra, right shapes, all finite. What it measures on the way (sha256, parameter count) becomes
the card's :class:`~mrizoo.models.provenance.CheckpointFacts`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from mrizoo._dataclass_io import from_dict
from mrizoo.errors import InputError
from mrizoo.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_config, sha256_file
from mrizoo.models.provenance import CheckpointFacts
from mrizoo.models.registry import get_architecture
from mrizoo.zoo.entry import ModelEntry, ModelSpec, TaskSpec
from mrizoo.zoo.registry import REGISTRY

__all__ = ["CheckedCheckpoint", "check_checkpoint"]


@dataclass(frozen=True)
class CheckedCheckpoint:
    """A checkpoint folder that passed every check: its config, zoo entry and weight facts."""

    directory: Path
    config_doc: dict[str, Any]
    entry: ModelEntry
    arch_config: Any
    facts: CheckpointFacts


def _entry_for(doc: dict[str, Any], source: str) -> ModelEntry:
    """The zoo entry a checkpoint belongs to, with the task recorded in its config.json."""
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise InputError("checkpoint has no zoo name", path=source, field="name",
                         expected="the zoo name the model was built from")
    task = from_dict(TaskSpec, doc["task"], source=source, prefix="task") if doc.get("task") else None
    try:
        if name in REGISTRY.names():
            entry = REGISTRY.get(name)
            if entry.model.arch != doc["arch"]:
                raise InputError("checkpoint architecture differs from its zoo entry", path=source, field="arch",
                                 expected=entry.model.arch, got=doc["arch"])
            return dataclasses.replace(entry, task=task) if task is not None else entry
        return ModelEntry(name=name, description=f"A `{doc['arch']}` checkpoint trained with mrizoo.",
                          model=ModelSpec(arch=doc["arch"]), task=task or TaskSpec(), recipe=doc.get("recipe"))
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"checkpoint name does not fit its task: {err}", path=source, field="name") from None


def _expected_tensors(arch: Any, config: Any) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the model's state dict, built without allocating weights when possible."""
    try:
        with torch.device("meta"):
            model = arch.build(config)
    except Exception:  # builders that compute buffers on real tensors: build normally
        model = arch.build(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_checkpoint(directory: str | os.PathLike[str]) -> CheckedCheckpoint:
    """Validate a checkpoint folder without building its full model in memory.

    Checks ``config.json`` (format, architecture, config), that ``model.safetensors`` is a
    readable safetensors file holding exactly the model's tensors with the model's shapes,
    and that every floating-point tensor is finite.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise InputError("checkpoint folder not found", path=folder,
                         expected="a folder with config.json and model.safetensors")
    doc = read_config(folder)
    source = str(folder / CONFIG_NAME)
    arch = get_architecture(doc["arch"], source)
    config = arch.make_config(None, doc["config"], source)
    entry = _entry_for(doc, source)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise InputError("weights file missing", path=weights, expected=f"{WEIGHTS_NAME} next to {CONFIG_NAME}")
    expected = _expected_tensors(arch, config)
    n_params = 0
    try:
        with safe_open(str(weights), framework="pt") as f:
            keys = set(f.keys())
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in keys}
            missing = sorted(set(expected) - keys)
            unexpected = sorted(keys - set(expected))
            wrong = [f"{k}: {shapes[k]} vs {expected[k]}" for k in sorted(keys & set(expected))
                     if shapes[k] != expected[k]]
            if missing or unexpected or wrong:
                raise InputError(
                    "weights do not match the config", path=weights,
                    expected=f"the {len(expected)} tensors of the {doc['arch']} model in config.json",
                    got=f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}; unexpected "
                        f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; shape mismatches {wrong[:5]}")
            for k in sorted(keys):
                t = f.get_tensor(k)
                n_params += t.numel()
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise InputError("weights contain NaN or infinite values", path=weights, field=k)
    except InputError:
        raise
    except Exception as err:  # safetensors raises its own types for corrupt headers and truncated data
        raise InputError(f"not a readable safetensors file ({type(err).__name__}: {err})", path=weights) from None
    facts = CheckpointFacts(
        weights_sha256=sha256_file(weights),
        num_parameters=n_params,
        num_tensors=len(expected),
        mrizoo_version=doc.get("mrizoo_version") if isinstance(doc.get("mrizoo_version"), str) else None,
        recipe_sha256=doc.get("recipe_sha256") if isinstance(doc.get("recipe_sha256"), str) else None,
    )
    return CheckedCheckpoint(folder, doc, entry, config, facts)
