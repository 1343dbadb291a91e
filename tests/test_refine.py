"""Wavelet refinement of a network's coil images: what it keeps, what it changes, on a real scan."""

from __future__ import annotations

import pytest
import torch

from mrizoo.data.synthetic import birdcage_maps, ellipse_phantom, smooth_phase
from mrizoo.errors import InputError
from mrizoo.models.refine import wavelet_refine
from mrizoo.physics import fft2c, ifft2c, sense_combine
from mrizoo.physics.espirit import espirit_maps


def _scan(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Measured k-space [1, C, H, W] of a noisy 4-coil phantom, a column mask [1, H, W], its ESPIRiT
    maps, 'network' coil images (the truth plus an error) and the noiseless truth."""
    g = torch.Generator().manual_seed(seed)
    h = w = 64
    x = ellipse_phantom((h, w)) * torch.exp(1j * smooth_phase((h, w), seed=seed))
    clean = (birdcage_maps(4, (h, w)) * x.to(torch.complex64))[None]
    coils = clean + 0.02 * torch.randn(clean.shape, dtype=torch.complex64, generator=g)
    mask = torch.zeros(1, h, w, dtype=torch.bool)
    mask[..., ::3] = True
    mask[..., 26:38] = True
    k = fft2c(coils) * mask[:, None]
    maps = espirit_maps(k[0], calib_width=12)[None]
    net = coils + 0.1 * torch.randn(coils.shape, dtype=torch.complex64, generator=g)
    return k, mask, maps, net, clean


def test_the_part_outside_the_maps_is_the_networks() -> None:
    k, mask, maps, net, _ = _scan()
    assert bool((maps.abs().sum(1) == 0).any())  # some pixels lie outside every map
    out = wavelet_refine(net, k, mask, maps, prior_weight=0.003)
    outside_in = net - maps * sense_combine(net, maps)[:, None]
    outside_out = out - maps * sense_combine(out, maps)[:, None]
    torch.testing.assert_close(outside_out, outside_in, atol=1e-5, rtol=0)
    assert float((out - net).abs().max()) > 0.01  # the part inside the maps' range did change


def test_a_heavy_prior_returns_the_network() -> None:
    k, mask, maps, net, _ = _scan(1)
    out = wavelet_refine(net, k, mask, maps, prior_weight=1e5)
    torch.testing.assert_close(out, net, atol=2e-4 * float(net.abs().max()), rtol=0)


def test_refinement_moves_towards_the_measurements() -> None:
    """Unlike the network's coil images, the refined ones agree with the measured samples (soft DC)."""
    k, mask, maps, net, _ = _scan(2)
    out = wavelet_refine(net, k, mask, maps, prior_weight=0.003)

    def misfit(coils: torch.Tensor) -> float:
        inside = maps * sense_combine(coils, maps)[:, None]  # the part the maps represent
        return float(((fft2c(inside) - fft2c(maps * sense_combine(ifft2c(k), maps)[:, None])) * mask[:, None])
                     .abs().norm())

    assert misfit(out) < 0.7 * misfit(net)


def test_refinement_corrects_a_noisy_network() -> None:
    """The network's error is white noise: the measurements and the sparsity prior remove much of it."""
    k, mask, maps, net, truth = _scan(3)
    out = wavelet_refine(net, k, mask, maps, prior_weight=0.003)
    # the SENSE image (the part the refinement changes; the rest stays the network's)
    err_net, err_out = ((sense_combine(x, maps) - sense_combine(truth, maps)).norm() for x in (net, out))
    assert err_out < 0.7 * err_net, (float(err_out), float(err_net))


def test_shapes_are_checked() -> None:
    k, mask, maps, net, _ = _scan()
    with pytest.raises(InputError, match="same shape"):
        wavelet_refine(net[:, :3], k, mask, maps, prior_weight=0.003)


def test_map_scale_does_not_matter() -> None:
    """Maps are normalised to unit RSS first: scaled maps give the same refinement."""
    k, mask, maps, net, _ = _scan(4)
    out = wavelet_refine(net, k, mask, maps, prior_weight=0.003)
    scaled = wavelet_refine(net, k, mask, 3.0 * maps, prior_weight=0.003)
    torch.testing.assert_close(scaled, out, atol=1e-4 * float(out.abs().max()), rtol=0)
