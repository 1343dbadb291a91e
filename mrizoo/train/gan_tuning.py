"""rcGAN's loss weights during training: the adversarial weight by epoch and the beta_SD auto-tune."""

from __future__ import annotations

import math
from typing import Any

from mrizoo.errors import InputError
from mrizoo.train.gan_losses import ideal_error_ratio, ideal_psnr_gain

__all__ = ["BetaAdvSchedule", "BetaSDTuner"]


class BetaAdvSchedule:
    """The adversarial weight by epoch: ``values[i]`` while the 0-based epoch ``<= milestones[i]``,
    ``values[-1]`` after (rcGAN: 1e-2 to epoch 4, 1e-4 to epoch 22, 1e-5 after)."""

    def __init__(self, values: tuple[float, ...] = (1e-2, 1e-4, 1e-5),
                 milestones: tuple[int, ...] = (4, 22)) -> None:
        if len(values) != len(milestones) + 1:
            raise InputError("one more value than milestones", field="beta_adv",
                             expected=f"{len(milestones) + 1} values", got=len(values))
        if list(milestones) != sorted(milestones):
            raise InputError("milestones must increase", field="beta_adv_milestones", got=list(milestones))
        self.values, self.milestones = tuple(float(v) for v in values), tuple(int(m) for m in milestones)

    def __call__(self, epoch: int) -> float:
        for value, last in zip(self.values, self.milestones):
            if epoch <= last:
                return value
        return self.values[-1]

    def state_dict(self) -> dict[str, Any]:
        return {"values": list(self.values), "milestones": list(self.milestones)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__init__(tuple(state["values"]), tuple(state["milestones"]))  # type: ignore[misc]


class BetaSDTuner:
    """rcGAN's beta_SD auto-tune (Eq. 23): ``beta_sd += rate * gap`` with
    ``gap = [2P/(P+1)]_dB - [E_1 / E_P]_dB`` (dB of Prop. 3.3's error ratio, P = ``p_val``).

    If averaging P samples gains less than true posterior samples would, the samples are too alike
    and the SD reward grows (and vice versa). With PSNRs from one data range the gap is
    ``(PSNR_1 + 10 log10(2P/(P+1))) - PSNR_P``. ``beta_sd`` stays within ``[0, max_beta]``.
    The paper updates once per epoch (``rate`` 0.02 per dB with ``beta_sd`` in units of the
    nominal weight); a short run updates every few steps on a fixed batch so that it converges.
    ``enabled=False`` keeps beta_sd fixed (the ratio is still recorded).
    """

    def __init__(self, beta_sd: float = 1.0, p_val: int = 8, rate: float = 0.02, enabled: bool = True,
                 max_beta: float = math.inf) -> None:
        self.beta_sd, self.p_val, self.rate, self.enabled = float(beta_sd), int(p_val), float(rate), enabled
        self.max_beta = float(max_beta)
        self.steps = 0  # optimizer steps counted by the trainer (for a tune cadence)
        self.history: list[dict[str, float]] = []

    @property
    def ideal_ratio(self) -> float:
        """``2P / (P + 1)`` for ``p_val``."""
        return ideal_error_ratio(self.p_val)

    def gap(self, psnr_1: float, psnr_p: float) -> float:
        """Ideal minus achieved PSNR gain (dB); positive: too little sample diversity."""
        return (psnr_1 + ideal_psnr_gain(self.p_val)) - psnr_p

    def gap_from_ratio(self, e1_over_ep: float) -> float:
        """The same gap from the error ratio ``E_1 / E_P`` itself."""
        return ideal_psnr_gain(self.p_val) - 10.0 * math.log10(max(e1_over_ep, 1e-12))

    def well_tuned(self, psnr_1: float, psnr_p: float, tol: float = 0.25) -> bool:
        """Whether the achieved gain is within ``tol`` dB of the ideal one (the paper's criterion)."""
        return abs(self.gap(psnr_1, psnr_p)) <= tol

    def _step(self, gap: float, record: dict[str, float]) -> float:
        if self.enabled and math.isfinite(gap):
            self.beta_sd = min(max(self.beta_sd + self.rate * gap, 0.0), self.max_beta)
        self.history.append({**record, "gap": gap, "beta_sd": self.beta_sd})
        return self.beta_sd

    def update(self, psnr_1: float, psnr_p: float) -> float:
        """Apply one auto-tune step from validation PSNRs of 1 sample and the P-sample average."""
        return self._step(self.gap(psnr_1, psnr_p), {"psnr_1": float(psnr_1), "psnr_p": float(psnr_p)})

    def update_from_ratio(self, e1_over_ep: float, **record: float) -> float:
        """Apply one auto-tune step from a measured ``E_1 / E_P`` (``record``: extra values to keep)."""
        return self._step(self.gap_from_ratio(e1_over_ep), {"ratio": float(e1_over_ep), **record})

    def state_dict(self) -> dict[str, Any]:
        return {"beta_sd": self.beta_sd, "p_val": self.p_val, "rate": self.rate, "enabled": self.enabled,
                "max_beta": self.max_beta if math.isfinite(self.max_beta) else None, "steps": self.steps,
                "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.beta_sd, self.p_val = float(state["beta_sd"]), int(state["p_val"])
        self.rate, self.enabled = float(state["rate"]), bool(state["enabled"])
        mb = state.get("max_beta")
        self.max_beta = math.inf if mb is None else float(mb)
        self.steps = int(state.get("steps", 0))
        self.history = [dict(h) for h in state.get("history", [])]
