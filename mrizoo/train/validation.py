"""Validation during training: per-volume metrics of one validation set, gathered over processes.

Each process predicts its own volumes (:func:`~mrizoo.train.data.validation_batches`) with a
generator seeded per volume and slice, so every process count gives the same numbers; the
per-volume rows are padded, gathered and averaged.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mrizoo.metrics import evaluate_volume, psnr
from mrizoo.train.data import derive_seed, make_loader, validation_batches
from mrizoo.train.recipe import TrainingRecipe
from mrizoo.train.task_base import Prediction, Task, to_device

__all__ = ["validate_set"]


def _finite_mean(values: torch.Tensor) -> float:
    ok = values[torch.isfinite(values)]
    return float(ok.mean()) if ok.numel() else math.nan


def _volume_row(vid: int, rec: dict[str, list[Any]], keys: list[str]) -> list[float]:
    """``[1, vid, *metrics]`` of one volume's predictions (the leading 1 marks a real row)."""
    gt, pred = torch.cat(rec["target"]), torch.cat(rec["pred"])
    maxval = float(torch.cat(rec["max"]).max())
    values = dict(evaluate_volume(gt, pred, maxval=maxval))
    for extra_name in rec["extra"][0]:
        img = torch.cat([e[extra_name] for e in rec["extra"]])
        values[f"psnr_{extra_name}"] = psnr(gt, img, maxval=maxval)
    if rec["n"]:
        values["loss"] = sum(rec["loss"]) / sum(rec["n"])
    return [1.0, float(vid)] + [float(values.get(k, math.nan)) for k in keys]


def _keep(rec: dict[str, list[Any]], out: Prediction, target: torch.Tensor, max_value: torch.Tensor,
          n: int) -> None:
    rec["pred"].append(out.pred.float().cpu())
    rec["target"].append((out.target if out.target is not None else target).float().cpu())
    rec["max"].append((out.max_value if out.max_value is not None else max_value).float().cpu())
    rec["extra"].append({k: v.float().cpu() for k, v in out.extra.items()})
    if out.loss is not None:
        rec["loss"].append(out.loss * n)
        rec["n"].append(n)


@torch.no_grad()
def validate_set(task: Task, model: nn.Module, dataset: Any, name: str, *, accelerator: Any,
                 recipe: TrainingRecipe) -> dict[str, float]:
    """Per-volume metrics of one validation set, averaged over all its volumes (all processes)."""
    keys = task.val_keys()
    batch_size = max(1, recipe.data.slices_per_batch)
    batches = validation_batches(dataset, batch_size, num_replicas=accelerator.num_processes,
                                 rank=accelerator.process_index)
    loader = make_loader(dataset, batches, recipe.data.num_workers, seed=derive_seed(recipe.seed, "val", name))
    volumes: dict[int, dict[str, list[Any]]] = {}
    for indices, batch in zip(batches, loader):
        vid = int(dataset.examples[indices[0]][0])
        batch = to_device(batch, accelerator.device)
        gen = torch.Generator().manual_seed(derive_seed(recipe.seed, "val", name, vid, indices[0]))
        with accelerator.autocast():
            out = task.predict(model, batch, gen)
        rec = volumes.setdefault(vid, {"pred": [], "target": [], "max": [], "loss": [], "n": [], "extra": []})
        _keep(rec, out, batch.target, batch.max_value, len(batch))
    rows = [_volume_row(vid, rec, keys) for vid, rec in sorted(volumes.items())]
    width = 2 + len(keys)
    local = torch.tensor(rows, dtype=torch.float64).reshape(-1, width).to(accelerator.device)
    padded = accelerator.pad_across_processes(local, dim=0)
    gathered = accelerator.gather_for_metrics(padded).reshape(-1, width).cpu()
    valid = gathered[gathered[:, 0] > 0.5]
    result = {k: _finite_mean(valid[:, 2 + i]) for i, k in enumerate(keys)}
    result["volumes"] = int(valid.shape[0])
    return result
