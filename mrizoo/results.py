"""The evaluation results file format: what ``mrizoo evaluate`` writes and model cards read.

One file per model (``model_cards/results/<name>.json``, or ``evaluation.json`` in a run
folder) lists, per test set: its name, whether it is in or out of the training distribution,
the acceleration and mask it was undersampled with, how many volumes/slices were scored, and
the metrics (``ssim``, ``psnr``, ``nmse`` always; ``apsd``, ``cfid`` and others optional).
Reading validates everything and reports the file and field of the first problem.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mrizoo._atomic import atomic_file
from mrizoo._dataclass_io import from_dict, to_dict
from mrizoo.errors import InputError
from mrizoo.zoo.names import parse_name

__all__ = ["RESULTS_FORMAT_VERSION", "REQUIRED_METRICS", "POSTERIOR_METRICS", "RUN_RESULTS_NAME",
           "DatasetResult", "EvaluationResults", "load_results", "save_results", "results_path"]

RESULTS_FORMAT_VERSION = 1
REQUIRED_METRICS = ("ssim", "psnr", "nmse")
POSTERIOR_METRICS = ("apsd", "cfid")
RUN_RESULTS_NAME = "evaluation.json"

_METRIC_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
# metric -> (lowest allowed, highest allowed); metrics not listed only need to be finite
_METRIC_RANGES: dict[str, tuple[float, float]] = {
    "ssim": (-1.0, 1.0),
    "nmse": (0.0, math.inf),
    "apsd": (0.0, math.inf),
    "cfid": (0.0, math.inf),
}


@dataclass(frozen=True)
class DatasetResult:
    """Scores of one model on one test set at one acceleration and mask.

    ``metrics`` are means over volumes; ``std`` (optional) their standard deviations.
    ``dataset_id`` is a short identifier for the card metadata (derived from ``dataset`` if empty).
    """

    dataset: str
    distribution: Literal["in", "out"]
    acceleration: float
    mask: str
    volumes: int
    slices: int
    metrics: dict[str, float]
    std: dict[str, float] = field(default_factory=dict)
    split: str = "test"
    center_fraction: float | None = None
    dataset_id: str = ""
    samples: int | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if not self.dataset.strip():
            raise InputError("empty dataset name", field="dataset", expected="a non-empty name")
        if not self.acceleration > 1:
            raise InputError("acceleration must be > 1", field="acceleration", got=self.acceleration)
        if not self.mask.strip():
            raise InputError("empty mask name", field="mask", expected="the mask function, e.g. equispaced")
        if self.center_fraction is not None and not 0 < self.center_fraction < 1:
            raise InputError("center_fraction must be in (0, 1)", field="center_fraction",
                             got=self.center_fraction)
        if self.volumes < 1 or self.slices < self.volumes:
            raise InputError("counts do not add up", field="volumes/slices",
                             expected="volumes >= 1 and slices >= volumes",
                             got=f"{self.volumes} volumes, {self.slices} slices")
        if self.samples is not None and self.samples < 1:
            raise InputError("samples must be >= 1", field="samples", got=self.samples)
        missing = [m for m in REQUIRED_METRICS if m not in self.metrics]
        if missing:
            raise InputError("missing metric(s)", field="metrics", expected=f"all of {list(REQUIRED_METRICS)}",
                             got=f"{sorted(self.metrics)} (missing {missing})")
        for where, values in (("metrics", self.metrics), ("std", self.std)):
            for key, value in values.items():
                _check_metric(where, key, value, is_std=where == "std")
        unknown_std = sorted(set(self.std) - set(self.metrics))
        if unknown_std:
            raise InputError("std given for metrics that have no value", field="std",
                             expected=f"keys among {sorted(self.metrics)}", got=unknown_std)
        if self.dataset_id and not _METRIC_KEY.match(self.dataset_id.replace("-", "_")):
            raise InputError("dataset_id must be lowercase letters, digits, '-' and '_'", field="dataset_id",
                             got=repr(self.dataset_id))

    @property
    def slug(self) -> str:
        """The dataset identifier used in the card metadata."""
        return self.dataset_id or re.sub(r"[^a-z0-9]+", "-", self.dataset.lower()).strip("-")

    @property
    def key(self) -> tuple[str, str, float, str]:
        return (self.slug, self.split, self.acceleration, self.mask)


def _check_metric(where: str, key: str, value: Any, *, is_std: bool) -> None:
    if not isinstance(key, str) or not _METRIC_KEY.match(key):
        raise InputError("metric names are lowercase identifiers", field=f"{where}.{key}", got=repr(key))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError("metric values must be finite numbers", field=f"{where}.{key}", got=repr(value))
    low, high = (0.0, math.inf) if is_std else _METRIC_RANGES.get(key, (-math.inf, math.inf))
    if not low <= value <= high:
        raise InputError("metric value out of range", field=f"{where}.{key}", expected=f"in [{low}, {high}]",
                         got=value)


@dataclass(frozen=True)
class EvaluationResults:
    """All evaluation results of one model (zoo name), with what was evaluated."""

    model: str
    datasets: tuple[DatasetResult, ...]
    format_version: int = RESULTS_FORMAT_VERSION
    mrizoo_version: str | None = None
    weights_sha256: str | None = None
    notes: str = ""
    compared: dict[str, tuple[DatasetResult, ...]] = field(default_factory=dict)
    """Other methods scored on the same slices in the same run (label -> results): the model adapted at
    test time (``<model>+tta``) and the classical baselines; what the card's adaptation section shows."""
    adaptation: dict[str, Any] = field(default_factory=dict)
    """How ``<model>+tta`` was adapted: ``config`` (the ``AdaptConfig`` fields), ``threads``, ``device``."""

    def __post_init__(self) -> None:
        try:
            parse_name(self.model)
        except ValueError as err:
            raise InputError(str(err), field="model") from None
        if not isinstance(self.format_version, int) or not 1 <= self.format_version <= RESULTS_FORMAT_VERSION:
            raise InputError("unsupported results format", field="format_version",
                             expected=f"1..{RESULTS_FORMAT_VERSION}", got=self.format_version)
        if not self.datasets:
            raise InputError("no dataset results", field="datasets", expected="at least one entry")
        seen: set[tuple[str, str, float, str]] = set()
        for i, d in enumerate(self.datasets):
            if d.key in seen:
                raise InputError("duplicate dataset result", field=f"datasets[{i}]",
                                 expected="one entry per (dataset, split, acceleration, mask)",
                                 got=f"{d.dataset} / {d.split} / R={d.acceleration:g} / {d.mask}")
            seen.add(d.key)
        if self.weights_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.weights_sha256):
            raise InputError("weights_sha256 must be 64 lowercase hex digits", field="weights_sha256",
                             got=repr(self.weights_sha256))

    def in_distribution(self) -> list[DatasetResult]:
        return [d for d in self.datasets if d.distribution == "in"]

    def out_of_distribution(self) -> list[DatasetResult]:
        return [d for d in self.datasets if d.distribution == "out"]

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> "EvaluationResults":
        """Validated results from a plain mapping; errors name ``source`` and the field."""
        if isinstance(data, dict) and isinstance(data.get("datasets"), list):
            for i, item in enumerate(data["datasets"]):  # first pass: errors with their index
                with _context(source, f"datasets[{i}]"):
                    from_dict(DatasetResult, item, source=source, prefix=f"datasets[{i}]")
        with _context(source, ""):
            return from_dict(cls, data, source=source)


@contextlib.contextmanager
def _context(source: str | None, prefix: str) -> Iterator[None]:
    """Add the file and the field prefix to errors raised by dataclass checks."""
    try:
        yield
    except InputError as err:
        field_name = err.field
        if prefix and (field_name is None or not field_name.startswith(prefix)):
            field_name = prefix if field_name is None else f"{prefix}.{field_name}"
        if err.path is None or field_name != err.field:
            raise InputError(err.problem, path=err.path or source, field=field_name, expected=err.expected,
                             got=err.got) from None
        raise


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def load_results(path: str | os.PathLike[str]) -> EvaluationResults:
    """Read and validate an evaluation results file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("evaluation results file not found", path=p) from None
    except (IsADirectoryError, UnicodeDecodeError) as err:
        raise InputError(f"not a readable results file ({type(err).__name__})", path=p) from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err.msg} at line {err.lineno})", path=p) from None
    except ValueError as err:
        raise InputError(f"not valid JSON ({err})", path=p) from None
    return EvaluationResults.from_dict(doc, source=str(p))


def save_results(results: EvaluationResults, path: str | os.PathLike[str]) -> Path:
    """Write results as JSON (atomic: a temporary file renamed into place)."""
    p = Path(path)
    text = json.dumps(results.to_dict(), indent=2, allow_nan=False) + "\n"
    with atomic_file(p, suffix=".tmp") as tmp:  # a full disk or read-only target: InputError
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return p


def results_path(name: str, cards_dir: str | os.PathLike[str] = "model_cards") -> Path:
    """Where the results of zoo model ``name`` live next to its card."""
    return Path(cards_dir) / "results" / f"{name}.json"

