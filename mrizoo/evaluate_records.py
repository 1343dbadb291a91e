"""The records of an evaluation: test sets, per-volume scores, per-model scores and their summary.

:func:`mrizoo.evaluate.evaluate_models` fills them; :meth:`Evaluation.results` turns one model's
scores into the :class:`~mrizoo.results.EvaluationResults` that results files and model cards hold.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mrizoo import __version__
from mrizoo.errors import InputError
from mrizoo.results import DatasetResult, EvaluationResults

__all__ = ["P_VALUES", "DataSource", "EvalSet", "Evaluation", "ModelScores", "VolumeScore"]

P_VALUES = (1, 2, 4, 8, 16, 32)
"""Numbers of averaged posterior samples of the P-curves (Bendel et al. 2023, Table 2)."""

DataSource = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Callable[..., Any]


@dataclass(frozen=True)
class EvalSet:
    """A named test set: a folder / list of ``.h5`` volumes, or a callable taking
    :class:`~mrizoo.data.SliceDataset` keyword arguments and returning such a dataset
    (e.g. ``lambda **kw: selection.dataset("nyu", **kw)``)."""

    name: str
    source: DataSource
    distribution: Literal["in", "out"] = "in"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError("empty test-set name", field="name", expected="a non-empty name")
        if self.distribution not in ("in", "out"):
            raise InputError("distribution must be 'in' or 'out'", field="distribution",
                             got=repr(self.distribution))


@dataclass
class VolumeScore:
    """Metrics of one model on one volume."""

    dataset: str
    file: str
    slices: int
    metrics: dict[str, float]


@dataclass
class ModelScores:
    """All volume scores of one model plus the set-level metrics (CFID)."""

    name: str
    is_posterior: bool
    volumes: list[VolumeScore] = field(default_factory=list)
    set_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    """Test set -> :class:`~mrizoo.metrics.calibration.Calibration` (posterior models)."""

    def summary(self, dataset: str) -> tuple[dict[str, float], dict[str, float], int, int]:
        """``(means, stds, volumes, slices)`` over the volumes of ``dataset``."""
        vols = [v for v in self.volumes if v.dataset == dataset]
        keys = sorted({k for v in vols for k in v.metrics})
        means: dict[str, float] = {}
        stds: dict[str, float] = {}
        for k in keys:
            vals = np.array([v.metrics[k] for v in vols if k in v.metrics], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            if vals.size:
                means[k] = float(vals.mean())
                stds[k] = float(vals.std())
        means.update(self.set_metrics.get(dataset, {}))
        return means, stds, len(vols), sum(v.slices for v in vols)


@dataclass
class Evaluation:
    """What :func:`evaluate_models` returns: scores per model and the settings used."""

    models: dict[str, ModelScores]
    sets: list[EvalSet]
    mask: str
    acceleration: float
    center_fraction: float | None
    samples: int | None
    weights: dict[str, dict[str, str]] = field(default_factory=dict)  # label -> model.weights_source
    adaptation: dict[str, dict[str, Any]] = field(default_factory=dict)  # "<label>+tta" -> settings

    def results(self, name: str) -> Any:
        """The :class:`~mrizoo.results.EvaluationResults` of model ``name``; for a learned model
        with ``compared`` = its ``+tta`` row and the methods without learned weights of this run."""
        compared: dict[str, Any] = {}
        if (self.weights.get(name) or {}).get("kind") != "builtin" and not name.endswith("+tta"):
            compared = {k: self._rows(k) for k in self.models
                        if k == f"{name}+tta" or (self.weights.get(k) or {}).get("kind") == "builtin"}
        sha = str((self.weights.get(name) or {}).get("sha256") or "") or None
        return EvaluationResults(model=name, datasets=self._rows(name), mrizoo_version=__version__,
                                 weights_sha256=sha, compared={k: v for k, v in compared.items() if v},
                                 adaptation=dict(self.adaptation.get(f"{name}+tta", {})))

    def _rows(self, name: str) -> tuple[Any, ...]:
        scores = self.models[name]
        rows = []
        for s in self.sets:
            means, stds, nvol, nsl = scores.summary(s.name)
            if not nvol:
                continue
            rows.append(DatasetResult(
                dataset=s.name, distribution=s.distribution, acceleration=float(self.acceleration),
                mask=self.mask, volumes=nvol, slices=nsl, metrics=means,
                std={k: v for k, v in stds.items() if k in means}, center_fraction=self.center_fraction,
                samples=self.samples if scores.is_posterior else None,
            ))
        return tuple(rows)

    def per_volume(self) -> list[dict[str, Any]]:
        """Flat per-volume records (model, dataset, file, slices, metrics...)."""
        return [{"model": m, "dataset": v.dataset, "file": v.file, "slices": v.slices, **v.metrics}
                for m, sc in self.models.items() for v in sc.volumes]
