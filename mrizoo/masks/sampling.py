"""What k-space data actually measured: the sampled set, its pattern and its acceleration.

One function, :func:`detect_sampling`, reads the sampling of a k-space array from the data
itself, so that every reader and converter gives one array one answer:

- a location ``(h, w)`` is measured when any coil (of any slice) holds a nonzero value
  there; exact zeros everywhere mean "not measured";
- a pattern made of full columns is *separable* and stored as fastMRI does (a ``[W]``
  mask); any other pattern is stored as a 2D ``[H, W]`` mask;
- contiguous zero bands at the edges of k-space are not undersampling: one-sided bands are
  partial Fourier (asymmetric echo or partial phase encoding), two-sided bands zero padding;
  both are reported and left out of the acceleration;
- the fully sampled centred block (the calibration region) is measured as ``center_shape``.

Input that looks like an image rather than k-space (its energy is less concentrated at the
centre than that of its Fourier transform) and all-zero input are refused.
:func:`mask_from_any` turns any stored or user mask layout into a boolean ``[.., H, W]`` mask.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mrizoo.errors import InputError

__all__ = ["SamplingInfo", "analyse_mask", "check_kspace_like", "check_measurements", "detect_sampling",
           "mask_from_any", "measured_locations"]

Where = str | os.PathLike[str] | None
_AXES = ("H", "W")
# an image's Fourier transform concentrates its energy this many times more than the image does
_IMAGE_RATIO = 4.0
_MAX_IMAGES = 16  # images (slices x coils) looked at by the image-vs-k-space test


@dataclass(frozen=True)
class SamplingInfo:
    """The sampling of a k-space array, as measured from the data.

    ``mask``: bool ``[H, W]``, exactly the measured locations. ``separable``: the pattern is
    a set of full columns (fastMRI's 1D masks). ``sampling``: ``"fully_sampled"`` or
    ``"undersampled"``. ``acceleration``: locations of the acquired region (k-space less its
    partial-Fourier and zero-padding bands) over measured locations. ``center_shape``:
    ``(h, w)`` of the largest fully sampled block around the k-space centre.
    ``partial_fourier``: ``{axis: (side, lines)}`` (``side`` "low" or "high") or None.
    ``zero_padding``: ``{axis: (low_lines, high_lines)}`` or None.
    """

    mask: torch.Tensor
    separable: bool
    sampling: str
    acceleration: float
    center_shape: tuple[int, int]
    partial_fourier: dict[str, tuple[str, int]] | None = None
    zero_padding: dict[str, tuple[int, int]] | None = None

    @property
    def fully_sampled(self) -> bool:
        return self.sampling == "fully_sampled"

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.mask.shape[-2]), int(self.mask.shape[-1])

    def stored_mask(self) -> np.ndarray:
        """The mask as files store it: bool ``[W]`` when separable, else bool ``[H, W]``."""
        m = self.mask.numpy()
        return m[0].copy() if self.separable else m.copy()

    def region(self) -> torch.Tensor:
        """bool ``[H, W]``: the acquired region (k-space less the recognised zero bands)."""
        return _region(self.shape, self.partial_fourier, self.zero_padding)

    def attrs(self) -> dict[str, Any]:
        """Volume attributes: ``sampling``, ``acceleration``, ``center_shape`` and the bands (JSON)."""
        out: dict[str, Any] = {
            "sampling": self.sampling,
            "acceleration": float(self.acceleration),
            "center_shape": np.asarray(self.center_shape, dtype=np.int64),
        }
        if self.partial_fourier:
            out["partial_fourier"] = json.dumps({k: list(v) for k, v in self.partial_fourier.items()})
        if self.zero_padding:
            out["zero_padding"] = json.dumps({k: list(v) for k, v in self.zero_padding.items()})
        return out

    def describe(self) -> str:
        """One line: label, acceleration, calibration block and recognised bands."""
        h, w = self.center_shape
        if self.fully_sampled:
            text = "fully sampled"
        else:
            kind = "1D columns" if self.separable else "2D pattern"
            text = f"undersampled {self.acceleration:.2f}x ({kind}, fully sampled centre {h} x {w})"
        bands = []
        for axis, (side, n) in (self.partial_fourier or {}).items():
            bands.append(f"partial Fourier along {axis}: {n} {side} lines not acquired")
        for axis, (lo, hi) in (self.zero_padding or {}).items():
            bands.append(f"zero padding along {axis}: {lo} + {hi} lines")
        return text + (f"; {'; '.join(bands)}" if bands else "")


# --------------------------------------------------------------------------- helpers
def _as_tensor(value: Any, field: str, path: Where) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    try:
        arr = np.asarray(value)
    except Exception as err:  # noqa: BLE001 - anything that is not array-like
        raise InputError("not an array", path=path, field=field, got=f"{type(value).__name__} ({err})") from None
    if arr.dtype == object or arr.dtype.kind not in "biufc":
        raise InputError("not a numeric array", path=path, field=field, got=str(arr.dtype))
    return torch.from_numpy(np.ascontiguousarray(arr))


def _region(shape: tuple[int, int], pf: dict | None, zp: dict | None) -> torch.Tensor:
    region = torch.ones(shape, dtype=torch.bool)
    for axis, dim in zip(_AXES, (0, 1)):
        n = shape[dim]
        lo = hi = 0
        if pf and axis in pf:
            side, lines = pf[axis]
            lo, hi = (lines, 0) if side == "low" else (0, lines)
        if zp and axis in zp:
            lo, hi = zp[axis]
        index = [slice(None), slice(None)]
        index[dim] = slice(0, lo)
        region[tuple(index)] = False
        index[dim] = slice(n - hi, n)
        region[tuple(index)] = False
    return region


def _runs(line: np.ndarray) -> tuple[int, int, int]:
    """(leading False run, trailing False run, longest interior False run) of a bool line."""
    idx = np.flatnonzero(line)
    if idx.size == 0:
        return len(line), 0, 0
    lo, hi = int(idx[0]), int(len(line) - 1 - idx[-1])
    gaps = np.diff(idx) - 1
    return lo, hi, int(gaps.max()) if gaps.size else 0


def _edge_bands(m: np.ndarray, dim: int) -> tuple[int, int]:
    """Zero bands (low, high) along axis ``dim`` of the measured set ``m`` [H, W]."""
    other = 1 - dim
    measured, full = m.any(axis=other), m.all(axis=other)
    n = len(measured)
    lo, hi, gaps = _runs(measured)
    overall = m.mean()

    def is_band(run: int, inner: slice, adjacent: int) -> bool:
        if run == 0 or run <= gaps:
            return False
        if full[adjacent]:  # the band borders a fully measured line: nothing sparse about it
            return True
        if run < max(2, math.ceil(n / 32)):
            return False
        slab = m[inner, :] if dim == 0 else m[:, inner]
        return bool(slab.mean() >= 0.5 * overall)

    width_lo = slice(lo, min(n, 2 * lo))
    width_hi = slice(max(0, n - 2 * hi), n - hi)
    band_lo = is_band(lo, width_lo, lo) if lo < n else False
    band_hi = is_band(hi, width_hi, n - 1 - hi) if hi < n else False
    return (lo if band_lo else 0), (hi if band_hi else 0)


def _center_shape(m: np.ndarray) -> tuple[int, int]:
    """(h, w) of the largest fully sampled block holding the centre ``(H // 2, W // 2)``.

    Blocks extend about as far on each side of the centre (by at most one line more on one
    side), which covers both ways of centring an even-sized calibration region.
    """
    H, W = m.shape
    ch, cw = H // 2, W // 2
    if not m[ch, cw]:
        return 0, 0
    # per column: measured run above the centre row (excluded) and below it (excluded)
    up = np.zeros(W, dtype=np.int64)
    down = np.zeros(W, dtype=np.int64)
    for j in range(W):
        col = m[:, j]
        if not col[ch]:
            up[j] = down[j] = -1
            continue
        above = col[:ch][::-1]
        below = col[ch + 1 :]
        up[j] = int(np.argmin(above)) if not above.all() else len(above)
        down[j] = int(np.argmin(below)) if not below.all() else len(below)
    best = (0, 0)
    for left in range(cw + 1):
        for right in (left - 1, left, left + 1):
            if right < 0 or cw + right >= W:
                continue
            cols = slice(cw - left, cw + right + 1)
            a, b = int(up[cols].min()), int(down[cols].min())
            if a < 0:
                continue
            low, high = min(a, b), max(a, b)
            h = 1 + 2 * low + (1 if high > low else 0)
            w = left + right + 1
            if h * w > best[0] * best[1]:
                best = (h, w)
        if up[cw - left] < 0:
            break
    return best


def analyse_mask(measured: Any, *, path: Where = None, field: str = "mask") -> SamplingInfo:
    """:class:`SamplingInfo` of a measured set (bool ``[H, W]``): bands, label, acceleration, centre."""
    t = _as_tensor(measured, field, path)
    if t.ndim != 2 or 0 in t.shape:
        raise InputError("the measured set must be a 2D [H, W] array", path=path, field=field,
                         got=f"shape {tuple(t.shape)}")
    m = t.to(torch.bool).numpy()
    if not m.any():
        raise InputError("nothing was measured (all-zero k-space or an all-False mask)", path=path, field=field,
                         expected="at least one measured k-space location")
    pf: dict[str, tuple[str, int]] = {}
    zp: dict[str, tuple[int, int]] = {}
    for axis, dim in zip(_AXES, (0, 1)):
        lo, hi = _edge_bands(m, dim)
        if lo and hi:
            zp[axis] = (lo, hi)
        elif lo or hi:
            pf[axis] = ("low", lo) if lo else ("high", hi)
    region = _region(m.shape, pf or None, zp or None).numpy()
    count = int(m.sum())
    full = bool(m[region].all())
    separable = bool((m == m.any(axis=0, keepdims=True)).all())
    return SamplingInfo(
        mask=torch.from_numpy(m.copy()),
        separable=separable,
        sampling="fully_sampled" if full else "undersampled",
        acceleration=1.0 if full else float(region.sum()) / count,
        center_shape=_center_shape(m),
        partial_fourier=pf or None,
        zero_padding=zp or None,
    )


# --------------------------------------------------------------------------- k-space
def _flat_images(k: torch.Tensor) -> torch.Tensor:
    return k.reshape(-1, k.shape[-2], k.shape[-1]) if k.ndim > 2 else k[None]


def measured_locations(kspace: Any, *, path: Where = None, field: str = "kspace") -> torch.Tensor:
    """bool ``[H, W]``: locations nonzero in any coil (and slice) of ``kspace`` ``[..., H, W]``."""
    k = _as_tensor(kspace, field, path)
    if k.ndim < 2 or 0 in k.shape:
        raise InputError("k-space must have at least two dimensions [..., H, W]", path=path, field=field,
                         got=f"shape {tuple(k.shape)}")
    return (k != 0).reshape(-1, k.shape[-2], k.shape[-1]).any(dim=0)


def _centre_fraction(power: torch.Tensor) -> float:
    """Fraction of the energy of ``power`` [H, W] within its central eighth along each axis."""
    H, W = power.shape
    h, w = max(1, math.ceil(H / 8)), max(1, math.ceil(W / 8))
    top, left = H // 2 - h // 2, W // 2 - w // 2
    total = float(power.sum())
    return float(power[top : top + h, left : left + w].sum()) / total if total > 0 else 0.0


def check_kspace_like(kspace: Any, *, path: Where = None, field: str = "kspace") -> None:
    """Refuse data that looks like an image, not k-space.

    k-space of an MR image puts its energy at the centre; an image spreads it over the object.
    The data are refused when their central region holds ``_IMAGE_RATIO`` times less of the
    energy than the same region of their 2D Fourier transform (noise passes either way).
    """
    k = _flat_images(_as_tensor(kspace, field, path))
    if k.shape[0] > _MAX_IMAGES:
        k = k[torch.linspace(0, k.shape[0] - 1, _MAX_IMAGES).round().long()]
    k = k.to(torch.complex64) if not torch.is_complex(k) else k.to(torch.complex64)
    power = (k.abs() ** 2).sum(dim=0)
    if float(power.sum()) == 0:
        raise InputError("k-space is all zeros", path=path, field=field, expected="measured (nonzero) samples")
    spectrum = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"),
                                  dim=(-2, -1))
    here = _centre_fraction(power)
    there = _centre_fraction((spectrum.abs() ** 2).sum(dim=0))
    if there > _IMAGE_RATIO * here:
        raise InputError(
            "looks like an image, not k-space: its energy is not concentrated at the k-space centre",
            path=path, field=field,
            expected="centred k-space (convert raw k-space, not a reconstructed image)",
            got=f"{100 * here:.1f}% of the energy in the central 1/64 of the array, "
                f"{100 * there:.1f}% after a 2D Fourier transform",
        )


def detect_sampling(kspace: Any, *, path: Where = None, field: str = "kspace") -> SamplingInfo:
    """The sampling of ``kspace`` (complex ``[..., C, H, W]`` or ``[..., H, W]``, numpy or torch).

    A location exactly zero in every coil and slice counts as not measured. Refuses
    (:class:`InputError`) non-finite values, all-zero data and data that look like an image.
    """
    k = _as_tensor(kspace, field, path)
    if k.ndim < 2 or 0 in k.shape:
        raise InputError("k-space must have at least two dimensions [..., H, W]", path=path, field=field,
                         got=f"shape {tuple(k.shape)}")
    values = torch.view_as_real(k) if torch.is_complex(k) else k
    if values.is_floating_point() and not torch.isfinite(values).all():
        raise InputError("k-space holds non-finite values (NaN or Inf)", path=path, field=field,
                         expected="finite values")
    check_kspace_like(k, path=path, field=field)
    return analyse_mask(measured_locations(k, path=path, field=field), path=path, field=field)


# --------------------------------------------------------------------------- masks
def mask_from_any(mask: Any, shape_hw: tuple[int, int], *, path: Where = None, field: str = "mask") -> torch.Tensor:
    """A stored or user mask -> bool ``[H, W]`` (or ``[B, H, W]``).

    Accepts ``[W]`` (fastMRI), ``[H, W]``, fastMRI's broadcast layouts ``[1, 1, W]`` and
    ``[..., 1, W, 1]``, and batched ``[B, H, W]`` / ``[B, 1, H, W]`` / ``[B, 1, 1, W, 1]``.
    Values must be 0/1 (bool, integer or float); every mask must sample something.
    """
    H, W = int(shape_hw[0]), int(shape_hw[1])
    t = _as_tensor(mask, field, path)
    shape = tuple(t.shape)
    layouts = f"[{W}], [{H}, {W}], [1, 1, {W}], [1, 1, {W}, 1] or [B, {H}, {W}]"
    if t.is_complex():
        raise InputError("mask must be real 0/1 values", path=path, field=field, got=str(t.dtype))
    if t.ndim >= 3 and shape[-1] == 1 and shape[-2] == W and shape[-3] in (1, H):  # fastMRI [..., 1, W, 1]
        t = t[..., 0]
    if t.ndim == 1:
        t = t[None]
    if t.ndim < 2 or t.shape[-1] != W or t.shape[-2] not in (1, H):
        raise InputError("mask does not fit the k-space", path=path, field=field, expected=layouts,
                         got=f"shape {shape}")
    lead = [n for n in t.shape[:-2] if n != 1]
    if len(lead) > 1:
        raise InputError("mask has too many batch dimensions", path=path, field=field, expected=layouts,
                         got=f"shape {shape}")
    if t.dtype != torch.bool:
        values = t.to(torch.float64)
        if not torch.isin(values, torch.tensor([0.0, 1.0], dtype=torch.float64)).all():
            odd = torch.unique(values[(values != 0) & (values != 1)])[:5].tolist()
            raise InputError("mask values must be 0 or 1", path=path, field=field, got=f"values {odd}")
        t = values != 0
    t = t.reshape(*lead, t.shape[-2], W).expand(*lead, H, W)
    flat = t.reshape(-1, H * W)
    if not flat.any(dim=1).all():
        raise InputError("mask samples nothing (all False)", path=path, field=field,
                         expected="at least one sampled location")
    return t.contiguous()


# --------------------------------------------------------------------------- measurements
def check_measurements(kspace: Any, mask: Any = None, *, path: Where = None,
                       field: str = "kspace") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check measured k-space ``[..., C, H, W]`` and its mask before a reconstruction runs.

    Refuses (:class:`InputError`) non-complex or non-finite k-space, k-space that is all zero
    (per image, i.e. per index of the leading dimensions) or zero at every sampled location,
    and every mask :func:`mask_from_any` refuses or that does not broadcast against the
    k-space. Returns ``(kspace, mask)``: the k-space (a tensor on its device, zero outside
    the mask) and the bool mask ``[H, W]`` or ``[B, H, W]`` on the same device (None if none
    was given). The reconstructions of :mod:`mrizoo.classical` and every zoo model use it.
    """
    k = torch.from_numpy(np.ascontiguousarray(kspace)) if isinstance(kspace, np.ndarray) else kspace
    if not isinstance(k, torch.Tensor) or not k.is_complex() or k.ndim < 3:
        raise InputError("k-space must be a complex tensor [..., C, H, W]", path=path, field=field,
                         expected="complex [..., C, H, W]",
                         got=f"{getattr(k, 'dtype', type(k).__name__)} {tuple(getattr(k, 'shape', ()))}")
    if k.numel() == 0:
        raise InputError("k-space is empty", path=path, field=field, got=f"shape {tuple(k.shape)}")
    finite = torch.isfinite(k)
    if not bool(finite.all()):
        bad = int(finite.numel() - finite.sum())
        raise InputError("k-space holds non-finite values (NaN or Inf)", path=path, field=field,
                         expected="finite values", got=f"{bad} non-finite values")
    h, w = k.shape[-2:]
    nonzero = (k != 0).any(dim=-3)  # [..., H, W]
    m = None
    if mask is not None:
        m = mask_from_any(mask, (h, w), path=path).to(k.device)
        try:
            torch.broadcast_shapes(m.shape, nonzero.shape)
        except RuntimeError:
            raise InputError("mask does not fit the k-space", path=path, field="mask",
                             expected=f"a mask per item of the k-space's leading shape {tuple(k.shape[:-3])}",
                             got=f"shape {tuple(m.shape)}") from None
    items = nonzero.reshape(-1, h * w)
    empty = ~items.any(dim=1)
    unmeasured = empty if m is None else ~(nonzero & m).reshape(-1, h * w).any(dim=1)
    if bool(unmeasured.any()):
        i = int(unmeasured.nonzero()[0])
        where = f"image {i} of {items.shape[0]}" if items.shape[0] > 1 else None
        if bool(empty[i]):
            raise InputError("k-space is all zeros", path=path, field=field,
                             expected="measured (nonzero) samples", got=where)
        raise InputError("k-space is zero at every sampled location", path=path, field=field,
                         expected="nonzero data where the mask is True", got=where)
    if m is not None:
        k = torch.where(m.unsqueeze(-3), k, torch.zeros((), dtype=k.dtype, device=k.device))
    return k, m
