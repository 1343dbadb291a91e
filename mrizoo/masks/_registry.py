"""Registry of named, seed-reproducible k-space sampling masks.

A mask function is a plain function ``fn(shape, seed, **params) -> Mask`` declared with
:func:`register_mask`; :func:`create_mask` looks it up by name, checks the shape, the seed and
the parameter names, and calls it.
"""

from __future__ import annotations

import inspect
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, Union

import torch

from mrizoo._registry import Registry, did_you_mean
from mrizoo.errors import InputError

__all__ = [
    "Mask",
    "SeedLike",
    "register_mask",
    "list_masks",
    "create_mask",
    "describe_mask",
    "seed_from_name",
]

SeedLike = Union[int, Sequence[int], None]
MaskFn = TypeVar("MaskFn", bound=Callable[..., "Mask"])


@dataclass(frozen=True, eq=False)
class Mask:
    """A sampling mask and what it achieves.

    ``mask`` is a bool ``(H, W)`` tensor (True = sampled). ``lines`` is the bool vector of sampled
    lines for 1D masks (length W for column masks, H for row masks; what a fastMRI file stores as
    ``mask``) and None for 2D masks. ``acceleration`` is the achieved ``H*W / sampled points``;
    ``num_low_frequencies`` the number of fully sampled centre lines (None for 2D masks).
    """

    mask: torch.Tensor
    acceleration: float
    num_low_frequencies: int | None
    name: str
    lines: torch.Tensor | None


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., Mask]
    description: str
    params: tuple[str, ...] | None  # None: the function takes arbitrary keywords


_REGISTRY: Registry[_Entry] = Registry("mask")


def _keyword_params(fn: Callable[..., Any]) -> tuple[str, ...] | None:
    sig = inspect.signature(fn)
    kinds = [p.kind for p in sig.parameters.values()]
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return None
    return tuple(p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY)


def register_mask(name: str, *, description: str = "") -> Callable[[MaskFn], MaskFn]:
    """Decorator registering ``fn(shape, seed, **params) -> Mask`` under ``name`` (once only)."""
    if not isinstance(name, str) or not name:
        raise InputError("a mask name must be a non-empty string", field="name", got=repr(name))

    def decorator(fn: MaskFn) -> MaskFn:
        _REGISTRY.register(name, _Entry(fn=fn, description=description, params=_keyword_params(fn)))
        return fn

    return decorator


def list_masks(pattern: str = "*") -> list[str]:
    """Sorted names of the registered masks matching the ``fnmatch`` pattern."""
    return _REGISTRY.names(pattern)


def _entry(name: str) -> _Entry:
    return _REGISTRY.lookup(name)


def mask_params(name: str) -> tuple[str, ...] | None:
    """The parameter names a registered mask function accepts (None: any)."""
    params = _entry(name).params
    return None if params is None else tuple(params)


def describe_mask(name: str) -> str:
    """One-line description of a registered mask and the parameters it accepts."""
    entry = _entry(name)
    params = "any" if entry.params is None else ", ".join(entry.params) or "none"
    return f"{name}: {entry.description} (parameters: {params})"


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_shape(shape: Any) -> tuple[int, int]:
    ok = isinstance(shape, Sequence)  # tuples, lists and torch.Size
    if ok and len(shape) == 2 and all(_is_int(s) and int(s) > 0 for s in shape):
        return int(shape[0]), int(shape[1])
    raise InputError("bad mask shape", field="shape", expected="(H, W) with two positive ints", got=repr(shape))


def _check_seed(seed: Any) -> SeedLike:
    def ok(v: Any) -> bool:
        return _is_int(v) and 0 <= int(v) < 2**32

    if seed is None:
        return None
    if ok(seed):
        return int(seed)
    if isinstance(seed, Sequence) and not isinstance(seed, str) and len(seed) > 0 and all(ok(v) for v in seed):
        return tuple(int(v) for v in seed)
    raise InputError(
        "bad seed",
        field="seed",
        expected="None, an int in [0, 2**32) or a non-empty sequence of such ints",
        got=repr(seed),
    )


def create_mask(
    name: str, shape: tuple[int, int], *, seed: int | Sequence[int] | None = None, **params: Any
) -> Mask:
    """Build the registered mask ``name`` for a k-space of ``shape = (H, W)``.

    The same ``seed`` (an int or a sequence of ints, e.g. :func:`seed_from_name`) gives the same
    mask; ``seed=None`` draws a fresh one.
    """
    entry = _entry(name)
    hw = _check_shape(shape)
    seed = _check_seed(seed)
    if entry.params is not None:
        for key in params:
            if key not in entry.params:
                raise InputError(
                    f"unknown parameter {key!r} for mask {name!r}{did_you_mean(key, entry.params)}",
                    field=key,
                    expected=f"one of {', '.join(entry.params) or '(no parameters)'}",
                )
    result = entry.fn(hw, seed, **params)
    return replace(result, name=name)


def seed_from_name(fname: str | os.PathLike[str]) -> tuple[int, ...]:
    """fastMRI's test-time mask seed: the code points of the file's base name (``file1000.h5``)."""
    name = Path(fname).name if isinstance(fname, (str, os.PathLike)) else ""
    if not name:
        raise InputError("bad file name for seeding", field="fname", expected="a file name", got=repr(fname))
    return tuple(ord(c) for c in name)
