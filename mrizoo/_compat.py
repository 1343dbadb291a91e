"""Import shims kept in one place.

``timm`` imports ``torchvision``. Where a CUDA build of torchvision sits next to a CPU build
of torch, torchvision's compiled extension does not load and its import then fails with
``operator torchvision::nms does not exist`` while registering fake kernels. mrizoo only
uses timm's layers, never torchvision's detection ops, so when (and only when) that exact
failure happens we declare the two missing operator schemas and import again. A working
torchvision install is never touched.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ["import_timm", "import_torchvision"]

_SHIM_LIBRARY = None  # keeps the torch.library.Library alive (its ops vanish when collected)
_MISSING_OP = "torchvision::"


def _declare_torchvision_ops() -> None:
    global _SHIM_LIBRARY
    # imported on use: a heavy package that most calls of this module do not need
    import torch

    if _SHIM_LIBRARY is not None:
        return
    lib = torch.library.Library("torchvision", "DEF")
    for schema in (
        "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
        "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    ):
        try:
            lib.define(schema)
        except RuntimeError:  # already defined by a partially loaded extension
            pass
    _SHIM_LIBRARY = lib


def _forget(prefix: str) -> None:
    for name in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
        del sys.modules[name]


def import_torchvision() -> ModuleType:
    """Import torchvision, repairing the CPU-torch / CUDA-torchvision mismatch if needed."""
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as err:
        if _MISSING_OP not in str(err) or "does not exist" not in str(err):
            raise
    _forget("torchvision")
    _declare_torchvision_ops()
    return importlib.import_module("torchvision")


def import_timm() -> ModuleType:
    """Import timm after making sure torchvision imports (see module docstring)."""
    if "timm" in sys.modules:
        return sys.modules["timm"]
    try:
        import_torchvision()
    except ImportError:
        pass  # timm works without torchvision for everything mrizoo uses
    return importlib.import_module("timm")
