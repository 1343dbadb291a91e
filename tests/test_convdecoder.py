"""ConvDecoder: fits a known image from undersampled multi-coil data, stops on held-out error, seeded."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import mrizoo
from mrizoo.data.synthetic import birdcage_maps, ellipse_phantom, simulate_multicoil
from mrizoo.errors import InputError
from mrizoo.metrics.region import score
from mrizoo.models.convdecoder import ConvDecoderConfig, ConvDecoderRecon, decoder_sizes, fit_convdecoder
from mrizoo.physics import ifft2c, rss

pytestmark = pytest.mark.usefixtures("one_thread")  # fixed thread count: bit-identical fits, restored after

SHAPE = (48, 40)
SMALL = ConvDecoderConfig(channels=32, num_layers=5, input_scale=8, warm_steps=80, steps=40, eval_every=10,
                          patience=4, holdout=0.1, seed=0)


def _problem(mask_name: str, acceleration: float, snr_db: float = 40.0):
    image = ellipse_phantom(SHAPE)
    maps = birdcage_maps(8, SHAPE)
    kspace, _ = simulate_multicoil(image, maps=maps, snr_db=snr_db, seed=0)
    centre = {"center_fraction": 0.16} if mask_name.startswith("equispaced") else {"calib": 8}
    m = mrizoo.create_mask(mask_name, SHAPE, seed=0, acceleration=acceleration, **centre).mask
    truth = rss(ifft2c(fft_of(image, maps)))
    return (kspace * m)[None], m, maps[None], truth


def fft_of(image: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    from mrizoo.physics import fft2c

    return fft2c(maps * image.to(torch.complex64))


@pytest.mark.parametrize(("mask_name", "acceleration"), [("equispaced_fraction", 3), ("poisson2d", 3)])
def test_fits_a_known_image_better_than_zero_filling(mask_name: str, acceleration: float) -> None:
    kspace, mask, maps, truth = _problem(mask_name, acceleration)
    assert mask.ndim == 2 and (mask_name != "equispaced_fraction" or bool((mask == mask[:1]).all()))
    cd = ConvDecoderRecon(SMALL).reconstruct(kspace, mask, maps)[0]
    zf = mrizoo.create("zerofilled").reconstruct(kspace, mask)[0]
    s_cd, s_zf = score(truth, cd), score(truth, zf)
    assert cd.shape == SHAPE and cd.dtype == torch.float32
    assert s_cd["psnr"] > s_zf["psnr"] + 1.5, (s_cd, s_zf)
    assert s_cd["ssim"] > s_zf["ssim"], (s_cd, s_zf)


def test_column_mask_and_its_2d_layout_give_the_same_image() -> None:
    kspace, mask, maps, _ = _problem("equispaced_fraction", 3)
    cfg = dataclasses.replace(SMALL, warm_steps=10, steps=10)
    a = ConvDecoderRecon(cfg).reconstruct(kspace, mask[0], maps)  # fastMRI's [W] column mask
    b = ConvDecoderRecon(cfg).reconstruct(kspace, mask, maps)
    assert torch.equal(a, b)


def test_deterministic_under_a_seed_and_seed_matters() -> None:
    kspace, mask, maps, _ = _problem("poisson2d", 3)
    cfg = dataclasses.replace(SMALL, warm_steps=10, steps=10)
    torch.manual_seed(123)
    a = ConvDecoderRecon(cfg).reconstruct(kspace, mask, maps)
    torch.manual_seed(456)  # the global RNG state does not matter
    b = ConvDecoderRecon(cfg).reconstruct(kspace, mask, maps)
    c = ConvDecoderRecon(dataclasses.replace(cfg, seed=1)).reconstruct(kspace, mask, maps)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_holdout_stops_before_a_long_run_overfits_noise() -> None:
    """Measurements of pure noise: nothing in them predicts the held-out part, so fitting them longer only
    raises the held-out error. A long run shows it; the stopper keeps the early minimum and stops soon after."""
    _, mask, maps, _ = _problem("poisson2d", 2)
    gen = torch.Generator().manual_seed(0)
    noise = torch.complex(torch.randn(8, *SHAPE, generator=gen), torch.randn(8, *SHAPE, generator=gen)) * mask
    long = dataclasses.replace(SMALL, channels=16, num_layers=2, input_scale=1, warm_start="none", steps=120,
                               patience=1000, lr=0.02)
    _, info_long = fit_convdecoder(noise, mask, maps[0], long)
    errors = dict(info_long.history)
    best = min(errors, key=errors.get)
    assert info_long.steps == 120 and not info_long.stopped_early
    assert best <= 40 and errors[120] > errors[best], errors

    image, info = fit_convdecoder(noise, mask, maps[0], dataclasses.replace(long, patience=3))
    assert info.stopped_early and info.steps == best + 3 * long.eval_every < 120
    assert info.best_step == best and dict(info.history) == {s: errors[s] for s in dict(info.history)}
    image_last, _ = fit_convdecoder(noise, mask, maps[0], dataclasses.replace(long, steps=info.steps, holdout=0.0))
    assert not torch.equal(image, image_last)  # the kept weights are restored, not the last step's


def test_warm_start_and_batch_and_estimated_maps() -> None:
    kspace, mask, _, truth = _problem("equispaced_fraction", 3)
    model = ConvDecoderRecon(dataclasses.replace(SMALL, warm_steps=10, steps=10))
    out = model.reconstruct(kspace.expand(2, -1, -1, -1), mask)  # ESPIRiT maps estimated
    assert out.shape == (2, *SHAPE) and torch.equal(out[0], out[1])
    assert len(model.last_fit) == 2
    assert bool(torch.isfinite(out).all()) and float(out.min()) >= 0


def test_decoder_sizes_grow_to_the_image() -> None:
    sizes = decoder_sizes((230, 180), 6, 16)
    assert sizes[0] == (14, 11) and sizes[-1] == (230, 180) and len(sizes) == 6
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(sizes, sizes[1:]))
    assert decoder_sizes((10, 6), 4, 16)[0] == (4, 4)


@pytest.mark.parametrize(("field", "value"), [("channels", 0), ("steps", 0), ("kernel_size", 2), ("lr", -1.0),
                                              ("holdout", 0.95), ("combine", "mean"), ("upsample", "cubic"),
                                              ("warm_start", "zf"), ("seed", 1.5), ("num_layers", 1)])
def test_bad_config_is_refused(field: str, value: object) -> None:
    with pytest.raises(InputError, match=field):
        ConvDecoderConfig(**{field: value})


def test_bad_inputs_are_refused_before_fitting() -> None:
    kspace, mask, maps, _ = _problem("equispaced_fraction", 3)
    model = ConvDecoderRecon(SMALL)
    with pytest.raises(InputError, match="maps"):
        model.reconstruct(kspace, mask, maps[..., :-1])
    bad = kspace.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError):
        model.reconstruct(bad, mask, maps)
    assert model.last_fit == []


def test_zoo_entry() -> None:
    entry = mrizoo.info("convdecoder")
    assert entry.weights.kind == "builtin" and "untrained" in entry.tags
    model = mrizoo.create("convdecoder")
    assert isinstance(model, ConvDecoderRecon) and model.needs_maps
    assert model.config == ConvDecoderConfig()
