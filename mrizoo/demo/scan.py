"""The real undersampled scan that ships with mrizoo for the offline demo.

``data/brain_t1_8ch_r4.h5`` is one fastMRI-convention volume (one slice): the axial T1 brain,
8 receive coils, 230 x 180, of the ESPIRiT example data (BSD-3 licence, see ``data/README.md``),
undersampled 4x with an equispaced fastMRI mask (8% fully sampled centre lines). It holds
``kspace`` (zeros where not sampled), ``mask`` and ``reconstruction_rss`` (the RSS image of the
fully sampled k-space: the reference that metrics are computed against), like a fastMRI
validation file that was undersampled on purpose. :func:`make_demo_scan` is how it was made.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrizoo.data import bart_to_kspace, read_cfl, write_volume
from mrizoo.errors import InputError
from mrizoo.masks import create_mask
from mrizoo.physics import ifft2c, rss

__all__ = ["DEMO_SCAN", "DemoScanSpec", "demo_scan_path", "make_demo_scan"]

DEMO_SCAN = "brain_t1_8ch_r4.h5"


@dataclass(frozen=True)
class DemoScanSpec:
    """How the shipped scan was undersampled (seeded, so :func:`make_demo_scan` reproduces it)."""

    mask: str = "equispaced_fraction"
    acceleration: float = 4.0
    center_fraction: float = 0.08
    seed: int = 0


def demo_scan_path() -> Path:
    """Path of the shipped demo scan (an error naming the path if the installation lacks it)."""
    path = Path(str(importlib.resources.files("mrizoo.demo") / "data" / DEMO_SCAN))
    if not path.is_file():
        raise InputError("the demo scan that ships with mrizoo is missing; reinstall mrizoo", path=path)
    return path


def make_demo_scan(source: str | os.PathLike[str], dst: str | os.PathLike[str], spec: DemoScanSpec | None = None,
                   *, overwrite: bool = False) -> Path:
    """Write the demo scan from a fully sampled multi-coil BART ``.cfl`` slice (the ESPIRiT brain).

    The reference ``reconstruction_rss`` comes from the fully sampled k-space; the stored
    ``kspace`` keeps only the sampled columns. Written atomically, gzip-compressed.
    """
    # imported on use: a heavy package that most calls of this module do not need
    import torch

    spec = spec or DemoScanSpec()
    kspace = torch.from_numpy(bart_to_kspace(read_cfl(source), path=source))  # [slices, coils, H, W]
    if kspace.ndim != 4 or kspace.shape[1] < 2:
        raise InputError("the demo scan needs multi-coil k-space", path=source, field="dims",
                         expected="[slices, coils >= 2, H, W]", got=tuple(kspace.shape))
    h, w = kspace.shape[-2:]
    mask = create_mask(spec.mask, (h, w), seed=spec.seed, acceleration=spec.acceleration,
                       center_fraction=spec.center_fraction)
    if mask.lines is None:
        raise InputError("the demo scan stores a column mask", field="mask", expected="a 1D (column) mask family",
                         got=spec.mask)
    target = rss(ifft2c(kspace))
    under = kspace * mask.lines.to(kspace.device)
    attrs = {"acquisition": "AXT1", "patient_id": "espirit-example-brain", "max": float(target.max()),
             "norm": float(torch.linalg.vector_norm(target)), "mask_type": spec.mask,
             "acceleration": float(mask.acceleration), "nominal_acceleration": spec.acceleration,
             "center_fraction": spec.center_fraction, "mask_seed": spec.seed,
             "source": "ESPIRiT example data (axial T1 brain, 8 coils), BSD-3 licence"}
    return write_volume(dst, kspace=under.numpy(), mask=mask.lines.numpy().astype(np.uint8),
                        targets={"reconstruction_rss": target.numpy()}, attrs=attrs, overwrite=overwrite,
                        compression="gzip")
