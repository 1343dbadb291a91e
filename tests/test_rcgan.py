"""rcGAN generator/discriminator, data consistency and posterior sampling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mrizoo.errors import InputError
from mrizoo.models.base import PosteriorSamples
from mrizoo.models.rcgan import (
    RCGAN,
    RCGAN_BENDEL2023,
    RCGANConfig,
    RCGANDiscriminator,
    RCGANGenerator,
    build_rcgan,
    build_rcgan_discriminator,
)
from mrizoo.models.rcgan_nets import RCGAN_TINY
from mrizoo.physics import fft2c

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = RCGAN_TINY


def _data(b: int = 2, c: int = 4, h: int = 30, w: int = 21, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(b, c, h, w, dtype=torch.complex64, generator=g)
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[:, ::3] = True
    mask[:, w // 2 - 2 : w // 2 + 2] = True
    return k * mask, mask


def _tiny(seed: int = 0, **overrides) -> RCGAN:
    torch.manual_seed(seed)
    cfg = dataclasses.replace(TINY, **overrides)
    return build_rcgan(cfg).eval()


def test_parameter_count_matches_the_paper() -> None:
    """About 87M generator parameters at the paper's size (REFERENCE: ~87M used parameters)."""
    with torch.device("meta"):
        gen = RCGANGenerator(RCGAN_BENDEL2023)
        disc = build_rcgan_discriminator(RCGAN_BENDEL2023)
    n = sum(p.numel() for p in gen.parameters())
    assert abs(n - 87e6) / 87e6 < 0.02, n
    widths = [layer.conv_1.out_channels for layer in gen.down_sample_layers]
    assert gen.down_sample_layers[0].conv_1.in_channels == 18 and widths == [128, 256, 512, 1024]
    assert gen.conv2[0].in_channels == 128 and gen.conv2[1].out_channels == 16
    # discriminator: 32 -> 32 -> 64 ... 512, flattened 512 x 6 x 6 for 384 x 384
    assert disc.initial_layers[0].in_channels == 32 and disc.dense[1].in_features == 512 * 6 * 6
    x = torch.empty(2, 16, 384, 384, device="meta")
    assert disc(x, x).shape == (2, 1)
    with pytest.raises(InputError, match="disc_input_size"):
        disc(torch.empty(1, 16, 320, 320, device="meta"), torch.empty(1, 16, 320, 320, device="meta"))


def test_forward_backward_tiny() -> None:
    torch.manual_seed(0)
    model = RCGAN(TINY, discriminator=True).train()
    y = torch.randn(1, 8, 30, 22)
    mask = torch.zeros(30, 22, dtype=torch.bool)
    mask[:, 5:17] = True
    out = model(y, mask)
    assert out.shape == y.shape
    score = model.discriminator(out, y)
    assert score.shape == (1, 1)
    (out.square().mean() - score.mean()).backward()
    assert all(p.grad is not None for p in model.parameters())
    # the native call keeps the normalised measurement at the sampled locations
    cplx = lambda t: torch.complex(t[:, :4], t[:, 4:])  # noqa: E731
    torch.testing.assert_close(fft2c(cplx(out.detach()))[..., mask], fft2c(cplx(y))[..., mask],
                               rtol=1e-4, atol=1e-5)


def test_samples_are_data_consistent() -> None:
    model = _tiny()
    k, mask = _data()
    ks = model.sample_kspace(k, mask, n=5, generator=torch.Generator().manual_seed(1))
    assert ks.shape == (5, 2, 4, 30, 21) and ks.dtype == torch.complex64
    # sampled k-space of every sample is exactly the measurement
    assert torch.equal(ks[..., mask], k[..., mask].expand(5, -1, -1, -1))
    images = model.sample_coil_images(k, mask, n=5, generator=torch.Generator().manual_seed(1))
    scale = float(k.abs().max())
    torch.testing.assert_close(fft2c(images)[..., mask], k[..., mask].expand(5, -1, -1, -1),
                               rtol=0, atol=1e-5 * scale)
    # ...and the generator filled in the rest
    assert float(ks[..., ~mask].abs().mean()) > 1e-3 * scale


def test_noise_makes_samples_differ_and_seeds_reproduce() -> None:
    model = _tiny()
    k, mask = _data()
    a = model.sample(k, mask, n=4, generator=torch.Generator().manual_seed(3))
    b = model.sample(k, mask, n=4, generator=torch.Generator().manual_seed(3))
    c = model.sample(k, mask, n=4, generator=torch.Generator().manual_seed(4))
    assert isinstance(a, PosteriorSamples) and a.samples.shape == (4, 2, 30, 21)
    torch.testing.assert_close(a.samples, b.samples, rtol=0, atol=0)
    assert not torch.allclose(a.samples, c.samples)
    # different noise maps give different samples of the same measurement
    assert float((a.samples[0] - a.samples[1]).abs().max()) > 0
    assert float(a.std.mean()) > 0


def test_batched_and_chunked_sampling_agree() -> None:
    k, mask = _data()
    one_pass = _tiny(seed=5)
    chunked = _tiny(seed=5, sample_chunk=3)
    assert one_pass._chunk_size(16, 30 * 21, torch.device("cpu")) == 16
    x1 = one_pass.sample_kspace(k, mask, n=8, generator=torch.Generator().manual_seed(2))
    x2 = chunked.sample_kspace(k, mask, n=8, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(x1, x2, rtol=1e-4, atol=1e-5 * float(k.abs().max()))


def test_normalisation_is_undone() -> None:
    """Input normalised by its scalar mean/std, output de-normalised: scaling k scales the samples."""
    model = _tiny()
    k, mask = _data()
    x1 = model.sample_kspace(k, mask, n=2, generator=torch.Generator().manual_seed(0))
    x2 = model.sample_kspace(7.5 * k, mask, n=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x2, 7.5 * x1, rtol=1e-4, atol=1e-4 * float(x1.abs().max()))


def test_reconstruct_is_the_mean_of_the_combined_samples() -> None:
    """``reconstruct`` = ``sample(...).mean`` = the mean of the samples combined per ``coil_combine``
    (numpy oracles for SENSE, RSS and the projection onto the mean's coil profile)."""
    k, mask = _data()
    g = np.random.default_rng(0)
    maps = torch.tensor(g.standard_normal((2, 4, 30, 21)) + 1j * g.standard_normal((2, 4, 30, 21)),
                        dtype=torch.complex64)
    seeded = lambda: torch.Generator().manual_seed(9)  # noqa: E731
    coil = _tiny(reconstruct_samples=3).sample_coil_images(k, mask, n=3, generator=seeded()).numpy()
    m = maps.numpy()[None]
    mean = coil.mean(0)
    norm = np.sqrt((np.abs(mean) ** 2).sum(1))
    oracles = {
        "sense": np.abs((m.conj() * coil).sum(2) / np.sqrt((np.abs(m) ** 2).sum(2))),
        "rss": np.sqrt((np.abs(coil) ** 2).sum(2)),
        "projected": ((mean.conj() / norm[:, None])[None] * coil).sum(2).real,
    }
    for how, per_sample in oracles.items():
        model = _tiny(reconstruct_samples=3, coil_combine=how)
        post = model.sample(k, mask, maps, n=3, generator=seeded())
        np.testing.assert_allclose(post.samples.numpy(), per_sample, rtol=1e-4, atol=1e-5 * per_sample.max())
        rec = model.reconstruct(k, mask, maps, generator=seeded())
        assert rec.shape == (2, 30, 21) and rec.dtype == torch.float32
        torch.testing.assert_close(rec, post.mean)
        np.testing.assert_allclose(rec.numpy(), per_sample.mean(0), rtol=1e-4, atol=1e-5 * per_sample.max())
    # the projection is linear: its mean is the RSS of the mean coil images (the complex average)
    np.testing.assert_allclose(oracles["projected"].mean(0), norm, rtol=1e-4, atol=1e-5 * norm.max())
    # and one sample projected onto itself is its RSS
    one = _tiny(coil_combine="projected").sample(k, mask, n=1, generator=seeded()).samples
    np.testing.assert_allclose(one.numpy(), oracles["rss"][:1], rtol=1e-4, atol=1e-5 * norm.max())


@pytest.mark.parametrize("coils", [6, 4, 2, 1])
def test_any_coil_count_runs_and_stays_data_consistent_in_its_own_coils(coils: int) -> None:
    """More coils than the network reads are compressed, fewer are padded; the samples come
    back in the scan's own coils and agree with every measured sample."""
    model = _tiny()
    k, mask = _data(c=coils)
    coil = model.sample_coil_images(k, mask, n=2, generator=torch.Generator().manual_seed(1))
    assert coil.shape == (2, 2, coils, 30, 21)
    torch.testing.assert_close(fft2c(coil)[..., mask], k.expand(2, -1, -1, -1, -1)[..., mask],
                               rtol=1e-4, atol=1e-4)
    assert model.sample(k, mask, n=1).samples.shape == (1, 2, 30, 21)


def test_coil_compression_makes_samples_independent_of_the_coil_basis() -> None:
    """With compression the network reads SVD virtual coils with fixed phases, so mixing the
    physical coils by any unitary matrix leaves the RSS samples unchanged; without it (the
    behaviour of checkpoints that predate the option) the network reads the coils as given."""
    k, mask = _data(b=1, c=4)
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.complex64, generator=torch.Generator().manual_seed(3)))
    mixed = torch.einsum("dc,bchw->bdhw", q, k)
    draw = lambda m, x: m.sample(x, mask, n=2, generator=torch.Generator().manual_seed(5)).samples  # noqa: E731
    model = _tiny()
    torch.testing.assert_close(draw(model, mixed), draw(model, k), rtol=1e-3, atol=1e-3)
    legacy = _tiny(coil_compression=False)
    legacy.load_state_dict(model.state_dict())
    assert not torch.allclose(draw(legacy, mixed), draw(legacy, k), rtol=1e-3, atol=1e-3)
    # the legacy path feeds the coils unchanged: the same as the network on the raw input
    prepared = legacy.prepare_input(k, mask)
    assert prepared.matrix is None and prepared.coils == 4


def test_training_input_shares_the_compression_of_the_measurements() -> None:
    """``rcgan_input(..., full=)``: target and measurement in the same virtual coils and domain."""
    g = torch.Generator().manual_seed(2)
    full = torch.randn(2, 6, 30, 21, dtype=torch.complex64, generator=g)
    _, mask = _data()
    prepared = _tiny().prepare_input(full, mask, full=full)
    assert prepared.y.shape == prepared.target.shape == (2, 8, 30, 21) and prepared.coils == 4
    cplx = lambda t: torch.complex(t[:, :4], t[:, 4:])  # noqa: E731
    norm = prepared.mean / prepared.std
    # y is the target undersampled at the mask (both standardised by y's mean/std)
    torch.testing.assert_close(fft2c(cplx(prepared.y + norm)) * mask,
                               fft2c(cplx(prepared.target + norm)) * mask, rtol=1e-4, atol=1e-4)
    # fewer coils than the network reads: padding channels are exactly the normalised zero
    two = _tiny().prepare_input(full[:, :2], mask, full=full[:, :2])
    assert two.coils == 2
    torch.testing.assert_close(two.target[:, 2:4], -(two.mean / two.std).expand(-1, 2, 30, 21))
    with pytest.raises(InputError, match="full"):
        _tiny().prepare_input(full, mask, full=full[:, :2])


def test_config_validation() -> None:
    with pytest.raises(InputError, match="coil_combine"):
        RCGANConfig(coil_combine="mean")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="disc_input_size"):
        RCGANConfig(disc_input_size=(32, 32))
    with pytest.raises(InputError, match="depth"):
        RCGANConfig(depth=0)
    assert isinstance(RCGANDiscriminator(TINY)(torch.zeros(1, 8, 20, 20), torch.zeros(1, 8, 20, 20)), torch.Tensor)


def test_real_scan_any_size(brain_kspace: np.ndarray) -> None:
    """8-coil 230 x 180 brain slice (not a multiple of 16): padded, sampled, cropped back."""
    k = torch.tensor(brain_kspace)[None]
    mask = torch.zeros(230, 180, dtype=torch.bool)
    mask[:, ::4] = True
    mask[:, 82:98] = True
    k = k * mask
    torch.manual_seed(0)
    model = build_rcgan(RCGANConfig(chans=4, disc_input_size=None)).eval()
    ks = model.sample_kspace(k, mask, n=2, generator=torch.Generator().manual_seed(0))
    assert ks.shape == (2, 1, 8, 230, 180)
    assert torch.equal(ks[..., mask], k[..., mask].expand(2, 1, -1, -1))
    # SENSE combination with ESPIRiT maps estimated from the 16 central lines (paper settings)
    s = model.sample(k, mask, n=2, generator=torch.Generator().manual_seed(0))
    assert s.samples.shape == (2, 1, 230, 180) and bool(torch.isfinite(s.samples).all())
    assert float(s.samples.amax()) > 0
