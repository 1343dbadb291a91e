"""Pretrained weights that ship inside the package (``weights.kind: package`` zoo entries).

Small demo-quality checkpoints trained by the zoo's own recipes (e.g. ``varnet-mini-r4``) live
here as ordinary checkpoint folders (``config.json`` + ``model.safetensors`` + model card), so
``mrizoo.load`` and ``mrizoo demo`` work on a machine with no network. Each entry pins the
sha256 of its weights file; a file that does not match (a damaged or edited install) is not
loaded.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from mrizoo.errors import InputError, WeightsUnavailableError
from mrizoo.hub.layout import CONFIG_NAME, WEIGHTS_NAME, sha256_file

__all__ = ["package_weights_dir", "package_checkpoint", "PackageWeightsError"]


class PackageWeightsError(WeightsUnavailableError):
    """Shipped weights are missing or do not match the sha256 their entry pins."""


def package_weights_dir() -> Path:
    """The folder holding the shipped checkpoint folders (inside the installed package)."""
    return Path(str(importlib.resources.files(__name__)))


def package_checkpoint(folder: str, sha256: str, *, what: str) -> Path:
    """The shipped checkpoint folder ``folder``, after checking its weights' sha256.

    ``what`` names the zoo entry in errors.
    """
    if not folder or "/" in folder or "\\" in folder or folder in (".", ".."):
        raise InputError(f"zoo model {what!r}: package weights are named by a plain folder name",
                         field="weights.path", expected="a folder name under mrizoo/weights", got=folder)
    path = package_weights_dir() / folder
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (path / n).is_file()]
    if missing:
        raise PackageWeightsError(
            f"zoo model {what!r}: the weights that ship with mrizoo are missing ({', '.join(missing)} not in "
            f"{path}); the installation is incomplete: reinstall mrizoo")
    actual = sha256_file(path / WEIGHTS_NAME)
    if actual != sha256:
        raise PackageWeightsError(
            f"zoo model {what!r}: {path / WEIGHTS_NAME} has sha256 {actual}, but the entry pins {sha256}; the "
            f"installed file was changed or damaged and was not loaded: reinstall mrizoo")
    return path
