"""Self-supervised splits of the measured k-space and hold-out early stopping for one scan.

Fitting a network to the measurements of a single scan (test-time adaptation, untrained
networks) needs data the fit never sees to decide when to stop. :class:`HoldoutSplit` divides
the measured locations of a mask into three parts:

- a fixed *held-out* part (``holdout`` fraction) that only scores the fit;
- the rest, re-split at every step into an *input* part (given to the network) and a *loss*
  part (the network must predict it), as in SSDU (Yaman et al. 2020); the split of step ``t``
  depends only on ``(seed, t)``.

The calibration region (the fully sampled centre) is always in the input and never held out,
so coil maps estimated from it are the ones the plain model computes. The unit of a split is a
whole column for column (1D) masks and a single location for 2D masks (``unit="auto"``);
``"columns"`` on a 2D mask groups the measured locations of each column.

:class:`HoldoutStopper` keeps the weights of the step with the lowest held-out error, stops
after ``patience`` steps without improvement, and restores the kept weights.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from mrizoo.errors import InputError
from mrizoo.physics.espirit import central_block

__all__ = ["HoldoutSplit", "HoldoutStopper", "calibration_region", "UNITS"]

UNITS = ("auto", "columns", "points")


def _fraction(value: float, name: str, upper: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value < upper:
        raise InputError("fraction out of range", field=name, expected=f"a number in [0, {upper})", got=repr(value))
    return float(value)


def _single_mask(mask: torch.Tensor) -> torch.Tensor:
    """One bool ``[H, W]`` from ``[H, W]`` or ``[B, H, W]`` (every item the same)."""
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        raise InputError("mask must be a tensor [H, W] or [B, H, W]", field="mask", expected="bool [H, W]",
                         got=f"{getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}")
    mask = mask.detach().to("cpu", torch.bool)
    if mask.ndim == 3:
        if not bool((mask == mask[:1]).all()):
            raise InputError("a hold-out split needs one mask for the whole batch", field="mask",
                             expected="the same mask for every batch item", got="masks that differ")
        mask = mask[0]
    if not bool(mask.any()):
        raise InputError("the mask samples nothing", field="mask", expected="at least one measured location")
    return mask


def calibration_region(mask: torch.Tensor) -> torch.Tensor:
    """Bool ``[H, W]``: the fully sampled central block of a measured set (all rows for column masks)."""
    mask = _single_mask(mask)
    rows, cols = central_block(mask)
    out = torch.zeros_like(mask)
    if bool((mask == mask[:1]).all()):  # column mask: whole central columns
        out[:, cols] = mask[:, cols]
    else:
        out[rows, cols] = True
    return out


@dataclass
class HoldoutSplit:
    """Seeded input / loss / held-out split of the measured locations of one mask ``[H, W]``.

    ``holdout`` and ``loss`` are fractions of the measured units outside the calibration region
    (the input gets the rest of them plus the calibration region). ``unit`` sets how the held-out
    part is drawn, ``split_unit`` how each step's input / loss split is drawn (``auto``: columns
    for column masks, points otherwise).
    """

    mask: torch.Tensor
    holdout: float = 0.1
    loss: float = 0.3
    seed: int = 0
    unit: str = "auto"
    split_unit: str = "auto"
    calibration: torch.Tensor = field(init=False)
    held_out: torch.Tensor = field(init=False)
    available: torch.Tensor = field(init=False)
    columns: bool = field(init=False)

    def __post_init__(self) -> None:
        self.mask = _single_mask(self.mask)
        self.holdout = _fraction(self.holdout, "holdout", 0.9)
        self.loss = _fraction(self.loss, "loss", 1.0)
        if self.holdout + self.loss >= 1.0:
            raise InputError("held-out and loss fractions leave nothing for the input", field="loss",
                             expected=f"holdout + loss < 1 (holdout = {self.holdout})", got=self.loss)
        for name in ("unit", "split_unit"):
            if getattr(self, name) not in UNITS:
                raise InputError("unknown split unit", field=name, expected=" | ".join(UNITS),
                                 got=repr(getattr(self, name)))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError("seed must be an integer", field="seed", expected="int", got=repr(self.seed))
        self.columns = bool((self.mask == self.mask[:1]).all())
        self.calibration = calibration_region(self.mask)
        free = self.mask & ~self.calibration
        if not bool(free.any()) and self.holdout > 0:
            raise InputError("nothing outside the calibration region was measured; nothing can be held out",
                             field="mask", expected="measured locations outside the fully sampled centre",
                             got="a fully sampled mask" if bool(self.mask.all()) else "only the centre")
        gen = torch.Generator().manual_seed(self.seed)
        self.held_out = self._draw(free, self.holdout, self._unit(self.unit), gen)
        self.available = self.mask & ~self.held_out

    def _unit(self, unit: str) -> str:
        return ("columns" if self.columns else "points") if unit == "auto" else unit

    @staticmethod
    def _draw(free: torch.Tensor, fraction: float, unit: str, gen: torch.Generator) -> torch.Tensor:
        """Bool ``[H, W]``: a random ``fraction`` of the units of ``free`` (at least one when fraction > 0)."""
        out = torch.zeros_like(free)
        if fraction <= 0:
            return out
        if unit == "columns":
            cols = torch.nonzero(free.any(dim=0)).flatten()
            n = max(1, round(fraction * cols.numel())) if cols.numel() else 0
            pick = cols[torch.randperm(cols.numel(), generator=gen)[:n]]
            out[:, pick] = free[:, pick]
        else:
            idx = torch.nonzero(free.flatten()).flatten()
            n = max(1, round(fraction * idx.numel())) if idx.numel() else 0
            out.view(-1)[idx[torch.randperm(idx.numel(), generator=gen)[:n]]] = True
        return out

    def step(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input, loss)`` bool ``[H, W]`` for step ``t``: a fresh split of :attr:`available`.

        The loss part is ``loss / (1 - holdout)`` of the units outside the calibration region
        that are not held out, so the three parts keep the requested proportions.
        """
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * (int(t) + 1))
        free = self.available & ~self.calibration
        share = self.loss / (1.0 - self.holdout)
        loss = self._draw(free, share, self._unit(self.split_unit), gen) if self.loss > 0 else torch.zeros_like(free)
        return self.available & ~loss, loss

    def describe(self) -> str:
        """One line: how many locations each part holds."""
        n = int(self.mask.sum())
        _, loss = self.step(0)
        return (f"{n} measured: {int(self.calibration.sum())} calibration, {int(self.held_out.sum())} held out, "
                f"~{int(loss.sum())} loss per step ({self._unit(self.unit)} held out, "
                f"{self._unit(self.split_unit)} split)")


class HoldoutStopper:
    """Keep the weights with the lowest held-out error; stop after ``patience`` steps without a new best.

    An error counts as an improvement when it is below ``best * (1 - min_delta)``. Call
    :meth:`update` once per scored step (``True`` means stop now) and :meth:`restore` at the end.
    """

    def __init__(self, patience: int = 5, *, min_delta: float = 0.0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise InputError("patience must be a positive integer", field="patience", expected="int >= 1",
                             got=repr(patience))
        self.patience = patience
        self.min_delta = _fraction(min_delta, "min_delta", 1.0)
        self.history: list[tuple[int, float]] = []
        self.best_step: int | None = None
        self.best_error = math.inf
        self.stopped = False
        self._best_state: dict[str, torch.Tensor] | None = None

    def update(self, step: int, error: float, module: nn.Module | None = None) -> bool:
        """Record the held-out ``error`` of ``step`` (weights of ``module`` kept when it is a new best)."""
        error = float(error)
        self.history.append((int(step), error))
        if math.isfinite(error) and error < self.best_error * (1.0 - self.min_delta):
            self.best_error, self.best_step = error, int(step)
            if module is not None:
                self._best_state = copy.deepcopy({k: v.detach() for k, v in module.state_dict().items()})
        since = sum(1 for s, _ in self.history if self.best_step is None or s > self.best_step)
        self.stopped = since >= self.patience
        return self.stopped

    def restore(self, module: nn.Module) -> nn.Module:
        """Load the kept weights into ``module`` (no-op when nothing was kept) and return it."""
        if self._best_state is not None:
            module.load_state_dict(self._best_state)
        return module
