"""A model that adapts a fresh copy of itself to every slice it reconstructs (what ``evaluate --adapt`` scores)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from mrizoo.models.adapt import AdaptConfig, adapt, family_of
from mrizoo.models.base import ReconModel
from mrizoo.models.inputs import PosteriorSamples, check_inputs

__all__ = ["AdaptingModel"]


class AdaptingModel(ReconModel):
    """A model that adapts a copy of ``model`` to every slice it is given, then reconstructs it.

    What ``evaluate`` and batch tools use to score test-time adaptation through the common
    interface; ``seconds`` collects the adaptation time of each slice.
    """

    def __init__(self, model: ReconModel, config: AdaptConfig | None = None) -> None:
        super().__init__()
        family_of(model)
        self.model, self.config = model, config or AdaptConfig()
        self.is_posterior, self.needs_maps = model.is_posterior, model.needs_maps
        self.weights_source = getattr(model, "weights_source", None)
        self.seconds: list[float] = []

    def _each(self, kspace: Any, mask: Any, maps: Any, call: Callable[[ReconModel, tuple], Any]) -> list[Any]:
        kspace, mask, maps = check_inputs(kspace, mask, maps)
        outs = []
        for i in range(kspace.shape[0]):
            one = (kspace[i:i + 1], mask[i:i + 1], None if maps is None else maps[i:i + 1])
            with torch.enable_grad():
                adapted = adapt(self.model, *one, self.config, progress=False)
            self.seconds.append(adapted.adaptation.seconds)
            outs.append(call(adapted, one))
        return outs

    def reconstruct(self, kspace: Any, mask: Any, maps: Any = None, **kw: Any) -> torch.Tensor:
        return torch.cat(self._each(kspace, mask, maps, lambda m, a: m.reconstruct(*a, **kw)))

    def sample(self, kspace: Any, mask: Any, maps: Any = None, n: int = 32, **kw: Any) -> Any:
        outs = self._each(kspace, mask, maps, lambda m, a: m.sample(*a, n=n, **kw).samples)
        return PosteriorSamples.from_samples(torch.cat(outs, dim=1))
