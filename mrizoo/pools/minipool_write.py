"""Writing one mini-pool volume: slices cut, placed and contrast-mapped, acquired, stored.

Everything random about a volume (matrix, field of view, rotation, mirror, coil array, noise,
phase, contrast jitter) is drawn from a generator seeded by the build seed and the volume's
path, so a volume is the same whichever worker writes it and in whatever order.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrizoo.data.bart import read_cfl
from mrizoo.data.writer import make_ismrmrd_header, write_volume
from mrizoo.errors import InputError
from mrizoo.physics.coils import rss
from mrizoo.physics.fft import ifft2c
from mrizoo.pools.coil_sim import draw_acquisition, simulate_slices
from mrizoo.pools.minipool_plan import Job
from mrizoo.pools.minipool_sources import (
    contrast_map,
    load_volume,
    place_slab,
    template_slice,
    tissue_levels,
    view_axis,
    view_spacing,
)

__all__ = ["run_job", "stable_seed"]


def stable_seed(*parts: Any) -> int:
    """A 32-bit seed from the parts' text (the same in every process and Python version)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big")


def _template_images(job: Job, cfg: Any, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The job's slices, contrast-mapped and placed on a random matrix: ``[S, H, W]`` and the pixel mm."""
    vol, level = load_volume(job.source)
    raw = np.stack([np.clip(template_slice(vol.data, job.view, i) / level, 0.0, 1.0) for i in job.slices])
    raw = raw.astype(np.float32)
    if job.contrast != "T1" and not _native(job):
        levels = tissue_levels(job.source)
        jitter = int(rng.integers(0, 2**31 - 1))  # one set of tissue values for the whole volume
        raw = np.stack([contrast_map(s, levels, job.contrast, np.random.default_rng(jitter)) for s in raw])
    shapes = cfg.shapes
    shape = tuple(shapes[int(rng.integers(len(shapes)))])
    angle = float(np.clip(rng.normal(0.0, math.radians(4.0)), -math.radians(10), math.radians(10)))
    placed, pix = place_slab(raw, view_spacing(vol.spacing, job.view), (int(shape[0]), int(shape[1])),
                             fill=float(rng.uniform(0.72, 0.92)), angle=angle, flip=bool(rng.random() < 0.5),
                             shift=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04))))
    return placed, pix


def _native(job: Job) -> bool:
    """True for sources whose stored contrast is their own (the EPI brains)."""
    return job.relpath.startswith("mini_epi/")


def _real_brain_kspace(job: Job) -> torch.Tensor:
    """The real 8-coil slice at its own matrix: ``[1, C, H, W]``."""
    k = np.squeeze(read_cfl(job.source))
    if k.ndim != 3:
        raise InputError("expected one multi-coil slice", path=job.source, got=f"shape {k.shape}")
    return torch.from_numpy(np.ascontiguousarray(k.transpose(2, 0, 1))).to(torch.complex64)[None]


def _real_knee_image(job: Job) -> np.ndarray:
    """The real complex knee image at its own matrix, scaled to max 1: ``[1, H, W]``."""
    img = np.squeeze(read_cfl(job.source)).astype(np.complex64)
    if img.ndim != 2:
        raise InputError("expected one 2D image", path=job.source, got=f"shape {img.shape}")
    return (img / np.abs(img).max())[None]


def _header(h: int, w: int, attrs: dict[str, Any]) -> str:
    xml = make_ismrmrd_header((h, w, 1), (h, w, 1))
    fields = [f"<systemVendor>{attrs['vendor']}</systemVendor>" if attrs.get("vendor") else "",
              f"<systemModel>{attrs['scanner']}</systemModel>" if attrs.get("scanner") else ""]
    block = "".join(fields)
    if block:
        xml = xml.replace("  <experimentalConditions>",
                          f"  <acquisitionSystemInformation>{block}</acquisitionSystemInformation>\n"
                          "  <experimentalConditions>", 1)
    return xml


def run_job(job: Job, cfg: Any, root: str) -> str:
    """Write the volume of ``job`` under ``root`` (atomically); returns its relative path."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(stable_seed(cfg.seed, job.relpath))
    extra: dict[str, Any] = {}
    if job.kind == "template":
        images, pix = _template_images(job, cfg, rng)
        acq = draw_acquisition(images.shape[-2:], pix, tuple(cfg.coils), tuple(cfg.background), rng)
        kspace = simulate_slices(images, acq, int(rng.integers(0, 2**31 - 1)))
        vol, _ = load_volume(job.source)
        positions = vol.coords[view_axis(job.view)][list(job.slices)]
        extra = {"pixel_mm": round(pix, 4), "noise_background": round(acq.background, 5),
                 "minipool_positions_mm": [round(float(p), 2) for p in positions]}
    elif job.kind == "real_knee":
        image = _real_knee_image(job)
        acq = draw_acquisition(image.shape[-2:], 0.5, (8, 8), (0.02, 0.02), rng)
        kspace = simulate_slices(image, acq, int(rng.integers(0, 2**31 - 1)), add_phase=False)
    else:
        kspace = _real_brain_kspace(job)
    kspace = kspace.to(torch.complex64)
    target = torch.stack([rss(ifft2c(kspace[s])) for s in range(kspace.shape[0])])
    all_attrs = dict(job.attrs)
    attrs = {k: v for k, v in all_attrs.items() if k not in ("vendor", "scanner")}
    attrs.update(extra)
    attrs.update({
        "max": float(target.max()), "norm": float(torch.linalg.vector_norm(target.double())),
        "acquisition": f"{job.view[:3].upper() or 'UNK'}{job.contrast or 'UNK'}",
        "source_format": "minipool", "minipool_slices": list(job.slices),
    })
    dest = Path(root) / job.relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_volume(dest, kspace=kspace.numpy(), targets={"reconstruction_rss": target.numpy()}, attrs=attrs,
                 header=_header(int(kspace.shape[-2]), int(kspace.shape[-1]), all_attrs))
    return job.relpath
