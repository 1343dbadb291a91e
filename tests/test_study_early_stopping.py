"""The ID-only and the OOD-aware early-stopping rules disagree on a real training run.

A tiny U-Net is trained on 32 x 32 two-coil phantoms (one family of ellipse slices, seen in one
orientation) and validated in distribution on held-out slices of the same family and out of
distribution on the same slices rotated by 90 degrees. Early on the network learns generic
de-aliasing, which helps both sets; then it specialises to the training orientation: the rotated
set's SSIM peaks after a few dozen steps and falls while the in-distribution SSIM keeps rising
(distributional overfitting, Lin & Heckel 2024, Figure 8). Two real runs of the same recipe, one
with the paper's ID-only rule and one with the OOD-aware rule, must select different checkpoints,
and the OOD-aware one the better one out of distribution.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mrizoo.data.convert import kspace_to_volume
from mrizoo.data.synthetic import birdcage_maps, ellipse_phantom, simulate_multicoil, smooth_phase
from mrizoo.train.loop import TrainOptions, train

H = 32


def _volume(path: Path, images: list[torch.Tensor], seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    maps = birdcage_maps(2, (H, H))
    kspace = [simulate_multicoil(img * torch.polar(torch.ones(H, H), smooth_phase((H, H), seed * 97 + s, strength=1.0)),
                                 snr_db=40.0, seed=seed * 1000 + s, maps=maps)[0] for s, img in enumerate(images)]
    kspace_to_volume(torch.stack(kspace), path)


def _data(root: Path) -> Path:
    def phantom(z: float) -> torch.Tensor:
        return ellipse_phantom((H, H), z=float(z)).real.float()

    rng = np.random.default_rng(0)
    for i in range(2):
        _volume(root / "train" / f"{i}.h5", [phantom(z) for z in rng.uniform(-0.3, 0.3, 4)], i)
    held_out = np.linspace(-0.3, 0.3, 4)
    _volume(root / "val" / "v.h5", [phantom(z) for z in held_out], 50)
    _volume(root / "rotated" / "r.h5", [phantom(z).T.flip(0) for z in held_out], 60)
    return root


def _recipe(path: Path, data: Path, rule: str) -> Path:
    es = {"rule": rule, "metric": "ssim", "patience": 3, "min_delta": 1.0e-3}
    if rule == "ood":
        es["ood_set"] = "rotated"
    path.write_text(yaml.safe_dump({"training": {
        "model": "unet-pool-r4", "model_overrides": {"chans": 8, "num_pool_layers": 2},
        "data": {"train": {"folders": [str(data / "train")]}, "val": {"folders": [str(data / "val")]},
                 "ood": {"rotated": {"folders": [str(data / "rotated")]}}, "slices_per_batch": 4},
        "masks": {"type": "equispaced_fraction", "accelerations": [4], "center_fractions": [0.08]},
        "loss": {"name": "ssim"}, "optimizer": {"lr": 6.0e-3}, "schedule": {"name": "constant"},
        "steps": 48, "validate_every": 6, "early_stopping": es, "seed": 0}}))
    return path


@pytest.mark.usefixtures("one_thread", "private_mrizoo_home")
def test_id_only_and_ood_aware_rules_select_different_checkpoints(tmp_path: Path) -> None:
    from mrizoo.study.findings import replay_rules
    from mrizoo.study.schema import FindingSpec, RuleSpec

    data = _data(tmp_path / "data")
    runs = {}
    for rule in ("paper", "ood"):
        runs[rule] = train(str(_recipe(tmp_path / f"{rule}.yaml", data, rule)),
                           TrainOptions(out=tmp_path / rule, install=False, progress=False))
    paper, ood = runs["paper"], runs["ood"]

    # the OOD-aware rule fired on distributional overfitting and kept an earlier checkpoint
    assert ood.stopped_early and "distributional overfitting" in ood.stop_reason
    assert ood.selected_step != paper.selected_step
    assert ood.selected_step < paper.selected_step
    # ... that is clearly better out of distribution, while the ID-only pick is better in distribution
    assert ood.metrics["ood/rotated/ssim"] > paper.metrics["ood/rotated/ssim"] + 0.02
    assert paper.metrics["ssim"] > ood.metrics["ssim"] + 0.02

    # the curve itself: the rotated set's SSIM peaks before the end and falls while ID still improves
    history = [json.loads(line) for line in (tmp_path / "paper" / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in history if r["kind"] == "val"]
    ood_curve = np.array([r["ood"]["rotated"]["ssim"] for r in vals])
    id_curve = np.array([r["id"]["ssim"] for r in vals])
    peak = int(ood_curve.argmax())
    assert peak < len(vals) - 3
    assert ood_curve[peak] - ood_curve[-1] > 0.02
    assert id_curve[-1] > id_curve[peak] + 0.02

    # the study's replay of both rules on the recorded validations picks what the trainer picked
    rows = [{"step": r["step"], "epoch": r["epoch_float"], "val": r["id"], "sets": r["ood"]} for r in vals]
    finding = FindingSpec(kind="distributional_overfitting", arm="a", x=("val",), y=("rotated",),
                          paper_rule=RuleSpec(3, 1e-3), ood_rule=RuleSpec(3, 1e-3))
    replayed = replay_rules(rows, finding)
    assert replayed["ood"]["step"] == ood.selected_step
    assert replayed["paper"]["step"] == paper.selected_step
