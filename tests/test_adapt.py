"""Test-time adaptation: hold-out split and stopping, adapting to a distribution shift, every family."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from mrizoo.data.synthetic import birdcage_maps, ellipse_phantom, make_test_volume, smooth_phase
from mrizoo.errors import InputError
from mrizoo.masks import create_mask
from mrizoo.models.adapt import AdaptConfig, adapt
from mrizoo.models.adapting import AdaptingModel
from mrizoo.models.holdout import HoldoutSplit, HoldoutStopper
from mrizoo.models.modl import MoDL, MoDLConfig
from mrizoo.models.rcgan import RCGAN, RCGANConfig
from mrizoo.models.unet import UnetConfig, build_unet
from mrizoo.models.varnet import VarNet, VarNetConfig
from mrizoo.models.vit import ViTConfig, ViTRecon
from mrizoo.physics import fft2c, ifft2c, rss

H = W = 32
COLS = create_mask("equispaced_fraction", (H, W), acceleration=2.5, center_fraction=0.2, seed=0).lines


def _data(zs: list[float], coils: torch.Tensor, contrast: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fully sampled k-space ``[N, C, H, W]`` of ellipse phantoms (contrast ``a`` or inverted ``b``) and RSS."""
    images = []
    for i, z in enumerate(zs):
        x = ellipse_phantom((H, W), z=z)
        if contrast == "b":
            x = torch.where(x > 0, 1.05 - x, x)
        images.append(x * torch.exp(1j * smooth_phase((H, W), seed=seed + i)))
    k = fft2c(coils[None] * torch.stack(images).to(torch.complex64)[:, None])
    return k, rss(ifft2c(k))


def _nmse(model: torch.nn.Module, k: torch.Tensor, target: torch.Tensor) -> float:
    with torch.no_grad():
        out = model.reconstruct(k * COLS, COLS)
    return float(((out - target) ** 2).sum() / (target**2).sum())


@pytest.fixture(scope="module")
def trained() -> dict:
    """A small VarNet trained on distribution A (4-coil array, one contrast) and data from a shifted B."""
    torch.manual_seed(0)
    k_a, t_a = _data([-0.3, 0.0, 0.3], birdcage_maps(4, (H, W)), "a", 0)
    k_b, t_b = _data([0.2], birdcage_maps(4, (H, W), radius=1.1, rotation=0.7), "b", 100)
    net = VarNet(VarNetConfig(num_cascades=2, sens_chans=4, sens_pools=2, chans=8, pools=2))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(60):
        opt.zero_grad()
        loss = (net.reconstruct(k_a * COLS, COLS) - t_a).abs().mean() / t_a.abs().mean()
        loss.backward()
        opt.step()
    net.eval()
    return {"net": net, "k_a": k_a, "t_a": t_a, "k_b": k_b, "t_b": t_b}


# ------------------------------------------------------------------------------ hold-out split


def test_split_partitions_the_measurements_and_keeps_the_calibration_in_the_input():
    mask = COLS.expand(H, W)
    split = HoldoutSplit(mask, holdout=0.2, loss=0.3, seed=1)
    assert split.columns and bool((split.held_out == split.held_out[:1]).all())  # whole columns
    assert not (split.held_out & split.calibration).any()
    for t in (1, 2):
        inp, loss = split.step(t)
        assert not (inp & loss).any() and not (inp & split.held_out).any() and not (loss & split.held_out).any()
        assert torch.equal(inp | loss | split.held_out, mask)
        assert not (split.calibration & ~inp).any()
    assert not torch.equal(split.step(1)[1], split.step(2)[1])  # a fresh split per step
    assert torch.equal(split.step(3)[1], HoldoutSplit(mask, holdout=0.2, loss=0.3, seed=1).step(3)[1])
    poisson = create_mask("poisson2d", (H, W), acceleration=3, seed=0).mask
    two_d = HoldoutSplit(poisson, seed=0)
    assert not two_d.columns and torch.equal(two_d.available | two_d.held_out, poisson)


@pytest.mark.parametrize("kwargs, field", [
    ({"holdout": 0.95}, "holdout"), ({"loss": -0.1}, "loss"), ({"holdout": 0.5, "loss": 0.5}, "loss"),
    ({"unit": "rows"}, "unit"), ({"seed": 1.5}, "seed"),
])
def test_split_refuses_bad_settings(kwargs, field):
    with pytest.raises(InputError) as err:
        HoldoutSplit(COLS.expand(H, W), **kwargs)
    assert err.value.field == field


def test_split_refuses_masks_it_cannot_split():
    with pytest.raises(InputError, match="nothing outside the calibration region"):
        HoldoutSplit(torch.ones(H, W, dtype=torch.bool))
    with pytest.raises(InputError, match="one mask for the whole batch"):
        HoldoutSplit(torch.stack([COLS.expand(H, W), COLS.flip(0).expand(H, W)]))


def test_stopper_keeps_the_best_weights_and_stops_after_patience():
    net = torch.nn.Linear(2, 2)
    stop = HoldoutStopper(patience=2)
    stopped_at = None
    for t, error in enumerate([3.0, 2.0, 2.5, 1.0, 1.5, 1.6, 0.5]):
        with torch.no_grad():
            net.weight.fill_(float(t))
        if stop.update(t, error, net):
            stopped_at = t
            break
    assert stopped_at == 5 and stop.best_step == 3 and stop.best_error == 1.0
    stop.restore(net)
    assert bool((net.weight == 3.0).all())
    with pytest.raises(InputError):
        HoldoutStopper(patience=0)


# ------------------------------------------------------------------------------ adaptation


def test_adapting_to_a_shifted_distribution_lowers_the_error(trained):
    net, k_b, t_b = trained["net"], trained["k_b"], trained["t_b"]
    assert _nmse(net, trained["k_a"][:1], trained["t_a"][:1]) < 0.02  # it learned distribution A
    plain = _nmse(net, k_b, t_b)
    adapted = net.adapt(k_b * COLS, COLS, steps=20, lr=3e-3, refine="none", progress=False)
    assert adapted.adaptation.best_step > 0
    assert _nmse(adapted, k_b, t_b) < 0.85 * plain


def test_heldout_stop_triggers_before_a_long_run_overfits_noise(trained):
    net, k_b, t_b = trained["net"], trained["k_b"], trained["t_b"]
    gen = torch.Generator().manual_seed(5)
    sigma = 0.3 * float(k_b[..., COLS].abs().std())
    noisy = k_b + (sigma * torch.complex(torch.randn(k_b.shape, generator=gen),
                                         torch.randn(k_b.shape, generator=gen))).to(torch.complex64)
    curve: list[float] = []

    def track(step, image):
        curve.append(float(((image() - t_b) ** 2).sum() / (t_b**2).sum()))

    adapt(net, noisy * COLS, COLS, config=AdaptConfig(steps=60, lr=1e-2, patience=1000, refine="none"),
          progress=False, callback=track)
    assert curve[-1] > 1.2 * min(curve)  # training on noisy measurements for long overfits them
    stopped = net.adapt(noisy * COLS, COLS, steps=60, lr=1e-2, refine="none", progress=False)
    assert stopped.adaptation.stopped_early and stopped.adaptation.steps_run < 60
    assert _nmse(stopped, noisy, t_b) < 0.9 * curve[-1]


def test_original_is_untouched_and_adaptation_is_seeded(trained):
    net, k_b = trained["net"], trained["k_b"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    a1 = net.adapt(k_b * COLS, COLS, steps=3, lr=3e-3, seed=4, progress=False)
    a2 = net.adapt(k_b * COLS, COLS, steps=3, lr=3e-3, seed=4, progress=False)
    a3 = net.adapt(k_b * COLS, COLS, steps=3, lr=3e-3, seed=5, progress=False)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.requires_grad for p in net.parameters())
    assert a1.adaptation.heldout == a2.adaptation.heldout
    assert all(torch.equal(v, a2.state_dict()[k]) for k, v in a1.state_dict().items())
    assert a1.adaptation.heldout != a3.adaptation.heldout
    assert not hasattr(net, "adaptation")


FAMILIES = {
    "unet": lambda: build_unet(UnetConfig(chans=4, num_pool_layers=2)),
    "vit": lambda: ViTRecon(ViTConfig(patch_size=8, embed_dim=24, depth=1, num_heads=3, avg_image_size=48)),
    "varnet": lambda: VarNet(VarNetConfig(num_cascades=2, sens_chans=4, sens_pools=2, chans=4, pools=2)),
    "modl": lambda: MoDL(MoDLConfig(num_unrolls=2, cg_iters=3, chans=8, num_blocks=3)),
    "rcgan": lambda: RCGAN(RCGANConfig(in_coils=4, chans=4, depth=2, disc_input_size=None, reconstruct_samples=2)),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_learned_family_adapts(trained, family):
    torch.manual_seed(0)
    net = FAMILIES[family]().eval()
    k = trained["k_b"] * COLS
    adapted = net.adapt(k, COLS, steps=2, lr=1e-3, progress=False)
    out = adapted.reconstruct(k, COLS)
    assert out.shape == (1, H, W) and bool(torch.isfinite(out).all())
    assert adapted.adaptation.steps_run == 2 and len(adapted.adaptation.heldout) == 3
    if family == "rcgan":  # the generator adapts; its posterior spread must not collapse
        assert adapted.adaptation.std_ratio is not None and adapted.adaptation.std_ratio > 0.5
        post = adapted.sample(k, COLS, n=4)
        assert float(post.std.mean()) > 0


def test_bad_adaptation_options_are_refused(trained):
    net, k = trained["net"], trained["k_b"] * COLS
    with pytest.raises(InputError, match="no trainable normalisation parameters"):
        net.adapt(k, COLS, steps=1, params="norm", progress=False)
    with pytest.raises(InputError, match="unknown adaptation option"):
        net.adapt(k, COLS, stepz=1)
    with pytest.raises(InputError, match="unknown parameter choice"):
        net.adapt(k, COLS, params="first")
    with pytest.raises(InputError, match="learning rate"):
        net.adapt(k, COLS, lr=0)
    from mrizoo.zoo import create

    with pytest.raises(InputError, match="cannot be adapted"):
        adapt(create("cgsense"), k, COLS)


def test_reconstruct_adapts_each_slice_and_records_it(trained, tmp_path):
    from mrizoo.reconstruct import reconstruct_file

    src = make_test_volume(tmp_path / "vol.h5", num_slices=2, shape=(H, W), num_coils=4, seed=3)
    out = tmp_path / "out.h5"
    res = reconstruct_file(trained["net"], src, out, mask="equispaced_fraction", acceleration=2.5,
                           center_fraction=0.2, adapt=True, adapt_steps=2, progress=False)
    assert "adapted per slice" in res.summary()
    with h5py.File(out) as f:
        assert f["reconstruction"].shape == (2, H, W)
        assert bool(f.attrs["test_time_adaptation"]) and f.attrs["adapt_max_steps"] == 2
        assert len(f.attrs["adapt_seconds"]) == 2
        assert f.attrs["adapt_refine"] == "wavelet"  # VarNet's default refinement, recorded
    assert "then wavelet refinement" in res.summary()
    # --adapt-steps 0: no adaptation step, only the refinement (on top of the plain network's output)
    zero = reconstruct_file(trained["net"], src, tmp_path / "zero.h5", mask="equispaced_fraction", acceleration=2.5,
                            center_fraction=0.2, adapt=True, adapt_steps=0, progress=False)
    assert "of at most 0" in zero.summary()
    with h5py.File(tmp_path / "zero.h5") as f, h5py.File(out) as g:
        assert f.attrs["adapt_max_steps"] == 0 and list(f.attrs["adapt_kept_steps"]) == [0, 0]
        assert not np.allclose(f["reconstruction"][()], g["reconstruction"][()])  # the adapted weights differ
    with pytest.raises(InputError, match="integer >= 0"):
        reconstruct_file(trained["net"], src, tmp_path / "other.h5", adapt=True, adapt_steps=-1, progress=False)
    with pytest.raises(InputError, match="needs --adapt"):
        reconstruct_file(trained["net"], src, tmp_path / "other.h5", adapt_steps=2, progress=False)
    with pytest.raises(InputError, match="measured size"):
        reconstruct_file(trained["net"], src, tmp_path / "other.h5", adapt=True, upsample=2, progress=False)
    assert not (tmp_path / "other.h5").exists()


def test_adapting_model_scores_through_the_common_interface(trained):
    wrapped = AdaptingModel(trained["net"], AdaptConfig(steps=2))
    k = torch.cat([trained["k_b"], trained["k_b"]]) * COLS
    assert wrapped.reconstruct(k, COLS).shape == (2, H, W) and len(wrapped.seconds) == 2


def test_refinement_needs_maps_and_falls_back_only_when_it_was_not_asked_for(trained):
    """Too few calibration lines for ESPIRiT: the default refinement is dropped with a warning (the adapted
    network alone reconstructs); asked for explicitly, it is an InputError before any adaptation step."""
    narrow = create_mask("equispaced_fraction", (H, W), acceleration=2.5, center_fraction=0.1, seed=0).lines
    k = trained["k_b"] * narrow
    with pytest.warns(UserWarning, match="no wavelet refinement"):
        adapted = trained["net"].adapt(k, narrow, steps=1, progress=False)
    assert adapted.adaptation.refine == "none" and adapted.adaptation.steps_run == 1
    assert bool(torch.isfinite(adapted.reconstruct(k, narrow)).all())
    with pytest.raises(InputError, match="ESPIRiT"):
        trained["net"].adapt(k, narrow, steps=1, refine="wavelet", progress=False)
