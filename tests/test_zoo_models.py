"""Every zoo entry builds at its declared size and runs forward and backward on a small input.

Every entry builds on the meta device (no memory, no time); the forward/backward pass of the
entries above 20M parameters (the published fastMRI, rcGAN, NCSNv2 and ViT sizes) is marked
``slow``: ``pytest -m "not slow"`` skips them, CI runs them.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import mrizoo
from mrizoo.data.synthetic import ellipse_phantom, simulate_multicoil
from mrizoo.models.base import PosteriorSamples, ReconModel


@pytest.fixture(scope="module")
def small_problem() -> tuple[torch.Tensor, torch.Tensor]:
    """8-coil 40 x 36 k-space (odd multiples, not divisible by 16) with a 2x equispaced mask."""
    kspace, _ = simulate_multicoil(ellipse_phantom((40, 36)), num_coils=8, snr_db=30.0, seed=0)
    mask = mrizoo.create_mask("equispaced_fraction", (40, 36), seed=0, acceleration=2, center_fraction=0.25)
    return (kspace * mask.mask)[None], mask.mask


def _short_sampler(model: ReconModel) -> ReconModel:
    if hasattr(model, "langevin"):  # the full ladder (2311 levels x 3 steps) is for GPUs
        model.langevin = dataclasses.replace(model.langevin, start_level=0, end_level=2, reconstruct_samples=2)
    return model


def _rcgan_step(model, kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    y = torch.view_as_real(mrizoo.ifft2c(kspace)).permute(0, 4, 1, 2, 3).reshape(1, -1, *kspace.shape[-2:])
    return model(y / y.std(), mask)


# how each posterior model is trained: rcGAN draws one sample of the generator, the score
# network is trained by denoising score matching (noisy image + noise-level label)
TRAINING_FORWARD = {
    "rcgan": _rcgan_step,
    "ncsnv2": lambda model, kspace, mask: model(torch.randn(2, 2, 40, 36), torch.tensor([0, 1])),
}


BIG = 20_000_000


def _meta_size(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in mrizoo.create(name).parameters())


SIZES = {name: _meta_size(name) for name in mrizoo.list_models()}


@pytest.mark.parametrize("name", mrizoo.list_models())
def test_entry_builds_on_the_meta_device_with_learned_parameters(name: str) -> None:
    builtin = mrizoo.info(name).weights.kind == "builtin"
    assert (SIZES[name] == 0) is builtin, (name, SIZES[name])


def test_the_published_sizes_are_the_papers_sizes() -> None:
    """Parameter counts of the published architectures, against the fastmri package (an oracle)."""
    from fastmri.models import Unet, VarNet

    with torch.device("meta"):
        unet = sum(p.numel() for p in Unet(1, 1, chans=256, num_pool_layers=4).parameters())
        varnet = sum(p.numel() for p in VarNet(num_cascades=12, sens_chans=8, chans=18).parameters())
    assert SIZES["unet-fastmri-knee"] == SIZES["unet-fastmri-brain"] == unet
    assert SIZES["varnet-fastmri-knee"] == SIZES["varnet-fastmri-brain"] == varnet


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if SIZES[n] > BIG else n
                                  for n in mrizoo.list_models()])
def test_entry_builds_runs_forward_and_backward(name: str, small_problem) -> None:
    torch.manual_seed(0)
    kspace, mask = small_problem
    model = _short_sampler(mrizoo.create(name))
    assert isinstance(model, ReconModel)
    assert model.zoo_entry.name == name

    out = model.reconstruct(kspace, mask)
    assert out.shape == (1, 40, 36) and out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:  # classical baselines: nothing to train
        assert mrizoo.info(name).weights.kind == "builtin"
        return
    if not out.requires_grad:  # samplers run without a graph: train through the native network
        out = TRAINING_FORWARD[model.zoo_entry.model.arch](model, kspace, mask)
    out.float().square().mean().backward()
    with_grad = [p for p in params if p.grad is not None and bool(p.grad.abs().sum() > 0)]
    assert len(with_grad) > 0.5 * len(params)

    if model.is_posterior:
        with torch.no_grad():
            samples = model.sample(kspace, mask, n=3)
        assert isinstance(samples, PosteriorSamples)
        assert samples.samples.shape == (3, 1, 40, 36)
        assert bool((samples.std > 0).any())
