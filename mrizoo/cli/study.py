"""``mrizoo study STUDY.yaml``: train, evaluate, draw and judge a declared experiment (see :mod:`mrizoo.study`).

Runs on one process as is; ``accelerate launch -m mrizoo study STUDY.yaml`` spreads every
training run over the launched processes (evaluation, figures and the report are written by
the main process).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``study`` command."""
    p = subparsers.add_parser(
        "study", help="run a declared experiment: train its arms, evaluate, draw its figures, judge its findings",
        description="Run a study file (top-level key 'study:'): train every arm at every seed through the "
                    "training code (finished runs are skipped), score the selected models on every evaluation "
                    "set, draw the figures and write OUT/report.md with the table arm x set and a verdict per "
                    "finding. OUT also holds results.json, figures/, runs/ and the generated recipes/.")
    p.add_argument("study", metavar="STUDY.yaml", help="the study file")
    p.add_argument("--out", metavar="DIR", help="study folder (default studies-out/<name>[-smoke])")
    p.add_argument("--smoke", action="store_true",
                   help="merge the study's smoke mapping: tiny data, models and budgets, seconds on a CPU")
    p.add_argument("--resume", action="store_true",
                   help="continue the study in DIR: finished runs are kept, interrupted ones resumed")
    p.add_argument("--data-root", metavar="DIR",
                   help="folder holding the pools' datasets (default: the study's data root, a mini-pool it "
                        "builds, or $MRIZOO_POOL_ROOT)")
    p.add_argument("--progress", action="store_true", help="progress bars while training")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is visible")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.study.runner import StudyOptions, run_study

    command = "mrizoo " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["study"] else None
    result = run_study(args.study, StudyOptions(out=args.out, smoke=args.smoke, resume=args.resume,
                                                data_root=args.data_root, progress=args.progress,
                                                cpu=True if args.cpu else None, command=command))
    if result.report is None:
        return 0
    lines = [f"report: {result.report}"]
    word = {True: "supported", False: "NOT supported", None: "not judged"}
    lines += [f"{v.name}: {word[v.supported]}: {v.summary}" for v in result.verdicts]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
