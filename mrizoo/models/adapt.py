"""Test-time adaptation (TTA): fit a trained model to the measurements of one scan.

Self-supervised, from the measurements only (SSDU, Yaman et al. 2020; zero-shot SSL, Yaman et
al. 2022; test-time training, Darestani, Liu & Heckel 2022). The measured locations are split
by :class:`~mrizoo.models.holdout.HoldoutSplit`: at every step the model sees a fresh *input*
part and is trained (Adam) to predict the measured multi-coil k-space on the *loss* part
(normalised L1 + L2); a fixed *held-out* part scores each step (the model then sees everything
but the held-out part), and :class:`~mrizoo.models.holdout.HoldoutStopper` keeps the weights of
the best held-out step. How each family predicts multi-coil k-space:

- VarNet: the last cascade's k-space (its own coil maps);
- MoDL: ``F S x`` of its image ``x`` with the ESPIRiT maps it reconstructs with;
- U-Net / ViT (magnitude output): ``F (|x| S_rss)`` with smooth maps ``S_rss`` from the
  calibration region normalised to unit RSS (they carry the image phase), or the given maps
  with the phase of the low-resolution image;
- rcGAN: the mean of ``samples`` generator outputs (each with its own noise), so the loss does
  not reward a collapse of the posterior spread.

The adapted copy reconstructs with *hard data consistency* (``hard_dc``): the measured samples
are put back into its multi-coil k-space before the coil combination (VarNet, MoDL,
U-Net / ViT; the rcGAN already does it). With ``refine="wavelet"`` (VarNet's default) its coil
images are then the prior of an L1-wavelet problem (:mod:`mrizoo.models.refine`): the final
image is a hybrid of the adapted network and compressed sensing, not the network alone (a scan
whose calibration region is too small for ESPIRiT falls back to the network alone, with a warning,
unless the refinement was asked for explicitly).
"""

from __future__ import annotations

import copy
import math
import sys
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mrizoo.errors import InputError
from mrizoo.masks.center_band import center_band
from mrizoo.models.holdout import HoldoutSplit, HoldoutStopper, calibration_region
from mrizoo.models.inputs import check_inputs
from mrizoo.models.refine import REFINE_CHOICES, wavelet_refine
from mrizoo.physics.coils import rss, sense_combine
from mrizoo.physics.espirit import espirit_maps
from mrizoo.physics.fft import fft2c, ifft2c
from mrizoo.physics.operators import MultiCoilOperator

if TYPE_CHECKING:  # the models import this module (ReconModel.adapt): for annotations only
    from mrizoo.models.base import ReconModel

__all__ = ["AdaptConfig", "AdaptResult", "adapt", "FAMILIES", "PARAM_CHOICES", "default_params", "default_refine",
           "family_of"]

#: the ways adaptation predicts a model's multi-coil k-space (:attr:`ReconModel.adapt_family`)
FAMILIES = ("varnet", "modl", "image", "rcgan")

PARAM_CHOICES = ("all", "norm", "last")
_NORMS = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of one adaptation (defaults chosen on the shipped demo scan; see ``benchmarks/tta.py``).

    ``steps``: most optimiser steps; ``patience``: held-out scores without a new best before
    stopping; ``min_delta``: relative improvement that counts as one; ``holdout`` / ``loss``:
    fractions of the measured units outside the calibration region; ``params``: which
    parameters adapt (``None``: the family's default); ``samples``: generator samples averaged
    per step (rcGAN); ``hard_dc``: put the measured samples back in the final image;
    ``refine``: ``"wavelet"`` makes the final coil images the prior of an L1-wavelet problem
    with weight ``refine_weight`` (:mod:`mrizoo.models.refine`), ``"none"`` keeps them
    (``None``: the family's default, :func:`default_refine`).
    """

    steps: int = 20
    lr: float = 3e-4
    holdout: float = 0.1
    loss: float = 0.3
    params: str | None = None
    patience: int = 10
    min_delta: float = 0.0
    seed: int = 0
    samples: int = 2
    hard_dc: bool = True
    refine: str | None = None
    refine_weight: float = 0.003

    def __post_init__(self) -> None:
        for name in ("steps", "patience", "samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "steps" else 1):
                raise InputError("must be a positive integer" if name != "steps" else "must be an integer >= 0",
                                 field=name, expected="int >= 0" if name == "steps" else "int >= 1", got=repr(v))
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) \
                or self.lr <= 0:
            raise InputError("learning rate must be a positive number", field="lr", expected="> 0", got=repr(self.lr))
        if self.params is not None and self.params not in PARAM_CHOICES:
            raise InputError("unknown parameter choice", field="params", expected=" | ".join(PARAM_CHOICES),
                             got=repr(self.params))
        if self.refine is not None and self.refine not in REFINE_CHOICES:
            raise InputError("unknown refinement", field="refine", expected=" | ".join(REFINE_CHOICES),
                             got=repr(self.refine))
        if isinstance(self.refine_weight, bool) or not isinstance(self.refine_weight, (int, float)) \
                or not math.isfinite(self.refine_weight) or self.refine_weight < 0:
            raise InputError("must be a non-negative number", field="refine_weight", expected=">= 0",
                             got=repr(self.refine_weight))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError("seed must be an integer", field="seed", expected="int", got=repr(self.seed))


@dataclass
class AdaptResult:
    """What one adaptation did: steps run, the kept step, per-step losses and held-out errors, time."""

    family: str
    params: str
    trainable: int
    steps_run: int
    best_step: int | None
    stopped_early: bool
    seconds: float
    loss: list[float] = field(default_factory=list)
    heldout: list[float] = field(default_factory=list)
    split: str = ""
    refine: str = "none"
    std_ratio: float | None = None  # rcGAN: posterior std after / before adaptation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------ families


def family_of(model: ReconModel) -> str:
    """``varnet`` | ``modl`` | ``image`` (U-Net, ViT) | ``rcgan`` (the model's ``adapt_family``); others cannot adapt."""
    family = getattr(model, "adapt_family", None)
    if family in FAMILIES:
        return family
    raise InputError("this model cannot be adapted at test time", field="model",
                     expected="a learned VarNet, MoDL, U-Net, ViT or rcGAN",
                     got=getattr(model, "zoo_name", None) or type(model).__name__)


def default_params(family: str) -> str:
    """The parameters adapted by default, measured on the shipped demo scan.

    All of them for VarNet (adapting only the sensitivity net and the data-consistency weights
    did worse; its U-Nets have no trainable normalisation), and for MoDL, U-Net and ViT (no pretrained
    weights were at hand to measure otherwise); the rcGAN adapts only its batch-norm scales and
    shifts: adapting all its parameters shrank the posterior standard deviation to 0.75 of its
    value in 6 steps for no gain, the norm layers kept it at 0.98.
    """
    return "norm" if family == "rcgan" else "all"


def default_refine(family: str) -> str:
    """The final refinement by default: ``"wavelet"`` for VarNet (measured on the shipped demo scan:
    SSIM / PSNR 0.812 / 29.11 -> 0.860 / 32.10 dB after adaptation), ``"none"`` for the others
    (MoDL, U-Net and ViT: no pretrained weights were at hand to measure; rcGAN: its samples are
    a posterior, which a MAP refinement of each would not preserve)."""
    return "wavelet" if family == "varnet" else "none"


def _select(model: nn.Module, choice: str, family: str) -> list[nn.Parameter]:
    """The parameters that adapt: all, those of normalisation layers, or the last quarter of tensors."""
    root = model.generator if family == "rcgan" else model
    if choice == "all":
        params = list(root.parameters())
    elif choice == "norm":
        params = [p for m in root.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)]
        if not params:
            raise InputError("this model has no trainable normalisation parameters", field="params",
                             expected="all | last", got="norm")
    else:
        tensors = list(root.parameters())
        params = tensors[-max(1, len(tensors) // 4):]
    return params


def _maps_rss(kspace: torch.Tensor, calib: torch.Tensor) -> torch.Tensor:
    """Smooth coil maps normalised to unit RSS, from the calibration region (they carry the image phase)."""
    low = ifft2c(torch.where(calib, kspace, 0))
    norm = rss(low)
    return low / norm.clamp_min(1e-6 * float(norm.max())).unsqueeze(1)


def _error(pred: torch.Tensor, target: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Normalised L1 + L2 error of multi-coil k-space on the locations ``where`` ``[B, H, W]``."""
    sel = where[:, None].expand_as(pred)
    d, t = (pred - target)[sel], target[sel]
    if t.numel() == 0:
        return pred.real.sum() * 0
    return d.abs().sum() / t.abs().sum().clamp_min(1e-30) + torch.linalg.vector_norm(d) / \
        torch.linalg.vector_norm(t).clamp_min(1e-30)


class _Family:
    """Per-family prediction of multi-coil k-space and the final image of one scan."""

    def __init__(self, model: ReconModel, family: str, kspace: torch.Tensor, mask: torch.Tensor,
                 maps: torch.Tensor | None, calib: torch.Tensor, samples: int = 2) -> None:
        self.family, self.samples = family, samples
        self.num_low: torch.Tensor | None = None
        self.maps: torch.Tensor | None = None
        self.scale: torch.Tensor | None = None
        self.refine_maps: torch.Tensor | None = None  # ESPIRiT maps of the scan, computed on first use
        calib = calib.to(kspace.device)
        if family == "varnet":
            if bool((mask == mask[:, :1, :]).all()):
                self.num_low = center_band(mask[:, 0, :], fastmri_rule=False)[1]
        elif family == "modl":
            self.maps = model._maps(kspace, maps).to(kspace.dtype)
            x0 = MultiCoilOperator(self.maps, mask).adjoint(kspace).abs().flatten(1)
            self.scale = torch.quantile(x0, 0.99, dim=1).clamp_min(torch.finfo(x0.dtype).tiny).view(-1, 1, 1, 1)
        elif family == "image":
            if maps is None:
                self.maps = _maps_rss(kspace, calib)
            else:
                low = ifft2c(torch.where(calib, kspace, 0))
                self.maps = maps.to(kspace.dtype) * torch.sgn((low * maps.conj()).sum(1, keepdim=True))
        elif family == "rcgan":
            model._check_coils(kspace)

    def predict(self, model: Any, kspace: torch.Tensor, mask: torch.Tensor,
                gen: torch.Generator | None = None) -> torch.Tensor:
        """Predicted multi-coil k-space ``[B, C, H, W]`` from the measurements ``kspace`` at ``mask``."""
        kspace = torch.where(mask[:, None], kspace, 0)
        if self.family == "varnet":
            return self._varnet(model, kspace, mask)
        if self.family == "modl":
            x = model(kspace / self.scale, mask, self.maps)
            return fft2c(x[:, None] * self.maps) * self.scale
        if self.family == "image":
            return fft2c(type(model).reconstruct(model, kspace, mask)[:, None].to(self.maps.dtype) * self.maps)
        return self._rcgan(model, kspace, mask, gen)

    def _varnet(self, model: Any, kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        hook = model.cascades[-1].register_forward_hook(lambda m, i, o: captured.append(o)) \
            if len(model.cascades) else None
        try:
            fmask = mask[:, :1, :] if self.num_low is not None else mask
            model(torch.view_as_real(kspace), fmask[:, None, :, :, None], self.num_low)
        finally:
            if hook is not None:
                hook.remove()
        return captured[-1] if captured else kspace

    def _rcgan(self, model: Any, kspace: torch.Tensor, mask: torch.Tensor,
               gen: torch.Generator | None) -> torch.Tensor:
        """The k-space of the mean of ``samples`` generator outputs (before data consistency)."""
        coil_images, _, _ = model._generate(kspace, mask, self.samples, gen)
        return fft2c(coil_images.mean(0))

    def refinement_maps(self, kspace: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
        """The maps of the refinement: the given ones, else ESPIRiT of the scan (computed once)."""
        if self.refine_maps is None:
            self.refine_maps = (espirit_maps(kspace) if maps is None else maps).to(kspace.dtype)
        return self.refine_maps

    def image(self, model: Any, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None,
              hard_dc: bool, refine: str = "none", refine_weight: float = 0.0) -> torch.Tensor:
        """The reconstruction ``[B, H, W]`` from all measurements, measured samples put back if ``hard_dc``
        or ``refine`` (which then makes the coil images the prior of an L1-wavelet problem)."""
        if self.family == "rcgan" or not (hard_dc or refine != "none"):
            return type(model).reconstruct(model, kspace, mask, maps)
        k = torch.where(mask[:, None], kspace, self.predict(model, kspace, mask))
        coil = ifft2c(k)
        if refine == "wavelet":
            coil = wavelet_refine(coil, kspace, mask, self.refinement_maps(kspace, maps), refine_weight)
        if self.family == "modl":
            return sense_combine(coil, self.maps).abs().float()
        return rss(coil).float()


# ------------------------------------------------------------------------------ adaptation


def _adapted_reconstruct(self: Any, kspace: torch.Tensor, mask: torch.Tensor,
                         maps: torch.Tensor | None = None) -> torch.Tensor:
    """``reconstruct`` of an adapted copy: the class's forward pass plus hard data consistency or refinement."""
    kspace, mask, maps = check_inputs(kspace, mask, maps)
    fam = _Family(self, self.adaptation.family, kspace.to(_cdtype(self)), mask, maps,
                  calibration_region(mask[0]) if bool((mask == mask[:1]).all()) else _calib_each(mask),
                  self.adaptation_config.samples)
    cfg, result = self.adaptation_config, self.adaptation
    with torch.no_grad():
        return fam.image(self, kspace.to(_cdtype(self)), mask, maps, cfg.hard_dc, result.refine, cfg.refine_weight)


def _calib_each(mask: torch.Tensor) -> torch.Tensor:
    return torch.stack([calibration_region(m) for m in mask])[:, None]


def _cdtype(model: nn.Module) -> torch.dtype:
    p = next(model.parameters(), None)
    return torch.complex128 if p is not None and p.dtype == torch.float64 else torch.complex64


def _posterior_std(model: Any, kspace: torch.Tensor, mask: torch.Tensor, seed: int) -> float:
    with torch.no_grad():
        post = model.sample(kspace, mask, n=8, generator=torch.Generator().manual_seed(seed))
    return float(post.std.mean())


def adapt(model: ReconModel, kspace: Any, mask: Any, maps: Any = None, config: AdaptConfig | None = None, *,
          progress: bool = True, callback: Callable[[int, Callable[[], torch.Tensor]], None] | None = None,
          ) -> ReconModel:
    """An adapted deep copy of ``model`` for the scan ``(kspace, mask)`` (the model is untouched).

    The copy's ``adaptation`` (:class:`AdaptResult`) says what was done; its ``reconstruct``
    adds hard data consistency when ``config.hard_dc`` and the refinement of ``config.refine``
    (the adapted weights also serve the neighbouring slices of the same volume). See the module
    docstring for the method.
    ``callback(step, image)`` is called after every scored step (step 0: before any update);
    ``image()`` returns the current reconstruction (for quality-versus-steps curves).
    """
    cfg = config or AdaptConfig()
    family = family_of(model)
    kspace, mask, maps = check_inputs(kspace, mask, maps)
    split = HoldoutSplit(mask, holdout=cfg.holdout, loss=cfg.loss, seed=cfg.seed)
    choice = cfg.params or default_params(family)
    refine = cfg.refine or default_refine(family)
    if refine != "none" and family == "rcgan":
        raise InputError("the rcGAN's samples are not refined (each is a posterior draw)", field="refine",
                         expected="none", got=repr(refine))
    adapted = copy.deepcopy(model)
    adapted.eval()
    params = _select(adapted, choice, family)
    for p in adapted.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    kspace = kspace.to(_cdtype(adapted))
    b, dev = kspace.shape[0], kspace.device
    calib = split.calibration.to(dev)
    held = split.held_out.to(dev).expand(b, -1, -1)
    avail = split.available.to(dev).expand(b, -1, -1)
    fam = _Family(adapted, family, kspace, mask, maps, calib[None, None], cfg.samples)
    if refine != "none":  # the maps first: a scan the refinement cannot handle fails (or falls back) at once
        try:
            fam.refinement_maps(kspace, maps)
        except InputError as err:
            if cfg.refine is not None:
                raise
            warnings.warn(f"no {refine} refinement for this scan ({err.problem}); the adapted network alone "
                          "reconstructs it", stacklevel=2)
            refine = "none"
    std_before = _posterior_std(adapted, kspace, mask, cfg.seed) if family == "rcgan" and cfg.steps else None

    def score() -> float:
        with torch.no_grad():
            pred = fam.predict(adapted, kspace, avail, torch.Generator().manual_seed(cfg.seed + 1))
            return float(_error(pred, kspace, held))

    torch_gen = torch.Generator().manual_seed(cfg.seed + 2)
    stopper = HoldoutStopper(cfg.patience, min_delta=cfg.min_delta)
    result = AdaptResult(family=family, params=choice, trainable=sum(p.numel() for p in params), steps_run=0,
                         best_step=None, stopped_early=False, seconds=0.0, split=split.describe(), refine=refine)
    start = time.perf_counter()
    optimiser = torch.optim.Adam(params, lr=cfg.lr)

    def image() -> torch.Tensor:
        with torch.no_grad():
            return fam.image(adapted, kspace, mask, maps, cfg.hard_dc, refine, cfg.refine_weight)

    result.heldout.append(score())
    stopper.update(0, result.heldout[-1], adapted)
    if callback is not None:
        callback(0, image)
    # imported on use: a heavy package that most calls of this module do not need
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps, desc="adapt", unit="step", disable=not progress, leave=False, file=sys.stderr)
    try:
        for t in range(1, cfg.steps + 1):
            inp, loss_set = (s.to(dev).expand(b, -1, -1) for s in split.step(t))
            optimiser.zero_grad(set_to_none=True)
            loss = _error(fam.predict(adapted, kspace, inp, torch_gen), kspace, loss_set)
            loss.backward()
            optimiser.step()
            result.loss.append(float(loss.detach()))
            result.heldout.append(score())
            result.steps_run = t
            bar.update(1)
            bar.set_postfix(heldout=f"{result.heldout[-1]:.4f}", best=stopper.best_step)
            if callback is not None:
                callback(t, image)
            if stopper.update(t, result.heldout[-1], adapted):
                result.stopped_early = t < cfg.steps
                break
    finally:
        bar.close()
    stopper.restore(adapted)
    for p in adapted.parameters():
        p.requires_grad_(False)
    result.best_step = stopper.best_step
    result.seconds = time.perf_counter() - start
    if std_before is not None and std_before > 0:
        result.std_ratio = _posterior_std(adapted, kspace, mask, cfg.seed) / std_before
        if result.std_ratio < 0.5:
            warnings.warn(f"adaptation shrank the posterior standard deviation to {result.std_ratio:.2f} of "
                          "its value before; treat the adapted spread with care", stacklevel=2)
    adapted.adaptation = result
    adapted.adaptation_config = cfg
    if (cfg.hard_dc or refine != "none") and family != "rcgan":
        adapted.reconstruct = types.MethodType(_adapted_reconstruct, adapted)
    return adapted
