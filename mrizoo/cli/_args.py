"""Argument types shared by every subcommand: numbers, devices and output folders checked at parse time.

Each function here is an ``argparse`` ``type=`` callable. A bad value makes the parser stop before
any work with ``mrizoo CMD: error: argument --NAME: <problem> (expected ..., got ...)``; the
checks are the library's own (``mrizoo.masks`` parameter checks, :func:`mrizoo.run_checks.pick_device`),
so the command line and the Python API refuse the same values with the same words.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mrizoo.errors import InputError

__all__ = [
    "acceleration", "center_fraction", "positive_int", "nonnegative_int", "int_at_least", "slice_index",
    "positive_float", "fraction", "device", "check_out_folder",
]


def _fail(err: InputError) -> argparse.ArgumentTypeError:
    detail = [f"expected {err.expected}"] if err.expected is not None else []
    if err.got is not None:
        detail.append(f"got {err.got}")
    text = err.problem + (f" ({', '.join(detail)})" if detail else "")
    return argparse.ArgumentTypeError(text)


def _number(text: str, kind: type, what: str) -> Any:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not {what} (got {text!r})") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text!r})")
    return value


def acceleration(text: str) -> float:
    """An acceleration factor R: a finite number > 1 (``--acceleration 0`` and ``-4`` are refused)."""
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.masks._common import check_acceleration

    value = _number(text, float, "a number")
    try:
        return check_acceleration(value)
    except InputError as err:
        raise _fail(err) from None


def center_fraction(text: str) -> float:
    """A fully sampled centre fraction strictly between 0 and 1."""
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.masks._common import check_center_fraction

    value = _number(text, float, "a number")
    try:
        return check_center_fraction(value)
    except InputError as err:
        raise _fail(err) from None


def int_at_least(low: int, what: str = "an integer") -> Callable[[str], int]:
    """A ``type=`` for integers ``>= low`` (named ``what`` in the message)."""

    def parse(text: str) -> int:
        value = _number(text, int, "an integer")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what} >= {low} (got {value})")
        return value

    parse.__name__ = f"int_at_least_{low}"
    return parse


positive_int = int_at_least(1, "an integer")
"""An integer >= 1 (batch sizes, sample counts, upsampling factors)."""

nonnegative_int = int_at_least(0, "an integer")
"""An integer >= 0 (seeds, counts that may be zero)."""


def slice_index(text: str) -> int:
    """A slice index: an integer, negative counting from the end (range checked against the file)."""
    return _number(text, int, "an integer")


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float, "a number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (got {value:g})")
    return value


def fraction(text: str) -> float:
    """A finite number strictly between 0 and 1."""
    value = _number(text, float, "a number")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1) (got {value:g})")
    return value


def device(text: str) -> str:
    """A torch device that exists on this machine (``cuda`` without CUDA is refused at parse time)."""
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.run_checks import pick_device

    try:
        pick_device(text)
    except InputError as err:
        raise _fail(err) from None
    return text


def check_out_folder(path: str, *, overwrite: bool, option: str = "--out") -> None:
    """An output folder that may be written: not a file, empty unless ``overwrite``, writable.

    Raises :class:`~mrizoo.errors.InputError` naming ``option``; call it before any work.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError("the output must be a folder but is a file", path=out, field=option,
                         expected="a folder (new or empty)")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError("the output folder holds earlier results", path=out, field=option,
                         expected="a new or empty folder, or --overwrite to replace the files it names")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise InputError("cannot write there (read-only or no permission)", path=probe, field=option,
                         expected="a writable folder")
