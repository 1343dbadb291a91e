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


@pytest.fixture
def one_thread():
    """One torch intra-op thread: the tensors in these tests are tiny, and two threads on a busy
    two-core machine spend their time synchronising (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def private_mrizoo_home(monkeypatch, tmp_path):
    """A private MRIZOO_HOME (nothing reaches the user's local zoo) and no pool root from the environment."""
    monkeypatch.setenv("MRIZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MRIZOO_POOL_ROOT", raising=False)
