"""Running a model over the slices of a volume: what the model declares, and batches with memory back-off.

Part of :mod:`mrizoo.reconstruct`: :class:`SliceRunner` calls ``reconstruct`` (or ``sample`` for
posterior models) on slice batches, halving the batch on out-of-memory errors, optionally
adapting a copy of the model to each slice first.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["SliceRunner", "accepts", "adapt_summary", "model_name", "model_task", "needs_coils"]

log = logging.getLogger("mrizoo.reconstruct")  # one logger for everything reconstruct does


def model_name(model: nn.Module) -> str:
    """The model's zoo entry name, else its class name."""
    entry = getattr(model, "zoo_entry", None)
    return str(getattr(entry, "name", None) or type(model).__name__)


def model_task(model: nn.Module) -> Any:
    """The training task its zoo entry declares (masks, accelerations, coils), None without one."""
    return getattr(getattr(model, "zoo_entry", None), "task", None)


def needs_coils(model: nn.Module) -> bool:
    """Whether the model cannot take single-coil k-space (learned multi-coil models, SENSE-based methods)."""
    if getattr(model, "needs_maps", False):
        return True
    entry = getattr(model, "zoo_entry", None)
    task = model_task(model)
    builtin = getattr(getattr(entry, "weights", None), "kind", None) == "builtin"
    return bool(task is not None and task.coils == "multi" and not builtin)


def accepts(fn: Any, name: str) -> bool:
    """Whether callable ``fn`` takes a keyword ``name``."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class SliceRunner:
    """Calls the model on slice batches, halving the batch on out-of-memory errors."""

    def __init__(self, model: nn.Module, batch_size: int, samples: int | None, upsample: int,
                 generator_seed: int | None, adapt_steps: int | None = None, progress: bool = False) -> None:
        self.model = model
        self.adapt_steps, self.progress = adapt_steps, progress  # adapt_steps: adapt a copy per call
        self.adapted: list[Any] = []  # AdaptResult of each adapted call
        self.batch_size = batch_size
        self.samples = samples
        self.upsample = upsample
        self.generator_seed = generator_seed
        self.halvings: list[int] = []

    def _call(self, ks: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                     torch.Tensor | None]:
        kw: dict[str, Any] = {}
        model = self.model
        if self.adapt_steps is not None:
            with torch.enable_grad():
                model = self.model.adapt(ks, mask, steps=self.adapt_steps, progress=self.progress)
            self.adapted.append(model.adaptation)
        if self.upsample != 1:
            kw["upsample"] = self.upsample
        if self.samples is not None:
            if self.generator_seed is not None and accepts(self.model.sample, "generator"):
                kw["generator"] = torch.Generator(device=ks.device).manual_seed(self.generator_seed)
            out = model.sample(ks, mask, n=self.samples, **kw)
            return out.mean, out.std, out.samples
        if self.generator_seed is not None and accepts(model.reconstruct, "generator"):
            kw["generator"] = torch.Generator(device=ks.device).manual_seed(self.generator_seed)
        return model.reconstruct(ks, mask, **kw), None, None

    def run(self, kspace_of: Any, n: int, mask: torch.Tensor, device: torch.device,
            progress: bool, desc: str) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {"reconstruction": [], "std": [], "samples": []}
        mask = mask.to(device)
        bar = tqdm(total=n, desc=desc, unit="slice", disable=not progress, leave=False)
        start = 0
        try:
            while start < n:
                stop = min(n, start + self.batch_size)
                ks = torch.stack([kspace_of(i) for i in range(start, stop)]).to(device)
                try:
                    with torch.no_grad():
                        recon, std, samples = self._call(ks, mask)
                except torch.OutOfMemoryError:
                    if self.batch_size == 1:
                        raise
                    del ks
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    self.batch_size = max(1, self.batch_size // 2)
                    self.halvings.append(self.batch_size)
                    log.warning("out of memory at slices %d-%d; retrying with batch size %d",
                                start, stop - 1, self.batch_size)
                    continue
                parts["reconstruction"].append(recon.detach().float().cpu().numpy())
                if std is not None:
                    parts["std"].append(std.detach().float().cpu().numpy())
                    parts["samples"].append(samples.detach().float().cpu().numpy())
                bar.update(stop - start)
                start = stop
        finally:
            bar.close()
        out = {"reconstruction": np.concatenate(parts["reconstruction"])}
        if parts["std"]:
            out["std"] = np.concatenate(parts["std"])
            out["samples"] = np.concatenate(parts["samples"], axis=1)  # [P, slices, H, W]
        return out


def adapt_summary(results: list[Any]) -> str:
    """One line on the test-time adaptation of a volume ('' when none ran)."""
    if not results:
        return ""
    secs = [r.seconds for r in results]
    best = [r.best_step for r in results]
    refine = results[0].refine
    return (f"adapted per slice in {sum(secs) / len(secs):.1f} s/slice ({sum(secs):.1f} s in all; kept steps "
            f"{min(best)}-{max(best)} of at most {max(r.steps_run for r in results)})"
            + (f"; then {refine} refinement (a hybrid with compressed sensing)" if refine != "none" else ""))
