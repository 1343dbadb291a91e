"""Input checks shared by the metric functions.

Every metric accepts numpy arrays or torch tensors (any device) and computes in float64 on
the device of its first argument. Bad input raises :class:`mrizoo.errors.InputError` naming
the argument and what was expected.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch

from mrizoo.errors import InputError

ArrayLike = Union[np.ndarray, torch.Tensor]

__all__ = ["ArrayLike"]


def to_tensor(x: object, name: str, device: torch.device | None = None) -> torch.Tensor:
    """Real float64 tensor from a numpy array / tensor; rejects complex, non-numeric and non-finite."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except Exception as err:  # pragma: no cover - exotic objects
            raise InputError("cannot be read as an array", field=name, got=type(x).__name__) from err
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
        ):
            raise InputError("not a numeric array", field=name, expected="a real array", got=str(arr.dtype))
        if np.iscomplexobj(arr):
            raise InputError(
                "complex input; metrics compare real magnitude images (pass np.abs(x))",
                field=name, expected="a real array", got=str(arr.dtype),
            )
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
    if t.is_complex():
        raise InputError(
            "complex input; metrics compare real magnitude images (pass x.abs())",
            field=name, expected="a real array", got=str(t.dtype),
        )
    if device is not None:
        t = t.to(device)
    t = t.to(torch.float64)
    if t.numel() and not bool(torch.isfinite(t).all()):
        n_nan = int(torch.isnan(t).sum())
        n_inf = int(torch.isinf(t).sum())
        raise InputError(
            "contains non-finite values", field=name, expected="finite values",
            got=f"{n_nan} NaN and {n_inf} inf of {t.numel()} values",
        )
    return t


def as_volume(x: object, name: str, device: torch.device | None = None) -> torch.Tensor:
    """``[slices, H, W]`` float64 tensor; a single ``[H, W]`` image becomes one slice."""
    t = to_tensor(x, name, device)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3:
        raise InputError(
            "wrong number of dimensions", field=name,
            expected="a volume [slices, H, W] or an image [H, W]", got=f"shape {tuple(t.shape)}",
        )
    if t.numel() == 0:
        raise InputError("empty array", field=name, expected="at least one pixel", got=f"shape {tuple(t.shape)}")
    return t


def volume_pair(
    gt: object, pred: object, gt_name: str = "gt", pred_name: str = "pred"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and convert a reference / prediction pair of the same shape (pred moves to gt's device)."""
    g = as_volume(gt, gt_name)
    p = as_volume(pred, pred_name, device=g.device)
    if g.shape != p.shape:
        raise InputError(
            "shape does not match the reference", field=pred_name,
            expected=f"shape {tuple(g.shape)} (same as {gt_name})", got=f"shape {tuple(p.shape)}",
        )
    return g, p


def data_range(gt: torch.Tensor, maxval: float | None, name: str = "gt") -> float:
    """fastMRI's data range: ``gt.max()`` over the whole volume unless ``maxval`` is given."""
    if maxval is None:
        value = float(gt.max())
        if not value > 0:
            raise InputError(
                "the maximum is not positive, so the data range (gt.max()) is undefined; pass maxval",
                field=name, expected="max > 0", got=value,
            )
        return value
    try:
        value = float(maxval)
    except (TypeError, ValueError):
        raise InputError("not a number", field="maxval", expected="a positive float", got=repr(maxval)) from None
    if not (math.isfinite(value) and value > 0):
        raise InputError("must be positive and finite", field="maxval", expected="a positive float", got=value)
    return value
