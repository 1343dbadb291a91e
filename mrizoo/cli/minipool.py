"""``mrizoo minipool build DST``: the demo mini-pool data root (see :mod:`mrizoo.pools.minipool`)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from mrizoo.errors import InputError

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``minipool`` command (sub-command ``build``)."""
    p = sub.add_parser(
        "minipool", help="build the small demo pool from real anatomy (offline)",
        description="Build a small multi-distribution data root from Debian's mricron-data templates "
                    "(Colin27 in three views and two contrasts, a macaque brain) and the real brain and knee "
                    "scans, as simulated multi-coil fastMRI volumes. Use it with the shipped pool 'mini'.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="write (or complete) a mini-pool data root",
                           description="Write the mini-pool under DST; volumes already there are kept.")
    b.add_argument("dst", metavar="DST", help="data root to write")
    b.add_argument("--slices-per-view", type=int, default=32,
                   help="Colin27 slices per view and contrast, split into --volumes-per-view volumes (default 32)")
    b.add_argument("--volumes-per-view", type=int, default=4, help="volumes (contiguous slabs) per view (default 4)")
    b.add_argument("--size", type=int, default=128, help="image size (square, default 128)")
    b.add_argument("--coils", type=int, default=8, help="simulated receive coils (default 8)")
    b.add_argument("--snr-db", type=float, default=30.0, help="k-space SNR of the simulated noise (default 30)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--random-coils", action="store_true",
                   help="give every simulated volume its own coil array (random rotation and radius) instead of "
                        "one fixed array: models that read coil images directly (rcGAN) then cannot learn one "
                        "array's geometry")
    b.add_argument("--workers", type=int, nargs="?", const=os.cpu_count() or 1, default=1,
                   help="processes (bare flag: one per CPU)")
    b.add_argument("--templates", help="folder with ch2.nii.gz (default $MRIZOO_MRICRON_TEMPLATES or "
                                       "/usr/share/mricron/templates)")
    b.add_argument("--realdata", help="folder with the real scans (default $MRIZOO_REALDATA; else left out)")
    b.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from mrizoo.pools.minipool import MiniPoolConfig, build_minipool

    if args.volumes_per_view < 1 or args.slices_per_view < args.volumes_per_view:
        raise InputError("need at least one slice per volume", field="--slices-per-view",
                         expected=f">= --volumes-per-view ({args.volumes_per_view})", got=args.slices_per_view)
    cfg = MiniPoolConfig(size=args.size, coils=args.coils, slices_per_volume=args.slices_per_view // args.volumes_per_view,
                         volumes_per_view=args.volumes_per_view, snr_db=args.snr_db, seed=args.seed,
                         random_coils=args.random_coils)
    result = build_minipool(args.dst, cfg, templates=args.templates, realdata=args.realdata, workers=args.workers)
    print(f"mini-pool {result.root}: {len(result.written)} volumes written, {len(result.skipped)} already there "
          f"({result.seconds:.1f} s)")
    for note in result.notes:
        print(f"note: {note}")
    return 0
