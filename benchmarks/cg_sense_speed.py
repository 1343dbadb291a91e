"""CG-SENSE on the real 8-coil brain slice: mrizoo's ``cg_sense`` vs sigpy's ``SenseRecon``.

Both solve ``(A^H A + lam I) x = A^H y`` by conjugate gradient from zero with the same k-space
(4x equispaced columns, 8% centre, or ``--mask poisson``: the real Poisson-disc sampled file),
the same ESPIRiT maps, the same ``lam`` and exactly the same number of iterations (no early
stop). Timed alternately in one process (median); prints both times, the ratio mrizoo / sigpy
(< 1: mrizoo is faster) and the relative difference of the two images.

    python benchmarks/cg_sense_speed.py [--iters 30] [--threads 1]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from _timing import REALDATA, interleaved_medians  # noqa: E402  (puts the checkout on sys.path)

from mrizoo.classical.cg_sense import CGSenseConfig, cg_sense  # noqa: E402
from mrizoo.data.bart import read_cfl  # noqa: E402
from mrizoo.physics.espirit import espirit_maps  # noqa: E402


def _mask(w: int, acceleration: int = 4, center_fraction: float = 0.08) -> torch.Tensor:
    mask = torch.zeros(w, dtype=torch.bool)
    mask[::acceleration] = True
    low = round(w * center_fraction)
    start = (w - low + 1) // 2
    mask[start : start + low] = True
    return mask


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=30, help="CG iterations for both")
    parser.add_argument("--lam", type=float, default=1e-2, help="Tikhonov weight")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--mask", choices=("columns", "poisson"), default="columns",
                        help="4x equispaced columns, or the real Poisson-disc sampled file")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    path = REALDATA / "brain_t1_8ch_full"
    if not path.with_suffix(".cfl").exists():
        print(f"SKIP: real brain slice not found at {path}.cfl")
        return 0
    full = torch.from_numpy(np.ascontiguousarray(np.squeeze(read_cfl(path)).transpose(2, 0, 1)))
    scale = full.abs().amax()
    full = full / scale
    c, h, w = full.shape
    if args.mask == "poisson":
        under = torch.from_numpy(np.load(REALDATA / "brain_t1_8ch_poisson_r8.npy")) / scale
        mask = (under.abs() > 0).any(0)
        maps = espirit_maps(under)
    else:
        mask = _mask(w).expand(h, w)
        under = full * mask
        maps = espirit_maps(under, calib_width=round(0.08 * w))
    cfg = CGSenseConfig(lam=args.lam, max_iter=args.iters, tol=0.0)
    print(f"data: brain_t1_8ch_full {c} x {h} x {w}, {args.mask} mask; {args.iters} CG iterations, "
          f"lam {args.lam}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")

    ours_out: list[torch.Tensor] = []
    run_ours = lambda: ours_out.append(cg_sense(under, mask, maps, cfg))  # noqa: E731
    try:
        import sigpy.mri.app as app
    except ImportError:
        t, _ = interleaved_medians(run_ours, lambda: None, args.repeats)
        print(f"mrizoo: {t * 1e3:.1f} ms; SKIP reference: sigpy is not installed")
        return 0
    ksp_np, maps_np = under.numpy(), maps.numpy()
    ref_out: list[np.ndarray] = []

    def reference() -> None:
        ref_out.append(app.SenseRecon(ksp_np, maps_np, lamda=args.lam, max_iter=args.iters,
                                      show_pbar=False).run())

    t_ours, t_ref = interleaved_medians(run_ours, reference, args.repeats)
    print(f"mrizoo cg_sense:      {t_ours * 1e3:8.1f} ms  (median of {args.repeats})")
    print(f"sigpy SenseRecon:     {t_ref * 1e3:8.1f} ms  (median of {args.repeats})")
    ours, ref = ours_out[-1].numpy(), ref_out[-1]
    rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
    print(f"ratio mrizoo / sigpy: {t_ours / t_ref:8.2f}   (relative difference of the images {rel:.1e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
