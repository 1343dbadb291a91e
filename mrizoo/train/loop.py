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

import hashlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import set_seed
from torch import nn
from tqdm import tqdm

from mrizoo.data.slices import SampleBatch
from mrizoo.errors import InputError
from mrizoo.models.checkpoint import save_pretrained
from mrizoo.models.registry import get_architecture
from mrizoo.train.checkpointing import CheckpointManager
from mrizoo.train.data import ShardedVolumeBatches, build_datasets, derive_seed, draw_masks, make_loader
from mrizoo.train.early_stopping import EarlyStopping, agree_across_processes
from mrizoo.train.publish import (
    describe_hardware,
    epoch_of,
    publish_run,
    selected_metrics,
    stop_reason,
    training_summary,
)
from mrizoo.train.recipe import RecipeInfo, TrainingRecipe, load_recipe
from mrizoo.train.run_folder import (
    METRICS_NAME,
    MetricsLog,
    check_run_dir,
    clear_run_dir,
    copy_recipe,
    default_run_dir,
    write_run_description,
)
from mrizoo.train.task_base import to_device
from mrizoo.train.tasks import make_task, task_class, task_family
from mrizoo.train.validation import validate_set
from mrizoo.zoo.factory import create, load

__all__ = ["TrainOptions", "TrainResult", "TrainerState", "train", "build_model", "default_run_dir",
           "is_distributed_launch", "weights_digest"]


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


def is_distributed_launch() -> bool:
    """Whether this process was started by a distributed launcher with more than one process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def build_model(recipe: TrainingRecipe, source: str | None = None) -> nn.Module:
    """The recipe's zoo model with its overrides, initialised from ``init_from`` when given."""
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
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _reset_accelerate_state() -> None:
    """Forget the process-wide accelerate singletons so another run can start in this process."""
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
    cpu = (not torch.cuda.is_available()) if options.cpu is None else options.cpu
    accelerator = Accelerator(mixed_precision=spec.precision, gradient_accumulation_steps=spec.grad_accumulation,
                              cpu=cpu)
    try:
        return _Trainer(spec, info, options, accelerator).run()
    finally:
        if accelerator.num_processes == 1 and not is_distributed_launch():
            _reset_accelerate_state()


class _Trainer:
    """One run of :func:`train`, step by step: set up, resume, train with validations, publish."""

    def __init__(self, spec: TrainingRecipe, info: RecipeInfo, options: TrainOptions, accelerator: Any) -> None:
        self.spec, self.info, self.options, self.accelerator = spec, info, options, accelerator
        self.main = accelerator.is_main_process
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.run_dir = Path(options.out) if options.out is not None else default_run_dir(info, options.smoke)
        self.state = TrainerState()
        self.bar: Any = None

    # -- set-up ---------------------------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        """Check the run folder (resume/overwrite), clear it when asked, create it."""
        opts = self.options
        check_run_dir(self.run_dir, resume=opts.resume, overwrite=opts.overwrite, info=self.info, smoke=opts.smoke,
                      world=self.world)
        if self.main:
            if opts.overwrite and not opts.resume:
                clear_run_dir(self.run_dir)
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.accelerator.wait_for_everyone()

    def _build_data(self, family: str) -> None:
        """Training and validation sets, the sharded batch order and the step budget."""
        spec, opts = self.spec, self.options
        arch = get_architecture(family)
        cache = Path(opts.data_cache) if opts.data_cache is not None else self.run_dir / "data"
        with self.accelerator.main_process_first():
            self.data = build_datasets(spec.data, spec.masks, cache_dir=cache, with_maps=arch.needs_maps,
                                       undersample_val=task_class(family).undersampled_validation,
                                       data_root=opts.data_root)
        base = None if self.data.train_batches is None else self.data.train_batches(spec.data.slices_per_batch,
                                                                                    spec.seed)
        self.sampler = ShardedVolumeBatches(self.data.train, spec.data.slices_per_batch, seed=spec.seed,
                                            num_replicas=self.world, rank=self.rank, multiple=spec.grad_accumulation,
                                            base=base)
        self.batches_per_epoch = len(self.sampler)
        if self.batches_per_epoch < 1:
            raise InputError("the training set yields no batches", field="training.data.train")
        self.steps_per_epoch = self.batches_per_epoch // spec.grad_accumulation
        self.total_steps = spec.steps if spec.steps is not None else int(spec.epochs or 1) * self.steps_per_epoch
        self.limit = self.total_steps if opts.max_steps is None else min(self.total_steps, opts.max_steps)
        self.val_sets = {"val": self.data.val, **{f"ood/{k}": v for k, v in self.data.ood.items()}}

    def _set_up(self) -> None:
        """Model, data, task, early stopping, checkpoints and the metrics log; resume when asked."""
        spec, acc = self.spec, self.accelerator
        set_seed(spec.seed)
        model = build_model(spec, self.info.path)
        self.family = task_family(model)
        self._build_data(self.family)
        self.task = make_task(model, spec, acc, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch)
        self.task.attach_validation(self.data.val)
        self.policy = EarlyStopping.from_spec(spec.early_stopping)
        self.ckpts = CheckpointManager(self.run_dir / "checkpoints", spec.checkpoint.keep,
                                       objects=[self.state, self.policy, *self.task.checkpoint_objects()])
        self.log = MetricsLog(self.run_dir / METRICS_NAME, self.main)
        self.resumed_from = self.ckpts.resume(acc) if self.options.resume else None
        if self.main:
            self.log.truncate_after(self.state.step)
            self.ckpts.discard_after(self.state.step)
            write_run_description(self.run_dir, {
                "recipe": self.info.name, "recipe_path": self.info.path, "recipe_sha256": self.info.sha256,
                "smoke": self.options.smoke, "num_processes": self.world, "mixed_precision": spec.precision,
                "family": self.family, "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                "model": spec.model})
            copy_recipe(self.info, self.run_dir)
        acc.wait_for_everyone()

    # -- validation -----------------------------------------------------------------------
    def _epoch_of(self, step: int) -> int:
        return epoch_of(step, self.steps_per_epoch)

    def _validate(self, end_of_epoch: bool) -> bool:
        """Validate every set, log, decide, keep the selected weights; returns the agreed stop flag."""
        task, state, acc, metric = self.task, self.state, self.accelerator, self.spec.early_stopping.metric
        eval_model = task.eval_model()
        eval_model.eval()
        try:
            results = {name: validate_set(task, eval_model, ds, name, accelerator=acc, recipe=self.spec)
                       for name, ds in self.val_sets.items()}
        finally:
            for m in task.prepared:
                m.train()
        id_metrics = results["val"]
        ood = {name.removeprefix("ood/"): r for name, r in results.items() if name != "val"}
        extra = task.after_validation(id_metrics)
        decision = self.policy.update(state.step, self._epoch_of(state.step), id_metrics.get(metric, math.nan),
                                      {k: r.get(metric, math.nan) for k, r in ood.items()})
        stop = agree_across_processes(decision.stop, acc)
        state.last_val_step = state.step
        if decision.is_best:
            self._keep_selected(eval_model, id_metrics, ood)
        acc.wait_for_everyone()
        if stop:
            state.stopped, state.stop_reason = True, decision.reason or "stopped"
        self.log.write({"kind": "val", "step": state.step, "epoch": self._epoch_of(state.step),
                        "epoch_float": state.step / max(1, self.steps_per_epoch),
                        "at": "epoch" if end_of_epoch else "step", "id": id_metrics, "ood": ood,
                        "selected": decision.is_best, "stop": stop, "reason": decision.reason, **extra})
        self.bar.set_postfix_str(f"val {metric} {id_metrics.get(metric, math.nan):.4g}", refresh=False)
        return stop

    def _keep_selected(self, eval_model: nn.Module, id_metrics: dict[str, float], ood: dict[str, Any]) -> None:
        """The best validation so far: its weights to ``RUN_DIR/selected`` and its facts to the state."""
        state = self.state
        if self.main:
            save_pretrained(eval_model, self.run_dir / "selected", recipe_file=self.info.path, overwrite=True,
                            extra={"training_recipe": self.info.name, "training_step": state.step})
        state.selected = {"step": state.step, "epoch": self._epoch_of(state.step), "id": id_metrics, "ood": ood,
                          "weights_sha256": weights_digest(eval_model.state_dict())}

    # -- training -------------------------------------------------------------------------
    def _train_step(self, batch: SampleBatch) -> dict[str, float]:
        """One batch through the task (an optimizer step when gradients sync); returns its logs."""
        spec, acc, state = self.spec, self.accelerator, self.state
        batch = to_device(batch, acc.device)
        shape = (int(batch.kspace.shape[-2]), int(batch.kspace.shape[-1]))
        key = (spec.seed, state.epoch, state.batch_in_epoch, self.rank)
        mask = draw_masks(spec.masks, shape, len(batch), derive_seed("mask", *key), batch.fname,
                          batch.slice_index.tolist()).to(acc.device)
        gen = torch.Generator().manual_seed(derive_seed("step", *key))
        with acc.accumulate(*self.task.prepared):
            logs = self.task.train_step(batch, mask, epoch=state.epoch, generator=gen)
        state.batch_in_epoch += 1
        return logs

    def _log_train(self, logs: dict[str, float], window: list[float]) -> None:
        """A training line: the loss averaged over the steps since the last line and processes."""
        acc = self.accelerator
        loss = float(acc.reduce(torch.tensor([sum(window) / max(1, len(window))], device=acc.device),
                                reduction="mean"))
        self.log.write({"kind": "train", "step": self.state.step, "epoch": self._epoch_of(self.state.step),
                        "loss": loss, "lr": self.task.lr, **{k: v for k, v in logs.items() if k != "loss"}})
        self.bar.set_description_str(f"train {self.info.name} loss {loss:.4g}", refresh=False)

    def _save(self) -> None:
        """A checkpoint at the current step (the wall time so far included)."""
        state = self.state
        state.wall_seconds += time.monotonic() - self._segment_start
        self._segment_start = time.monotonic()
        self.ckpts.save(self.accelerator, state.step, {**state.state_dict(), "recipe": self.info.name})
        self._saved_at = state.step

    def _after_optimizer_step(self, logs: dict[str, float], window: list[float]) -> bool:
        """Count the step; log, validate and checkpoint when due. Returns whether to stop the epoch loop."""
        spec, state = self.spec, self.state
        self.task.after_optimizer_step()
        state.step += 1
        end_of_epoch = state.batch_in_epoch >= self.batches_per_epoch
        if end_of_epoch:
            state.epoch += 1
            state.batch_in_epoch = 0
        self.bar.update(1)
        finished = state.step >= self.total_steps
        if spec.validate_every is not None:
            do_val = state.step % spec.validate_every == 0 or finished
        else:
            do_val = end_of_epoch or finished
        every = spec.checkpoint.every_steps
        due = (state.step % every == 0) if every is not None else do_val
        at_limit = state.step >= self.limit
        # a train line at every checkpoint too, so a resumed run logs exactly what an uninterrupted one does
        if state.step % self._log_every == 0 or end_of_epoch or due or at_limit:
            self._log_train(logs, window)
            window.clear()
        stop = self._validate(end_of_epoch and spec.validate_every is None) if do_val else False
        if due or stop or at_limit:
            self._save()
        self._stop = stop
        return stop or at_limit

    def _train_loop(self) -> None:
        """Optimizer steps until the budget (or ``max_steps``) is spent or early stopping fires."""
        spec, state, acc = self.spec, self.state, self.accelerator
        self._log_every = max(1, min(100, self.total_steps // 200))
        self._saved_at = self.resumed_from if self.resumed_from is not None else -1
        self._segment_start = time.monotonic()
        self._stop = state.stopped
        window: list[float] = []
        for m in self.task.prepared:
            m.train()
        while state.step < self.limit and not self._stop:
            self.sampler.set_position(state.epoch, state.batch_in_epoch)
            loader = make_loader(self.data.train, self.sampler, spec.data.num_workers,
                                 seed=derive_seed(spec.seed, "loader", state.epoch, state.batch_in_epoch, self.rank))
            for batch in loader:
                logs = self._train_step(batch)
                window.append(logs.get("loss", math.nan))
                if acc.sync_gradients and self._after_optimizer_step(logs, window):
                    break
        self.bar.close()
        state.wall_seconds += time.monotonic() - self._segment_start
        if self._saved_at != state.step and state.step > 0:
            self.ckpts.save(acc, state.step, {**state.state_dict(), "recipe": self.info.name})

    # -- the end ------------------------------------------------------------------------
    def _finish(self) -> TrainResult:
        """Publish the selected weights with a training summary, plot the metrics, install to the local zoo."""
        spec, state, acc, opts = self.spec, self.state, self.accelerator, self.options
        finished = state.step >= self.total_steps or state.stopped
        reason = stop_reason(spec, state, finished=finished, total_steps=self.total_steps)
        summary = training_summary(spec, self.info, state, reason=reason, total_steps=self.total_steps,
                                   steps_per_epoch=self.steps_per_epoch, hardware=describe_hardware(acc),
                                   smoke=opts.smoke)
        install = opts.install is not False and not opts.smoke  # a smoke run never reaches the local zoo
        installed = None
        if self.main:
            installed = publish_run(spec, self.info, self.task, state, self.run_dir, summary=summary,
                                    install=install and finished)
        acc.wait_for_everyone()
        selected = state.selected
        return TrainResult(
            run_dir=self.run_dir, model_dir=self.run_dir / "model", installed=installed, steps=state.step,
            epochs=self._epoch_of(state.step), finished=finished, stopped_early=state.stopped, stop_reason=reason,
            selected_step=None if selected is None else int(selected["step"]),
            selected_epoch=None if selected is None else int(selected["epoch"]),
            metrics=selected_metrics(selected), num_processes=acc.num_processes, process_index=acc.process_index,
            resumed_from=self.resumed_from,
            selected_digest=None if selected is None else selected.get("weights_sha256"),
        )

    def run(self) -> TrainResult:
        started = time.monotonic()
        self._prepare_run_dir()
        self._set_up()
        self.bar = tqdm(total=self.limit, initial=min(self.state.step, self.limit), desc=f"train {self.info.name}",
                        dynamic_ncols=True, disable=not (self.main and self.options.progress), file=sys.stderr)
        self._train_loop()
        result = self._finish()
        self.accelerator.wait_for_everyone()
        if self.main:
            elapsed = time.monotonic() - started
            print(f"mrizoo train: {self.info.name}: {self.state.step} steps in {elapsed:.1f} s on "
                  f"{describe_hardware(self.accelerator)}; run folder {self.run_dir}", file=sys.stderr)
        self.accelerator.end_training()
        return result
