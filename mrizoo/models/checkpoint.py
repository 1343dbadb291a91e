"""The on-disk format of a published model: ``config.json`` + ``model.safetensors`` (+ ``README.md``).

``config.json`` says what to build (architecture family and its config), what the model is for
(the zoo entry's task), and where it came from (mrizoo version, zoo name, recipe name and the
sha256 of the recipe file). It also records ``weights_sha256``, the sha256 of
``model.safetensors``, which every load checks, so damaged or edited weights are refused.
Weights are safetensors only: nothing pickled is ever read here.

Every loaded model carries ``model.weights_source``, a plain dict saying which weights it runs
(``name``, ``kind``, ``location``, ``revision``, ``sha256``; see :func:`weights_source`), and
:func:`describe_weights` turns it into the one line that outputs and messages show.

This module knows only models and files: it imports nothing from the zoo, and from the Hub only
the file names the transport carries (:mod:`mrizoo.hub.layout`). Building the model a folder
describes is :func:`mrizoo.models.pretrained.load_folder`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from mrizoo import __version__
from mrizoo._atomic import atomic_dir
from mrizoo._dataclass_io import to_dict
from mrizoo.errors import InputError
from mrizoo.hub.layout import CARD_NAME, CONFIG_NAME, HF_HUB_PREFIX, WEIGHTS_NAME, sha256_file
from mrizoo.models.registry import ARCHITECTURES

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME", "FORMAT_VERSION", "WEIGHTS_SHA256_KEY", "WEIGHTS_KINDS",
           "HF_HUB_PREFIX", "save_pretrained", "basic_card", "read_config", "load_weights", "sha256_file", "verify_weights",
           "weights_source", "describe_weights"]

FORMAT_VERSION = 1
WEIGHTS_SHA256_KEY = "weights_sha256"
#: ``weights_source["kind"]``: shipped in the package, trained into the local zoo, a Hub repo, a converted
#: upstream file, a checkpoint folder given by path, random initialisation, or a method without weights.
WEIGHTS_KINDS = ("package", "local", "hub", "upstream", "folder", "random", "builtin")
_KIND_TEXT = {"package": "shipped package weights", "local": "locally trained weights", "hub": "Hub weights",
              "upstream": "upstream weights (converted)", "folder": "weights from a checkpoint folder",
              "random": "random initialisation (no trained weights)", "builtin": "no learned weights"}


def _model_metadata(model: nn.Module) -> tuple[str, Any, Any]:
    """``(arch, config, meta)``: a zoo model's entry, else the model's own config and what it was loaded with.

    A model built by hand (``VarNet(VarNetConfig(...))``) owns its config as ``model.config``; its
    architecture is the registered one whose config class that is.
    """
    entry = getattr(model, "zoo_entry", None)
    config = getattr(model, "zoo_config", None) or getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise InputError("model has no config to save; build it with mrizoo.create(name), mrizoo.load(...) or "
                         "from its config dataclass", field="model", expected="a model with .config (a dataclass)",
                         got=type(model).__name__)
    if entry is not None:
        return entry.model.arch, config, {"name": entry.name, "task": to_dict(entry.task), "recipe": entry.recipe}
    matches = [a.name for a in ARCHITECTURES.values() if a.config_class() is type(config)]
    if len(matches) != 1:
        raise InputError("no registered architecture has this model's config class", field="model.config",
                         expected="the config dataclass of one architecture", got=type(config).__name__)
    loaded = getattr(model, "checkpoint_info", None) or {}
    return matches[0], config, {"name": loaded.get("name") or f"{matches[0]}-custom",
                                "task": loaded.get("task") or {}, "recipe": loaded.get("recipe")}


def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    recipe_file: str | os.PathLike[str] | None = None,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
    card: str | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` of a model into ``directory`` (and ``card`` as ``README.md``).

    The folder is assembled in a temporary sibling and renamed into place, so a failure
    leaves no half-written checkpoint; an existing folder is replaced only with ``overwrite``
    (its other files, such as a model card, are kept).
    """
    arch, config, meta = _model_metadata(model)
    out = Path(directory)
    if out.exists() and not overwrite and any((out / n).exists() for n in (CONFIG_NAME, WEIGHTS_NAME)):
        raise InputError("a checkpoint exists already; pass overwrite=True to replace it", path=out)

    recipe = meta["recipe"]
    recipe_sha = sha256_file(recipe_file) if recipe_file is not None else None
    doc = {
        "format_version": FORMAT_VERSION,
        "library_name": "mrizoo",
        "mrizoo_version": __version__,
        "name": meta["name"],
        "arch": arch,
        "config": to_dict(config),
        "task": meta["task"],
        "recipe": recipe,
        "recipe_sha256": recipe_sha,
        **(extra or {}),
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_dir(out) as tmp:
        if out.exists():
            for item in out.iterdir():
                if item.name not in (CONFIG_NAME, WEIGHTS_NAME) and item.is_file():
                    shutil.copy2(item, tmp / item.name)
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "mrizoo_arch": arch})
        doc[WEIGHTS_SHA256_KEY] = sha256_file(tmp / WEIGHTS_NAME)
        (tmp / CONFIG_NAME).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        if card is not None:
            (tmp / CARD_NAME).write_text(card, encoding="utf-8")
    return out


def basic_card(directory: str | os.PathLike[str], license: str = "other") -> str:
    """A short model card from a checkpoint's ``config.json``: what it is and how to load it, no claims.

    ``license``: a Hub licence id for the weights (``other`` when the owner has not said).

    Zoo models get the full card (evaluation, calibration, training) from ``mrizoo push``/``mrizoo card``.
    """
    doc = read_config(directory)
    config = json.dumps(doc["config"], indent=2, sort_keys=True)
    return "\n".join([
        "---", "library_name: mrizoo", f"license: {license}", "tags:", "- mrizoo", "- mri", "- mri-reconstruction", f"- {doc['arch']}", "---",
        "", f"# {doc.get('name') or doc['arch']}", "",
        f"An mrizoo `{doc['arch']}` checkpoint (`config.json` + `model.safetensors`, sha256 "
        f"`{doc.get(WEIGHTS_SHA256_KEY, '')}`). No evaluation is recorded with it.", "",
        "```python", "from mrizoo.models.base import ReconModel", 'model = ReconModel.from_pretrained("ORG/REPO")', "```",
        "", "Config:", "", "```json", config, "```", ""])


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated ``config.json`` of a checkpoint folder."""
    path = Path(directory) / CONFIG_NAME
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("not an mrizoo checkpoint: config.json is missing", path=path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"config.json is not valid JSON ({err.msg} at line {err.lineno})", path=path) from None
    for key, kind in (("arch", str), ("config", dict)):
        if not isinstance(doc.get(key), kind):
            raise InputError("missing or wrong field", path=path, field=key, expected=kind.__name__,
                             got=type(doc.get(key)).__name__)
    recorded = doc.get(WEIGHTS_SHA256_KEY)
    if recorded is not None and not (isinstance(recorded, str) and len(recorded) == 64
                                     and all(c in "0123456789abcdef" for c in recorded)):
        raise InputError("missing or wrong field", path=path, field=WEIGHTS_SHA256_KEY,
                         expected="64 lowercase hex digits", got=repr(recorded)[:80])
    version = doc.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError("checkpoint written by a newer mrizoo", path=path, field="format_version",
                         expected=f"<= {FORMAT_VERSION}", got=version)
    return doc


def load_weights(model: nn.Module, weights: str | os.PathLike[str], *, strict: bool = True) -> nn.Module:
    """Load a safetensors state dict into ``model`` with strict key and shape checks."""
    path = Path(weights)
    try:
        state = load_file(str(path))
    except FileNotFoundError:
        raise InputError("weights file not found", path=path) from None
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise InputError(f"not a readable safetensors file ({err})", path=path) from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    if strict and (missing or unexpected or shapes):
        raise InputError(
            "weights do not match the model",
            path=path,
            expected=f"the {len(own)} tensors of the model",
            got=f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}; unexpected "
                f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; shape mismatches {shapes[:5]}",
        )
    model.load_state_dict(state, strict=strict)
    return model


def verify_weights(directory: str | os.PathLike[str], doc: dict[str, Any] | None = None) -> str:
    """The sha256 of a checkpoint's ``model.safetensors``, checked against the one its ``config.json`` records.

    A mismatch (damaged or edited weights) is an :class:`InputError` naming the file and both
    digests. Checkpoints written before the digest was recorded have nothing to check against.
    """
    folder = Path(directory)
    doc = read_config(folder) if doc is None else doc
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise InputError("weights file not found", path=weights)
    actual = sha256_file(weights)
    expected = doc.get(WEIGHTS_SHA256_KEY)
    if expected is not None and actual != expected:
        raise InputError(f"the weights do not match the sha256 that {CONFIG_NAME} records: the file was changed "
                         "or damaged after it was saved and was not loaded", path=weights,
                         field=WEIGHTS_SHA256_KEY, expected=expected, got=actual)
    return actual


def weights_source(kind: str, *, name: str | None = "", location: str | os.PathLike[str] = "",
                   revision: str | None = "", sha256: str | None = "") -> dict[str, str]:
    """The ``model.weights_source`` dict: which weights a model runs (all values plain strings)."""
    if kind not in WEIGHTS_KINDS:
        raise ValueError(f"unknown weights kind {kind!r}; expected one of {WEIGHTS_KINDS}")
    return {"name": name or "", "kind": kind, "location": os.fspath(location) if location else "",
            "revision": revision or "", "sha256": sha256 or ""}


def describe_weights(model: nn.Module) -> str:
    """One line saying which weights ``model`` runs, e.g. ``varnet-mini-r4: shipped package weights, sha256 1a2b3c4d...``."""
    src = getattr(model, "weights_source", None)
    if not isinstance(src, dict) or src.get("kind") not in _KIND_TEXT:
        entry = getattr(model, "zoo_entry", None)
        return f"{getattr(entry, 'name', None) or type(model).__name__}: weights of unknown origin"
    text = _KIND_TEXT[src["kind"]]
    where = src.get("location", "")
    if src["kind"] == "hub" and where:
        text += f" {where}" + (f"@{src['revision']}" if src.get("revision") else "")
    elif src["kind"] in ("local", "upstream", "folder") and where:
        text += f" ({where})"
    if src.get("sha256"):
        text += f", sha256 {src['sha256'][:12]}..."
    return f"{src.get('name') or 'model'}: {text}"
