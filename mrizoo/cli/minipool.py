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
        "minipool", help="build the demo pool from real anatomy (offline)",
        description="Build a multi-distribution data root from the anatomy installed packages ship (Colin27, "
                    "its renderings and a macaque brain of Debian's mricron-data, the MNI ICBM152 average of "
                    "nilearn, EPI brains of dipy and nibabel) and the real brain and knee scans, as simulated "
                    "multi-coil fastMRI volumes (random matrices, coil arrays, correlated noise and phase). "
                    "Use it with the shipped pool 'mini'.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="write (or complete) a mini-pool data root",
                           description="Write the mini-pool under DST; volumes already there are kept.")
    b.add_argument("dst", metavar="DST", help="data root to write")
    b.add_argument("--slices-per-view", type=int, default=144,
                   help="Colin27 / MNI slices per view and contrast, split into --volumes-per-view volumes "
                        "(default 144)")
    b.add_argument("--volumes-per-view", type=int, default=24,
                   help="volumes (slabs) per view of Colin27 and of the MNI average (default 24)")
    b.add_argument("--variant-volumes-per-view", type=int, default=16,
                   help="volumes per view of each Colin27 rendering, ch2bet and ch2better (default 16)")
    b.add_argument("--sagittal-volumes", type=int, default=4,
                   help="volumes of the Colin27 sagittal test view (default 4)")
    b.add_argument("--shapes", default="192x160,208x176,224x176,240x192",
                   help="scanner matrices ROWSxCOLS drawn per volume, comma-separated "
                        "(default 192x160,208x176,224x176,240x192)")
    b.add_argument("--size", type=int, help="one square matrix SIZE x SIZE instead of --shapes")
    b.add_argument("--coils", default="4-32",
                   help="receive coils per volume: N, or LO-HI drawn log-uniformly per volume (default 4-32)")
    b.add_argument("--random-coils", action="store_true",
                   help="coil count drawn from 4-32 per volume (the default; kept for older command lines)")
    b.add_argument("--contrasts", default="T1,T2,PD,FLAIR",
                   help="contrasts of every T1 slab, comma-separated (default T1,T2,PD,FLAIR)")
    b.add_argument("--noise", default="0.015-0.06",
                   help="RSS background level relative to bright tissue, LO-HI (default 0.015-0.06; the "
                        "real brain scan has about 0.03)")
    b.add_argument("--sources", default="",
                   help="anatomy sources to use, comma-separated (colin, colin_bet, colin_better, macaque, mni152, "
                        "dipy_b0, nibabel_epi; Colin27 always); default: every source installed")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--workers", type=int, nargs="?", const=os.cpu_count() or 1, default=1,
                   help="processes (bare flag: one per CPU)")
    b.add_argument("--templates", help="folder with ch2.nii.gz (default $MRIZOO_MRICRON_TEMPLATES or "
                                       "/usr/share/mricron/templates)")
    b.add_argument("--realdata", help="folder with the real scans (default $MRIZOO_REALDATA; else left out)")
    b.set_defaults(func=_build)


def _range(text: str, field: str, kind: type) -> tuple[Any, Any]:
    parts = str(text).split("-")
    try:
        values = [kind(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise InputError("expected a value or a range LO-HI", field=field, got=text)
    return (values[0], values[-1])


def _shapes(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for item in str(text).split(","):
        rows, _, cols = item.strip().lower().partition("x")
        if not (rows.isdigit() and cols.isdigit()):
            raise InputError("expected matrices ROWSxCOLS, comma-separated", field="--shapes", got=text)
        out.append((int(rows), int(cols)))
    return tuple(out)


def _build(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.pools.minipool import MiniPoolConfig, build_minipool

    if args.volumes_per_view < 1 or args.slices_per_view < args.volumes_per_view:
        raise InputError("need at least one slice per volume", field="--slices-per-view",
                         expected=f">= --volumes-per-view ({args.volumes_per_view})", got=args.slices_per_view)
    shapes = ((args.size, args.size),) if args.size is not None else _shapes(args.shapes)
    coils = (4, 32) if args.random_coils else _range(args.coils, "--coils", int)
    cfg = MiniPoolConfig(shapes=shapes, coils=coils, slices_per_volume=args.slices_per_view // args.volumes_per_view,
                         volumes_per_view=args.volumes_per_view, variant_volumes_per_view=args.variant_volumes_per_view,
                         sagittal_volumes=args.sagittal_volumes,
                         contrasts=tuple(c.strip() for c in args.contrasts.split(",")),
                         background=_range(args.noise, "--noise", float), seed=args.seed,
                         sources=tuple(k.strip() for k in args.sources.split(",") if k.strip()))
    result = build_minipool(args.dst, cfg, templates=args.templates, realdata=args.realdata, workers=args.workers)
    print(f"mini-pool {result.root}: {len(result.written)} volumes written, {len(result.skipped)} already there "
          f"({result.seconds:.1f} s)")
    for note in result.notes:
        print(f"note: {note}")
    return 0
