"""Shared test fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: the small real scans that ship with the tests (tests/data/realdata/README.md says where from)
REALDATA_SHIPPED = ROOT / "tests" / "data" / "realdata"
REALDATA_FILES = ("brain_t1_8ch_full.cfl", "brain_t1_8ch_full.hdr", "brain_t1_8ch_poisson_r8.npy",
                  "knee_image_1map.cfl", "knee_image_1map.hdr", "siemens_7t_gre_1ch.dat")


def realdata_folder(dest: Path) -> Path:
    """The real scans as the tests read them, in ``dest``: the files of ``tests/data/realdata``, with
    the Poisson-disc scan unpacked from its compressed ``.npz`` (88% of it is zeros) to ``.npy``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in REALDATA_FILES:
        if name.endswith(".npy"):
            packed = np.load(REALDATA_SHIPPED / name.replace(".npy", ".npz"))["kspace"]
            np.save(dest / name, packed)
        else:
            (dest / name).write_bytes((REALDATA_SHIPPED / name).read_bytes())
    return dest


@pytest.fixture(scope="session")
def realdata(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of small real scans (8-coil brain, its Poisson-disc undersampling, a knee image, a
    Siemens twix file), made from ``tests/data/realdata`` so that every clone runs the real-data tests."""
    return realdata_folder(tmp_path_factory.mktemp("realdata"))


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
