"""CG-SENSE on the real 8-coil brain slice: mrizoo's ``cg_sense`` vs sigpy's ``SenseRecon``.

Both solve ``(A^H A + lam I) x = A^H y`` by conjugate gradient from zero with the same k-space
(4x equispaced columns, 8% centre, or ``--mask poisson``: the real Poisson-disc sampled file),
the same ESPIRiT maps, the same ``lam`` and exactly the same number of iterations (no early
stop). Timed alternately in one process (median); prints both times, the ratio mrizoo / sigpy
(< 1: mrizoo is faster) and the relative difference of the two images.

    python benchmarks/cg_sense_speed.py [--iters 30] [--threads 1]
"""

from __future__ import annotations

import numpy as np
import torch

from _timing import classical_args, interleaved_medians, real_brain_case  # noqa: E402  (puts the checkout on sys.path)

from mrizoo.classical.cg_sense import CGSenseConfig, cg_sense  # noqa: E402


def main() -> int:
    args = classical_args(__doc__, iters=(30, "CG iterations for both"), lam=(1e-2, "Tikhonov weight"), repeats=5)

    case = real_brain_case(args.mask)
    if case is None:
        return 0
    under, mask, maps, data = case
    cfg = CGSenseConfig(lam=args.lam, max_iter=args.iters, tol=0.0)
    print(f"data: {data}; {args.iters} CG iterations, "
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
