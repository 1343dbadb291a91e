"""Declarative conversion settings: how a source file is read and how each output view is cut.

Axes of a source array are named by letters:

- ``x`` readout, ``y`` first phase encode, ``z`` second phase encode (3D), ``s`` slice of a
  2D multi-slice scan (always image space);
- ``c`` coil, ``e`` echo or contrast (one output volume per echo), ``a`` average (combined).

A :class:`ViewGeometry` picks the slice axis and the axes that become the image rows
``H`` and columns ``W`` of the fastMRI volume (``W`` is the axis masks undersample).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ALL_AXES",
    "AXIS_NAMES",
    "SPATIAL_AXES",
    "AveragesSpec",
    "ConversionSpec",
    "ViewGeometry",
]

AXIS_NAMES = {
    "x": "readout",
    "y": "phase encode 1",
    "z": "phase encode 2 (3D)",
    "s": "slice (2D multi-slice, image space)",
    "c": "coil",
    "e": "echo / contrast (one output volume each)",
    "a": "average (combined into one k-space)",
}
SPATIAL_AXES = "xyzs"
ALL_AXES = "xyzscea"

SourceFormat = Literal["fastmri_h5", "ismrmrd", "array"]


def _letters(value: str, name: str, allowed: str = SPATIAL_AXES) -> None:
    if not isinstance(value, str) or any(ch not in allowed for ch in value) or len(set(value)) != len(value):
        raise ValueError(f"'{name}' must be distinct letters among {allowed!r}, got {value!r}")


@dataclass(frozen=True)
class AveragesSpec:
    """How the averages axis ``a`` is combined into one k-space.

    ``mean``: plain mean over the averages. ``parity``: lines along ``axis`` with an odd
    index are the mean of the averages listed in ``odd``, even lines the mean of those in
    ``even`` (fastMRI prostate T2: two averages sample the odd lines, one the even lines).
    """

    mode: Literal["mean", "parity"] = "mean"
    axis: str = "y"
    odd: tuple[int, ...] = ()
    even: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _letters(self.axis, "averages.axis")
        if len(self.axis) != 1:
            raise ValueError(f"'averages.axis' must be one letter, got {self.axis!r}")
        if self.mode == "parity":
            if not self.odd or not self.even:
                raise ValueError("'averages' in parity mode needs non-empty 'odd' and 'even' lists")
            if set(self.odd) & set(self.even) or any(i < 0 for i in (*self.odd, *self.even)):
                raise ValueError(
                    f"'averages.odd' and 'averages.even' must be disjoint non-negative indices, "
                    f"got {list(self.odd)} and {list(self.even)}"
                )


@dataclass(frozen=True)
class ViewGeometry:
    """One output view: slice axis, image rows/columns, dropped end slices, flips, crop.

    A slice axis still in k-space is brought to image space by a centred 1D inverse FFT.
    ``drop_first``/``drop_last`` slices are removed after that. Flips act on the image
    (``flip_rows`` = upside down, the fastMRI orientation of most sources). The
    ``reconstruction_rss`` target is centre-cropped to ``crop`` or, with ``crop_to_header``,
    to the source header's recon matrix (both clamped to the image size).
    """

    slice_axis: str = "s"
    rows: str = "x"
    cols: str = "y"
    drop_first: int = 0
    drop_last: int = 0
    flip_rows: bool = False
    flip_cols: bool = False
    crop: tuple[int, int] | None = None
    crop_to_header: bool = False

    def __post_init__(self) -> None:
        for name in ("slice_axis", "rows", "cols"):
            value = getattr(self, name)
            _letters(value, name)
            if len(value) != 1:
                raise ValueError(f"'{name}' must be one axis letter among {SPATIAL_AXES!r}, got {value!r}")
        if len({self.slice_axis, self.rows, self.cols}) != 3:
            raise ValueError(
                f"'slice_axis', 'rows' and 'cols' must be three different axes, got "
                f"{self.slice_axis!r}, {self.rows!r}, {self.cols!r}"
            )
        if self.drop_first < 0 or self.drop_last < 0:
            raise ValueError(f"dropped slice counts must be >= 0, got {self.drop_first}, {self.drop_last}")
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) < 1):
            raise ValueError(f"'crop' must be two positive integers, got {self.crop}")
        if self.crop is not None and self.crop_to_header:
            raise ValueError("give either 'crop' or 'crop_to_header', not both")


@dataclass(frozen=True)
class ConversionSpec:
    """How the files of one source are read and turned into fastMRI-convention k-space.

    ``format``: ``fastmri_h5`` (fastMRI layout, ``[averages,] slices, coils, H, W``),
    ``ismrmrd`` (ISMRMRD HDF5 acquisitions) or ``array`` (``.npy``, ``.npz``, ``.mat``, or an
    HDF5 dataset ``key``, with axis letters ``axes``; ``.mat`` axes in MATLAB order).
    ``files``/``exclude``: glob patterns selecting source files under a folder.
    ``interleaved_complex``: the axis whose entries alternate real and imaginary parts.
    ``image_axes``: axes already in image space (hybrid data). ``recentre_axes``: axes whose
    image comes out rolled by half the size (k-space centred for an image origin at index
    0); the image is rolled back. ``chop_axes``: axes whose image carries a ``(-1)^n``
    modulation, removed. ``kspace_roll``: integer roll of the k-space samples per axis
    (re-centres off-centre k-space). ``pad_to_header``: zero-pad the phase-encode axis ``y``
    to the header's encoded size, centred by the header's encoding limits. ``scale``
    multiplies the k-space (and so the target). ``attrs`` are extra file attributes.
    """

    format: SourceFormat
    files: str = "**/*.h5"
    exclude: tuple[str, ...] = ()
    key: str | None = None
    axes: str | None = None
    interleaved_complex: str | None = None
    image_axes: str = ""
    recentre_axes: str = ""
    chop_axes: str = ""
    kspace_roll: dict[str, int] = field(default_factory=dict)
    pad_to_header: bool = False
    averages: AveragesSpec | None = None
    scale: float = 1.0
    attrs: dict[str, int | float | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.axes is not None:
            _letters(self.axes, "axes", ALL_AXES)
            if not any(ch in SPATIAL_AXES for ch in self.axes):
                raise ValueError(f"'axes' needs spatial axes among {SPATIAL_AXES!r}, got {self.axes!r}")
        if self.format == "array" and self.axes is None:
            raise ValueError("an 'array' source needs 'axes' (one letter per array axis)")
        for name in ("image_axes", "recentre_axes", "chop_axes"):
            _letters(getattr(self, name), name)
        _letters("".join(self.kspace_roll), "kspace_roll")
        if self.interleaved_complex is not None:
            _letters(self.interleaved_complex, "interleaved_complex", ALL_AXES)
            if len(self.interleaved_complex) != 1:
                raise ValueError(f"'interleaved_complex' must be one axis letter, got {self.interleaved_complex!r}")
            if self.axes is not None and self.interleaved_complex not in self.axes:
                raise ValueError(
                    f"'interleaved_complex' axis {self.interleaved_complex!r} is not in 'axes' {self.axes!r}"
                )
        if set(self.kspace_roll) & set(self.image_axes):
            raise ValueError("'kspace_roll' axes must be k-space axes, not in 'image_axes'")
        if not self.scale > 0:
            raise ValueError(f"'scale' must be positive, got {self.scale}")
        if not self.files:
            raise ValueError("'files' must be a glob pattern such as '**/*.h5'")
