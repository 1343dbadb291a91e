"""``mrizoo evaluate``: score models on test volumes, print a Markdown table, write JSON results."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mrizoo.cli import _args
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
    p.add_argument("--acceleration", type=_args.acceleration, default=4.0, help="acceleration R > 1 (default 4)")
    p.add_argument("--center-fraction", type=_args.center_fraction, default=0.08,
                   help="fully sampled centre fraction in (0, 1) (default 0.08)")
    p.add_argument("--target", default="rss", help="'rss', 'mvue' or a stored target such as reconstruction_rss")
    p.add_argument("--samples", type=_args.int_at_least(2), default=32, help="posterior samples per slice")
    p.add_argument("--samples-max", type=_args.positive_int, default=None, help="largest P of the P-sample curves")
    p.add_argument("--calibration-samples", type=_args.int_at_least(2), default=None, metavar="P",
                   help="posterior samples P of the calibration metrics (variance/error ratio, coverage, "
                        "Prop. 3.3 ratio; default: the model's reconstruct_samples, else 8)")
    p.add_argument("--masked", action="store_true", help="also SSIM/PSNR over the object only")
    p.add_argument("--match-mean-std", action="store_true", help="also mean/std-matched metrics")
    p.add_argument("--cfid", action="store_true", help="CFID of posterior models (VGG-16 weights needed)")
    p.add_argument("--vgg-weights", help="VGG-16 state dict for --cfid (else the local Hugging Face cache)")
    p.add_argument("--baseline", choices=BASELINES, default="cgsense", help="classical baseline row")
    p.add_argument("--no-baselines", action="store_true", help="do not add the baseline rows")
    p.add_argument("--plot-metric", default="ssim", choices=("ssim", "psnr", "nmse", "ssim_masked", "psnr_masked",
                                                             "ssim_matched", "psnr_matched", "nmse_matched"),
                   help="metric of the effective-robustness plot (default ssim)")
    p.add_argument("--adapt", action="store_true",
                   help="also score each learned model adapted to every slice (test-time adaptation), as <model>+tta")
    p.add_argument("--adapt-steps", type=_args.nonnegative_int, default=None,
                   help="most adaptation steps per slice (default 20; stops earlier on the held-out error; "
                        "0: only the final data consistency and refinement)")
    p.add_argument("--batch-size", type=_args.positive_int, default=16)
    p.add_argument("--device", type=_args.device, default="cpu")
    p.add_argument("--out", help="folder for <model>/results.json, table.md, per_volume.json, weights.json, "
                                 "calibration.json and the plots (new or empty, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_evaluate)


def _data_sets(args: argparse.Namespace) -> list[Any]:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.evaluate import EvalSet

    sets: list[EvalSet] = []
    ood = set(args.ood)
    if args.pool is not None:
        if args.data_root is None:
            raise InputError("--pool needs --data-root", field="--data-root")
        # imported on use: keeps `mrizoo --help` and `mrizoo list` light
        from mrizoo.cli.pools import _dataset_arg

        # imported on use: keeps `mrizoo --help` and `mrizoo list` light
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
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.evaluate import EvalSet

    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
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


def _check_options(args: argparse.Namespace) -> None:
    """Everything that can be checked before data is read or a model is loaded."""
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.masks import list_masks

    if args.mask not in list_masks():
        raise InputError("unknown mask", field="--mask", expected=f"one of {list_masks()}", got=repr(args.mask))
    if args.calibration_samples is not None and args.calibration_samples > args.samples:
        raise InputError("--calibration-samples exceeds --samples", field="--calibration-samples",
                         expected=f"at most {args.samples}", got=args.calibration_samples)
    if args.samples_max is not None and args.samples_max > args.samples:
        raise InputError("--samples-max exceeds --samples", field="--samples-max",
                         expected=f"at most {args.samples}", got=args.samples_max)
    if args.vgg_weights and not args.cfid:
        raise InputError("--vgg-weights is only used with --cfid", field="--vgg-weights")
    if args.vgg_weights and not Path(args.vgg_weights).is_file():
        raise InputError("no such file", path=args.vgg_weights, field="--vgg-weights")
    if args.out is not None:
        _args.check_out_folder(args.out, overwrite=args.overwrite)


def _write_outputs(out: Path, files: dict[str, str], render: Any = None) -> list[str]:
    """Write ``relative name -> text`` (and what ``render(stage_dir) -> names`` draws) under ``out``:
    staged in a hidden folder inside ``out``, then moved into place; a full disk or a read-only
    target raises :class:`InputError` and leaves none of the new files. Returns the names written."""
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo._atomic import default_mode, write_error

    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".evaluate.", dir=out))
    try:
        try:
            for name, text in files.items():
                dst = stage / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_text(text, encoding="utf-8")
            names = list(files) + (list(render(stage)) if render is not None else [])
            for name in names:
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                os.chmod(stage / name, default_mode())
                os.replace(stage / name, out / name)
        except OSError as err:
            mapped = write_error(err, out)
            if mapped is None:
                raise
            raise mapped from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return names


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with non-finite numbers (a ratio over a zero error) as null, for strict JSON."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}


def _evaluate(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.evaluate import evaluate_models, markdown_table, robustness_plot

    _check_options(args)
    sets = _data_sets(args)
    models = list(dict.fromkeys(args.models))
    if not args.no_baselines:
        models += [b for b in ("zerofilled", args.baseline) if b not in models]
    embedding = None
    if args.cfid:
        # imported on use: keeps `mrizoo --help` and `mrizoo list` light
        from mrizoo.metrics import vgg16_embedding

        embedding = vgg16_embedding(args.vgg_weights, device=args.device)
    ev = evaluate_models(
        models, sets, mask=args.mask, acceleration=args.acceleration, center_fraction=args.center_fraction,
        samples=args.samples, samples_max=args.samples_max, match_mean_std=args.match_mean_std,
        masked=args.masked, embedding=embedding, target=args.target, batch_size=args.batch_size,
        device=args.device, progress=None if args.quiet else lambda m: print(m, flush=True),
        adapt=args.adapt, adapt_steps=args.adapt_steps, calibration_samples=args.calibration_samples,
    )
    table = markdown_table(ev)
    print(table, end="")
    for label, source in ev.weights.items():
        if source:
            sha = source.get("sha256") or ""
            print(f"weights {label}: {source.get('kind', '?')} {source.get('location', '')}".rstrip()
                  + (f", sha256 {sha}" if sha else ""))
    if args.out:
        out = Path(args.out)
        # an adapted row "<model>+tta" is written inside <model>/results.json (its `compared` rows)
        files = {f"{label}/results.json": json.dumps(ev.results(label).to_dict(), indent=2, allow_nan=False) + "\n"
                 for label in ev.models if not label.endswith("+tta")}
        files["table.md"] = table
        files["per_volume.json"] = json.dumps(ev.per_volume(), indent=1) + "\n"
        files["weights.json"] = json.dumps(ev.weights, indent=1, sort_keys=True) + "\n"
        curves = {f"{label} / {name}": cal for label, sc in ev.models.items() for name, cal in sc.calibration.items()}
        if curves:
            files["calibration.json"] = json.dumps(
                {label: {name: _finite(asdict(cal)) for name, cal in sc.calibration.items()}
                 for label, sc in ev.models.items() if sc.calibration}, indent=1, allow_nan=False) + "\n"

        def render(stage: Path) -> list[str]:
            plot = robustness_plot(ev, stage / "effective_robustness.png", metric=args.plot_metric)
            names = [plot.name] if plot else []
            if curves:
                # imported on use: keeps `mrizoo --help` and `mrizoo list` light
                from mrizoo.figures import calibration_plot

                names.append(calibration_plot(curves, stage / "calibration.png",
                                              title=f"posterior calibration, R = {args.acceleration:g}").name)
            return names

        names = _write_outputs(out, files, render)
        plots = [n for n in ("effective_robustness.png", "calibration.png") if n in names]
        print(f"wrote {out}" + (f" (plots: {', '.join(plots)})" if plots else ""))
    return 0
