"""The demo: reconstruct one real undersampled multi-coil slice with zoo models and baselines.

By default it uses what ships inside the package, so it runs offline on a fresh install: the
real undersampled brain scan of :mod:`mrizoo.demo.scan` and the demo-quality zoo models
``varnet-mini-r4`` and ``rcgan-mini-r4`` (trained by their recipes on the demo mini-pool).
Every method -- zero-filling, CG-SENSE, L1-wavelet and each model -- is scored against the
same reference (the RSS image of the fully sampled k-space, fastMRI's convention), and a
figure shows all of them with their errors and, for posterior models, the pixel-wise standard
deviation of the samples. ``--input`` takes another scan: an undersampled fastMRI ``.h5``
(its stored mask is used; metrics need a ``reconstruction_rss``), or a fully sampled ``.h5``
or BART ``.cfl`` slice, undersampled here with a seeded mask.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mrizoo.classical import cg_sense, l1_wavelet, zero_filled
from mrizoo.data.slices import center_crop
from mrizoo.errors import InputError
from mrizoo.figures import save_panels
from mrizoo.masks import create_mask
from mrizoo.metrics import evaluate_volume
from mrizoo.physics import espirit_maps, ifft2c, rss
from mrizoo.reconstruct import _accepts

__all__ = ["DEFAULT_MODELS", "DemoConfig", "DemoResult", "DemoInput", "run_demo", "load_slice", "demo_input"]

DEFAULT_MODELS: tuple[str, ...] = ("varnet-mini-r4", "rcgan-mini-r4")


@dataclass(frozen=True)
class DemoConfig:
    """What to reconstruct and how.

    ``input`` None = the shipped scan. ``mask``/``acceleration``/``center_fraction``/``seed``
    undersample fully sampled input (an undersampled file keeps its own mask). ``models``: zoo
    names or checkpoint folders; ``samples``: posterior samples drawn by posterior models.
    """

    input: Path | None = None
    slice_index: int | None = None
    mask: str = "equispaced_fraction"
    acceleration: float = 4.0
    center_fraction: float = 0.08
    seed: int = 0
    models: tuple[str, ...] = DEFAULT_MODELS
    samples: int = 8
    baselines: bool = True
    device: str = "cpu"
    output: Path = Path("mrizoo-demo.png")

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise InputError("posterior models need at least 2 samples for a standard deviation",
                             field="samples", expected=">= 2", got=self.samples)


@dataclass
class DemoInput:
    """One undersampled slice: k-space ``[C, H, W]`` (zeros where not sampled), mask ``[H, W]`` and reference."""

    kspace: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor | None
    source: str
    acceleration: float
    retrospective: bool


@dataclass
class DemoResult:
    """Metrics per method (vs the reference), timings, the posterior std per posterior model, and the figure."""

    source: str
    shape: tuple[int, ...]
    acceleration: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    mean_std: dict[str, float] = field(default_factory=dict)
    figure: Path | None = None


def load_slice(path: Path, slice_index: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                    torch.Tensor | None]:
    """``(kspace [C, H, W], stored mask or None, stored reconstruction_rss or None)`` of one slice."""
    from mrizoo.data import FastMRIVolume, bart_to_kspace, read_cfl

    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        with FastMRIVolume(path) as vol:
            if not vol.multicoil:
                raise InputError("the demo needs multi-coil k-space", path=path, field="kspace",
                                 expected="[slices, coils, H, W]", got=str(vol.kspace_shape))
            index = vol.num_slices // 2 if slice_index is None else slice_index
            target = vol.target(index) if "reconstruction_rss" in vol.target_keys else None
            return vol.kspace(index), vol.mask(), target
    if suffix in (".cfl", ".hdr", ""):
        k = torch.from_numpy(bart_to_kspace(read_cfl(path), path=path))  # [slices, coils, H, W]
        index = k.shape[0] // 2 if slice_index is None else slice_index
        if not 0 <= index < k.shape[0]:
            raise InputError("slice index out of range", path=path, expected=f"0..{k.shape[0] - 1}", got=index)
        return k[index], None, None
    raise InputError("unsupported input type", path=path, expected="a fastMRI .h5 file or a BART .cfl/.hdr pair",
                     got=suffix or "no suffix")


def demo_input(cfg: DemoConfig) -> DemoInput:
    """The undersampled slice the demo reconstructs (the shipped scan unless ``cfg.input`` is set)."""
    from mrizoo.demo.scan import demo_scan_path

    path = Path(cfg.input) if cfg.input is not None else demo_scan_path()
    kspace, stored, target = load_slice(path, cfg.slice_index)
    c, h, w = kspace.shape
    if stored is not None and not bool(stored.all()):  # undersampled file: its own mask
        mask = stored.expand(h, w)  # [W] or [H, W]; FastMRIVolume checked that it fits the k-space
        source = "shipped scan " + path.name if cfg.input is None else str(path)
        return DemoInput(kspace * mask, mask, target, source, h * w / float(mask.sum()), retrospective=False)
    m = create_mask(cfg.mask, (h, w), seed=cfg.seed, acceleration=cfg.acceleration,
                    center_fraction=cfg.center_fraction)
    reference = rss(ifft2c(kspace)) if target is None else target
    return DemoInput(kspace * m.mask, m.mask, reference, str(path), m.acceleration, retrospective=True)


def run_demo(config: DemoConfig | None = None) -> DemoResult:
    """Run the demo and return its metrics; the figure is written to ``config.output``."""
    from mrizoo.zoo import load

    cfg = config or DemoConfig()
    data = demo_input(cfg)
    c, h, w = data.kspace.shape
    result = DemoResult(source=data.source, shape=(c, h, w), acceleration=data.acceleration)
    models = [(spec, load(spec, map_location=cfg.device)) for spec in cfg.models]  # fail early on bad names

    t0 = time.perf_counter()
    maps = espirit_maps(data.kspace)
    result.seconds["espirit"] = time.perf_counter() - t0
    images: dict[str, torch.Tensor] = {}
    std_maps: dict[str, torch.Tensor] = {}

    def timed(name: str, run) -> None:
        t = time.perf_counter()
        images[name] = run().abs().float().cpu()
        result.seconds[name] = time.perf_counter() - t

    timed("zero-filled", lambda: zero_filled(data.kspace, maps=maps))
    if cfg.baselines:
        timed("CG-SENSE", lambda: cg_sense(data.kspace, data.mask, maps))
        timed("L1-wavelet", lambda: l1_wavelet(data.kspace, data.mask, maps))
    device = torch.device(cfg.device)
    kspace, mask = data.kspace[None].to(device), data.mask.to(device)
    for spec, model in models:
        name = str(spec)
        t = time.perf_counter()
        with torch.no_grad():
            if getattr(model, "is_posterior", False):
                seeded = {"generator": torch.Generator(device=device).manual_seed(cfg.seed)} \
                    if _accepts(model.sample, "generator") else {}
                post = model.sample(kspace, mask, n=cfg.samples, **seeded)
                images[name] = post.mean[0].float().cpu()
                std_maps[f"{name} std"] = post.std[0].float().cpu()
                result.mean_std[name] = float(post.std.mean())
            else:
                images[name] = model.reconstruct(kspace, mask)[0].float().cpu()
        result.seconds[name] = time.perf_counter() - t

    captions: dict[str, str] = {}
    target = data.target
    if target is not None:
        for name, image in list(images.items()):
            images[name] = center_crop(image, tuple(target.shape))
            m = evaluate_volume(target[None], images[name][None])
            result.metrics[name] = m
            captions[name] = f"SSIM {m['ssim']:.3f}  PSNR {m['psnr']:.2f} dB"
        std_maps = {k: center_crop(v, tuple(target.shape)) for k, v in std_maps.items()}
    for key, std in std_maps.items():
        captions[key] = f"P = {cfg.samples}, mean {float(std.mean()):.3g}"
    panels = ({"reference": target} if target is not None else {}) | images
    how = "retrospective" if data.retrospective else "stored"
    result.figure = save_panels(
        cfg.output, panels, reference="reference" if target is not None else None, captions=captions,
        heatmaps=std_maps,
        suptitle=f"{data.source}: {how} mask, R = {data.acceleration:.2f} (reference: RSS of fully sampled k-space)",
    )
    return result
