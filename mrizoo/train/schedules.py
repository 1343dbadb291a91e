"""Learning-rate schedules as ``torch.optim.lr_scheduler.LambdaLR`` factories.

Steps are optimizer steps (after gradient accumulation); the scheduler is stepped once per
optimizer step. ``warmup_linear`` with ``warmup_fraction=p``, ``start_fraction=1/d`` and
``final_fraction=1/(d*f)`` gives the same learning rates as PyTorch's
``OneCycleLR(max_lr=lr, total_steps=T, pct_start=p, div_factor=d, final_div_factor=f,
anneal_strategy="linear", three_phase=False)``; the diverse-data recipes of Lin & Heckel 2024
(OneCycle, div 25, final div 1) therefore use ``start_fraction = final_fraction = 0.04``.
OneCycle's momentum cycling is not part of these schedules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mrizoo.errors import InputError

__all__ = ["warmup_linear_lambda", "step_lambda", "constant_lambda", "build_scheduler"]


def warmup_linear_lambda(total_steps: int, warmup_fraction: float = 0.01, *, start_fraction: float = 0.0,
                         final_fraction: float = 0.0) -> Callable[[int], float]:
    """Factor of the peak lr at each step: linear from ``start_fraction`` to 1 until step
    ``warmup_fraction * total_steps - 1``, then linear down to ``final_fraction`` at step
    ``total_steps - 1`` (held there after). No warm-up when that boundary is not after step 0."""
    if total_steps < 1:
        raise InputError("the schedule needs the number of steps", field="total_steps", expected=">= 1",
                         got=total_steps)
    if not 0 <= warmup_fraction < 1:
        raise InputError("outside [0, 1)", field="warmup_fraction", got=warmup_fraction)
    last = float(total_steps - 1)
    peak = float(warmup_fraction * total_steps) - 1.0
    if peak <= 0.0:
        peak, start_fraction = 0.0, 1.0

    def factor(step: int) -> float:
        s = min(float(step), last)
        if s <= peak:
            return start_fraction + (1.0 - start_fraction) * (s / peak if peak > 0 else 1.0)
        span = last - peak
        return 1.0 + (final_fraction - 1.0) * ((s - peak) / span if span > 0 else 1.0)

    return factor


def step_lambda(steps_per_epoch: int, step_size: int, gamma: float = 0.1) -> Callable[[int], float]:
    """``gamma ** (epoch // step_size)`` with the epoch counted from optimizer steps."""
    if steps_per_epoch < 1 or step_size < 1:
        raise InputError("steps per epoch and step size (epochs) must be positive", field="step_size",
                         expected=">= 1", got=(steps_per_epoch, step_size))
    period = steps_per_epoch * step_size

    def factor(step: int) -> float:
        return gamma ** (step // period)

    return factor


def constant_lambda() -> Callable[[int], float]:
    """Always 1."""
    return lambda step: 1.0


def build_scheduler(optimizer: Any, spec: Any, *, total_steps: int,
                    steps_per_epoch: int | None = None) -> Any:
    """A ``LambdaLR`` for a :class:`~mrizoo.train.recipe.ScheduleSpec` over ``total_steps`` optimizer steps.

    ``steps_per_epoch`` is needed by the ``step`` schedule (its period is in epochs).
    """
    # imported on use: a heavy package that most calls of this module do not need
    from torch.optim.lr_scheduler import LambdaLR

    if spec.name == "constant":
        fn = constant_lambda()
    elif spec.name == "warmup_linear":
        fn = warmup_linear_lambda(total_steps, spec.warmup_fraction, start_fraction=spec.start_fraction,
                                  final_fraction=spec.final_fraction)
    elif spec.name == "step":
        if steps_per_epoch is None:
            raise InputError("the step schedule needs steps_per_epoch", field="steps_per_epoch")
        fn = step_lambda(steps_per_epoch, spec.step_size, spec.gamma)
    else:
        raise InputError("unknown schedule", field="schedule.name",
                         expected="constant, warmup_linear or step", got=repr(spec.name))
    return LambdaLR(optimizer, fn)
