"""The timm/torchvision import shim: repairs the CPU-torch + CUDA-torchvision mismatch only."""

from __future__ import annotations

import subprocess
import sys

PROBE = r"""
import importlib, sys
try:
    importlib.import_module("torchvision")
    native = True
except RuntimeError as err:
    native = False
    assert "torchvision::" in str(err), err
    for m in [m for m in sys.modules if m.startswith("torchvision")]:
        del sys.modules[m]
import mrizoo._compat as compat
timm = compat.import_timm()
import torch
from timm.layers import Mlp
out = Mlp(8, 16)(torch.ones(2, 8))
assert out.shape == (2, 8)
print("native" if native else "shimmed", compat._SHIM_LIBRARY is not None)
"""


def test_import_timm_in_fresh_interpreter() -> None:
    res = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    mode, shim_used = res.stdout.split()
    # a working torchvision is left alone; a broken one is repaired
    assert shim_used == ("True" if mode == "shimmed" else "False")


def test_import_timm_twice_is_cheap_and_idempotent() -> None:
    from mrizoo._compat import import_timm

    assert import_timm() is import_timm()
