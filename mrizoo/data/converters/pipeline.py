"""Numerical steps shared by every converter: labelled source arrays -> fastMRI slices.

A source volume is a complex array with one letter per axis (see
:mod:`mrizoo.data.converters.spec`) and the set of axes already in image space. The steps:
combine averages, re-centre k-space, split echoes, cut one view (1D centred inverse FFT
along the slice axis, dropped end slices, image-space corrections and flips), scale, and
finally the centred 2D FFT back to k-space with the RSS target.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from mrizoo.data.converters.spec import AveragesSpec, ConversionSpec, ViewGeometry
from mrizoo.errors import InputError

__all__ = [
    "LabeledVolume",
    "combine_averages",
    "cut_view",
    "drop_roundoff",
    "fftc",
    "ifftc",
    "roll_kspace",
    "rss_target",
    "split_echoes",
    "to_kspace_and_target",
    "view_support",
]

Where = str | os.PathLike[str] | None


def fftc(a: np.ndarray, axes: int | tuple[int, ...]) -> np.ndarray:
    """Centred orthonormal FFT along ``axes`` (fastMRI's shift order)."""
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    out = np.fft.fftn(np.fft.ifftshift(a, axes=axes), axes=axes, norm="ortho")
    return np.fft.fftshift(out, axes=axes)


def ifftc(a: np.ndarray, axes: int | tuple[int, ...]) -> np.ndarray:
    """Centred orthonormal inverse FFT along ``axes`` (fastMRI's shift order)."""
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    out = np.fft.ifftn(np.fft.ifftshift(a, axes=axes), axes=axes, norm="ortho")
    return np.fft.fftshift(out, axes=axes)


@dataclass
class LabeledVolume:
    """A complex source array, one axis letter per dimension, and its image-space axes."""

    data: np.ndarray
    axes: str
    image_axes: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.data.ndim != len(self.axes):
            raise InputError("axis letters do not match the array rank", field="axes",
                             expected=f"{self.data.ndim} letters for shape {self.data.shape}",
                             got=repr(self.axes))

    def size(self, axis: str) -> int:
        return int(self.data.shape[self.axes.index(axis)]) if axis in self.axes else 1

    def describe(self) -> str:
        return " x ".join(f"{a}={n}" for a, n in zip(self.axes, self.data.shape))


def combine_averages(vol: LabeledVolume, spec: AveragesSpec | None, *, path: Where = None) -> LabeledVolume:
    """Combine the averages axis ``a`` (mean, or odd/even lines from different averages)."""
    if "a" not in vol.axes:
        return vol
    ax = vol.axes.index("a")
    n = vol.data.shape[ax]
    spec = spec or AveragesSpec()
    rest = vol.axes.replace("a", "")
    if spec.mode == "mean":
        return LabeledVolume(vol.data.mean(axis=ax, dtype=np.complex128).astype(np.complex64), rest,
                             vol.image_axes)
    bad = [i for i in (*spec.odd, *spec.even) if i >= n]
    if bad:
        raise InputError("average index out of range", path=path, field="averages",
                         expected=f"indices < {n} (the source has {n} averages)", got=bad)
    if spec.axis not in vol.axes:
        raise InputError("the averages' line axis is not in the source", path=path, field="averages.axis",
                         expected=f"one of {vol.axes!r}", got=spec.axis)
    odd = np.take(vol.data, list(spec.odd), axis=ax).mean(axis=ax, dtype=np.complex128)
    even = np.take(vol.data, list(spec.even), axis=ax).mean(axis=ax, dtype=np.complex128)
    line = rest.index(spec.axis)
    out = np.array(even, dtype=np.complex64)
    index: list[slice] = [slice(None)] * out.ndim
    index[line] = slice(1, None, 2)
    out[tuple(index)] = odd[tuple(index)]
    return LabeledVolume(out, rest, vol.image_axes)


def roll_kspace(vol: LabeledVolume, rolls: dict[str, int], *, path: Where = None) -> LabeledVolume:
    """Roll k-space samples by an integer per axis (moves the k-space centre)."""
    if not rolls:
        return vol
    data = vol.data
    for axis, shift in rolls.items():
        if axis not in vol.axes:
            raise InputError("k-space roll along an axis the source lacks", path=path, field="kspace_roll",
                             expected=f"axes among {vol.axes!r}", got=axis)
        data = np.roll(data, int(shift), axis=vol.axes.index(axis))
    return replace(vol, data=data)


def split_echoes(vol: LabeledVolume, labels: tuple[int, ...] | None = None) -> list[tuple[int | None, LabeledVolume]]:
    """One volume per echo (axis ``e``); the label is None when there is a single echo."""
    if "e" not in vol.axes:
        return [(None, vol)]
    ax = vol.axes.index("e")
    n = vol.data.shape[ax]
    labels = labels or tuple(range(1, n + 1))
    rest = vol.axes.replace("e", "")
    parts = [LabeledVolume(np.take(vol.data, i, axis=ax), rest, vol.image_axes) for i in range(n)]
    if n == 1:
        return [(None, parts[0])]
    return list(zip(labels, parts))


def _chop(data: np.ndarray, axis: int) -> np.ndarray:
    sign = np.where(np.arange(data.shape[axis]) % 2 == 0, 1, -1).astype(np.float32)
    shape = [1] * data.ndim
    shape[axis] = -1
    return data * sign.reshape(shape)


def cut_view(
    vol: LabeledVolume, geometry: ViewGeometry, spec: ConversionSpec, *, path: Where = None
) -> tuple[np.ndarray, bool]:
    """Cut one view as ``[slices, coils, H, W]`` complex64, scaled.

    Returns ``(array, is_kspace)``: the array is still the original k-space (exactly, up to
    the scale) when rows and columns need no image-space step; otherwise it holds the coil
    images, to be transformed back by :func:`to_kspace_and_target`.
    """
    data, axes = vol.data, vol.axes
    if "e" in axes or "a" in axes:
        raise InputError("echoes and averages must be split or combined before cutting a view", path=path,
                         got=vol.describe())
    if "c" not in axes:
        data, axes = data[..., None], axes + "c"
    g = geometry
    if g.slice_axis == "s" and "s" not in axes:  # a single 2D slice
        data, axes = data[..., None], axes + "s"
    missing = [f"--{name} {a}" for name, a in (("slice-axis", g.slice_axis), ("rows", g.rows), ("cols", g.cols))
               if a not in axes]
    if missing:
        raise InputError("the view uses axes the source lacks", path=path, field="geometry",
                         expected=f"axes among {axes!r} ({vol.describe()}); choose them with --slice-axis, "
                                  "--rows and --cols", got=", ".join(missing))
    others = [a for a in axes if a not in (g.slice_axis, "c", g.rows, g.cols)]
    bigger = {a: data.shape[axes.index(a)] for a in others if data.shape[axes.index(a)] != 1}
    if bigger:
        raise InputError(
            "the source has further axes larger than 1 that this view does not use", path=path,
            field="geometry", expected=f"size 1 for axes other than {g.slice_axis}, c, {g.rows}, {g.cols}",
            got=bigger,
        )
    order = [axes.index(a) for a in (g.slice_axis, "c", g.rows, g.cols)] + [axes.index(a) for a in others]
    data = np.transpose(data, order)
    data = np.asarray(data.reshape(data.shape[:4]), dtype=np.complex64)

    image = set(vol.image_axes) | {"s"}  # slices of a 2D multi-slice scan are image space
    letters = (g.slice_axis, "c", g.rows, g.cols)
    if g.slice_axis not in image:
        data = ifftc(data, 0)
    if g.slice_axis in spec.recentre_axes:
        data = np.fft.ifftshift(data, axes=0)
    if g.slice_axis in spec.chop_axes:
        data = _chop(data, 0)
    n = data.shape[0]
    if g.drop_first + g.drop_last >= n:
        raise InputError("dropping the end slices leaves nothing", path=path, field="geometry",
                         expected=f"drop_first + drop_last < {n} slices along {g.slice_axis!r}",
                         got=(g.drop_first, g.drop_last))
    data = data[g.drop_first : n - g.drop_last]

    image_step = any(
        a in image or a in spec.recentre_axes or a in spec.chop_axes for a in (g.rows, g.cols)
    ) or g.flip_rows or g.flip_cols
    if not image_step:
        return (data * np.float32(spec.scale)).astype(np.complex64, copy=False), True
    for ax in (2, 3):
        letter = letters[ax]
        if letter not in image:
            data = ifftc(data, ax)
        if letter in spec.recentre_axes:
            data = np.fft.ifftshift(data, axes=ax)
        if letter in spec.chop_axes:
            data = _chop(data, ax)
    if g.flip_rows:
        data = data[:, :, ::-1, :]
    if g.flip_cols:
        data = data[:, :, :, ::-1]
    return np.ascontiguousarray(data * np.float32(spec.scale), dtype=np.complex64), False


def _line_map(n: int, chop: bool, flip: bool) -> np.ndarray | None:
    """Where each output k-space line comes from, for image-space chop and flip along an axis.

    Multiplying the image by ``(-1)^n`` shifts centred k-space by ``n / 2`` lines; flipping the
    image mirrors k-space about its centre (``m -> (n - m) % n`` for even ``n``, ``n - 1 - m``
    for odd). Re-centring the image only changes phases. None when a chop of an odd-length axis
    spreads every line over the others.
    """
    index = np.arange(n)
    if chop:
        if n % 2:
            return None
        index = (index - n // 2) % n
    if flip:
        index = index[(n - np.arange(n)) % n] if n % 2 == 0 else index[::-1]
    return index


def view_support(vol: LabeledVolume, geometry: ViewGeometry, spec: ConversionSpec) -> np.ndarray | None:
    """bool ``[H, W]``: the k-space locations of one view that hold measured source samples.

    Used when a view needs image-space steps: the source's exact zeros become round-off
    after the transforms and are restored with :func:`drop_roundoff`. An axis already in
    image space in the source counts as measured wherever any sample is. None when the
    mapping is not a permutation of lines (odd-length chop).
    """
    g = geometry
    image = set(vol.image_axes) | {"s"}
    present = (vol.data != 0)
    keep = [vol.axes.index(a) for a in (g.rows, g.cols) if a in vol.axes]
    if len(keep) != 2:
        return None
    other = tuple(i for i in range(present.ndim) if i not in keep)
    measured = present.any(axis=other) if other else present
    if keep[0] > keep[1]:
        measured = measured.T
    for dim, letter, flip in ((0, g.rows, g.flip_rows), (1, g.cols, g.flip_cols)):
        if letter in image:
            measured = np.broadcast_to(measured.any(axis=dim, keepdims=True), measured.shape).copy()
            continue
        order = _line_map(measured.shape[dim], letter in spec.chop_axes, flip)
        if order is None:
            return None
        measured = np.take(measured, order, axis=dim)
    return measured


def drop_roundoff(kspace: np.ndarray, support: np.ndarray | None, *, tolerance: float = 1e-4) -> np.ndarray:
    """Zero the k-space locations outside ``support`` when they hold only round-off.

    Left unchanged when ``support`` is None or when a location outside it holds more than
    ``tolerance`` times the largest magnitude (then the support does not describe the data).
    """
    if support is None or support.all():
        return kspace
    peak = float(np.abs(kspace).max()) if kspace.size else 0.0
    outside = ~support
    if peak == 0 or float(np.abs(kspace[..., outside]).max()) > tolerance * peak:
        return kspace
    out = kspace.copy()
    out[..., outside] = 0
    return out


def rss_target(images: np.ndarray, crop: tuple[int, int] | None) -> np.ndarray:
    """RSS over coils of complex images ``[S, C, H, W]``, centre-cropped (clamped) to ``crop``."""
    target = np.sqrt(np.sum(np.abs(images.astype(np.complex64, copy=False)) ** 2, axis=1, dtype=np.float64))
    target = target.astype(np.float32)
    if crop is not None:
        h, w = min(crop[0], target.shape[-2]), min(crop[1], target.shape[-1])
        top, left = (target.shape[-2] - h) // 2, (target.shape[-1] - w) // 2
        target = target[..., top : top + h, left : left + w]
    return np.ascontiguousarray(target)


def to_kspace_and_target(
    data: np.ndarray, is_kspace: bool, crop: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """k-space ``[S, C, H, W]`` (centred 2D FFT of the images) and the RSS target ``[S, h, w]``."""
    if is_kspace:
        kspace = data
        images = ifftc(data, (-2, -1))
    else:
        images = data
        kspace = fftc(data, (-2, -1))
    return np.ascontiguousarray(kspace, dtype=np.complex64), rss_target(images, crop)
