"""rcGAN posterior sampling throughput: samples per second at P = 32 (Bendel et al. (2023)'s setting).

Times ``RCGAN.sample(kspace, mask, maps, n=32)`` (one batched pass where memory allows) on an
8-coil slice with the GRO mask, at the paper's 384 x 384 (``--size``), for the full-size
generator (~87M parameters) or a smaller width (``--chans``). Random weights: the speed does
not depend on them. Usage: ``python benchmarks/rcgan_sampling.py [--device cuda]``.

``--demo`` measures the shipped demo sampler's size instead (chans 16, depth 4, the demo's
230 x 180 real-scan shape) and ``--compare`` also times the plain path in the same run: the
generator as built (BatchNorm layers, contiguous activations) and data consistency through
``fft2c``/``ifft2c``, printing both, their ratio and the largest difference of the samples
(same noise: the same draws from the same distribution).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from _timing import describe_device, interleaved_medians, median_time

from mrizoo.data.synthetic import ellipse_phantom, simulate_multicoil
from mrizoo.masks import create_mask
from mrizoo.models.base import PosteriorSamples, check_inputs
from mrizoo.models.rcgan import RCGAN_BENDEL2023, _data_consistency, build_rcgan, normalized_measurement
from mrizoo.physics.fft import ifft2c
from mrizoo.physics.espirit import espirit_maps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=384, help="image side (GRO masks need 384)")
    parser.add_argument("--chans", type=int, default=RCGAN_BENDEL2023.chans, help="generator width (128 = paper)")
    parser.add_argument("--samples", type=int, default=32, help="P, posterior samples per slice")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--demo", action="store_true", help="the demo sampler: chans 16, depth 4, 230 x 180")
    parser.add_argument("--compare", action="store_true", help="also time the plain path in the same run")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    config = dataclasses.replace(RCGAN_BENDEL2023, chans=16 if args.demo else args.chans,
                                 **({"depth": 4} if args.demo else {}))
    model = build_rcgan(config).to(device).eval()
    _randomize_batch_norms(model)
    args.chans = config.chans
    params = sum(p.numel() for p in model.generator.parameters())
    shape = (230, 180) if args.demo else (args.size, args.size)
    kspace, _ = simulate_multicoil(ellipse_phantom(shape), num_coils=8, snr_db=30.0, seed=0)
    if shape == (384, 384):
        mask = create_mask("gro", (384, 384), acceleration=4).mask
    else:
        mask = create_mask("equispaced_fraction", shape, seed=0, acceleration=4, center_fraction=0.08).mask
    kspace = (kspace * mask)[None].to(device)
    mask = mask.to(device)
    maps = espirit_maps(kspace, calib_width=16, crop=0.70)
    gen = torch.Generator(device=device).manual_seed(0)

    def run() -> None:
        model.sample(kspace, mask, maps, n=args.samples, generator=gen)

    if args.compare:  # both timed alternately, so load changes hit both alike
        seconds, plain = interleaved_medians(
            run, lambda: _plain_sample(model, kspace, mask, maps, args.samples, gen), args.repeats)
    else:
        seconds = median_time(run, args.repeats)
    print(f"device: {describe_device(args.device)}; torch {torch.__version__}")
    print(f"generator: chans {args.chans}, {params / 1e6:.1f}M parameters; image {shape[0]}x{shape[1]}, 8 coils")
    print(f"P = {args.samples}: {seconds * 1e3:.0f} ms per slice -> {args.samples / seconds:.1f} samples/s "
          f"(median of {args.repeats})")
    if args.compare:
        ours = model.sample(kspace, mask, maps, n=args.samples, generator=torch.Generator(device=device).manual_seed(1))
        ref = _plain_sample(model, kspace, mask, maps, args.samples, torch.Generator(device=device).manual_seed(1))
        diff = float((ours.samples - ref.samples).abs().max() / ref.samples.abs().max())
        print(f"plain path (generator as built, fft2c/ifft2c): {plain * 1e3:.0f} ms per slice")
        print(f"ratio mrizoo / plain: {seconds / plain:.2f} (speed-up {plain / seconds:.2f}x); "
              f"largest relative sample difference {diff:.1e}")
    return 0


def _randomize_batch_norms(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics, as trained weights have (fresh ones are the identity)."""
    g = torch.Generator().manual_seed(0)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            for t, lo, hi in ((mod.running_mean, -0.5, 0.5), (mod.running_var, 0.5, 2.0),
                              (mod.weight.data, 0.5, 1.5), (mod.bias.data, -0.5, 0.5)):
                t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)


@torch.no_grad()
def _plain_sample(model, kspace, mask, maps, n, generator) -> PosteriorSamples:  # type: ignore[no-untyped-def]
    """The sampling path without the inference-only speed-ups (the reference timing)."""
    import torch.nn.functional as F

    kspace, mask, maps = check_inputs(kspace, mask, maps)
    b, c, h, w = kspace.shape
    kspace = kspace * mask.unsqueeze(1)
    y, mean, std = normalized_measurement(kspace)
    m = 2**model.config.depth
    ph, pw = (-h) % m, (-w) % m
    top, left = ph // 2, pw // 2
    if ph or pw:
        y = F.pad(y + mean / std, (left, pw - left, top, ph - top)) - mean / std
    hp, wp = h + ph, w + pw
    noise = torch.randn(n, b, model.config.noise_chans, hp, wp, generator=generator, device=y.device, dtype=y.dtype)
    y_rep = y.unsqueeze(0).expand(n, -1, -1, -1, -1).reshape(n * b, -1, hp, wp)
    out = model.generator(torch.cat([y_rep, noise.reshape(n * b, -1, hp, wp)], dim=1))
    out = out[..., top : top + h, left : left + w].reshape(n, b, 2 * c, h, w) * std + mean
    coil_images = torch.complex(out[:, :, :c].float(), out[:, :, c:].float())
    images = ifft2c(_data_consistency(coil_images, kspace, mask))
    return PosteriorSamples.from_samples(model.combine_samples(images, kspace, maps))


if __name__ == "__main__":
    raise SystemExit(main())
