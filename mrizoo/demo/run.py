"""The demo: reconstruct one real undersampled multi-coil slice with zoo models and baselines.

By default it uses what ships inside the package, so it runs offline on a fresh install: the
real undersampled brain scan of :mod:`mrizoo.demo.scan` and the demo-quality zoo models
``varnet-mini-r4`` and ``rcgan-mini-r4`` (trained by their recipes on the demo mini-pool).
The baselines are the zoo entries ``zerofilled``, ``cgsense`` and ``l1wavelet``, run exactly as
``mrizoo evaluate`` runs them, and every method is scored by :func:`mrizoo.metrics.score` (fastMRI's
centre crop to the reference's size, data range over the reference volume) against the reference
of fully sampled data, so the demo and ``evaluate`` print the same numbers for the same input.
A figure shows all of them with their errors and, for posterior models, the pixel-wise standard
deviation of the samples on the same fixed colour scale as the errors (image units), with the
sampler's calibration against the reference (:mod:`mrizoo.metrics.calibration`: variance/error
ratio, 1.0 when calibrated, and 2-sigma coverage) in its caption. ``--input`` takes another scan (``.h5`` or BART ``.cfl``); what it
measured is read from the data (:func:`mrizoo.masks.detect_sampling`): fully sampled k-space is
undersampled here with a seeded mask, undersampled k-space is reconstructed from exactly the
locations it measured and never undersampled again, and it is scored only against a reference
of fully sampled data (:func:`mrizoo.evaluate.slice_reference`); without one there are no metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mrizoo.data import FastMRIVolume, bart_to_kspace, read_cfl
from mrizoo.demo.scan import demo_scan_path
from mrizoo.errors import InputError
from mrizoo.evaluate import Reference, slice_reference
from mrizoo.figures import save_panels
from mrizoo.masks import create_mask, detect_sampling, list_masks
from mrizoo.masks._common import check_acceleration, check_center_fraction
from mrizoo.metrics import caption, center_crop, metric_region, score
from mrizoo.metrics.calibration import calibration
from mrizoo.models.adapt import family_of
from mrizoo.models.checkpoint import describe_weights
from mrizoo.physics import espirit_maps, ifft2c, rss
from mrizoo.reconstruct_runner import accepts as _accepts
from mrizoo.zoo import create, load

__all__ = ["BASELINES", "DEFAULT_MODELS", "DemoConfig", "DemoResult", "DemoInput", "run_demo", "load_slice",
           "demo_input"]

DEFAULT_MODELS: tuple[str, ...] = ("varnet-mini-r4", "rcgan-mini-r4")
BASELINES: dict[str, str] = {"zero-filled": "zerofilled", "CG-SENSE": "cgsense", "L1-wavelet": "l1wavelet"}
"""Row label -> zoo entry of every baseline (the one definition ``evaluate`` and the cards use)."""


@dataclass(frozen=True)
class DemoConfig:
    """What to reconstruct and how.

    ``input`` None = the shipped scan. ``mask``/``acceleration``/``center_fraction``/``seed``
    undersample fully sampled input (undersampled input keeps what it measured). ``models``: zoo
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
    adapt: bool = False  # also show each model adapted to the scan (test-time adaptation), row "<model>+tta"
    adapt_steps: int | None = None  # most adaptation steps (None: mrizoo.models.adapt.AdaptConfig's default)

    def __post_init__(self) -> None:
        """Every setting is checked here, before any file is read or model loaded."""
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 2:
            raise InputError("posterior models need at least 2 samples for a standard deviation",
                             field="samples", expected=">= 2", got=self.samples)
        if self.mask not in list_masks():
            raise InputError("unknown mask", field="mask", expected=f"one of {list_masks()}", got=repr(self.mask))
        check_acceleration(self.acceleration)
        check_center_fraction(self.center_fraction)
        if self.adapt_steps is not None and (isinstance(self.adapt_steps, bool) or not isinstance(self.adapt_steps, int)
                                             or self.adapt_steps < 0 or not self.adapt):
            raise InputError("adaptation steps must be an integer >= 0, given with adapt", field="adapt_steps",
                             expected="int >= 0 and adapt=True", got=repr(self.adapt_steps))
        if Path(self.output).is_dir():
            raise InputError("the figure path is a folder", path=self.output, field="output",
                             expected="a .png file path")


@dataclass
class DemoInput:
    """One undersampled slice: k-space ``[C, H, W]`` (zeros where not sampled), mask ``[H, W]``, the
    reference of fully sampled data (None when there is none; ``note`` then says why) and its data range."""

    kspace: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor | None
    source: str
    acceleration: float
    retrospective: bool
    maxval: float | None = None
    note: str = ""


@dataclass
class DemoResult:
    """Metrics per method (vs the reference), timings, the posterior std per posterior model, which
    weights each model ran, notes (e.g. why there are no metrics) and the figure."""

    source: str
    shape: tuple[int, ...]
    acceleration: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    mean_std: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)  # model -> Calibration (with a reference)
    figure: Path | None = None
    notes: list[str] = field(default_factory=list)
    weights: dict[str, str] = field(default_factory=dict)  # model -> which weights ran (source, sha256)


@dataclass
class _Slice:
    kspace: torch.Tensor  # [C, H, W] as stored
    sampling: Any  # SamplingInfo of the whole volume
    reference: Any  # mrizoo.evaluate.Reference | None
    why: str  # why there is no reference


def _check_index(path: Path, index: int | None, n: int) -> int:
    i = n // 2 if index is None else index
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
        raise InputError("slice index out of range", path=path, field="slice", expected=f"0..{n - 1}", got=index)
    return i


def _read(path: Path, slice_index: int | None) -> _Slice:
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        with FastMRIVolume(path) as vol:
            if not vol.multicoil:
                raise InputError("the demo needs multi-coil k-space", path=path, field="kspace",
                                 expected="[slices, coils, H, W]", got=str(vol.kspace_shape))
            index = _check_index(path, slice_index, vol.num_slices)
            info = vol.sampling_info()
            ref, why = slice_reference(vol, index, info)
            return _Slice(vol.kspace(index), info, ref, why)
    if suffix in (".cfl", ".hdr", ""):
        k = torch.from_numpy(bart_to_kspace(read_cfl(path), path=path))  # [slices, coils, H, W]
        index = _check_index(path, slice_index, k.shape[0])
        info = detect_sampling(k, path=path)
        if not info.fully_sampled:
            why = f"{path}: the k-space is undersampled ({info.describe()}) and a .cfl holds no fully " \
                  "sampled reference: no metrics"
            return _Slice(k[index], info, None, why)
        images = rss(ifft2c(k))  # [slices, H, W]: the data range is the maximum over the volume
        return _Slice(k[index], info, Reference(images[index].float(), float(images.max()), "RSS"), "")
    raise InputError("unsupported input type", path=path, expected="a fastMRI .h5 file or a BART .cfl/.hdr pair",
                     got=suffix or "no suffix")


def load_slice(path: Path, slice_index: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(kspace [C, H, W], measured mask [H, W], fully sampled reference or None)`` of one slice."""
    sl = _read(Path(path), slice_index)
    return sl.kspace, sl.sampling.mask, None if sl.reference is None else sl.reference.image


def demo_input(cfg: DemoConfig) -> DemoInput:
    """The undersampled slice the demo reconstructs (the shipped scan unless ``cfg.input`` is set)."""
    path = Path(cfg.input) if cfg.input is not None else demo_scan_path()
    sl = _read(path, cfg.slice_index)
    info, ref = sl.sampling, sl.reference
    target, maxval = (None, None) if ref is None else (ref.image, ref.maxval)
    c, h, w = sl.kspace.shape
    if not info.fully_sampled:  # what was measured, never undersampled again
        source = "shipped scan " + path.name if cfg.input is None else str(path)
        mask = info.mask.expand(h, w)
        return DemoInput(sl.kspace * mask, mask, target, source, float(info.acceleration), retrospective=False,
                         maxval=maxval, note=sl.why)
    m = create_mask(cfg.mask, (h, w), seed=cfg.seed, acceleration=cfg.acceleration,
                    center_fraction=cfg.center_fraction)
    mask = m.mask & info.mask  # a fully sampled scan may still hold partial-Fourier or padding zeros
    acceleration = float(info.acceleration) * float(info.mask.sum()) / float(mask.sum())
    return DemoInput(sl.kspace * mask, mask, target, str(path), acceleration, retrospective=True, maxval=maxval)


def run_demo(config: DemoConfig | None = None) -> DemoResult:
    """Run the demo and return its metrics; the figure is written to ``config.output``."""
    cfg = config or DemoConfig()
    data = demo_input(cfg)
    c, h, w = data.kspace.shape
    result = DemoResult(source=data.source, shape=(c, h, w), acceleration=data.acceleration)
    if data.note:
        result.notes.append(data.note)
    baselines = {label: create(name) for label, name in BASELINES.items()
                 if cfg.baselines or name == "zerofilled"}
    models = [(str(spec), load(spec, map_location=cfg.device)) for spec in cfg.models]  # fail early on bad names

    result.weights = {name: describe_weights(net) for name, net in models}
    if cfg.adapt:
        for _, net in models:
            family_of(net)  # refuses models that cannot adapt before any work
    device = torch.device(cfg.device)
    kspace, mask = data.kspace[None].to(device), data.mask.to(device)

    maps = None  # the maps every model that needs them would estimate itself, computed once (as evaluate)
    if any(getattr(net, "needs_maps", False) for net in (*baselines.values(), *(m for _, m in models))):
        t0 = time.perf_counter()
        maps = espirit_maps(kspace)
        result.seconds["espirit"] = time.perf_counter() - t0
    images: dict[str, torch.Tensor] = {}
    std_maps: dict[str, torch.Tensor] = {}
    samples: dict[str, torch.Tensor] = {}
    runs = [*baselines.items(), *models]
    if cfg.adapt:
        runs += [(f"{name}+tta", net) for name, net in models]
    for name, net in runs:
        net.to(device).eval()
        own = maps if getattr(net, "needs_maps", False) else None
        t = time.perf_counter()
        if name.endswith("+tta"):
            net = net.adapt(kspace, mask, own, steps=cfg.adapt_steps, seed=cfg.seed)
            if net.adaptation.refine != "none":
                result.notes.append(f"{name}: adapted, then its coil images are the prior of an L1-wavelet problem "
                                    f"({net.adaptation.refine} refinement): a hybrid with compressed sensing")
        with torch.no_grad():
            if getattr(net, "is_posterior", False):
                seeded = {"generator": torch.Generator(device=device).manual_seed(cfg.seed)} \
                    if _accepts(net.sample, "generator") else {}
                post = net.sample(kspace, mask, own, n=cfg.samples, **seeded)
                images[name] = post.mean[0].float().cpu()
                std_maps[f"{name} std"] = post.std[0].float().cpu()
                samples[name] = post.samples[:, 0].float().cpu()
                result.mean_std[name] = float(post.std.mean())
            else:
                images[name] = net.reconstruct(kspace, mask, own)[0].float().cpu()
        result.seconds[name] = time.perf_counter() - t

    captions: dict[str, str] = {}
    target = data.target
    if target is not None:
        hw = metric_region(tuple(target.shape), (h, w))
        for name, image in images.items():
            result.metrics[name] = score(target, image, maxval=data.maxval)
            captions[name] = caption(result.metrics[name])
        for name, draws in samples.items():
            result.calibration[name] = calibration(draws, data.target, maxval=data.maxval)
        target = center_crop(target, hw)  # the figure shows the region the metrics are computed on
        images = {k: center_crop(v, hw) for k, v in images.items()}
        std_maps = {k: center_crop(v, hw) for k, v in std_maps.items()}
    for name, std in zip(samples, std_maps.values()):
        cal = result.calibration.get(name)
        captions[f"{name} std"] = f"P = {cfg.samples}, mean {float(std.mean()):.3g}" + (
            f"\nvar/err {cal.var_error_ratio:.2g}, 2σ cover {cal.coverage_2sd:.0%}" if cal is not None else "")
    panels = ({"reference": target} if target is not None else {}) | images
    how = "retrospective" if data.retrospective else "measured"
    result.figure = save_panels(
        cfg.output, panels, reference="reference" if target is not None else None, captions=captions,
        heatmaps=std_maps,
        suptitle=f"{data.source}: {how} mask, R = {data.acceleration:.2f}"
                 + (" (reference: RSS of fully sampled k-space)" if target is not None else " (no reference)"),
    )
    return result
