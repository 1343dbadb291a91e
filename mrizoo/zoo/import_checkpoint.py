"""``mrizoo import``: a checkpoint file in another project's format -> an mrizoo checkpoint folder.

For weights a user already has (downloaded by hand, or on an air-gapped machine): the file
is converted with the same converters as the upstream zoo entries (fastMRI's VarNet and
U-Net state dicts, the CSGM-Langevin NCSNv2 list with its EMA weights, as the ``.pth`` or
the release ``.tar.gz``), read only through ``torch.load(weights_only=True)``, and written as
``config.json`` + ``model.safetensors`` + ``README.md`` (a card naming the source file and
its sha256). ``mrizoo.load(OUT_DIR)`` and ``mrizoo push OUT_DIR`` take the folder. With
``name`` a zoo entry, the weights must fit that entry's model and its config and task are
used (e.g. the CSGM sampler settings of ``ncsnv2-fastmri-brain``); otherwise the config is
inferred from the file and the model is named ``<arch>-imported``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from mrizoo._atomic import atomic_dir
from mrizoo.errors import InputError
from mrizoo.models.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, load_weights, save_pretrained, sha256_file
from mrizoo.models.ncsnv2 import LANGEVIN_JALAL2021_BRAIN_T2_R4
from mrizoo.models.registry import get_architecture
from mrizoo.zoo import registry
from mrizoo.zoo.build import model_config
from mrizoo.zoo.entry import ModelEntry, ModelSpec, TaskSpec
from mrizoo.zoo.names import parse_name
from mrizoo.zoo.upstream import CONVERTERS, convert_file

__all__ = ["IMPORT_FORMATS", "import_checkpoint"]

#: format -> what it is (the formats are the upstream converters)
IMPORT_FORMATS: dict[str, str] = {
    "fastmri-varnet": "a fastMRI E2E-VarNet state dict (.pt; also Lightning and DataParallel files)",
    "fastmri-unet": "a fastMRI U-Net state dict (.pt; also Lightning and DataParallel files)",
    "csgm-ncsnv2": "the CSGM-Langevin NCSNv2 checkpoint list (.pth) or its release archive (.tar.gz)",
}


def _check_args(fmt: str, src: Path, out: Path, name: str | None, overwrite: bool) -> str:
    if fmt not in IMPORT_FORMATS:
        raise InputError("unknown checkpoint format", field="FORMAT", expected=f"one of {sorted(IMPORT_FORMATS)}",
                         got=repr(fmt))
    if not src.is_file():
        raise InputError("checkpoint file not found", path=src, field="FILE", expected="an existing file")
    if out.exists() and not out.is_dir():
        raise InputError("the output is not a folder", path=out, field="OUT_DIR", expected="a new or empty folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError("the output folder is not empty; pass --overwrite to replace its checkpoint", path=out,
                         field="OUT_DIR", expected="a new or empty folder")
    if overwrite and src.resolve().is_relative_to(out.resolve()):
        raise InputError("the output folder holds the file being imported", path=out, field="OUT_DIR",
                         expected="a folder other than the source file's")
    arch = CONVERTERS[fmt]
    if name is None:
        return f"{arch}-imported"

    if name in registry.REGISTRY.names():
        if registry.REGISTRY.get(name).model.arch != arch:
            raise InputError(f"zoo model {name!r} has another architecture than a {fmt} file", field="--name",
                             expected=f"an entry of architecture {arch}, or a new name",
                             got=registry.REGISTRY.get(name).model.arch)
        return name
    try:
        parsed = parse_name(name)
    except ValueError as err:
        raise InputError(f"not a zoo name ({err})", field="--name", got=repr(name)) from None
    if parsed.arch != arch:
        raise InputError("the name must start with the architecture", field="--name",
                         expected=f"{arch}-<data>[-r<acceleration>][-<variant>]", got=repr(name))
    return name


def _target(fmt: str, name: str, inferred: dict[str, Any]) -> tuple[Any, Any, Any]:
    """``(architecture, config, entry)`` the weights go into: the entry's when registered, else from ``inferred``."""
    if name in registry.REGISTRY.names():
        entry = registry.REGISTRY.get(name)
        return get_architecture(entry.model.arch), model_config(name), entry
    arch_name = CONVERTERS[fmt]
    overrides = dict(inferred)
    acceleration = parse_name(name).acceleration  # a name saying r<R> is a model for that acceleration
    task = TaskSpec(accelerations=() if acceleration is None else (float(acceleration),))
    if fmt == "csgm-ncsnv2":  # the authors' sampler settings, as their format implies
        overrides["sampler"] = dataclasses.asdict(LANGEVIN_JALAL2021_BRAIN_T2_R4)
        task = dataclasses.replace(task, target="mvue")
    arch = get_architecture(arch_name)
    entry = ModelEntry(name=name, description=f"{IMPORT_FORMATS[fmt]}, imported", model=ModelSpec(arch=arch_name),
                       task=task, recipe=None)
    return arch, arch.make_config(None, overrides), entry


def _fits(arch: Any, config: Any, weights: Path) -> bool:
    """Whether the safetensors file holds exactly the model's tensor names and shapes (model built on meta)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in arch.build(config).state_dict().items()}
    with safe_open(str(weights), framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()} == expected


def _card(name: str, fmt: str, src: Path, digest: str, weights_sha256: str, license_: str) -> str:
    return "\n".join([
        "---", "library_name: mrizoo", f"license: {license_}", "tags:", "- mrizoo", "- mri",
        "- mri-reconstruction", f"- {CONVERTERS[fmt]}", "---", "", f"# {name}", "",
        f"Imported with `mrizoo import {fmt}`: {IMPORT_FORMATS[fmt]}.", "",
        "| Source | Value |", "|---|---|",
        f"| File | `{src.name}` |", f"| Format | `{fmt}` |", f"| File sha256 | `{digest}` |",
        f"| `model.safetensors` sha256 | `{weights_sha256}` |", "",
        "The file was read with `torch.load(weights_only=True)` (no code runs) and converted to safetensors; "
        "its weights are the original tensors" + (", with the EMA weights applied." if fmt == "csgm-ncsnv2" else ".")
        + " The publishers of this format (fastMRI; CSGM-Langevin, utcsilab/csgm-mri-langevin) release their "
        "weights under the MIT licence; a file from anywhere else keeps its publisher's terms.", "",
        "```python", "import mrizoo", 'model = mrizoo.load("path/to/this/folder")', "```", ""])


def import_checkpoint(fmt: str, src: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                      name: str | None = None, overwrite: bool = False) -> Path:
    """Convert ``src`` (format ``fmt``) into the checkpoint folder ``out_dir``; return it.

    Every argument is checked before any work; on failure ``out_dir`` is left as it was.
    """
    src_path, out = Path(src), Path(out_dir)
    name = _check_args(fmt, src_path, out, name, overwrite)
    digest = sha256_file(src_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".import-", dir=out.parent) as tmp:
        converted = Path(tmp) / WEIGHTS_NAME
        inferred = convert_file(fmt, src_path, converted)
        arch, config, entry = _target(fmt, name, inferred)
        if not _fits(arch, config, converted):
            raise InputError(f"the checkpoint does not fit the model {name!r}", path=src_path, field="--name",
                             got=f"a checkpoint of {inferred}")
        model = arch.build(config)
        load_weights(model, converted)
        model.zoo_entry, model.zoo_config = entry, config
        provenance = {"format": fmt, "file": src_path.name, "sha256": digest}
        staged = save_pretrained(model, Path(tmp) / "checkpoint", extra={"imported": provenance})
        card = _card(name, fmt, src_path, digest, sha256_file(staged / WEIGHTS_NAME), model.zoo_entry.license)
        (staged / CARD_NAME).write_text(card, encoding="utf-8")
        with atomic_dir(out) as final:
            for item in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME):
                os.replace(staged / item, final / item)
    return out
