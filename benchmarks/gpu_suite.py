"""GPU suite: every CUDA path of mrizoo exercised and its headline speeds measured, in one command.

    python benchmarks/gpu_suite.py --out DIR [--device cuda|cpu] [--tiny] [--budget-s N] [--parts 1,2:60,5]

Parts (each runs in its own process under its own time budget, so a crash, a hang or an
out-of-memory error in one part is recorded and the others still run):

1. E2E-VarNet (12 cascades, chans 18, sens 8) and U-Net (chans 256) on a 15-coil 640 x 368
   knee-sized slice, mrizoo vs the ``fastmri`` package with identical weights: fp32, bf16
   autocast (SSIM against fp32), ``torch.compile`` (compile time reported apart); time per
   slice, slices/s, peak memory.
2. rcGAN at full size (86.8M generator, 384 x 384, 8 coils, GRO R = 4): P = 32 posterior
   samples in one batched call, against the bare generator pass and the paper's 18 samples/s.
3. NCSNv2 + annealed Langevin (384 x 384): network evaluations per second and the projected
   seconds per slice of the seed's schedule (2311 levels x 3 steps), against the paper's 14 min.
4. Training: optimizer steps/s of the ``varnet-pool-r4`` recipe on synthetic data through
   ``accelerate``, fp32 vs bf16 mixed precision, activation checkpointing off and on, peak memory.
5. The CUDA-dependent tests (pytest, pass/fail per test), ``mrizoo reconstruct`` on the device
   (default device selection, the out-of-memory fallback under a real memory cap, GPU vs CPU
   output), ESPIRiT on the device vs the CPU.

GPU times come from CUDA events after ``torch.cuda.synchronize``; peak memory from
``torch.cuda.max_memory_allocated`` (memory a call allocates above what was resident before
it). Results go to ``DIR/results.json`` and ``DIR/results.md`` (rewritten after every part),
each part's output to ``DIR/logs/``. The default budget (400 s in all) fits one H200 in under
7 minutes; ``--device cpu --tiny`` runs every code path at toy sizes in about a minute.
Parts 1-4 live in ``_gpu_parts.py``, part 5 in ``_gpu_checks.py``, the timing helpers and the
per-part recorder in ``_gpu_measure.py``; this file runs the parts and writes the report.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from _gpu_measure import PARTS, ROOT, Part
from _gpu_parts import RUNNERS

# each part's share of the total budget; at toy sizes, start-up costs dominate (part 5 starts 3 processes)
SHARES = {False: {"1": 0.45, "2": 0.07, "3": 0.09, "4": 0.19, "5": 0.20},
          True: {"1": 0.35, "2": 0.08, "3": 0.10, "4": 0.15, "5": 0.32}}
DEFAULT_BUDGET_S = {False: 400.0, True: 240.0}  # full, tiny (a cap: a tiny run takes about a minute)
RESULTS, REPORT = "results.json", "results.md"


# ---------------------------------------------------------------------------------- reporting
def _fmt(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.0f}"
    return str(x)


def write_report(doc: dict[str, Any], out: Path) -> None:
    """results.json and results.md, each written whole and then moved into place."""
    env = doc.get("environment") or {}
    gpu = ""
    if env.get("gpu"):
        gpu = f" ({env.get('gpu_memory_gib')} GiB, compute capability {env.get('capability')})"
    lines = ["# mrizoo GPU suite", "",
             f"- device: {env.get('gpu') or env.get('device', doc['device'])}{gpu}",
             f"- torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}; "
             f"mrizoo {env.get('mrizoo')}, fastmri {env.get('fastmri')}, accelerate {env.get('accelerate')}; "
             f"Python {env.get('python')}",
             f"- started {doc['started']}; {'toy sizes (--tiny)' if doc['tiny'] else 'full sizes'}; "
             f"budget {doc['budget_s']:.0f} s; wall {doc.get('wall_s', 0):.0f} s",
             f"- command: `{doc['command']}` at commit {doc.get('git_commit')}", "",
             "Ratio = value / reference, both measured in the same run (unless the reference is a paper figure).", ""]
    for key, part in doc["parts"].items():
        spent = f"{part.get('wall_s', 0):.0f} s of a {part['budget_s']:.0f} s budget"
        lines += [f"## Part {key}: {part['title']}", "", f"status **{part['status']}**, {spent}", ""]
        if part.get("rows"):
            lines += ["| measure | value | unit | reference | reference value | ratio | target | met | note |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in part["rows"]:
                lines.append("| " + " | ".join(_fmt(r.get(c)) for c in ("measure", "value", "unit", "reference_name",
                                                                           "reference", "ratio", "target", "met",
                                                                           "note")) + " |")
            lines.append("")
        for e in part.get("errors", []):
            lines.append(f"- error in {e['step']}: `{e['error'][:400]}`")
        for s in part.get("skipped", []):
            lines.append(f"- skipped: {s}")
        lines.append("")
    for name, text in ((RESULTS, json.dumps(doc, indent=1, default=str)), (REPORT, "\n".join(lines))):
        tmp = out / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, out / name)


# ------------------------------------------------------------------------------ orchestration
def run_part(key: str, budget_s: float, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Run one part in its own process group, killed at ``budget_s``; its partial results survive."""
    (out / "logs").mkdir(exist_ok=True)
    part_json, log = out / "logs" / f"part{key}.json", out / "logs" / f"part{key}.log"
    part_json.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", key, "--out", str(out), "--device", args.device,
           "--budget-s", str(budget_s), *(["--tiny"] if args.tiny else []),
           *(["--compile-backend", args.compile_backend] if args.compile_backend else [])]
    t0 = time.monotonic()
    with open(log, "w") as fh:
        # a private compiler cache and temporary folder: compile times are cold ones, and a part
        # killed mid-compile leaves no half-written kernel behind for later runs
        cache = tempfile.mkdtemp(prefix="mrizoo-gpu-suite-inductor-")
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "TRITON_CACHE_DIR": os.path.join(cache, "triton"),
               "TMPDIR": cache,  # the part's temporary files go when it ends, even when it is killed
               **({"OMP_NUM_THREADS": "1"} if args.tiny and args.device == "cpu" else {})}
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT, env=env)
        try:
            rc = proc.wait(timeout=budget_s)
            status = None
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc, status = proc.wait(), "timeout"
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    part = json.loads(part_json.read_text()) if part_json.is_file() else \
        {"part": key, "title": PARTS[key], "budget_s": budget_s, "rows": [], "data": {}, "errors": [], "skipped": []}
    part["wall_s"] = round(time.monotonic() - t0, 2)
    part["log"] = str(log.relative_to(out))
    tail = log.read_text(errors="replace")[-2000:]
    if status == "timeout":
        part["status"] = "timeout"
        part["errors"].append({"step": "part", "error": f"stopped at its {budget_s:.0f} s budget; log tail: {tail}"})
    elif rc != 0 or part.get("status") != "done":
        part["status"] = "failed"
        part["errors"].append({"step": "part", "error": f"process exited {rc}; log tail: {tail}"})
    else:
        part["status"] = "errors" if part["errors"] else "ok"
    return part


def worker(key: str, args: argparse.Namespace) -> int:
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    elif args.tiny:  # toy tensors: one thread is fastest, and robust on a busy machine
        torch.set_num_threads(1)
    part = Part(key, Path(args.out) / "logs" / f"part{key}.json", args.budget_s, dev, args.tiny)
    part.compile_backend = args.compile_backend or ("aot_eager" if args.tiny and dev.type == "cpu" else "inductor")
    try:
        RUNNERS[key](part)
        part.doc["status"] = "done"
    except Exception as err:  # noqa: BLE001  (recorded; the parent reports the part as failed)
        part.doc["errors"].append({"step": "setup", "error": f"{type(err).__name__}: {err}"[:2000],
                                   "traceback": traceback.format_exc()[-4000:]})
        part.doc["status"] = "done"
        traceback.print_exc()
    part.save()
    return 0


def _git_commit() -> str | None:
    """The checkout's commit (with ``+dirty`` for local changes), or None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def parse_parts(text: str, total_s: float, shares: dict[str, float]) -> dict[str, float]:
    """``"1,2:60,5"`` -> {part: budget seconds}; a part without ``:S`` gets its share of ``total_s``."""
    from mrizoo.errors import InputError

    parts: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, _, secs = item.partition(":")
        if key not in PARTS:
            raise InputError("unknown part", field="--parts", expected=f"a list of {', '.join(PARTS)}, each "
                             "optionally PART:SECONDS", got=repr(item))
        try:
            budget = float(secs) if secs else shares[key] * total_s
        except ValueError:
            budget = -1.0
        if not budget > 0:
            raise InputError("a part's budget must be a positive number of seconds", field="--parts",
                             expected="PART:SECONDS with SECONDS > 0", got=repr(item))
        parts[key] = budget
    if not parts:
        raise InputError("no part selected", field="--parts", expected=f"a list of {', '.join(PARTS)}", got=repr(text))
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for results.json, results.md and logs/")
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu; also cuda:N")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: checks every code path in about a minute")
    parser.add_argument("--budget-s", type=float, default=None,
                        help=f"total seconds, shared among the parts (default {DEFAULT_BUDGET_S[False]:.0f}, "
                             f"{DEFAULT_BUDGET_S[True]:.0f} with --tiny)")
    parser.add_argument("--parts", default=",".join(PARTS), help="parts to run, e.g. 1,2:60,5 (PART:SECONDS sets "
                        "that part's budget; default: all, each with its share of --budget-s)")
    parser.add_argument("--compile-backend", default=None,
                        help="torch.compile backend (default inductor; aot_eager with --tiny on the CPU, which "
                             "traces the models without generating C++)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    parser.add_argument("--worker", choices=list(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from mrizoo.errors import InputError

    try:
        if args.worker:  # one part, run by the parent below
            return worker(args.worker, args)
        args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(args.device)
        except RuntimeError:
            raise InputError("unknown device", field="--device", expected="cuda, cuda:N or cpu",
                             got=repr(args.device)) from None
        if dev.type not in ("cuda", "cpu"):
            raise InputError("unsupported device", field="--device", expected="cuda, cuda:N or cpu",
                             got=repr(args.device))
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError("CUDA is not available on this machine", field="--device", expected="cpu here",
                             got=args.device)
        total = DEFAULT_BUDGET_S[args.tiny] if args.budget_s is None else args.budget_s
        if not total > 0:
            raise InputError("the time budget must be positive", field="--budget-s", expected="> 0 seconds", got=total)
        parts = parse_parts(args.parts, total, SHARES[args.tiny])
        out = Path(args.out).expanduser().resolve()  # the parts run in the checkout's root
        if out.exists() and not out.is_dir():
            raise InputError("the output path exists and is not a folder", path=out, field="--out",
                             expected="a folder")
        if (out / RESULTS).exists() and not args.overwrite:
            raise InputError("the output folder already holds results", path=out / RESULTS, field="--out",
                             expected="a new folder, or --overwrite")
    except InputError as err:
        print(f"gpu_suite: error: {err}", file=sys.stderr)
        return 2

    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"suite": "mrizoo GPU suite", "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
                           if argv is None else " ".join(["gpu_suite.py", *argv]),
                           "device": args.device, "tiny": args.tiny, "budget_s": sum(parts.values()),
                           "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                           "git_commit": _git_commit(), "environment": None, "parts": {}}
    t0 = time.monotonic()
    for key, budget in parts.items():
        print(f"part {key} ({PARTS[key]}), budget {budget:.0f} s ...", flush=True)
        part = run_part(key, budget, args, out)
        doc["environment"] = doc["environment"] or part.pop("environment", None)
        part.pop("environment", None)
        doc["parts"][key] = part
        doc["wall_s"] = round(time.monotonic() - t0, 1)
        write_report(doc, out)
        print(f"part {key}: {part['status']} in {part['wall_s']:.0f} s", flush=True)
    print(f"results: {out / RESULTS}, {out / REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
