"""Shared test fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REALDATA = ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Folder of small real scans (../shared/realdata); tests skip when it is absent."""
    if not (REALDATA / "brain_t1_8ch_full.cfl").exists():
        pytest.skip(f"real scans not found at {REALDATA} (only present in the development checkout)")
    return REALDATA


@pytest.fixture(scope="session")
def brain_kspace(realdata: Path) -> np.ndarray:
    """The real fully sampled 8-coil brain slice as centred k-space [C, H, W] = [8, 230, 180]."""
    from mrizoo.data.bart import read_cfl

    return np.ascontiguousarray(np.squeeze(read_cfl(realdata / "brain_t1_8ch_full")).transpose(2, 0, 1))
