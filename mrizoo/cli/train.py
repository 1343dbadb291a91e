"""``mrizoo train RECIPE``: train a zoo model from its recipe (one CPU to many GPUs).

Runs on one process as is, and on many with ``accelerate launch -m mrizoo train RECIPE``
(the launcher's settings choose processes, machines and devices; the recipe chooses precision
and gradient accumulation). ``python -m mrizoo.cli.train RECIPE`` runs the same command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from mrizoo.errors import MrizooError

__all__ = ["register", "main"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", metavar="RECIPE", help="a shipped recipe name (see `mrizoo list`) or a YAML file")
    p.add_argument("--smoke", action="store_true",
                   help="apply the recipe's smoke overrides: tiny model, synthetic data, seconds on a CPU")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/<recipe>[-smoke])")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in RUN_DIR")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="stop after N optimizer steps in total (a checkpoint is written there)")
    p.add_argument("--overwrite", action="store_true", help="clear RUN_DIR when it holds a run already")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--install", dest="install", action="store_true", default=None,
                       help="write the trained weights to the local zoo (default for full runs; never for --smoke)")
    group.add_argument("--no-install", dest="install", action="store_false",
                       help="do not write to the local zoo (always so for --smoke)")
    p.add_argument("--data-root", metavar="DIR",
                   help="folder holding the datasets that pool sources select from (default $MRIZOO_POOL_ROOT)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is visible")


def register(subparsers: Any) -> None:
    """Add the ``train`` command."""
    p = subparsers.add_parser(
        "train", help="train a zoo model from its recipe",
        description="Train the model of a recipe (recipes/<name>.yaml, key 'training:'). Writes RUN_DIR/"
                    "metrics.jsonl, metrics.png, checkpoints/, model/ (the selected weights with "
                    "training_summary.json) and, for zoo entries, the local zoo ($MRIZOO_HOME/zoo/<name>). "
                    "Multi-GPU / multi-node: accelerate launch -m mrizoo train RECIPE.")
    _add_arguments(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.train.loop import TrainOptions, is_distributed_launch, train

    options = TrainOptions(out=args.out, smoke=args.smoke, resume=args.resume, max_steps=args.max_steps,
                           install=args.install, overwrite=args.overwrite, progress=not args.no_progress,
                           cpu=True if args.cpu else None, data_root=args.data_root)
    result = train(args.recipe, options)
    if result.num_processes == 1 or result.process_index == 0:
        _report(result)
    if result.num_processes > 1:  # one line per process: where it stopped and what it selected
        line = (f"rank {result.process_index}/{result.num_processes}: stopped at step {result.steps}; "
                f"selected step {result.selected_step}; weights sha256 {result.selected_digest}\n")
        sys.stdout.write(line)  # one write, so lines of concurrent processes do not interleave
        sys.stdout.flush()
    if is_distributed_launch():
        # torch may abort in interpreter shutdown after a distributed run; the work is done and flushed
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _report(result: Any) -> None:
    lines = [f"run folder: {result.run_dir}",
             f"steps: {result.steps} (epoch {result.epochs}); "
             + ("stopped early: " + result.stop_reason if result.stopped_early else result.stop_reason)]
    if result.selected_step is not None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items() if "/" not in k)
        lines.append(f"selected: step {result.selected_step} (epoch {result.selected_epoch}): {shown}")
    if result.model_dir is not None:
        lines.append(f"model: {result.model_dir}")
    if result.installed is not None:
        lines.append(f"installed in the local zoo: {result.installed}")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mrizoo.cli.train``: the ``train`` command on its own."""
    parser = argparse.ArgumentParser(prog="mrizoo train", description="Train a zoo model from its recipe.")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except MrizooError as err:
        print(f"mrizoo train: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
