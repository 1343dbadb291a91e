"""Speed of ESPIRiT sensitivity-map estimation on the real 8-coil brain slice (230 x 180).

Compares ``mrizoo.physics.espirit_maps`` (both eigen solvers) with sigpy's ``EspiritCalib``
at the same settings, in the same run. Usage: ``python benchmarks/espirit_speed.py``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from _timing import REALDATA, median_time  # noqa: E402  (puts the checkout on sys.path)

from mrizoo.data.bart import read_cfl  # noqa: E402
from mrizoo.physics.espirit import EspiritConfig, espirit_maps  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of ours (median)")
    parser.add_argument("--ref-repeats", type=int, default=3, help="timed runs of sigpy")
    parser.add_argument("--device", default="cpu", help="torch device for ours (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    path = REALDATA / "brain_t1_8ch_full"
    if not path.with_suffix(".cfl").exists():
        print(f"SKIP: real brain slice not found at {path}.cfl")
        return 0
    ksp_np = np.ascontiguousarray(np.squeeze(read_cfl(path)).transpose(2, 0, 1))
    ksp = torch.from_numpy(ksp_np).to(args.device)
    cfg = EspiritConfig()
    print(f"data: brain_t1_8ch_full k-space {tuple(ksp.shape)} {ksp.dtype}, device {args.device}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"settings: {cfg}")

    t_eigh = median_time(lambda: espirit_maps(ksp, cfg, solver="eigh"), args.repeats)
    power_runs = max(3, args.repeats // 2)
    t_power = median_time(lambda: espirit_maps(ksp, cfg, solver="power"), power_runs)
    print(f"mrizoo espirit_maps (eigh):  {t_eigh * 1e3:8.1f} ms  (median of {args.repeats})")
    print(f"mrizoo espirit_maps (power): {t_power * 1e3:8.1f} ms  ({cfg.max_iter} iterations)")

    try:
        from sigpy.mri.app import EspiritCalib
    except ImportError:
        print("SKIP reference: sigpy is not installed")
        return 0

    def reference() -> object:
        return EspiritCalib(
            ksp_np, calib_width=cfg.calib_width, thresh=cfg.threshold,
            kernel_width=cfg.kernel_width, crop=cfg.crop, max_iter=cfg.max_iter, show_pbar=False,
        ).run()

    t_ref = median_time(reference, args.ref_repeats)
    print(f"sigpy EspiritCalib (CPU):    {t_ref * 1e3:8.1f} ms  (median of {args.ref_repeats})")
    print(f"speed-up vs sigpy: eigh {t_ref / t_eigh:.1f}x, power {t_ref / t_power:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
