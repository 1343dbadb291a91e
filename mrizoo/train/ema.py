"""An exponential moving average of a model's weights (NCSNv2 trains, validates and publishes it)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from mrizoo.errors import InputError

__all__ = ["EMA"]


class EMA:
    """Exponential moving average of a module's floating-point parameters (and a copy of its buffers).

    ``shadow = decay * shadow + (1 - decay) * param`` after each optimizer step; ``copy_to`` writes
    the averages into a module (e.g. a copy used for validation and for the published weights).
    """

    def __init__(self, module: nn.Module, decay: float = 0.999) -> None:
        if not 0 <= decay < 1:
            raise InputError("EMA decay outside [0, 1)", field="ema", expected="0 <= decay < 1", got=decay)
        self.decay = float(decay)
        self.shadow: dict[str, torch.Tensor] = {
            k: v.detach().clone() for k, v in module.state_dict().items()
        }
        self.num_updates = 0

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """One averaging step from the module's current weights."""
        params = dict(module.named_parameters())
        for k, v in module.state_dict().items():
            s = self.shadow[k]
            if k in params and params[k].requires_grad and v.is_floating_point():
                s.mul_(self.decay).add_(v.detach().to(s.dtype), alpha=1 - self.decay)
            else:
                s.copy_(v)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> nn.Module:
        """Load the averaged weights into ``module`` (in place) and return it."""
        module.load_state_dict(self.shadow)
        return module

    def averaged(self, module: nn.Module) -> nn.Module:
        """A deep copy of ``module`` holding the averaged weights."""
        return self.copy_to(copy.deepcopy(module))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.num_updates = int(state.get("num_updates", 0))
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise InputError("EMA state does not match the model", field="shadow",
                             expected="the same parameter names", got=sorted(missing)[:5])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
