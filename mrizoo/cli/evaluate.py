"""``mrizoo evaluate``: score models on test volumes, print a Markdown table, write JSON results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mrizoo.errors import InputError

__all__ = ["register"]

BASELINES = ("cgsense", "l1wavelet")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="score models on test volumes (SSIM/PSNR/NMSE, posterior metrics)",
        description="Reconstruct test volumes (masks seeded per file name) with each MODEL and print "
                    "per-test-set metrics. Zero-filled and a classical baseline are added for comparison. "
                    "Data: --data PATH / --data NAME=PATH (folders or .h5 files), or --pool NAME --data-root DIR "
                    "for a pool's named test sets.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help="zoo name, hf-hub:org/repo or checkpoint folder")
    p.add_argument("--data", action="append", default=[], metavar="[NAME=]PATH", help="test volumes; repeatable")
    p.add_argument("--pool", help="pool whose test sets to evaluate on (needs --data-root)")
    p.add_argument("--data-root", help="data root of the pool's slice index")
    p.add_argument("--dataset", action="append", default=[], metavar="[FOLDER=]NAME",
                   help="with --pool: dataset of the volumes under FOLDER of the data root (as `mrizoo pool`)")
    p.add_argument("--cache-dir", help="with --pool: where slice indexes are kept")
    p.add_argument("--ood", action="append", default=[], metavar="NAME", help="mark a test set out of distribution")
    p.add_argument("--mask", default="equispaced_fraction", help="mask function (mrizoo.masks)")
    p.add_argument("--acceleration", type=float, default=4.0)
    p.add_argument("--center-fraction", type=float, default=0.08)
    p.add_argument("--target", default="rss", help="'rss', 'mvue' or a stored target such as reconstruction_rss")
    p.add_argument("--samples", type=int, default=32, help="posterior samples per slice")
    p.add_argument("--samples-max", type=int, default=None, help="largest P of the P-sample curves")
    p.add_argument("--masked", action="store_true", help="also SSIM/PSNR over the object only")
    p.add_argument("--match-mean-std", action="store_true", help="also mean/std-matched metrics")
    p.add_argument("--cfid", action="store_true", help="CFID of posterior models (VGG-16 weights needed)")
    p.add_argument("--vgg-weights", help="VGG-16 state dict for --cfid (else the local Hugging Face cache)")
    p.add_argument("--baseline", choices=BASELINES, default="cgsense", help="classical baseline row")
    p.add_argument("--no-baselines", action="store_true", help="do not add the baseline rows")
    p.add_argument("--plot-metric", default="ssim", help="metric of the effective-robustness plot")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="folder for <model>/results.json, table.md, per_volume.json and the plot")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_evaluate)


def _data_sets(args: argparse.Namespace) -> list[Any]:
    from mrizoo.evaluate import EvalSet

    sets: list[EvalSet] = []
    ood = set(args.ood)
    if args.pool is not None:
        if args.data_root is None:
            raise InputError("--pool needs --data-root", field="--data-root")
        from mrizoo.cli.pools import _dataset_arg
        from mrizoo.pools import build_slice_index

        index = build_slice_index(args.data_root, dataset=_dataset_arg(args.dataset), cache_dir=args.cache_dir)
        sets.extend(_pool_sets(args.pool, index, ood))
    elif args.data_root is not None:
        raise InputError("--data-root is only used with --pool", field="--data-root")
    for value in args.data:
        name, sep, path = value.partition("=")
        if not sep:
            path, name = value, Path(value.rstrip("/")).name or value
        if not Path(path).exists():
            raise InputError("no such file or folder", path=path, field="--data")
        sets.append(EvalSet(name, path, "out" if name in ood else "in"))
    if not sets:
        raise InputError("no test data", field="--data", expected="--data PATH or --pool NAME --data-root DIR")
    unknown = sorted(ood - {s.name for s in sets})
    if unknown:
        raise InputError("--ood names no test set", field="--ood", expected=[s.name for s in sets], got=unknown)
    return sets


def _pool_sets(pool: str, index: Any, ood: set[str]) -> list[Any]:
    """The pool's test sets; in distribution when every dataset they select is in the training selections."""
    from mrizoo.evaluate import EvalSet
    from mrizoo.pools import select_pool

    sel = select_pool(index, pool)
    trained = {str(v).lower() for s in sel.spec.train for v in s.conditions.get("dataset", ())}
    sets = []
    for name, selections in sel.spec.test.items():
        if not sel.test[name].size:
            continue
        used = {str(v).lower() for s in selections for v in s.conditions.get("dataset", ())}
        inside = bool(used) and used <= trained and name not in ood
        sets.append(EvalSet(name, lambda _n=name, **kw: sel.dataset(_n, **kw), "in" if inside else "out"))
    if not sets:
        raise InputError("the pool's test sets select no slices under the data root", field="--pool", got=pool)
    return sets


def _evaluate(args: argparse.Namespace) -> int:
    from mrizoo.evaluate import evaluate_models, markdown_table, robustness_plot
    from mrizoo.hub.evaluation import save_results

    sets = _data_sets(args)
    models = list(dict.fromkeys(args.models))
    if not args.no_baselines:
        models += [b for b in ("zerofilled", args.baseline) if b not in models]
    embedding = None
    if args.cfid:
        from mrizoo.metrics import vgg16_embedding

        embedding = vgg16_embedding(args.vgg_weights, device=args.device)
    ev = evaluate_models(
        models, sets, mask=args.mask, acceleration=args.acceleration, center_fraction=args.center_fraction,
        samples=args.samples, samples_max=args.samples_max, match_mean_std=args.match_mean_std,
        masked=args.masked, embedding=embedding, target=args.target, batch_size=args.batch_size,
        device=args.device, progress=None if args.quiet else lambda m: print(m, flush=True),
    )
    table = markdown_table(ev)
    print(table, end="")
    if args.out:
        out = Path(args.out)
        for label in ev.models:
            save_results(ev.results(label), out / label / "results.json")
        (out / "table.md").write_text(table, encoding="utf-8")
        (out / "per_volume.json").write_text(json.dumps(ev.per_volume(), indent=1) + "\n", encoding="utf-8")
        plot = robustness_plot(ev, out / "effective_robustness.png", metric=args.plot_metric)
        print(f"wrote {out}" + (f" (plot: {plot.name})" if plot else ""))
    return 0
