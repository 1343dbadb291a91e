"""Running a study: train every arm at every seed (skipping finished runs), evaluate, judge, draw, report.

``run_study(path, StudyOptions(...))``:

1. loads and checks the study (:func:`~mrizoo.study.schema.load_study`) and plans its runs
   (:func:`~mrizoo.study.plan.plan_study`), all before any work;
2. finds the data root (``--data-root``, the study's ``data.root``, a mini-pool built under
   ``OUT/data`` from ``data.minipool``, or ``$MRIZOO_POOL_ROOT``);
3. trains every run with :func:`mrizoo.train.train` (``accelerate`` underneath, so
   ``accelerate launch -m mrizoo study ...`` spreads each run over the launched processes) into
   ``OUT/runs/<arm>-seed<k>/``; a finished run of the same recipe is skipped, an interrupted one
   resumed (``--resume``);
4. scores each run's selected model on every evaluation set with
   :func:`mrizoo.evaluate.evaluate_models` (cached per weights in ``study_eval.json``);
5. writes ``results.json``, the figures, and ``report.md`` (the table arm x set and one verdict per finding).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrizoo._atomic import atomic_file
from mrizoo._dataclass_io import from_dict
from mrizoo.errors import InputError
from mrizoo.evaluate import EvalSet, evaluate_models
from mrizoo.pools import build_slice_index, select_pool
from mrizoo.pools.minipool import MiniPoolConfig, build_minipool
from mrizoo.study.figures import draw_figures
from mrizoo.study.findings import judge
from mrizoo.study.plan import RunPlan, StudyPlan, plan_study
from mrizoo.study.report import write_report
from mrizoo.study.schema import StudyInfo, StudySpec, load_study
from mrizoo.train.data import POOL_ROOT_ENV
from mrizoo.train.loop import TrainOptions, is_distributed_launch, train
from mrizoo.train.plot import read_metrics
from mrizoo.train.run_folder import METRICS_NAME, RUN_NAME
from mrizoo.zoo.factory import load

__all__ = ["StudyOptions", "StudyResult", "run_study", "default_out"]

STUDY_NAME = "study.json"
RUN_DONE = "study_run.json"
RUN_EVAL = "study_eval.json"


@dataclass(frozen=True)
class StudyOptions:
    """How to run a study: ``out`` (default ``studies-out/<name>[-smoke]``), ``smoke`` (merge the
    study's ``smoke`` mapping), ``resume`` (continue a study folder), ``data_root`` (overrides the
    study's), ``progress`` (progress bars), ``cpu`` (force the CPU), ``command`` (for the report)."""

    out: str | os.PathLike[str] | None = None
    smoke: bool = False
    resume: bool = False
    data_root: str | os.PathLike[str] | None = None
    progress: bool = False
    cpu: bool | None = None
    command: str | None = None


@dataclass
class StudyResult:
    """Where the study wrote, how long it took, and the verdicts."""

    out: Path
    report: Path | None
    results: dict[str, Any]
    verdicts: list[Any]
    wall_seconds: float
    trained: int
    skipped: int


def default_out(spec: StudySpec, smoke: bool) -> Path:
    return Path("studies-out") / (spec.name + ("-smoke" if smoke else ""))


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _say(msg: str) -> None:
    if _is_main():
        print(f"mrizoo study: {msg}", file=sys.stderr, flush=True)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- data root


def _data_root(spec: StudySpec, info: StudyInfo, options: StudyOptions, out: Path) -> Path:
    if options.data_root is not None:
        root, key = Path(options.data_root).expanduser(), "--data-root"
    elif spec.data.root is not None:
        p = Path(spec.data.root).expanduser()
        root, key = (p if p.is_absolute() else info.folder / p), "study.data.root"
    elif spec.data.minipool is not None:
        return _build_minipool(spec, info, out / "data")
    elif os.environ.get(POOL_ROOT_ENV):
        root, key = Path(os.environ[POOL_ROOT_ENV]).expanduser(), POOL_ROOT_ENV
    else:
        raise InputError("the study needs a data root", path=info.path, field="study.data",
                         expected=f"--data-root DIR, study.data.root, study.data.minipool or ${POOL_ROOT_ENV}")
    if not root.is_dir():
        raise InputError("data root is not a folder", path=str(root), field=key)
    return root


def _build_minipool(spec: StudySpec, info: StudyInfo, dest: Path) -> Path:
    cfg = from_dict(MiniPoolConfig, spec.data.minipool, source=info.path, prefix="study.data.minipool")
    if _is_main():
        _say(f"building the mini-pool data root {dest} (volumes already there are kept)")
        result = build_minipool(dest, cfg)
        _say(f"mini-pool: {len(result.written)} volumes written, {len(result.skipped)} already there "
             f"({result.seconds:.1f} s)")
    return dest


# ----------------------------------------------------------------------------- study folder


def _check_out(out: Path, info: StudyInfo, options: StudyOptions) -> None:
    meta = out / STUDY_NAME
    if meta.is_file() and not options.resume:
        raise InputError("the folder holds a study already", path=out,
                         expected="--resume to continue it (finished runs are kept), or another --out")
    if meta.is_file():
        old = _read_json(meta) or {}
        if bool(old.get("smoke")) != info.smoke:
            raise InputError("cannot resume: the study folder was written with another --smoke setting",
                             path=meta, field="smoke", expected=old.get("smoke"), got=info.smoke)


def _run_state(run: RunPlan) -> str:
    """``done`` (finished with this recipe), ``partial`` (a run of this recipe to resume), ``new``."""
    done = _read_json(run.run_dir / RUN_DONE)
    meta = _read_json(run.run_dir / RUN_NAME)
    if done and done.get("recipe_sha256") == run.recipe_sha256 and done.get("finished"):
        return "done"
    if meta is not None:
        on_disk = run.recipe_path.read_text() if run.recipe_path.is_file() else None
        if on_disk is not None and on_disk != run.recipe_text:
            raise InputError(f"the recipe of run {run.run_dir.name} changed since it was trained (the study was "
                             "edited)", path=run.run_dir, expected="another --out for the edited study")
        return "partial"
    return "new"


def _barrier(options: StudyOptions) -> None:
    """Wait for every process of a distributed launch (nothing to wait for on one process); the
    process group is set up as the trainer sets it up (same device choice), so it is shared."""
    if is_distributed_launch():
        # imported on use: a heavy package that most calls of this module do not need
        import torch

        # imported on use: a heavy package that most calls of this module do not need
        from accelerate import PartialState

        cpu = (not torch.cuda.is_available()) if options.cpu is None else options.cpu
        PartialState(cpu=cpu).wait_for_everyone()


def _train_run(run: RunPlan, state: str, root: Path, out: Path, options: StudyOptions) -> dict[str, Any]:
    if state == "done":
        _say(f"{run.run_dir.name}: finished earlier, skipped")
        return {**_read_json(run.run_dir / RUN_DONE), "skipped": True}
    _say(f"{run.run_dir.name}: training" + (" (resumed)" if state == "partial" else ""))
    start = time.monotonic()
    result = train(str(run.recipe_path), TrainOptions(
        out=run.run_dir, resume=state == "partial", overwrite=state == "new" and run.run_dir.exists(),
        install=False, progress=options.progress, cpu=options.cpu, data_root=root, data_cache=out / "cache"))
    record = {
        "recipe_sha256": run.recipe_sha256, "finished": bool(result.finished), "steps": result.steps,
        "epochs": result.epochs, "stopped_early": result.stopped_early, "stop_reason": result.stop_reason,
        "selected_step": result.selected_step, "selected_epoch": result.selected_epoch,
        "wall_seconds": time.monotonic() - start, "skipped": False,
    }
    if _is_main():
        _write(run.run_dir / RUN_DONE, json.dumps(record, indent=1) + "\n")
    return record


# ----------------------------------------------------------------------------- evaluation


def _eval_sets(plan: StudyPlan, root: Path, spec: StudySpec) -> list[Any]:
    index = None
    sets = []
    for name, ref in plan.set_refs.items():
        if "folder" in ref:
            sets.append(EvalSet(name, ref["folder"]))
            continue
        if index is None:
            index = build_slice_index(root)
        pool, _, which = ref["pool"].partition(":")
        sel = select_pool(index, pool)
        sets.append(EvalSet(name, lambda _s=sel, _w=which or "train", **kw: _s.dataset(_w, **kw)))
    return sets


def _evaluate_run(run: RunPlan, sets: list[Any], spec: StudySpec) -> dict[str, dict[str, float]]:
    ev = spec.evaluation
    masks = run.masks
    cf = list(masks.get("center_fractions") or [None])[0]
    settings = {"mask": ev.mask or masks["type"],
                "acceleration": float(ev.acceleration or masks["accelerations"][0]),
                "center_fraction": ev.center_fraction if ev.center_fraction is not None else cf,
                "target": run.target, "sets": sorted(s.name for s in sets)}
    weights = run.run_dir / "model" / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    cached = _read_json(run.run_dir / RUN_EVAL)
    if cached and cached.get("weights_sha256") == digest and cached.get("settings") == settings:
        return cached["sets"]
    model = load(str(run.run_dir / "model"))
    result = evaluate_models({run.run_dir.name: model}, sets, mask=settings["mask"],
                             acceleration=settings["acceleration"], center_fraction=settings["center_fraction"],
                             target=run.target)
    scores = result.models[run.run_dir.name]
    out: dict[str, dict[str, float]] = {}
    for s in sets:
        means, stds, nvol, nsl = scores.summary(s.name)
        out[s.name] = {**{k: float(v) for k, v in means.items()},
                       **{f"{k}_std": float(v) for k, v in stds.items()}, "volumes": nvol, "slices": nsl}
    _write(run.run_dir / RUN_EVAL, json.dumps({"weights_sha256": digest, "settings": settings, "sets": out},
                                              indent=1) + "\n")
    return out


def _history(run: RunPlan) -> list[dict[str, Any]]:
    path = run.run_dir / METRICS_NAME
    rows = []
    for r in read_metrics(path) if path.is_file() else []:
        if r.get("kind") != "val":
            continue
        rows.append({"step": int(r["step"]), "epoch": float(r.get("epoch_float", r.get("epoch", 0))),
                     "val": {k: v for k, v in (r.get("id") or {}).items() if isinstance(v, (int, float))},
                     "sets": {k: {m: v for m, v in d.items() if isinstance(v, (int, float))}
                              for k, d in (r.get("ood") or {}).items()}})
    return rows


def _train_slices(run: RunPlan, root: Path) -> int | None:
    if run.train_ref is None:
        return None

    pool, _, which = run.train_ref.partition(":")
    sel = select_pool(build_slice_index(root), pool)
    rows = sel.test[which] if which else sel.train
    return int(rows.size)


# ----------------------------------------------------------------------------- the whole study


def run_study(path: str | os.PathLike[str], options: StudyOptions | None = None) -> StudyResult:
    """Run a study file end to end (module docstring); returns where it wrote and its verdicts."""
    options = options or StudyOptions()
    started = time.monotonic()
    spec, info = load_study(path, smoke=options.smoke)
    out = Path(options.out) if options.out is not None else default_out(spec, options.smoke)
    plan = plan_study(spec, info, out)
    main = _is_main()
    _check_out(out, info, options)  # every process, before the main one writes study.json below
    root = _data_root(spec, info, options, out)
    # every process decides every run's state before any training (a launch's processes agree)
    states = {run.run_dir.name: _run_state(run) for run in plan.runs}
    _barrier(options)
    if main:
        for run in plan.runs:
            if states[run.run_dir.name] != "done":
                _write(run.recipe_path, run.recipe_text)
        for name, text in plan.pool_files.items():
            _write(out / name, text)
        previous = _read_json(out / STUDY_NAME) or {}
        meta = {"name": spec.name, "study": info.path, "study_sha256": info.sha256, "smoke": info.smoke,
                "data_root": str(root), "runs": [r.run_dir.name for r in plan.runs],
                "invocations": list(previous.get("invocations", []))}
        _write(out / STUDY_NAME, json.dumps(meta, indent=1) + "\n")
    _barrier(options)
    records, trained, skipped = {}, 0, 0
    for run in plan.runs:
        rec = _train_run(run, states[run.run_dir.name], root, out, options)
        records[run.run_dir.name] = rec
        skipped += int(rec.get("skipped", False))
        trained += int(not rec.get("skipped", False))
    if not main:
        return StudyResult(out, None, {}, [], time.monotonic() - started, trained, skipped)

    sets = _eval_sets(plan, root, spec)
    runs = []
    for run in plan.runs:
        _say(f"{run.run_dir.name}: evaluating on {', '.join(plan.set_refs)}")
        rec = records[run.run_dir.name]
        runs.append({
            "arm": run.arm, "seed": run.seed, "label": run.label, "run_dir": str(run.run_dir),
            "train_slices": _train_slices(run, root), "final": _evaluate_run(run, sets, spec),
            "history": _history(run), **{k: rec.get(k) for k in (
                "steps", "epochs", "stopped_early", "stop_reason", "selected_step", "wall_seconds", "skipped")},
        })
    wall = time.monotonic() - started
    command = options.command or f"mrizoo study {shlex.quote(str(path))}"
    meta["invocations"].append({"command": command, "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                "wall_seconds": round(wall, 1), "trained": trained, "skipped": skipped,
                                "threads": _threads()})
    _write(out / STUDY_NAME, json.dumps(meta, indent=1) + "\n")
    results = {"study": spec.name, "description": spec.description, "file": info.path, "sha256": info.sha256,
               "smoke": info.smoke, "data_root": str(root), "sets": list(plan.set_refs),
               "set_refs": plan.set_refs, "metrics": list(spec.evaluation.metrics), "runs": runs,
               "command": command, "invocations": meta["invocations"], "wall_seconds": wall, "threads": _threads(), "trained": trained, "skipped": skipped}
    verdicts = judge(spec, results)
    results["verdicts"] = [v.to_dict() for v in verdicts]
    figures = draw_figures(spec, results, verdicts, out / "figures")
    results["figures"] = {k: str(p.relative_to(out)) for k, p in figures.items()}
    _write(out / "results.json", json.dumps(results, indent=1, allow_nan=True) + "\n")
    report = write_report(spec, results, verdicts, out / "report.md")
    _say(f"wrote {report} ({wall:.0f} s; {trained} runs trained, {skipped} skipped)")
    return StudyResult(out, report, results, verdicts, wall, trained, skipped)


def _threads() -> str:
    # imported on use: a heavy package that most calls of this module do not need
    import torch

    return f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
