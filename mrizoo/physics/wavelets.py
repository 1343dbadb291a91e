"""Orthogonal 2D discrete wavelet transform (periodic extension) in torch.

Daubechies wavelets ``db1`` (= ``haar``) to ``db10``, multi-level, batched over any leading
axes, real or complex input, on any device. With periodic extension the transform of an
image whose sides are multiples of ``2^levels`` is an orthogonal matrix: the inverse is the
adjoint and energy is preserved. Coefficients use PyWavelets' conventions
(``pywt.wavedec2(..., mode="periodization")``) and are packed into one array of the image's
size like ``pywt.coeffs_to_array``: the coarsest approximation at the top left and, at each
level, the detail along W (``cV``) to its right, along H (``cH``) below and diagonal
(``cD``) diagonally.

:class:`WaveletTransform` handles other sizes by zero-padding (centred) to a multiple of
``2^levels`` and cropping back; padding keeps ``||W x|| = ||x||`` and ``W^H W = I``.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mrizoo.errors import InputError

__all__ = ["daubechies_filter", "dwt2", "idwt2", "WaveletTransform", "approx_mask"]

_MAX_ORDER = 10


@functools.lru_cache(maxsize=None)
def _daubechies(order: int) -> tuple[float, ...]:
    """Reconstruction low-pass filter of ``db<order>`` by spectral factorisation.

    ``|Q(e^{iw})|^2 = sum_k binom(N-1+k, k) sin^{2k}(w/2)``; ``Q`` takes the roots inside
    the unit circle (extremal phase) and ``H(z) = ((1 + z) / 2)^N Q(z)``, scaled to sum
    ``sqrt(2)``.
    """
    n = order
    if n == 1:
        return (1 / math.sqrt(2), 1 / math.sqrt(2))
    # With y = -(z - 2 + 1/z) / 4: z^{n-1} y^k = (-(z - 1)^2 / 4)^k z^{n-1-k}, degree <= 2(n-1).
    poly = np.zeros(2 * n - 1)
    y = np.poly1d([-0.25, 0.5, -0.25])  # -(z - 1)^2 / 4
    for k in range(n):
        term = math.comb(n - 1 + k, k) * (y**k) * np.poly1d([1] + [0] * (n - 1 - k))
        poly[-len(term.coeffs):] += term.coeffs
    roots = np.roots(poly)
    inside = roots[np.abs(roots) < 1]
    q = np.real(np.poly(inside))
    h = np.convolve(q, np.real(np.poly(-np.ones(n))))
    h = h * (math.sqrt(2) / h.sum())
    return tuple(float(v) for v in h)


def daubechies_filter(wavelet: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Reconstruction low- and high-pass filters ``(lo, hi)`` of ``"haar"`` or ``"db1"``..``"db10"``.

    ``hi[k] = (-1)^k lo[L - 1 - k]`` (PyWavelets' ``rec_lo`` / ``rec_hi``).
    """
    name = wavelet.lower() if isinstance(wavelet, str) else ""
    match = re.fullmatch(r"db(\d+)", name)
    order = 1 if name == "haar" else int(match.group(1)) if match else 0
    if not 1 <= order <= _MAX_ORDER:
        raise InputError("unknown wavelet", field="wavelet",
                         expected=f"'haar' or 'db1'..'db{_MAX_ORDER}'", got=wavelet)
    lo = _daubechies(order)
    length = len(lo)
    hi = tuple((-1) ** k * lo[length - 1 - k] for k in range(length))
    return lo, hi


def _filters(wavelet: str, like: torch.Tensor) -> torch.Tensor:
    lo, hi = daubechies_filter(wavelet)
    return torch.tensor([lo, hi], dtype=like.dtype, device=like.device).unsqueeze(1)  # [2, 1, L]


@functools.lru_cache(maxsize=256)
def _wrap_index(n: int, length: int, device: torch.device) -> torch.Tensor:
    """Periodic positions ``(p + 1 - L/2) mod n`` for ``p = 0 .. n + L - 3``."""
    return (torch.arange(n + length - 2, device=device) + 1 - length // 2) % n


def _analysis(x: torch.Tensor, filt: torch.Tensor, dim: int) -> torch.Tensor:
    """One level along ``dim`` (2: H, 3: W) of real ``[M, 1, h, w]``; low half first.

    ``a[k] = sum_j lo[j] x[(2k + 1 - L/2 + j) mod N]`` (``hi`` for the details).
    """
    m, _, h, w = x.shape
    length = filt.shape[-1]
    ext = x.index_select(dim, _wrap_index(x.shape[dim], length, x.device))
    if dim == 3:
        out = F.conv2d(ext, filt.view(2, 1, 1, length), stride=(1, 2))  # [M, 2, h, w/2]
        return out.permute(0, 2, 1, 3).reshape(m, 1, h, w)
    out = F.conv2d(ext, filt.view(2, 1, length, 1), stride=(2, 1))  # [M, 2, h/2, w]
    return out.reshape(m, 1, h, w)


def _synthesis(c: torch.Tensor, filt: torch.Tensor, dim: int) -> torch.Tensor:
    """Adjoint (= inverse) of :func:`_analysis`."""
    m, _, h, w = c.shape
    length = filt.shape[-1]
    if dim == 3:
        c2 = c.reshape(m, h, 2, w // 2).permute(0, 2, 1, 3)
        up = F.conv_transpose2d(c2, filt.view(2, 1, 1, length), stride=(1, 2))
    else:
        c2 = c.reshape(m, 2, h // 2, w)
        up = F.conv_transpose2d(c2, filt.view(2, 1, length, 1), stride=(2, 1))
    return c.new_zeros(m, 1, h, w).index_add_(dim, _wrap_index(c.shape[dim], length, c.device), up)


_DENSE_MAX = 512  # sides up to this use one matrix product per axis and level


@functools.lru_cache(maxsize=256)
def _level_matrix_np(wavelet: str, n: int) -> np.ndarray:
    """The one-level analysis matrix along an axis of length ``n`` (low half first), float64.

    Row ``k < n/2``: ``lo[j]`` at column ``(2k + 1 - L/2 + j) mod n``; row ``n/2 + k``: ``hi[j]``
    (entries accumulate when the filter is longer than ``n``). Orthogonal: synthesis is its
    transpose. The same sums as :func:`_analysis`, as one dense product.
    """
    lo, hi = daubechies_filter(wavelet)
    length, half = len(lo), n // 2
    mat = np.zeros((n, n))
    for k in range(half):
        for j in range(length):
            col = (2 * k + 1 - length // 2 + j) % n
            mat[k, col] += lo[j]
            mat[half + k, col] += hi[j]
    return mat


@functools.lru_cache(maxsize=256)
def _level_matrix_as(wavelet: str, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(_level_matrix_np(wavelet, n)).to(dtype=dtype, device=device)


def _level_matrix(wavelet: str, n: int, like: torch.Tensor) -> torch.Tensor:
    return _level_matrix_as(wavelet, n, like.dtype, like.device)


def _dense_level(x: torch.Tensor, wavelet: str, inverse: bool) -> torch.Tensor:
    """One 2D level on real ``[M, h, w]`` as ``A_h x A_w^T`` (inverse: ``A_h^T x A_w``)."""
    ah = _level_matrix(wavelet, x.shape[-2], x)
    aw = _level_matrix(wavelet, x.shape[-1], x)
    if inverse:
        return torch.matmul(torch.matmul(ah.T, x), aw)
    return torch.matmul(torch.matmul(ah, x), aw.T)


def _level(x: torch.Tensor, filt: torch.Tensor, inverse: bool) -> torch.Tensor:
    """One 2D level on real ``[M, 1, h, w]`` (separable: W then H; inverse: H then W)."""
    if inverse:
        return _synthesis(_synthesis(x, filt, 2), filt, 3)
    return _analysis(_analysis(x, filt, 3), filt, 2)


def _check(x: torch.Tensor, levels: int, field: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        raise InputError("expected a tensor [..., H, W]", field=field,
                         got=getattr(x, "shape", type(x).__name__))
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
        raise InputError("must be a non-negative integer", field="levels", got=levels)
    h, w = x.shape[-2:]
    step = 2**levels
    if h % step or w % step or h == 0 or w == 0:
        raise InputError(
            "image sides must be multiples of 2^levels (use WaveletTransform to pad)",
            field=field, expected=f"H, W multiples of {step}", got=(h, w),
        )


def _as_real_batch(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...], bool]:
    lead = x.shape[:-2]
    if x.is_complex():
        r = torch.view_as_real(x).movedim(-1, 0)  # [2, ..., H, W]
        return r.reshape(-1, *x.shape[-2:]), lead, True
    return x.reshape(-1, *x.shape[-2:]), lead, False


def _from_real_batch(r: torch.Tensor, lead: tuple[int, ...], cplx: bool) -> torch.Tensor:
    if cplx:
        r = r.reshape(2, *lead, *r.shape[-2:]).movedim(0, -1).contiguous()
        return torch.view_as_complex(r)
    return r.reshape(*lead, *r.shape[-2:])


def dwt2(x: torch.Tensor, wavelet: str = "db4", levels: int = 4) -> torch.Tensor:
    """Packed orthogonal wavelet coefficients of ``x`` ``[..., H, W]`` (same shape and dtype).

    ``H`` and ``W`` must be multiples of ``2^levels``.
    """
    _check(x, levels, "x")
    r, lead, cplx = _as_real_batch(x)
    if max(r.shape[-2:]) <= _DENSE_MAX:
        return _from_real_batch(_dense(r, wavelet, levels, inverse=False), lead, cplx)
    filt = _filters(wavelet, r)
    out = r.unsqueeze(1).clone()
    h, w = out.shape[-2:]
    for _ in range(levels):
        out[..., :h, :w] = _level(out[..., :h, :w], filt, inverse=False)
        h, w = h // 2, w // 2
    return _from_real_batch(out[:, 0], lead, cplx)


def _dense(r: torch.Tensor, wavelet: str, levels: int, inverse: bool) -> torch.Tensor:
    """All levels on real ``[M, H, W]`` by matrix products (small images: BLAS beats convolution)."""
    out = r.clone()
    h, w = out.shape[-2:]
    order = reversed(range(levels)) if inverse else range(levels)
    for lvl in order:
        hh, ww = h >> lvl, w >> lvl
        out[..., :hh, :ww] = _dense_level(out[..., :hh, :ww], wavelet, inverse)
    return out


def idwt2(coeffs: torch.Tensor, wavelet: str = "db4", levels: int = 4) -> torch.Tensor:
    """Inverse (and adjoint) of :func:`dwt2`."""
    _check(coeffs, levels, "coeffs")
    r, lead, cplx = _as_real_batch(coeffs)
    if max(r.shape[-2:]) <= _DENSE_MAX:
        return _from_real_batch(_dense(r, wavelet, levels, inverse=True), lead, cplx)
    filt = _filters(wavelet, r)
    out = r.unsqueeze(1).clone()
    h, w = out.shape[-2:]
    for lvl in reversed(range(levels)):
        hh, ww = h >> lvl, w >> lvl
        out[..., :hh, :ww] = _level(out[..., :hh, :ww], filt, inverse=True)
    return _from_real_batch(out[:, 0], lead, cplx)


def approx_mask(shape: tuple[int, int], levels: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``[H, W]``: True on the coarsest approximation band of the packed layout."""
    h, w = shape
    mask = torch.zeros(h, w, dtype=torch.bool, device=device)
    mask[: h >> levels, : w >> levels] = True
    return mask


def _pad_split(size: int, step: int) -> tuple[int, int]:
    total = -size % step
    return total // 2, total - total // 2


@dataclass(frozen=True)
class WaveletTransform:
    """Orthogonal 2D DWT for images of any size: zero-pad (centred) to a multiple of ``2^levels``.

    ``forward`` maps ``[..., H, W]`` to packed coefficients ``[..., H', W']``; ``inverse``
    maps them back and crops to ``[..., H, W]``. ``inverse(forward(x)) == x`` and
    ``||forward(x)|| == ||x||``; ``inverse`` is the adjoint of ``forward``.
    """

    wavelet: str = "db4"
    levels: int = 4

    def __post_init__(self) -> None:
        daubechies_filter(self.wavelet)
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or self.levels < 0:
            raise InputError("must be a non-negative integer", field="levels", got=self.levels)

    def padded_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        step = 2**self.levels
        return tuple(s + sum(_pad_split(s, step)) for s in shape)  # type: ignore[return-value]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        step = 2**self.levels
        ph, pw = _pad_split(x.shape[-2], step), _pad_split(x.shape[-1], step)
        if not any(ph) and not any(pw):
            return x
        return F.pad(x, (*pw, *ph))

    def crop(self, x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        step = 2**self.levels
        (t, _), (l, _) = _pad_split(shape[0], step), _pad_split(shape[1], step)
        return x[..., t : t + shape[0], l : l + shape[1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dwt2(self.pad(x), self.wavelet, self.levels)

    __call__ = forward

    def inverse(self, coeffs: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        x = idwt2(coeffs, self.wavelet, self.levels)
        return x if shape is None else self.crop(x, tuple(shape))  # type: ignore[arg-type]

    def approx_mask(self, shape: tuple[int, int], device: torch.device | str | None = None) -> torch.Tensor:
        """True on the coarsest approximation band of the coefficients of an ``[H, W]`` image."""
        return approx_mask(self.padded_shape(shape), self.levels, device)
