"""Two training processes on the CPU (gloo), started by ``accelerate launch``: both stop at the
same early-stopping step, share the validation volumes, and the published weights are those
every rank reports as selected."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from mrizoo.train.loop import weights_digest

ROOT = Path(__file__).resolve().parents[1]

RECIPE = """
training:
  model: unet-knee-r4
  model_overrides: {chans: 4, num_pool_layers: 2}
  data:
    train: {synthetic: {volumes: 4, slices: 3, shape: [32, 32], coils: 2, seed: 0}}
    val: {synthetic: {volumes: 3, slices: 2, shape: [32, 32], coils: 2, seed: 1}}
    ood:
      other: {synthetic: {volumes: 1, slices: 2, shape: [32, 32], coils: 2, seed: 2}}
    slices_per_batch: 2
  masks: {type: equispaced_fraction, accelerations: [4], center_fractions: [0.08]}
  loss: {name: ssim}
  optimizer: {lr: 1.0e-2}
  steps: 20
  validate_every: 2
  early_stopping: {rule: paper, metric: ssim, patience: 1, min_delta: 1.0}
  seed: 0
"""


def test_two_processes_stop_together_and_publish_the_selected_weights(tmp_path):
    pytest.importorskip("accelerate")
    recipe = tmp_path / "unet-ddp.yaml"
    recipe.write_text(RECIPE)
    run = tmp_path / "run"
    entry = ["-m", "mrizoo", "train"]
    # `python -m accelerate.commands.launch` is `accelerate launch` without the CLI's optional imports
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--num_cpu_threads_per_process", "1", "--main_process_port", "0",
           *entry, str(recipe), "--out", str(run), "--no-progress", "--cpu"]
    env = {**os.environ, "MRIZOO_HOME": str(tmp_path / "home"), "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]

    ranks = {int(m[0]): (int(m[1]), m[2], m[3]) for m in re.findall(
        r"rank (\d)/2: stopped at step (\d+); selected step (\d+); weights sha256 ([0-9a-f]{64})", log)}
    assert sorted(ranks) == [0, 1], log[-4000:]
    (step0, sel0, digest0), (step1, sel1, digest1) = ranks[0], ranks[1]
    # min_delta 1.0 cannot be met: stop at the second validation, on both ranks
    assert step0 == step1 == 4 and sel0 == sel1 and digest0 == digest1

    published = load_file(run / "model" / "model.safetensors")
    assert weights_digest(published) == digest0

    vals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [v for v in vals if v["kind"] == "val"]
    assert [v["step"] for v in vals] == [2, 4] and vals[-1]["stop"]
    assert all(v["id"]["volumes"] == 3 and v["ood"]["other"]["volumes"] == 1 for v in vals)  # gathered
    meta = json.loads((run / "run.json").read_text())
    assert meta["num_processes"] == 2
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["hardware"].startswith("2 x") and summary["steps"] == 4
