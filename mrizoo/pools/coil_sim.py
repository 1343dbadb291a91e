"""Acquisition physics of the demo mini-pool: receive arrays, correlated noise, background phase.

A simulated acquisition of a magnitude image ``m`` is ``k_c = F(S_c m e^{i phi}) + n_c``:

- ``S_c``: a receive array of ``C`` loops (random count) on one to three rings of an
  elliptical cylinder around the object (random semi-axes, ring spacing, rotation, angular
  jitter and coverage: an arc that leaves the face open, as head coils do). A loop's
  sensitivity follows the on-axis Biot-Savart falloff ``r0^2 / (r0^2 + d^2)^{3/2}`` of its
  3-D distance ``d``, its phase is the in-plane direction to the pixel plus a random offset.
  The array is partly flattened (``sum_c |S_c|^2`` raised to a random power), leaving the
  mild shading a real root-sum-of-squares image has.
- ``phi``: smooth background phase, a random polynomial of order two over the field of view
  plus one to three Gaussian off-resonance bumps (B0-like, e.g. near air cavities).
- ``n``: complex Gaussian noise with a random coil covariance ``Psi = G (I + a A)(I + a A)^H G``
  (correlations of ~0.05-0.4 between coils, gains 0.8-1.25), white over k-space; its level
  is set so that the background of the RSS image is a chosen fraction of its bright tissue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mrizoo.physics.fft import fft2c

__all__ = ["Acquisition", "background_phase", "coil_array", "draw_acquisition", "noise_covariance", "simulate_slices"]


@dataclass(frozen=True)
class Acquisition:
    """One simulated scan setup (a volume shares it): maps ``[C, H, W]``, noise mixing ``[C, C]``, noise level."""

    maps: np.ndarray  # complex64 [C, H, W]
    noise_mix: np.ndarray  # complex128 [C, C], Cholesky factor of the noise covariance (unit mean variance)
    background: float  # RSS background level / 99th percentile of the RSS object
    phase_seed: int


def coil_array(num_coils: int, shape: tuple[int, int], pixel_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Sensitivities ``[C, H, W]`` (complex64) of a random loop array around the field of view."""
    h, w = shape
    yy, xx = np.meshgrid((np.arange(h) - (h - 1) / 2) * pixel_mm, (np.arange(w) - (w - 1) / 2) * pixel_mm,
                         indexing="ij")
    half_h, half_w = 0.5 * h * pixel_mm, 0.5 * w * pixel_mm
    a = half_w * rng.uniform(1.05, 1.45)  # ring semi-axes: outside the field of view (and the object)
    b = half_h * rng.uniform(1.05, 1.45)
    rings = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2])) if num_coils >= 8 else 1
    ring_gap = rng.uniform(25.0, 70.0)  # mm between rings along the bore
    per_ring = np.full(rings, num_coils // rings)
    per_ring[: num_coils % rings] += 1
    arc = 2 * math.pi if rng.random() < 0.6 else rng.uniform(1.3, 1.8) * math.pi  # an open face or not
    start = rng.uniform(0, 2 * math.pi)
    r0 = rng.uniform(0.25, 0.45) * min(a, b)  # loop radius
    maps = []
    for ring, count in enumerate(per_ring):
        z = (ring - (rings - 1) / 2) * ring_gap + rng.normal(0.0, 5.0)
        offset = rng.uniform(0, 2 * math.pi / max(count, 1))
        for k in range(int(count)):
            slots = count if arc >= 2 * math.pi else max(count - 1, 1)  # a closed ring or an open arc
            theta = start + offset + arc * (k + rng.uniform(-0.15, 0.15)) / slots
            cx, cy = a * math.cos(theta), b * math.sin(theta)
            dx, dy = xx - cx, yy - cy
            d2 = dx * dx + dy * dy + z * z
            mag = r0 ** 2 / (r0 ** 2 + d2) ** 1.5
            phase = np.arctan2(dy, dx) + rng.uniform(-math.pi, math.pi)
            maps.append(mag * np.exp(1j * phase))
    s = np.stack(maps)
    sos = np.sqrt((np.abs(s) ** 2).sum(axis=0))
    s = s / sos ** rng.uniform(0.6, 1.0)  # partly flattened: mild RSS shading remains
    s = s / np.sqrt((np.abs(s[:, h // 4: 3 * h // 4, w // 4: 3 * w // 4]) ** 2).sum(axis=0)).mean()
    return s.astype(np.complex64)


def noise_covariance(num_coils: int, rng: np.random.Generator) -> np.ndarray:
    """A random Hermitian positive-definite coil noise covariance ``[C, C]`` with mean variance 1."""
    amount = rng.uniform(0.1, 0.45)
    real = rng.normal(size=(num_coils, num_coils))
    imag = rng.normal(size=(num_coils, num_coils))
    g = (real + 1j * imag) / math.sqrt(2 * num_coils)
    mix = np.eye(num_coils) + amount * g
    gains = np.diag(rng.uniform(0.8, 1.25, size=num_coils))
    cov = gains @ mix @ mix.conj().T @ gains
    return cov / np.real(np.trace(cov)) * num_coils


def draw_acquisition(shape: tuple[int, int], pixel_mm: float, coils: tuple[int, int],
                     background: tuple[float, float], rng: np.random.Generator) -> Acquisition:
    """A random scan setup: coil count log-uniform in ``coils``, background level log-uniform in ``background``."""
    lo, hi = coils
    count = int(np.clip(math.floor(math.exp(rng.uniform(math.log(lo), math.log(hi + 1)))), lo, hi)) if hi > lo else lo
    maps = coil_array(count, shape, pixel_mm, rng)
    cov = noise_covariance(count, rng)
    level = math.exp(rng.uniform(math.log(background[0]), math.log(background[1])))
    return Acquisition(maps, np.linalg.cholesky(cov), level, int(rng.integers(0, 2**31 - 1)))


def background_phase(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth phase ``[H, W]`` (radians): order-2 polynomial plus Gaussian off-resonance bumps."""
    h, w = shape
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    c = rng.normal(0.0, [math.pi, 1.2, 1.2, 0.5, 0.5, 0.4])
    phi = c[0] + c[1] * x + c[2] * y + c[3] * x * x + c[4] * y * y + c[5] * x * y
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(-0.6, 0.6, size=2)
        width = rng.uniform(0.08, 0.3)
        phi = phi + rng.uniform(-2.0, 2.0) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width ** 2))
    return phi.astype(np.float32)


def simulate_slices(images: np.ndarray, acq: Acquisition, seed: int, *, add_phase: bool = True) -> torch.Tensor:
    """Multi-coil k-space ``[S, C, H, W]`` (complex64) of slices ``[S, H, W]``.

    With ``add_phase`` the slices (magnitudes) get the acquisition's background phase, drifting
    a little from slice to slice; without it they keep their own (complex images).
    """
    rng = np.random.default_rng(seed)
    maps = torch.from_numpy(acq.maps)
    base = background_phase(images.shape[-2:], np.random.default_rng(acq.phase_seed))
    out = []
    rss_ref = []
    clean = []
    for s in range(images.shape[0]):
        # the phase drifts a little from slice to slice, as B0 does through a volume
        phi = base + background_phase(images.shape[-2:], rng) * 0.15
        img = torch.from_numpy(images[s] * np.exp(1j * phi) if add_phase else images[s]).to(torch.complex64)
        coil = maps * img
        clean.append(coil)
        rss = coil.abs().pow(2).sum(0).sqrt()
        rss_ref.append(float(torch.quantile(rss[rss > 0.05 * rss.max()].float(), 0.99)) if rss.max() > 0 else 1.0)
    ref = float(np.median(rss_ref))
    c = acq.maps.shape[0]
    sigma = acq.background * ref / math.sqrt(c)  # per-coil noise std so that the RSS background ~ level * ref
    mix = torch.from_numpy(acq.noise_mix).to(torch.complex64)
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**31 - 1)))
    for coil in clean:
        white = torch.view_as_complex(torch.randn((*coil.shape, 2), generator=gen) * math.sqrt(0.5))
        noise = (mix @ white.reshape(c, -1)).reshape(coil.shape) * sigma
        out.append(fft2c(coil + noise))  # white noise: the same statistics in k-space (orthonormal FFT)
    return torch.stack(out).to(torch.complex64)
