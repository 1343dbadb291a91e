"""Early stopping and checkpoint selection, including the OOD-aware rule.

Training on one distribution can keep improving in-distribution (ID) while quality on other
distributions (OOD) drops ("distributional overfitting", Lin & Heckel 2024). Two rules:

- ``paper``: stop when the ID gain over the last ``patience`` validations is below
  ``min_delta``; select the best ID validation.
- ``ood``: select the validation with the best OOD metric (one named set, or the mean over
  all); stop once ``patience`` validations have passed without a new OOD best, and say whether
  ID was still improving meanwhile (distributional overfitting) or had stalled too.
- ``none``: never stop; select the best ID validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mrizoo.errors import InputError
from mrizoo.train.recipe import METRIC_HIGHER_IS_BETTER as _HIGHER_IS_BETTER

__all__ = ["Decision", "EarlyStopping", "agree_across_processes"]


@dataclass(frozen=True)
class Decision:
    """Outcome of one validation: stop now?, is this the validation to keep?, and why."""

    stop: bool
    is_best: bool
    reason: str


class EarlyStopping:
    """Stopping policy fed with one validation at a time (see the module docstring for the rules)."""

    def __init__(self, rule: str = "paper", *, metric: str = "ssim", patience: int = 3, min_delta: float = 1e-4,
                 ood_set: str | None = None, higher_is_better: bool | None = None) -> None:
        if rule not in ("none", "paper", "ood"):
            raise InputError("unknown early-stopping rule", field="early_stopping.rule",
                             expected="none, paper or ood", got=repr(rule))
        if higher_is_better is None:
            if metric not in _HIGHER_IS_BETTER:
                raise InputError("unknown metric direction", field="early_stopping.metric",
                                 expected=f"one of {sorted(_HIGHER_IS_BETTER)} or higher_is_better given",
                                 got=repr(metric))
            higher_is_better = _HIGHER_IS_BETTER[metric]
        if patience < 1:
            raise InputError("must be positive", field="early_stopping.patience", expected=">= 1", got=patience)
        if min_delta < 0:
            raise InputError("must not be negative", field="early_stopping.min_delta", expected=">= 0",
                             got=min_delta)
        self.rule, self.metric, self.patience, self.min_delta = rule, metric, int(patience), float(min_delta)
        self.ood_set, self.higher_is_better = ood_set, bool(higher_is_better)
        self.history: list[dict[str, Any]] = []
        self.best_index: int | None = None
        self.stopped = False
        self.stop_index: int | None = None
        self.reason = ""

    @classmethod
    def from_spec(cls, spec: Any) -> EarlyStopping:
        """From a :class:`~mrizoo.train.recipe.EarlyStoppingSpec`."""
        return cls(spec.rule, metric=spec.metric, patience=spec.patience, min_delta=spec.min_delta,
                   ood_set=spec.ood_set)

    # ------------------------------------------------------------------ helpers

    def _score(self, value: float | None) -> float:
        """Oriented so that larger is better; NaN/None count as the worst value."""
        if value is None or not math.isfinite(value):
            return -math.inf
        return value if self.higher_is_better else -value

    def _ood_value(self, ood: dict[str, float]) -> float | None:
        if not ood:
            return None
        if self.ood_set is not None:
            if self.ood_set not in ood:
                raise InputError("OOD metric missing for the selected set", field="ood_metrics",
                                 expected=f"a value for {self.ood_set!r}", got=sorted(ood))
            return float(ood[self.ood_set])
        return float(sum(ood.values()) / len(ood))

    def _best_so_far(self, key: str, upto: int) -> float:
        return max(self._score(h[key]) for h in self.history[: upto + 1])

    @property
    def best(self) -> dict[str, Any] | None:
        """The selected validation (its step, epoch, metrics), or None before the first."""
        return None if self.best_index is None else dict(self.history[self.best_index])

    # ------------------------------------------------------------------ update

    def update(self, step: int, epoch: int, id_metric: float, ood_metrics: dict[str, float] | None = None) -> Decision:
        """Record one validation and decide. Once stopped, every later call says stop again."""
        ood = {k: float(v) for k, v in (ood_metrics or {}).items()}
        if self.rule == "ood" and not ood:
            raise InputError("the 'ood' rule needs OOD metrics at every validation", field="ood_metrics",
                             expected="a non-empty mapping", got=ood_metrics)
        ood_value = self._ood_value(ood)
        i = len(self.history)
        self.history.append({"index": i, "step": int(step), "epoch": int(epoch), "id": float(id_metric),
                             "ood": ood_value, "ood_sets": ood})
        if self.stopped:
            return Decision(True, False, self.reason)

        key = "ood" if self.rule == "ood" else "id"
        current = self._score(self.history[i][key])
        previous_best = -math.inf if self.best_index is None else self._score(self.history[self.best_index][key])
        is_best = current > previous_best
        if is_best:
            self.best_index = i

        stop, reason = False, ""
        if self.rule == "paper" and i >= self.patience:
            gain = self._best_so_far("id", i) - self._best_so_far("id", i - self.patience)
            if gain < self.min_delta:
                stop = True
                reason = (f"in-distribution {self.metric} gained {gain:.3g} over the last {self.patience} "
                          f"validations (< min_delta {self.min_delta:g})")
        elif self.rule == "ood":
            since = i - (self.best_index if self.best_index is not None else 0)
            if since >= self.patience:
                stop = True
                b = self.history[self.best_index if self.best_index is not None else 0]
                drop = self._score(b["ood"]) - current
                id_gain = self._best_so_far("id", i) - self._score(b["id"])
                what = "OOD" if self.ood_set is None else f"OOD ({self.ood_set})"
                if id_gain >= self.min_delta:
                    reason = (f"distributional overfitting: {what} {self.metric} is {drop:.3g} below its best "
                              f"(validation {b['index']}, step {b['step']}) after {since} validations while "
                              f"in-distribution gained {id_gain:.3g}")
                else:
                    reason = (f"{what} {self.metric} has not improved for {since} validations (best at "
                              f"validation {b['index']}, step {b['step']}) and in-distribution stalled")
        if stop:
            self.stopped, self.stop_index, self.reason = True, i, reason
        return Decision(stop, is_best, reason)

    # ------------------------------------------------------------------ record

    def summary(self) -> dict[str, Any]:
        """Why and when training stopped and which validation is selected (for logs and model cards)."""
        stop = None if self.stop_index is None else self.history[self.stop_index]
        return {
            "rule": self.rule, "metric": self.metric, "patience": self.patience, "min_delta": self.min_delta,
            "ood_set": self.ood_set, "stopped": self.stopped, "reason": self.reason,
            "stop_step": None if stop is None else stop["step"],
            "stop_epoch": None if stop is None else stop["epoch"],
            "selected": self.best, "validations": len(self.history),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "metric": self.metric, "patience": self.patience, "min_delta": self.min_delta,
            "ood_set": self.ood_set, "higher_is_better": self.higher_is_better,
            "history": [{**h, "ood_sets": dict(h["ood_sets"])} for h in self.history],
            "best_index": self.best_index, "stopped": self.stopped, "stop_index": self.stop_index,
            "reason": self.reason,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__init__(state["rule"], metric=state["metric"], patience=state["patience"],  # type: ignore[misc]
                      min_delta=state["min_delta"], ood_set=state["ood_set"],
                      higher_is_better=state["higher_is_better"])
        self.history = [{**h, "ood_sets": dict(h["ood_sets"])} for h in state["history"]]
        self.best_index, self.stopped = state["best_index"], bool(state["stopped"])
        self.stop_index, self.reason = state["stop_index"], state["reason"]


def agree_across_processes(flag: bool, accelerator: Any = None) -> bool:
    """True on every process when it is True on any (so all ranks stop together).

    With an ``accelerate.Accelerator`` the flags are summed by ``accelerator.reduce``; without one,
    an initialised ``torch.distributed`` group is used; otherwise the flag is returned as is.
    """
    # imported on use: a heavy package that most calls of this module do not need
    import torch

    if accelerator is not None:
        t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
        return bool(accelerator.reduce(t, reduction="sum").item() > 0)
    # imported on use: a heavy package that most calls of this module do not need
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        backend = dist.get_backend()
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)
    return bool(flag)
