"""L1-wavelet FISTA on the real 8-coil brain slice: mrizoo's ``l1_wavelet`` vs sigpy's ``L1WaveletRecon``.

``--mask poisson`` uses the real variable-density Poisson-disc sampled file (a 2D mask) instead
of 4x equispaced columns.

Same k-space (4x equispaced columns, 8% centre), same ESPIRiT maps, same ``db4`` wavelet, same
number of accelerated-gradient iterations and the same absolute ``lam``; timed alternately in
one process (median). Prints both times, their ratio (mrizoo / sigpy: < 1 means mrizoo is
faster), and how close the two answers are (sigpy uses zero-extended wavelets and a
power-iteration step, mrizoo periodic ones and the exact step bound, so they agree closely but
not bit for bit).

    python benchmarks/l1_wavelet_speed.py [--iters 100] [--threads 1]
"""

from __future__ import annotations

import numpy as np
import torch

from _timing import classical_args, interleaved_medians, real_brain_case  # noqa: E402  (puts the checkout on sys.path)

from mrizoo.classical.l1_wavelet import L1WaveletConfig, l1_wavelet  # noqa: E402
from mrizoo.physics.operators import adjoint_op  # noqa: E402


def main() -> int:
    args = classical_args(__doc__, iters=(100, "FISTA iterations for both"),
                          lam=(2e-3, "relative weight (x max|A^H y|)"), repeats=3)

    case = real_brain_case(args.mask)
    if case is None:
        return 0
    under, mask, maps, data = case
    cfg = L1WaveletConfig(lam=args.lam, max_iter=args.iters)
    print(f"data: {data}; {args.iters} iterations, db4, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")

    ours_out: list[torch.Tensor] = []
    run_ours = lambda: ours_out.append(l1_wavelet(under, mask, maps, cfg))  # noqa: E731

    try:
        import sigpy.mri.app as app
    except ImportError:
        t, _ = interleaved_medians(run_ours, lambda: None, args.repeats)
        print(f"mrizoo: {t:.3f} s; SKIP reference: sigpy is not installed")
        return 0
    ksp_np, maps_np = under.numpy(), maps.numpy()
    # the absolute weight mrizoo derives from A^H y, given to sigpy as is
    lam_abs = float(args.lam * adjoint_op(under, maps, mask).abs().amax())
    ref_out: list[np.ndarray] = []

    def reference() -> None:
        ref_out.append(app.L1WaveletRecon(ksp_np, maps_np, lam_abs, wave_name="db4",
                                          max_iter=args.iters, show_pbar=False).run())

    t_ours, t_ref = interleaved_medians(run_ours, reference, args.repeats)
    print(f"mrizoo l1_wavelet:      {t_ours:7.3f} s  (median of {args.repeats})")
    print(f"sigpy L1WaveletRecon:   {t_ref:7.3f} s  (median of {args.repeats})")
    ours = ours_out[-1].numpy()
    ref = ref_out[-1] * (np.abs(maps_np) ** 2).sum(0).astype(bool)
    rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
    print(f"ratio mrizoo / sigpy:   {t_ours / t_ref:7.2f}   (relative difference of the images {rel:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
