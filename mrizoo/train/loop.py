"""The trainer: one code path from a laptop CPU to many GPUs on many nodes (``accelerate``).

``train(recipe)`` builds the zoo model of a recipe, its data and its family's task, and runs
optimizer steps until the recipe's budget is spent or early stopping fires:

- Batches are slices of one volume; every process trains on its own share of each epoch's
  shuffled volume batches (:class:`~mrizoo.train.data.ShardedVolumeBatches`), with a fresh
  mask per slice drawn from a seed derived from the recipe seed, the epoch and the batch.
- Validation (each epoch, or every ``validate_every`` steps, and at the end) scores the
  in-distribution set and every OOD set per volume with fastMRI's SSIM/PSNR/NMSE; each
  process validates its own volumes and the rows are gathered. Results go to
  ``RUN_DIR/metrics.jsonl`` (one JSON line per validation and per logged training step);
  ``RUN_DIR/recipe.yaml`` is a copy of the recipe file and ``RUN_DIR/run.json`` its sha256 and settings.
- The early-stopping policy decides after each validation; all processes stop at the same
  step. The weights of the selected validation are kept in ``RUN_DIR/selected/`` and published
  as ``RUN_DIR/model/`` (``config.json`` + ``model.safetensors`` + ``training_summary.json``),
  and, for zoo entries, in the local zoo, where ``mrizoo.load(name)`` finds them.
- Checkpoints (``accelerate`` model and optimizer states plus the policy, loss state, EMA,
  schedulers, counters and random generators as JSON + safetensors, every file's sha256
  recorded) are written atomically to ``RUN_DIR/checkpoints/step_N``; ``resume=True`` continues
  from the newest intact one (an older one when the newest is damaged, saying so) and ends with
  the same weights as an uninterrupted run. Smoke runs are never installed in the local zoo.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mrizoo.data.slices import SampleBatch
from mrizoo.errors import InputError
from mrizoo.train.checkpointing import CheckpointManager
from mrizoo.train.data import (
    ShardedVolumeBatches,
    build_datasets,
    derive_seed,
    draw_masks,
    make_loader,
    validation_batches,
)
from mrizoo.train.plot import plot_metrics, read_metrics
from mrizoo.train.recipe import RecipeInfo, TrainingRecipe, load_recipe
from mrizoo.train.tasks import Task, make_task, needs_maps, task_family

__all__ = ["TrainOptions", "TrainResult", "TrainerState", "train", "build_model", "default_run_dir",
           "is_distributed_launch", "weights_digest"]

METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "training_summary.json"
RUN_NAME = "run.json"
RECIPE_NAME = "recipe.yaml"


@dataclass(frozen=True)
class TrainOptions:
    """How to run a recipe (the recipe itself says what to train).

    ``out``: the run folder (default ``runs/<recipe>[-smoke]``). ``smoke``: apply the recipe's
    ``smoke`` overrides. ``resume``: continue from the newest checkpoint of ``out``.
    ``max_steps``: stop after this many optimizer steps in total (a checkpoint is written there).
    ``install``: also write the published weights to the local zoo (entry recipes only; default:
    yes for full runs; smoke runs are never installed, and ``install=True`` with ``smoke`` is an error). ``overwrite``: clear a run folder that holds a run.
    ``progress``: show a progress bar (main process only). ``cpu``: force the CPU (default:
    CPU when no GPU is visible). ``data_cache``: folder for generated synthetic volumes
    (default ``RUN_DIR/data``). ``data_root``: the folder holding the datasets that ``pool``
    sources select from (default ``$MRIZOO_POOL_ROOT``).
    """

    out: str | os.PathLike[str] | None = None
    smoke: bool = False
    resume: bool = False
    max_steps: int | None = None
    install: bool | None = None
    overwrite: bool = False
    progress: bool = True
    cpu: bool | None = None
    data_cache: str | os.PathLike[str] | None = None
    data_root: str | os.PathLike[str] | None = None


@dataclass
class TrainResult:
    """What a run produced and where it stopped."""

    run_dir: Path
    model_dir: Path | None
    installed: Path | None
    steps: int
    epochs: int
    finished: bool
    stopped_early: bool
    stop_reason: str
    selected_step: int | None
    selected_epoch: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    num_processes: int = 1
    process_index: int = 0
    resumed_from: int | None = None
    selected_digest: str | None = None


class TrainerState:
    """Counters and bookkeeping saved with every checkpoint."""

    def __init__(self) -> None:
        self.step = 0
        self.epoch = 0  # 0-based epoch in progress
        self.batch_in_epoch = 0  # batches of that epoch this process has consumed
        self.last_val_step = -1
        self.selected: dict[str, Any] | None = None
        self.stopped = False
        self.stop_reason = ""
        self.wall_seconds = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "last_val_step": self.last_val_step, "selected": self.selected, "stopped": self.stopped,
                "stop_reason": self.stop_reason, "wall_seconds": self.wall_seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.last_val_step = int(state["last_val_step"])
        self.selected = state["selected"]
        self.stopped, self.stop_reason = bool(state["stopped"]), str(state["stop_reason"])
        self.wall_seconds = float(state["wall_seconds"])


# --------------------------------------------------------------------------------- helpers


def is_distributed_launch() -> bool:
    """Whether this process was started by a distributed launcher with more than one process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def default_run_dir(info: RecipeInfo, smoke: bool) -> Path:
    return Path("runs") / (info.name + ("-smoke" if smoke else ""))


def build_model(recipe: TrainingRecipe, source: str | None = None) -> nn.Module:
    """The recipe's zoo model with its overrides, initialised from ``init_from`` when given."""
    from mrizoo.zoo.factory import create, load

    model = create(recipe.model, **recipe.model_overrides)
    if recipe.init_from is not None:
        init = load(recipe.init_from)
        try:
            model.load_state_dict(init.state_dict(), strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise InputError("the init_from weights do not fit the model (check model_overrides)", path=source,
                             field="training.init_from", got=first) from None
    return model


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict (order-independent)."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _to_device(batch: SampleBatch, device: torch.device) -> SampleBatch:
    def move(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(device, non_blocking=True)

    return dataclasses.replace(batch, kspace=move(batch.kspace), mask=move(batch.mask), target=move(batch.target),
                               max_value=move(batch.max_value), maps=move(batch.maps))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class _MetricsLog:
    """``metrics.jsonl`` written by the main process, one flushed line per record."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        """Keep only the records up to ``step`` (a resumed run rewrites what came after)."""
        if not self.enabled or not self.path.is_file():
            return
        keep = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= step]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        os.replace(tmp, self.path)

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(_jsonable(record)) + "\n")
                f.flush()


def _hardware(accelerator: Any) -> str:
    device = accelerator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return f"{accelerator.num_processes} x {name}"


def _copy_checkpoint(src: Path, dst: Path, extra_files: dict[str, str]) -> Path:
    """Copy a checkpoint folder (config + weights) plus ``extra_files`` (name -> text) atomically."""
    from mrizoo._atomic import atomic_dir
    from mrizoo.hub.format import CONFIG_NAME, WEIGHTS_NAME

    with atomic_dir(dst) as tmp:
        if dst.is_dir():  # keep files such as a model card
            for item in dst.iterdir():
                if item.is_file() and item.name not in (CONFIG_NAME, WEIGHTS_NAME, *extra_files):
                    shutil.copy2(item, tmp / item.name)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copy2(src / name, tmp / name)
        for name, text in extra_files.items():
            (tmp / name).write_text(text)
    return dst


def _is_entry_recipe(recipe: TrainingRecipe, info: RecipeInfo) -> bool:
    from mrizoo.zoo.registry import REGISTRY

    return info.name == recipe.model and recipe.model in REGISTRY.names()


# ---------------------------------------------------------------------------- validation


def _finite_mean(values: torch.Tensor) -> float:
    ok = values[torch.isfinite(values)]
    return float(ok.mean()) if ok.numel() else math.nan


@torch.no_grad()
def _validate_set(task: Task, model: nn.Module, dataset: Any, name: str, *, accelerator: Any,
                  recipe: TrainingRecipe) -> dict[str, float]:
    """Per-volume metrics of one validation set, averaged over all its volumes (all processes)."""
    from mrizoo.metrics import evaluate_volume, psnr

    keys = task.val_keys()
    batch_size = max(1, recipe.data.slices_per_batch)
    batches = validation_batches(dataset, batch_size, num_replicas=accelerator.num_processes,
                                 rank=accelerator.process_index)
    loader = make_loader(dataset, batches, recipe.data.num_workers, seed=derive_seed(recipe.seed, "val", name))
    volumes: dict[int, dict[str, list[Any]]] = {}
    for indices, batch in zip(batches, loader):
        vid = int(dataset.examples[indices[0]][0])
        batch = _to_device(batch, accelerator.device)
        gen = torch.Generator().manual_seed(derive_seed(recipe.seed, "val", name, vid, indices[0]))
        with accelerator.autocast():
            out = task.predict(model, batch, gen)
        rec = volumes.setdefault(vid, {"pred": [], "target": [], "max": [], "loss": [], "n": [], "extra": []})
        rec["pred"].append(out.pred.float().cpu())
        rec["target"].append((out.target if out.target is not None else batch.target).float().cpu())
        rec["max"].append((out.max_value if out.max_value is not None else batch.max_value).float().cpu())
        rec["extra"].append({k: v.float().cpu() for k, v in out.extra.items()})
        if out.loss is not None:
            rec["loss"].append(out.loss * len(batch))
            rec["n"].append(len(batch))
    rows = []
    for vid, rec in sorted(volumes.items()):
        gt, pred = torch.cat(rec["target"]), torch.cat(rec["pred"])
        maxval = float(torch.cat(rec["max"]).max())
        values = dict(evaluate_volume(gt, pred, maxval=maxval))
        for extra_name in rec["extra"][0]:
            img = torch.cat([e[extra_name] for e in rec["extra"]])
            values[f"psnr_{extra_name}"] = psnr(gt, img, maxval=maxval)
        if rec["n"]:
            values["loss"] = sum(rec["loss"]) / sum(rec["n"])
        rows.append([1.0, float(vid)] + [float(values.get(k, math.nan)) for k in keys])
    width = 2 + len(keys)
    local = torch.tensor(rows, dtype=torch.float64).reshape(-1, width).to(accelerator.device)
    padded = accelerator.pad_across_processes(local, dim=0)
    gathered = accelerator.gather_for_metrics(padded).reshape(-1, width).cpu()
    valid = gathered[gathered[:, 0] > 0.5]
    out = {k: _finite_mean(valid[:, 2 + i]) for i, k in enumerate(keys)}
    out["volumes"] = int(valid.shape[0])
    return out


# --------------------------------------------------------------------------------- training


def _check_run_dir(run_dir: Path, options: TrainOptions, info: RecipeInfo, world: int) -> None:
    """Refuse to mix runs: a folder holding a run needs ``resume`` (same recipe) or ``overwrite``."""
    holds_run = any((run_dir / n).exists() for n in (METRICS_NAME, "checkpoints", "model", RUN_NAME))
    if options.resume:
        if options.overwrite:
            raise InputError("--resume continues a run and --overwrite clears it: pass one of them",
                             field="resume", expected="--resume or --overwrite", got="both")
        if not holds_run:
            raise InputError("cannot resume: the run folder holds no run" if run_dir.exists()
                             else "cannot resume: the run folder does not exist", path=run_dir,
                             expected="the RUN_DIR of an earlier `mrizoo train` (run.json, checkpoints/), "
                                      "or no --resume to start a new run")
        meta_path = run_dir / RUN_NAME
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise InputError(f"cannot resume: unreadable run description ({err})", path=meta_path) from None
            if not isinstance(meta, dict):
                raise InputError("cannot resume: the run description is not a JSON mapping", path=meta_path)
            for key, now in (("recipe_sha256", info.sha256), ("smoke", options.smoke), ("num_processes", world)):
                if meta.get(key) != now:
                    raise InputError("cannot resume: the run was started with another setting", path=meta_path,
                                     field=key, expected=meta.get(key), got=now)
        return
    if holds_run and not options.overwrite:
        raise InputError("the run folder holds a run already", path=run_dir,
                         expected="--resume to continue it, --overwrite to start again, or another --out")


def _clear_run_dir(run_dir: Path) -> None:
    for name in ("checkpoints", "selected", "model"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in (METRICS_NAME, "metrics.png", SUMMARY_NAME, RUN_NAME, RECIPE_NAME):
        (run_dir / name).unlink(missing_ok=True)


def _copy_recipe(info: RecipeInfo, run_dir: Path) -> None:
    """The recipe file, byte for byte (``run.json`` holds its sha256 and the smoke flag), written atomically."""
    tmp = run_dir / f".{RECIPE_NAME}.tmp"
    shutil.copyfile(info.path, tmp)
    os.replace(tmp, run_dir / RECIPE_NAME)


def _reset_accelerate_state() -> None:
    """Forget the process-wide accelerate singletons so another run can start in this process."""
    from accelerate.state import AcceleratorState, GradientState

    for reset in (lambda: AcceleratorState._reset_state(reset_partial_state=True), GradientState._reset_state):
        try:
            reset()
        except AttributeError:  # another accelerate version without these helpers
            pass


def train(recipe: str | os.PathLike[str], options: TrainOptions | None = None) -> TrainResult:
    """Train the model of a recipe (a shipped recipe name or a YAML path); see the module docstring."""
    options = options or TrainOptions()
    if options.max_steps is not None and options.max_steps < 1:
        raise InputError("max_steps must be positive", field="max_steps", expected=">= 1", got=options.max_steps)
    if options.smoke and options.install:
        raise InputError("smoke runs are never installed in the local zoo (their weights would replace the "
                         "published ones under the entry's name)", field="install", expected="no --install with --smoke")
    spec, info = load_recipe(recipe, smoke=options.smoke)
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    cpu = (not torch.cuda.is_available()) if options.cpu is None else options.cpu
    accelerator = Accelerator(mixed_precision=spec.precision, gradient_accumulation_steps=spec.grad_accumulation,
                              cpu=cpu)
    try:
        return _train(spec, info, options, accelerator, set_seed)
    finally:
        if accelerator.num_processes == 1 and not is_distributed_launch():
            _reset_accelerate_state()


def _train(spec: TrainingRecipe, info: RecipeInfo, options: TrainOptions, accelerator: Any,
           set_seed: Any) -> TrainResult:
    from tqdm import tqdm

    from mrizoo.train.early_stopping import EarlyStopping, agree_across_processes

    started = time.monotonic()
    main = accelerator.is_main_process
    world, rank = accelerator.num_processes, accelerator.process_index
    run_dir = Path(options.out) if options.out is not None else default_run_dir(info, options.smoke)
    _check_run_dir(run_dir, options, info, world)
    if main:
        if options.overwrite and not options.resume:
            _clear_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    set_seed(spec.seed)
    model = build_model(spec, info.path)
    family = task_family(model)
    cache = Path(options.data_cache) if options.data_cache is not None else run_dir / "data"
    undersample_val = family != "ncsnv2"
    with accelerator.main_process_first():
        data = build_datasets(spec.data, spec.masks, cache_dir=cache, with_maps=needs_maps(family),
                              undersample_val=undersample_val, data_root=options.data_root)
    base = None if data.train_batches is None else data.train_batches(spec.data.slices_per_batch, spec.seed)
    sampler = ShardedVolumeBatches(data.train, spec.data.slices_per_batch, seed=spec.seed, num_replicas=world,
                                   rank=rank, multiple=spec.grad_accumulation, base=base)
    batches_per_epoch = len(sampler)
    if batches_per_epoch < 1:
        raise InputError("the training set yields no batches", field="training.data.train")
    steps_per_epoch = batches_per_epoch // spec.grad_accumulation
    total_steps = spec.steps if spec.steps is not None else int(spec.epochs or 1) * steps_per_epoch
    limit = total_steps if options.max_steps is None else min(total_steps, options.max_steps)

    task = make_task(model, spec, accelerator, total_steps=total_steps, steps_per_epoch=steps_per_epoch)
    task.attach_validation(data.val)
    policy = EarlyStopping.from_spec(spec.early_stopping)
    state = TrainerState()
    ckpts = CheckpointManager(run_dir / "checkpoints", spec.checkpoint.keep,
                              objects=[state, policy, *task.checkpoint_objects()])
    log = _MetricsLog(run_dir / METRICS_NAME, main)

    resumed_from = ckpts.resume(accelerator) if options.resume else None
    if main:
        log.truncate_after(state.step)
        ckpts.discard_after(state.step)
        meta = {"recipe": info.name, "recipe_path": info.path, "recipe_sha256": info.sha256, "smoke": options.smoke,
                "num_processes": world, "mixed_precision": spec.precision, "family": family,
                "total_steps": total_steps, "steps_per_epoch": steps_per_epoch, "model": spec.model}
        (run_dir / RUN_NAME).write_text(json.dumps(meta, indent=1) + "\n")
        _copy_recipe(info, run_dir)
    accelerator.wait_for_everyone()

    def epoch_of(step: int) -> int:
        return max(1, math.ceil(step / max(1, steps_per_epoch)))

    val_sets = {"val": data.val, **{f"ood/{k}": v for k, v in data.ood.items()}}
    log_every = max(1, min(100, total_steps // 200))
    es_metric = spec.early_stopping.metric

    def validate(end_of_epoch: bool) -> bool:
        """Validate every set, log, decide; returns the agreed stop flag."""
        eval_model = task.eval_model()
        eval_model.eval()
        try:
            results = {name: _validate_set(task, eval_model, ds, name, accelerator=accelerator, recipe=spec)
                       for name, ds in val_sets.items()}
        finally:
            for m in task.prepared:
                m.train()
        id_metrics = results["val"]
        ood = {name.removeprefix("ood/"): r for name, r in results.items() if name != "val"}
        extra = task.after_validation(id_metrics)
        decision = policy.update(state.step, epoch_of(state.step), id_metrics.get(es_metric, math.nan),
                                 {k: r.get(es_metric, math.nan) for k, r in ood.items()})
        stop = agree_across_processes(decision.stop, accelerator)
        state.last_val_step = state.step
        if decision.is_best:
            if main:
                from mrizoo.hub.format import save_pretrained

                save_pretrained(eval_model, run_dir / "selected", recipe_file=info.path, overwrite=True,
                                extra={"training_recipe": info.name, "training_step": state.step})
            state.selected = {"step": state.step, "epoch": epoch_of(state.step), "id": id_metrics, "ood": ood,
                              "weights_sha256": weights_digest(eval_model.state_dict())}
        accelerator.wait_for_everyone()
        if stop:
            state.stopped, state.stop_reason = True, decision.reason or "stopped"
        log.write({"kind": "val", "step": state.step, "epoch": epoch_of(state.step),
                   "epoch_float": state.step / max(1, steps_per_epoch), "at": "epoch" if end_of_epoch else "step",
                   "id": id_metrics, "ood": ood, "selected": decision.is_best, "stop": stop,
                   "reason": decision.reason, **extra})
        if bar is not None:
            bar.set_postfix_str(f"val {es_metric} {id_metrics.get(es_metric, math.nan):.4g}", refresh=False)
        return stop

    bar = tqdm(total=limit, initial=min(state.step, limit), desc=f"train {info.name}", dynamic_ncols=True,
               disable=not (main and options.progress), file=sys.stderr)
    window: list[float] = []
    saved_at = resumed_from if resumed_from is not None else -1
    segment_start = time.monotonic()
    stop = state.stopped
    for m in task.prepared:
        m.train()
    while state.step < limit and not stop:
        sampler.set_position(state.epoch, state.batch_in_epoch)
        loader = make_loader(data.train, sampler, spec.data.num_workers,
                             seed=derive_seed(spec.seed, "loader", state.epoch, state.batch_in_epoch, rank))
        for batch in loader:
            batch = _to_device(batch, accelerator.device)
            shape = (int(batch.kspace.shape[-2]), int(batch.kspace.shape[-1]))
            key = (spec.seed, state.epoch, state.batch_in_epoch, rank)
            mask = draw_masks(spec.masks, shape, len(batch), derive_seed("mask", *key), batch.fname,
                              batch.slice_index.tolist()).to(accelerator.device)
            gen = torch.Generator().manual_seed(derive_seed("step", *key))
            with accelerator.accumulate(*task.prepared):
                logs = task.train_step(batch, mask, epoch=state.epoch, generator=gen)
            state.batch_in_epoch += 1
            window.append(logs.get("loss", math.nan))
            if not accelerator.sync_gradients:
                continue
            task.after_optimizer_step()
            state.step += 1
            end_of_epoch = state.batch_in_epoch >= batches_per_epoch
            if end_of_epoch:
                state.epoch += 1
                state.batch_in_epoch = 0
            bar.update(1)
            finished = state.step >= total_steps
            if spec.validate_every is not None:
                do_val = state.step % spec.validate_every == 0 or finished
            else:
                do_val = end_of_epoch or finished
            every = spec.checkpoint.every_steps
            due = (state.step % every == 0) if every is not None else do_val
            at_limit = state.step >= limit
            # a train line at every checkpoint too, so a resumed run logs exactly what an uninterrupted one does
            if state.step % log_every == 0 or end_of_epoch or due or at_limit:
                loss = accelerator.reduce(torch.tensor([sum(window) / max(1, len(window))],
                                                       device=accelerator.device), reduction="mean")
                record = {"kind": "train", "step": state.step, "epoch": epoch_of(state.step),
                          "loss": float(loss), "lr": task.lr,
                          **{k: v for k, v in logs.items() if k != "loss"}}
                log.write(record)
                bar.set_description_str(f"train {info.name} loss {float(loss):.4g}", refresh=False)
                window = []
            if do_val:
                stop = validate(end_of_epoch and spec.validate_every is None)
            if due or stop or at_limit:
                state.wall_seconds += time.monotonic() - segment_start
                segment_start = time.monotonic()
                ckpts.save(accelerator, state.step, {**state.state_dict(), "recipe": info.name})
                saved_at = state.step
            if stop or at_limit:
                break
    bar.close()
    state.wall_seconds += time.monotonic() - segment_start
    if saved_at != state.step and state.step > 0:
        ckpts.save(accelerator, state.step, {**state.state_dict(), "recipe": info.name})

    finished = state.step >= total_steps or state.stopped
    result = _finalize(spec, info, options, accelerator, task, state, policy, run_dir,
                       total_steps=total_steps, steps_per_epoch=steps_per_epoch, finished=finished)
    result.resumed_from = resumed_from
    accelerator.wait_for_everyone()
    if main:
        elapsed = time.monotonic() - started
        print(f"mrizoo train: {info.name}: {state.step} steps in {elapsed:.1f} s on {_hardware(accelerator)}; "
              f"run folder {run_dir}", file=sys.stderr)
    accelerator.end_training()
    return result


def _finalize(spec: TrainingRecipe, info: RecipeInfo, options: TrainOptions, accelerator: Any, task: Task,
              state: TrainerState, policy: Any, run_dir: Path, *, total_steps: int, steps_per_epoch: int,
              finished: bool) -> TrainResult:
    """Publish the selected weights with a training summary, plot the metrics, install to the local zoo."""
    from mrizoo.hub.cards import TrainingSummary
    from mrizoo.hub.format import save_pretrained

    def epoch_of(step: int) -> int:
        return max(1, math.ceil(step / max(1, steps_per_epoch)))

    selected = state.selected
    main = accelerator.is_main_process
    epochs = epoch_of(state.step)
    metrics: dict[str, float] = {}
    if selected is not None:
        metrics = {k: float(v) for k, v in selected["id"].items() if k != "volumes"}
        for name, r in selected["ood"].items():
            metrics.update({f"ood/{name}/{k}": float(v) for k, v in r.items() if k != "volumes"})
    if state.stopped:
        reason = state.stop_reason
    elif not finished:
        reason = f"interrupted after step {state.step} of {total_steps} (max_steps); resume to finish"
    else:
        es = spec.early_stopping
        which = "in-distribution" if es.rule != "ood" else (f"OOD ({es.ood_set})" if es.ood_set else "mean OOD")
        reason = f"not triggered ({es.rule} rule); the validation with the best {which} {es.metric} was kept"
    max_epochs = spec.epochs if spec.epochs is not None else epoch_of(total_steps)
    summary = TrainingSummary(
        recipe=info.name,
        epochs_trained=epochs,
        max_epochs=max(max_epochs, epochs),
        checkpoint_epoch=None if selected is None else int(selected["epoch"]),
        early_stopping=reason,
        steps=max(1, state.step),
        validation={k: v for k, v in metrics.items() if math.isfinite(v)},
        hardware=_hardware(accelerator),
        wall_time_hours=state.wall_seconds / 3600.0,
        recipe_sha256=info.sha256,
        notes=(f"selected step {selected['step']} (epoch {selected['epoch']}) of {state.step}"
               if selected is not None else "no validation ran; the last weights are published")
              + ("; smoke run" if options.smoke else ""),
    )
    summary_text = json.dumps(_jsonable(dataclasses.asdict(summary)), indent=1) + "\n"
    model_dir = run_dir / "model"
    installed = None
    install = options.install is not False and not options.smoke  # a smoke run never reaches the local zoo
    if main:
        (run_dir / SUMMARY_NAME).write_text(summary_text)
        source = run_dir / "selected"
        if selected is not None and (source / "config.json").is_file():
            on_disk = json.loads((source / "config.json").read_text()).get("training_step")
            if on_disk != selected["step"]:
                print(f"mrizoo train: warning: {source} holds the weights of step {on_disk}, the selected "
                      f"validation is at step {selected['step']}", file=sys.stderr)
        if selected is None or not (source / "config.json").is_file():
            save_pretrained(task.eval_model(), source, recipe_file=info.path, overwrite=True,
                            extra={"training_recipe": info.name, "training_step": state.step})
        _copy_checkpoint(source, model_dir, {SUMMARY_NAME: summary_text})
        plot_metrics(read_metrics(run_dir / METRICS_NAME), run_dir / "metrics.png",
                     selected_step=None if selected is None else int(selected["step"]),
                     stop_step=state.step if state.stopped else None,
                     title=f"{info.name}: validation ({spec.early_stopping.rule} rule)")
        if install and finished and _is_entry_recipe(spec, info):
            from mrizoo.hub.local_zoo import local_zoo_dir

            installed = _copy_checkpoint(model_dir, local_zoo_dir(spec.model), {SUMMARY_NAME: summary_text})
    accelerator.wait_for_everyone()
    return TrainResult(
        run_dir=run_dir, model_dir=model_dir, installed=installed, steps=state.step, epochs=epochs,
        finished=finished, stopped_early=state.stopped, stop_reason=reason,
        selected_step=None if selected is None else int(selected["step"]),
        selected_epoch=None if selected is None else int(selected["epoch"]),
        metrics=metrics, num_processes=accelerator.num_processes, process_index=accelerator.process_index,
        selected_digest=None if selected is None else selected.get("weights_sha256"),
    )
