"""ESPIRiT coil-sensitivity estimation from a fully sampled k-space centre.

Uecker et al., "ESPIRiT - an eigenvalue approach to autocalibrating parallel MRI",
MRM 71:990-1001 (2014). The calibration (block-Hankel) matrix of the central ACS block is
decomposed by SVD; its leading right singular vectors (the signal-space kernels) define, at
every pixel, a ``C x C`` Hermitian operator whose top eigenvector is the coil-sensitivity
vector and whose top eigenvalue (close to 1 inside the object) decides where maps are kept.

The per-pixel operators are built without transforming every kernel to image space: the
sum over kernels of ``g_k g_k^H`` only depends on the kernels' cross-correlations, which
live on a ``(2 k - 1)^2`` grid and are moved to image space with one FFT per coil pair.
Everything is batched torch, so it runs unchanged on CPU and CUDA.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from mrizoo.errors import InputError

__all__ = ["EspiritConfig", "espirit_maps", "central_block"]


@dataclass(frozen=True)
class EspiritConfig:
    """Settings of :func:`espirit_maps` (defaults follow sigpy's ``EspiritCalib``).

    ``calib_width``: side of the square, fully sampled calibration region at the k-space
    centre. ``kernel_width``: side of the k-space kernels. ``threshold``: singular values
    of the calibration matrix below ``threshold * max`` span the null space and are
    dropped. ``crop``: maps are set to 0 where the top eigenvalue is ``<= crop``.
    ``max_iter``: power-method iterations (rounded up to a power of two). ``solver``:
    ``"eigh"`` solves every pixel's ``C x C`` eigenproblem directly (exact, fastest on CPU
    and CUDA); ``"power"`` runs the power method from a constant vector (as sigpy does)
    with matrix products only, for devices without a batched ``eigh``; ``"auto"`` takes
    ``"eigh"`` on CPU and CUDA and ``"power"`` elsewhere. ``fit_to_acs``: shrink the
    calibration region, per axis, to the fully sampled centre actually present in the data
    (a 4x mask on 180 columns keeps only 14 central lines, fewer than ``calib_width``), so
    unsampled (zero) lines never enter the calibration matrix.
    """

    calib_width: int = 24
    kernel_width: int = 6
    threshold: float = 0.02
    crop: float = 0.95
    max_iter: int = 100
    solver: Literal["auto", "eigh", "power"] = "auto"
    fit_to_acs: bool = True

    def __post_init__(self) -> None:
        for name in ("calib_width", "kernel_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(
                    "must be a positive integer", field=name, expected="int >= 1", got=value
                )
        if self.kernel_width > self.calib_width:
            raise InputError(
                "kernel is wider than the calibration region",
                field="kernel_width",
                expected=f"<= calib_width ({self.calib_width})",
                got=self.kernel_width,
            )
        max_iter = self.max_iter
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise InputError(
                "must be a positive integer", field="max_iter", expected="int >= 1",
                got=self.max_iter,
            )
        if self.solver not in ("auto", "eigh", "power"):
            raise InputError(
                "unknown eigen solver", field="solver", expected="'auto', 'eigh' or 'power'",
                got=self.solver,
            )
        for name in ("threshold", "crop"):
            value = getattr(self, name)
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not is_number or not math.isfinite(value):
                raise InputError("must be a finite number", field=name, got=value)
        if not 0.0 < self.threshold < 1.0:
            raise InputError(
                "singular-value threshold is relative to the largest one",
                field="threshold", expected="0 < threshold < 1", got=self.threshold,
            )
        if not 0.0 <= self.crop < 1.0:
            raise InputError(
                "eigenvalue crop is relative (eigenvalues are at most 1)",
                field="crop", expected="0 <= crop < 1", got=self.crop,
            )


def _check_kspace(kspace: Any, config: EspiritConfig) -> None:
    if not isinstance(kspace, torch.Tensor):
        raise TypeError(
            "espirit_maps expects a complex torch.Tensor [..., C, H, W]; "
            f"got {type(kspace).__name__}"
        )
    if not torch.is_complex(kspace):
        raise InputError(
            "k-space must be complex", field="kspace", expected="complex tensor [..., C, H, W]",
            got=str(kspace.dtype),
        )
    if kspace.ndim < 3:
        raise InputError(
            "k-space needs coil and image axes", field="kspace",
            expected="shape [..., C, H, W]", got=tuple(kspace.shape),
        )
    c, h, w = kspace.shape[-3:]
    if c < 1 or kspace.numel() == 0:
        raise InputError("k-space is empty", field="kspace", got=tuple(kspace.shape))
    if config.calib_width > min(h, w):
        raise InputError(
            "calibration region is larger than the image", field="calib_width",
            expected=f"<= min(H, W) = {min(h, w)}", got=config.calib_width,
        )
    if not bool(torch.isfinite(kspace).all()):
        raise InputError("k-space contains NaN or Inf", field="kspace", expected="finite values")


def central_block(sampled: torch.Tensor) -> tuple[slice, slice]:
    """The fully sampled block ``(rows, cols)`` around the centre ``(H // 2, W // 2)`` of a bool ``[H, W]``.

    Grown from the centre one line at a time on each side in turn while the new line is
    fully sampled, so it finds a rectangular calibration block whether the pattern is a set
    of columns (all rows x the central band) or 2D (Poisson disc or a block inside an
    undersampled grid). Empty slices when the centre itself is not sampled.
    """
    s = sampled.detach().cpu().numpy().astype(bool)
    h, w = s.shape
    ch, cw = h // 2, w // 2
    if not s[ch, cw]:
        return slice(ch, ch), slice(cw, cw)
    r0, r1, c0, c1 = ch, ch + 1, cw, cw + 1
    grown = True
    while grown:
        grown = False
        if r0 > 0 and s[r0 - 1, c0:c1].all():
            r0, grown = r0 - 1, True
        if r1 < h and s[r1, c0:c1].all():
            r1, grown = r1 + 1, True
        if c0 > 0 and s[r0:r1, c0 - 1].all():
            c0, grown = c0 - 1, True
        if c1 < w and s[r0:r1, c1].all():
            c1, grown = c1 + 1, True
    return slice(r0, r1), slice(c0, c1)


def _acs_region(ksp: torch.Tensor, rows: slice, cols: slice) -> tuple[slice, slice]:
    """Shrink the calibration block to its central part sampled in every coil and batch item."""
    sampled = (ksp[..., rows, cols] != 0).any(dim=1).all(dim=0)  # [rows, cols]
    rows_in, cols_in = central_block(sampled)
    return (slice(rows.start + rows_in.start, rows.start + rows_in.stop),
            slice(cols.start + cols_in.start, cols.start + cols_in.stop))


def _calibration_kernels(calib: torch.Tensor, config: EspiritConfig) -> torch.Tensor:
    """Signal-space kernels ``[B, K, C, k, k]`` of ACS blocks ``[B, C, n_h, n_w]``.

    ``K = C k^2`` always; rows belonging to singular values below the threshold are zeroed,
    which keeps items with different signal-space ranks in one batch.
    """
    b, c = calib.shape[:2]
    k = config.kernel_width
    blocks = calib.unfold(-2, k, 1).unfold(-2, k, 1)  # [B, C, nb, nb, k, k]
    hankel = blocks.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * k * k)
    _, s, vh = torch.linalg.svd(hankel, full_matrices=False)
    keep = s > config.threshold * s[:, :1]
    vh = vh * keep.unsqueeze(-1).to(vh.dtype)
    return vh.reshape(b, -1, c, k, k)


def _pixel_operators(kernels: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Per-pixel Hermitian operators ``[B, H, W, C, C]`` from kernels ``[B, K, C, k, k]``.

    ``G(x) = (N / k^2) sum_k g_k(x) g_k(x)^H`` with ``g_k`` the centred, orthonormal inverse
    FFT of kernel ``k`` zero-padded to the image; ``G`` has eigenvalues in ``[0, 1]``.
    """
    h, w = shape
    k = kernels.shape[-1]
    n = 2 * k - 1
    spec = torch.fft.fft2(kernels, s=(n, n))  # [B, K, C, n, n]
    # Cross-correlation of kernel coils: r[c, d](delta) = sum_k sum_j a_kc(j) conj(a_kd(j - delta)).
    cross = torch.einsum("bkcuv,bkduv->bcduv", spec, spec.conj())
    corr = torch.fft.ifft2(cross)  # circular index = delta mod n (no wrap: |delta| < k)
    corr = torch.fft.fftshift(corr, dim=(-2, -1))  # delta = 0 at index k - 1
    grid = corr.new_zeros(*corr.shape[:-2], h, w)
    r0, c0 = h // 2 - (k - 1), w // 2 - (k - 1)
    grid[..., r0 : r0 + n, c0 : c0 + n] = corr
    # Unnormalised centred inverse DFT with delta = 0 at (H // 2, W // 2), divided by k^2.
    img = torch.fft.fftshift(
        torch.fft.ifft2(torch.fft.ifftshift(grid, dim=(-2, -1)), norm="forward"), dim=(-2, -1)
    )
    img = img / (k * k)
    return img.permute(0, 3, 4, 1, 2)


def _top_eigenvectors(
    ops: torch.Tensor, config: EspiritConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top eigenvalue ``[...]`` and unit eigenvector ``[..., C]`` of Hermitian PSD ``[..., C, C]``."""
    solver = config.solver
    if solver == "auto":
        solver = "eigh" if ops.device.type in ("cpu", "cuda") else "power"
    if solver == "eigh":
        vals, vecs = torch.linalg.eigh(ops)
        return vals[..., -1], vecs[..., -1]
    # Power method from the all-ones vector: A^m 1 with m = 2^s >= max_iter, formed by s
    # trace-normalised squarings (a handful of batched C x C products instead of m).
    power = ops
    for _ in range(max(0, math.ceil(math.log2(config.max_iter)))):
        trace = torch.diagonal(power, dim1=-2, dim2=-1).real.sum(-1)
        power = power / trace.clamp_min(1e-30)[..., None, None]
        power = power @ power
    x = power.sum(-1, keepdim=True)
    x = x / torch.linalg.vector_norm(x, dim=-2, keepdim=True).clamp_min(1e-30)
    value = torch.linalg.vector_norm(ops @ x, dim=-2)
    return value[..., 0], x[..., 0]


def espirit_maps(
    kspace: torch.Tensor, config: EspiritConfig | None = None, **overrides: Any
) -> torch.Tensor:
    """ESPIRiT sensitivity maps (one set, the top eigenvector) of k-space ``[..., C, H, W]``.

    ``kspace`` is centred k-space with a fully sampled centre; the calibration block is the
    central ``calib_width`` square, narrowed to the sampled lines (``fit_to_acs``).
    Returns complex64 maps of the same shape and device, with ``sum_c |S_c|^2 = 1`` where the
    top eigenvalue exceeds ``crop`` and 0 elsewhere, and the phase of coil 0 removed (maps
    are only defined up to a per-pixel phase). ``overrides`` replace fields of ``config``.
    """
    if config is None:
        config = EspiritConfig()
    elif not isinstance(config, EspiritConfig):
        raise TypeError(f"config must be an EspiritConfig; got {type(config).__name__}")
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(EspiritConfig)}
        if unknown:
            raise TypeError(f"espirit_maps got unknown settings {sorted(unknown)}")
        config = dataclasses.replace(config, **overrides)
    _check_kspace(kspace, config)

    shape = kspace.shape
    c, h, w = shape[-3:]
    ksp = kspace.reshape(-1, c, h, w).to(torch.complex64)
    cw = config.calib_width
    r0, c0 = h // 2 - cw // 2, w // 2 - cw // 2
    rows, cols = slice(r0, r0 + cw), slice(c0, c0 + cw)
    energy = ksp[..., rows, cols].abs().pow(2).sum(dim=(-3, -2, -1))
    if bool((energy == 0).any()):
        raise InputError(
            "calibration region is all zero; the k-space centre must be fully sampled",
            field="kspace", expected=f"non-zero central {cw} x {cw} block",
        )
    if config.fit_to_acs:
        rows, cols = _acs_region(ksp, rows, cols)
        if min(rows.stop - rows.start, cols.stop - cols.start) < config.kernel_width:
            raise InputError(
                "the fully sampled k-space centre (ACS) is smaller than the ESPIRiT kernel",
                field="kspace", expected=f"at least {config.kernel_width} fully sampled central lines",
                got=f"{rows.stop - rows.start} x {cols.stop - cols.start}",
            )
    calib = ksp[..., rows, cols]
    kernels = _calibration_kernels(calib, config)
    ops = _pixel_operators(kernels, (h, w))
    eig, vec = _top_eigenvectors(ops, config)

    ref = vec[..., :1]
    mag = ref.abs()
    phase = torch.where(mag > 0, ref.conj() / mag.clamp_min(1e-30), torch.ones_like(ref))
    maps = vec * phase * (eig > config.crop).unsqueeze(-1)
    maps = maps.permute(0, 3, 1, 2).to(torch.complex64).contiguous()
    return maps.reshape(shape)
