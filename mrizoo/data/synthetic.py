"""Synthetic multi-coil MRI data: phantoms, simulated coil maps, smooth phase and noise.

Used to make small fastMRI-convention volumes for tests, demos and benchmarks when no raw
data is at hand, and to turn real magnitude or single-map images into multi-coil k-space.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrizoo.data.bart import read_cfl
from mrizoo.data.convert import kspace_to_volume
from mrizoo.data.slices import center_crop
from mrizoo.errors import InputError
from mrizoo.physics.fft import fft2c

__all__ = [
    "birdcage_maps",
    "ellipse_phantom",
    "make_test_volume",
    "simulate_multicoil",
    "smooth_phase",
]

# Modified Shepp-Logan head (Toft's contrast-enhanced intensities): (intensity, semi-axis a
# along x, semi-axis b along y, centre x, centre y, rotation in degrees), on [-1, 1]^2 with
# y pointing up.
_SHEPP_LOGAN = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.0, -0.0184, 0.0),
    (-0.2, 0.11, 0.31, 0.22, 0.0, -18.0),
    (-0.2, 0.16, 0.41, -0.22, 0.0, 18.0),
    (0.1, 0.21, 0.25, 0.0, 0.35, 0.0),
    (0.1, 0.046, 0.046, 0.0, 0.1, 0.0),
    (0.1, 0.046, 0.046, 0.0, -0.1, 0.0),
    (0.1, 0.046, 0.023, -0.08, -0.605, 0.0),
    (0.1, 0.023, 0.023, 0.0, -0.606, 0.0),
    (0.1, 0.023, 0.046, 0.06, -0.605, 0.0),
)


def _shape2(shape: Any) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise InputError("image shape must be two integers (H, W)", field="shape", got=shape) from None
    if h < 1 or w < 1:
        raise InputError("image shape must be positive", field="shape", got=shape)
    return h, w


def _grid(shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates on [-1, 1]: x along columns (right), y along rows (up)."""
    h, w = shape
    y = 1.0 - (torch.arange(h, dtype=torch.float64) + 0.5) * (2.0 / h)
    x = (torch.arange(w, dtype=torch.float64) + 0.5) * (2.0 / w) - 1.0
    return torch.meshgrid(x, y, indexing="xy")


def ellipse_phantom(shape: tuple[int, int], *, z: float = 0.0) -> torch.Tensor:
    """Modified Shepp-Logan phantom ``[H, W]`` (float32, values in [0, 1]).

    ``z`` in (-1, 1) cuts the phantom as a stack of ellipsoids: every ellipse shrinks by
    ``sqrt(1 - z^2)``, so the slices of a test volume differ smoothly.
    """
    shape = _shape2(shape)
    if not -1.0 < z < 1.0:
        raise InputError("slice position must lie in (-1, 1)", field="z", got=z)
    scale = math.sqrt(1.0 - z * z)
    xx, yy = _grid(shape)
    img = torch.zeros(shape, dtype=torch.float64)
    for value, a, b, x0, y0, deg in _SHEPP_LOGAN:
        t = math.radians(deg)
        dx, dy = xx - x0, yy - y0
        u = dx * math.cos(t) + dy * math.sin(t)
        v = -dx * math.sin(t) + dy * math.cos(t)
        img += value * ((u / (a * scale)) ** 2 + (v / (b * scale)) ** 2 <= 1.0)
    return img.clamp_min(0.0).to(torch.float32)


def birdcage_maps(
    num_coils: int, shape: tuple[int, int], *, radius: float = 1.5, normalize: bool = True,
    rotation: float = 0.0,
) -> torch.Tensor:
    """Simulated coil sensitivities ``[C, H, W]`` (complex64) of coils on a circle.

    Coil ``c`` sits at angle ``rotation + 2 pi c / C`` on a circle of ``radius`` (image half-width = 1).
    Its sensitivity falls off as ``1 / distance`` (a Biot-Savart-like loop field) and its
    phase is the direction from the coil to the pixel plus the coil's angle, a smooth phase
    that differs between coils. With ``normalize`` the maps are scaled so that
    ``sum_c |S_c|^2 = 1`` at every pixel.
    """
    if isinstance(num_coils, bool) or not isinstance(num_coils, int) or num_coils < 1:
        raise InputError("number of coils must be a positive integer", field="num_coils", got=num_coils)
    if not (isinstance(radius, (int, float)) and radius > 1.0 and math.isfinite(radius)):
        raise InputError("coils must sit outside the image", field="radius", expected="> 1", got=radius)
    shape = _shape2(shape)
    xx, yy = _grid(shape)
    if not (isinstance(rotation, (int, float)) and math.isfinite(rotation)):
        raise InputError("rotation must be a finite angle in radians", field="rotation", got=rotation)
    angles = torch.arange(num_coils, dtype=torch.float64) * (2.0 * math.pi / num_coils) + float(rotation)
    cx = (radius * torch.cos(angles))[:, None, None]
    cy = (radius * torch.sin(angles))[:, None, None]
    dx, dy = xx - cx, yy - cy
    dist = torch.sqrt(dx * dx + dy * dy)
    phase = torch.atan2(dy, dx) + angles[:, None, None]
    maps = torch.polar(1.0 / dist, phase)
    if normalize:
        maps = maps / torch.sqrt((maps.abs() ** 2).sum(dim=0, keepdim=True))
    return maps.to(torch.complex64)


def smooth_phase(
    shape: tuple[int, int], seed: int = 0, *, order: int = 3, strength: float = math.pi / 2
) -> torch.Tensor:
    """A random smooth phase map ``[H, W]`` (float32 radians), ``max |phase| = strength``.

    A 2D polynomial of total degree ``order`` in the pixel coordinates on [-1, 1], with
    standard-normal coefficients drawn from ``seed``, then scaled to the given strength.
    """
    shape = _shape2(shape)
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise InputError("polynomial order must be a positive integer", field="order", got=order)
    if not (isinstance(strength, (int, float)) and strength >= 0 and math.isfinite(strength)):
        raise InputError("phase strength must be a finite number >= 0", field="strength", got=strength)
    xx, yy = _grid(shape)
    gen = torch.Generator().manual_seed(int(seed))
    terms = [(i, j) for i in range(order + 1) for j in range(order + 1 - i) if i + j > 0]
    coef = torch.randn(len(terms), generator=gen, dtype=torch.float64)
    phase = sum(c * xx**i * yy**j for c, (i, j) in zip(coef, terms))
    peak = phase.abs().max()
    if peak > 0:
        phase = phase * (strength / peak)
    return torch.as_tensor(phase, dtype=torch.float64).to(torch.float32)


def simulate_multicoil(
    image: torch.Tensor | np.ndarray,
    *,
    num_coils: int = 8,
    snr_db: float | None = None,
    seed: int = 0,
    maps: torch.Tensor | np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-coil k-space ``[C, H, W]`` (complex64) of an image ``[H, W]``, and the maps used.

    ``k_c = fft2c(S_c x)`` with birdcage maps (or the given ``maps`` ``[C, H, W]``). With
    ``snr_db``, circular complex Gaussian noise is added to every k-space sample, with
    variance ``E|n|^2 = P / 10^(snr_db / 10)`` where ``P`` is the mean of ``|k_c|^2`` over
    all coils and samples of the noiseless k-space (real and imaginary parts each carry half
    the variance). The transform is orthonormal, so the same SNR holds in image space.
    """
    img = torch.as_tensor(image)
    if img.ndim != 2 or 0 in img.shape:
        raise InputError("image must be 2D [H, W]", field="image", got=f"shape {tuple(img.shape)}")
    if img.dtype == torch.bool:
        raise InputError("image must be numeric", field="image", got=str(img.dtype))
    img = img.to(torch.complex64)
    if not torch.isfinite(torch.view_as_real(img)).all():
        raise InputError("image holds non-finite values", field="image")
    shape = (int(img.shape[0]), int(img.shape[1]))
    if maps is None:
        maps = birdcage_maps(num_coils, shape)
    else:
        maps = torch.as_tensor(maps).to(torch.complex64)
        if maps.ndim != 3 or tuple(maps.shape[-2:]) != shape:
            raise InputError("maps do not fit the image", field="maps",
                             expected=f"[C, {shape[0]}, {shape[1]}]", got=f"shape {tuple(maps.shape)}")
    kspace = fft2c(maps * img)
    if snr_db is not None:
        if not (isinstance(snr_db, (int, float)) and math.isfinite(snr_db)):
            raise InputError("SNR must be a finite number of dB", field="snr_db", got=snr_db)
        power = float((kspace.abs() ** 2).mean())
        sigma = math.sqrt(power / 10.0 ** (snr_db / 10.0) / 2.0)
        gen = torch.Generator().manual_seed(int(seed))
        noise = torch.randn((*kspace.shape, 2), generator=gen, dtype=torch.float32) * sigma
        kspace = kspace + torch.view_as_complex(noise)
    return kspace.to(torch.complex64), maps


def _source_image(source: str | os.PathLike[str], shape: tuple[int, int] | None) -> torch.Tensor:
    """A 2D complex image from a BART cfl (e.g. a single-map reconstruction) or a .npy file."""
    src = Path(source)
    if src.suffix == ".npy":
        if not src.exists():
            raise InputError("image file not found", path=src)
        arr = np.load(src)
    else:
        arr = read_cfl(src, squeeze=True)
    if arr.ndim != 2:
        raise InputError("source must hold one 2D image", path=src, got=f"shape {arr.shape}")
    img = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.complex64)
    if shape is not None:
        img = center_crop(img, shape)
    return img


def make_test_volume(
    path: str | os.PathLike[str],
    *,
    num_slices: int = 4,
    shape: tuple[int, int] | None = None,
    num_coils: int = 4,
    seed: int = 0,
    snr_db: float | None = None,
    source: str | os.PathLike[str] | None = None,
    phase_strength: float = math.pi / 2,
    crop: tuple[int, int] | None = None,
    acquisition: str = "SYNTHETIC",
    overwrite: bool = False,
) -> Path:
    """Write a small fully sampled fastMRI-convention volume of simulated multi-coil data.

    The image is the ellipse phantom (``shape``, default 64 x 64) cut at ``num_slices``
    positions with a smooth random phase, or, when ``source`` names a 2D image (a BART cfl
    such as the real knee ``knee_image_1map``, or a ``.npy``), that image (centre-cropped to
    ``shape`` when given) on every slice. Coils: :func:`birdcage_maps`; noise: ``snr_db`` as in
    :func:`simulate_multicoil`, seeded per slice. The file holds ``kspace``,
    ``reconstruction_rss`` (cropped to ``crop``), ``max``, ``norm``, ``acquisition``,
    ``patient_id`` and a header, written through :func:`mrizoo.data.writer.write_volume`.
    """
    if isinstance(num_slices, bool) or not isinstance(num_slices, int) or num_slices < 1:
        raise InputError("number of slices must be a positive integer", field="num_slices", got=num_slices)
    if source is not None:
        base = _source_image(source, None if shape is None else _shape2(shape))
        images = [base] * num_slices
    else:
        shape = (64, 64) if shape is None else _shape2(shape)
        positions = np.linspace(-0.6, 0.6, num_slices) if num_slices > 1 else [0.0]
        images = [
            ellipse_phantom(shape, z=float(z)) * torch.polar(
                torch.ones(shape), smooth_phase(shape, 2 * (seed * 100_003 + s), strength=phase_strength)
            )
            for s, z in enumerate(positions)
        ]
    maps = birdcage_maps(num_coils, tuple(images[0].shape))
    kspace = torch.stack([
        simulate_multicoil(img, snr_db=snr_db, seed=2 * (seed * 100_003 + s) + 1, maps=maps)[0]
        for s, img in enumerate(images)
    ])
    result = kspace_to_volume(
        kspace, path, crop=crop, acquisition=acquisition, patient_id=f"synthetic-{seed}",
        attrs={"source_format": "synthetic"}, overwrite=overwrite,
    )
    return result.path
