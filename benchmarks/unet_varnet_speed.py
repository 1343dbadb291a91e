"""Per-slice reconstruction time: mrizoo's U-Net and E2E-VarNet vs the fastMRI reference package.

Both implementations get identical weights and the same undersampled slice (the real 8-coil
brain scan from ../shared/realdata when present, else random k-space of the same size), and
are timed alternately in the same process; the median of ``--repeats`` runs is reported with
the ratio fastmri / mrizoo (> 1: mrizoo is faster), its inverse (mrizoo's time as a multiple of
fastMRI's) and the largest relative output difference.

    python benchmarks/unet_varnet_speed.py            # moderate configs, ~1 min on 2 CPU cores
    python benchmarks/unet_varnet_speed.py --full     # fastMRI leaderboard sizes
    python benchmarks/unet_varnet_speed.py --device cpu --threads 1 --plain-path  # also the unfused path
    python benchmarks/unet_varnet_speed.py --device cpu --threads 1 --only unet --compile

On CPU, inference (eval mode, no gradients) runs mrizoo's fused channels-last U-Net pass;
``--plain-path`` adds a line timing the module-by-module pass (the one training uses) against
fastMRI in the same run. ``--compile`` adds ``model.compile(options={"freezing": True})``
(TorchInductor, weights frozen as constants; needs a C++ compiler) and reports its one-off
compile time separately.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mrizoo.models.unet import UNET_FASTMRI_LEADERBOARD, UnetConfig, UnetRecon  # noqa: E402
from mrizoo.models.varnet import VARNET_FASTMRI_LEADERBOARD, VarNet, VarNetConfig  # noqa: E402

REALDATA = ROOT.parent / "shared" / "realdata" / "brain_t1_8ch_full"
MODERATE_UNET = UnetConfig(chans=32)  # Lin & Heckel 2024 small
MODERATE_VARNET = VarNetConfig(num_cascades=4, sens_chans=8, sens_pools=4, chans=12, pools=4)


def load_slice() -> tuple[torch.Tensor, str]:
    """Complex k-space [1, C, H, W] scaled to max |k| = 1."""
    if REALDATA.with_suffix(".cfl").exists():
        from mrizoo.data.bart import read_cfl

        k = np.ascontiguousarray(np.squeeze(read_cfl(REALDATA)).transpose(2, 0, 1))
        source = "real brain slice"
    else:
        rng = np.random.default_rng(0)
        k = (rng.standard_normal((8, 230, 180)) + 1j * rng.standard_normal((8, 230, 180))).astype(np.complex64)
        source = "random k-space (real scan not found)"
    kt = torch.from_numpy(k)[None]
    return kt / kt.abs().max(), f"{source}, {k.shape[0]} coils, {k.shape[1]}x{k.shape[2]}"


def column_mask(w: int, acceleration: int = 4, center_fraction: float = 0.08) -> torch.Tensor:
    """Equispaced columns plus a fully sampled centre, as a bool [W]."""
    mask = torch.zeros(w, dtype=torch.bool)
    mask[::acceleration] = True
    low = round(w * center_fraction)
    start = (w - low + 1) // 2
    mask[start : start + low] = True
    return mask


def timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[float, torch.Tensor]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def compare(name: str, ours: Callable[[], torch.Tensor], ref: Callable[[], torch.Tensor],
            repeats: int, device: torch.device) -> None:
    t0 = time.perf_counter()
    ours()  # warm-up (allocator, kernel selection; compilation for a compiled model)
    first = time.perf_counter() - t0
    ref()
    t_ours, t_ref = [], []
    for i in range(repeats):  # interleaved, in alternating order, so load changes hit both alike
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            if which == 0:
                t, out_ours = timed(ours, device)
                t_ours.append(t)
            else:
                t, out_ref = timed(ref, device)
                t_ref.append(t)
    m_ours, m_ref = statistics.median(t_ours), statistics.median(t_ref)
    diff = float((out_ours - out_ref).abs().max() / out_ref.abs().max())
    print(f"{name:<44} {device.type:<5} mrizoo {m_ours * 1e3:9.1f} ms   fastmri {m_ref * 1e3:9.1f} ms   "
          f"ratio {m_ref / m_ours:5.2f}   time {m_ours / m_ref:5.2f}x (of minima {min(t_ours) / min(t_ref):4.2f}x)"
          f"   max rel diff {diff:.1e}   first call {first:.1f} s", flush=True)


class _PlainPath:
    """Within this context mrizoo's U-Nets take their module-by-module (training) pass."""

    def __enter__(self) -> None:
        import mrizoo.models.unet as unet_module

        self._module, self._saved = unet_module, unet_module._use_fast_path
        unet_module._use_fast_path = lambda net, x: False

    def __exit__(self, *exc: object) -> None:
        self._module._use_fast_path = self._saved


def _variants(plain: bool, compile_: bool) -> list[str]:
    return ["fused"] + (["plain"] if plain else []) + (["compiled"] if compile_ else [])


def bench_unet(cfg: UnetConfig, kspace: torch.Tensor, mask: torch.Tensor, repeats: int,
               device: torch.device, variants: list[str]) -> None:
    import fastmri
    from fastmri.data import transforms as T
    from fastmri.models import NormUnet as FastmriNormUnet
    from fastmri.models import Unet as FastmriUnet

    torch.manual_seed(0)
    ours = UnetRecon(cfg).eval().to(device)
    ref = FastmriUnet(cfg.in_chans, cfg.out_chans, cfg.chans, cfg.num_pool_layers).eval().to(device)
    ref.load_state_dict(ours.state_dict())
    padder = FastmriNormUnet(1, 1)  # only its pad / unpad helpers
    kspace, mask = kspace.to(device), mask.to(device)
    masked = torch.view_as_real(kspace * mask)

    def run_ref() -> torch.Tensor:  # fastMRI's U-Net input/output handling, padded to 16
        image = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(masked)), dim=1)
        image, mean, std = T.normalize_instance(image, eps=1e-11)
        x, pads = padder.pad(image[None])
        return padder.unpad(ref(x), *pads)[:, 0] * (std + 1e-11) + mean

    name = f"U-Net chans {cfg.chans}, {cfg.num_pool_layers} pools"
    for variant in variants:
        model = ours
        if variant == "compiled":
            model = UnetRecon(cfg).eval().to(device)
            model.load_state_dict(ours.state_dict())
            model.compile(options={"freezing": True})
        with torch.inference_mode(), (_PlainPath() if variant == "plain" else contextlib.nullcontext()):
            compare(f"{name} [{variant}]", lambda m=model: m.reconstruct(kspace, mask), run_ref, repeats, device)


def bench_varnet(cfg: VarNetConfig, kspace: torch.Tensor, mask: torch.Tensor, repeats: int,
                 device: torch.device, variants: list[str]) -> None:
    from fastmri.models import VarNet as FastmriVarNet

    torch.manual_seed(0)
    ref = FastmriVarNet(cfg.num_cascades, cfg.sens_chans, cfg.sens_pools, cfg.chans, cfg.pools).eval().to(device)
    ours = VarNet(cfg).eval().to(device)
    ours.load_state_dict(ref.state_dict())
    kspace, mask = kspace.to(device), mask.to(device)
    masked = torch.view_as_real(kspace * mask)
    fmask = mask[0, 0].view(1, 1, 1, -1, 1)
    name = f"VarNet {cfg.num_cascades} cascades, chans {cfg.chans}, sens {cfg.sens_chans}"
    for variant in variants:
        model = ours
        if variant == "compiled":  # each U-Net separately (the FFTs stay eager)
            model = VarNet(cfg).eval().to(device)
            model.load_state_dict(ours.state_dict())
            for unet in [model.sens_net.norm_unet.unet, *(c.model.unet for c in model.cascades)]:
                unet.compile(options={"freezing": True})
        with torch.inference_mode(), (_PlainPath() if variant == "plain" else contextlib.nullcontext()):
            compare(f"{name} (reconstruct) [{variant}]", lambda m=model: m.reconstruct(kspace, mask),
                    lambda: ref(masked, fmask), repeats, device)
            if variant == "fused":
                compare(f"{name} (forward) [{variant}]", lambda: ours(masked, fmask), lambda: ref(masked, fmask),
                        repeats, device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="fastMRI leaderboard sizes (U-Net chans 256, VarNet 12 cascades)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per model (default 7, 3 with --full)")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                        help="where to run (all: CPU, and CUDA when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--only", choices=["unet", "varnet"], default=None, help="benchmark one model only")
    parser.add_argument("--plain-path", action="store_true",
                        help="also time mrizoo's module-by-module (training) pass against fastMRI")
    parser.add_argument("--compile", action="store_true",
                        help="also time the models after model.compile(options={'freezing': True}) "
                             "(the first call, which compiles, is reported separately)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.full else 7)
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if not devices:
        parser.error("CUDA requested but not available")

    kspace, source = load_slice()
    mask = column_mask(kspace.shape[-1]).expand(1, kspace.shape[-2], -1)
    unet_cfg = UNET_FASTMRI_LEADERBOARD if args.full else MODERATE_UNET
    varnet_cfg = VARNET_FASTMRI_LEADERBOARD if args.full else MODERATE_VARNET
    print(f"input: {source}; 4x equispaced, 8% centre; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads; median of {repeats}; ratio = fastmri / mrizoo")
    variants = _variants(args.plain_path, args.compile)
    for device in devices:
        if args.only in (None, "unet"):
            bench_unet(unet_cfg, kspace, mask, repeats, device, variants)
        if args.only in (None, "varnet"):
            bench_varnet(varnet_cfg, kspace, mask, repeats, device, variants)


if __name__ == "__main__":
    main()
