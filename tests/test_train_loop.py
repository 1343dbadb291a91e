"""The trainer on one CPU process: resume equals an uninterrupted run, early stopping selects
the published weights, per-family smoke runs end to end through ``mrizoo train``, and the
validation metrics agree with fastMRI's own evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import mrizoo.cli
from mrizoo.errors import InputError
from mrizoo.train.data import ShardedVolumeBatches, draw_masks, validation_batches
from mrizoo.train.loop import TrainOptions, train, weights_digest
from mrizoo.train.recipe import MaskSpec

pytestmark = pytest.mark.usefixtures("one_thread", "private_mrizoo_home")

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

TINY_UNET = """
training:
  model: unet-knee-r4
  model_overrides: {{chans: 4, num_pool_layers: 2}}
  data:
    train: {{synthetic: {{volumes: 3, slices: 3, shape: [32, 32], coils: 2, seed: 0}}}}
    val: {{synthetic: {{volumes: 2, slices: 2, shape: [32, 32], coils: 2, seed: 1}}}}
    ood:
      other: {{synthetic: {{volumes: 1, slices: 2, shape: [32, 32], coils: 2, seed: 2, snr_db: 10.0}}}}
    slices_per_batch: 2
  masks: {{type: equispaced_fraction, accelerations: [4, 8], center_fractions: [0.08, 0.04]}}
  loss: {{name: ssim}}
  optimizer: {{lr: {lr}}}
  schedule: {{name: warmup_linear, warmup_fraction: 0.2}}
  steps: {steps}
  validate_every: {validate_every}
  early_stopping: {early_stopping}
  checkpoint: {{keep: 2}}
  seed: 3
"""


def _recipe(tmp_path: Path, name: str = "unet-tiny", *, lr: float = 1e-2, steps: int = 6, validate_every: int = 2,
            early_stopping: str = "{rule: none}") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY_UNET.format(lr=lr, steps=steps, validate_every=validate_every,
                                     early_stopping=early_stopping))
    return path


def _opts(out: Path, **kw) -> TrainOptions:
    return TrainOptions(out=out, progress=False, data_cache=out.parent / "data-cache", **kw)


def _records(run: Path, kind: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


# ------------------------------------------------------------------------ resume


TINY_RCGAN = """
training:
  model: rcgan-brain-r4
  model_overrides: {in_coils: 2, chans: 4, depth: 2, disc_chans: [4, 4], disc_input_size: null,
                    reconstruct_samples: 2, coil_combine: rss}
  data:
    train: {synthetic: {volumes: 2, slices: 2, shape: [32, 32], coils: 2, seed: 0}}
    val: {synthetic: {volumes: 1, slices: 2, shape: [32, 32], coils: 2, seed: 1}}
    slices_per_batch: 2
  masks: {type: equispaced, accelerations: [4], center_fractions: [0.08]}
  loss: {name: rcgan, params: {p_val: 2, autotune_rate: 0.5}}
  optimizer: {lr: 1.0e-3, betas: [0.0, 0.99]}
  schedule: {name: constant}
  steps: 6
  validate_every: 1
  seed: 2
"""


def _resume_recipe(tmp_path: Path, family: str) -> Path:
    if family == "unet":
        return _recipe(tmp_path)
    path = tmp_path / f"{family}-tiny.yaml"
    text = TINY_RCGAN if family == "rcgan" else TINY_NCSN.replace("steps: 3", "steps: 6").replace(
        "validate_every: 3", "validate_every: 2").replace("every_steps: 1, keep: 5", "keep: 2")
    path.write_text(text)
    return path


@pytest.mark.parametrize("family", ["unet", "rcgan", "ncsnv2"])
def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path, family):
    recipe = _resume_recipe(tmp_path, family)
    straight = train(recipe, _opts(tmp_path / "straight"))
    assert straight.finished and straight.steps == 6 and straight.resumed_from is None

    cut = train(recipe, _opts(tmp_path / "cut", max_steps=3))
    assert (cut.steps, cut.finished) == (3, False)
    assert (tmp_path / "cut" / "checkpoints" / "step_3").is_dir()
    at3 = load_file(tmp_path / "cut" / "checkpoints" / "step_3" / "model.safetensors")

    resumed = train(recipe, _opts(tmp_path / "cut", resume=True))
    assert resumed.resumed_from == 3 and resumed.steps == 6 and resumed.finished

    # the published weights (EMA for the score model) and the full training state at the end
    files = ["model/model.safetensors", *(f"checkpoints/step_6/{p.name}" for p in
                                          (tmp_path / "straight" / "checkpoints" / "step_6").glob("*.safetensors"))]
    for sub in files:
        a, b = load_file(tmp_path / "straight" / sub), load_file(tmp_path / "cut" / sub)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), sub
    end = load_file(tmp_path / "cut" / "checkpoints" / "step_6" / "model.safetensors")
    assert any(not torch.equal(at3[k], end[k]) for k in end)  # the resumed run did train
    # same validations, losses (and rcGAN's beta_SD), step by step; the log was cut back to step 3
    assert (tmp_path / "straight" / "metrics.jsonl").read_text() == (tmp_path / "cut" / "metrics.jsonl").read_text()
    # only the last `keep` checkpoints remain
    kept = ["step_5", "step_6"] if family == "rcgan" else ["step_4", "step_6"]  # checkpoints at validations
    assert sorted(p.name for p in (tmp_path / "straight" / "checkpoints").iterdir()) == kept


def test_smoke_runs_are_never_installed(tmp_path, monkeypatch, capsys):
    rc = _cli(monkeypatch, "train", "unet-knee-r4", "--smoke", "--install", "--out", str(tmp_path / "run"))
    assert rc == 2
    assert "smoke runs are never installed in the local zoo" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before any work


def test_run_folder_is_not_reused_silently(tmp_path):
    recipe = _recipe(tmp_path, steps=2)
    train(recipe, _opts(tmp_path / "run"))
    with pytest.raises(InputError, match="holds a run already"):
        train(recipe, _opts(tmp_path / "run"))
    other = _recipe(tmp_path, "unet-tiny-2", steps=3)
    with pytest.raises(InputError, match="another setting"):  # a different recipe cannot resume this run
        train(other, _opts(tmp_path / "run", resume=True))


# ---------------------------------------------------------------- early stopping


def test_early_stopping_publishes_the_selected_weights_not_the_last(tmp_path):
    # a learning rate far too high: validation SSIM peaks early, then degrades; patience 2
    recipe = _recipe(tmp_path, lr=3.0, steps=12, validate_every=1,
                     early_stopping="{rule: paper, metric: ssim, patience: 2, min_delta: 1.0e-6}")
    res = train(recipe, _opts(tmp_path / "run"))
    vals = _records(tmp_path / "run", "val")
    ssim = [v["id"]["ssim"] for v in vals]
    best = int(np.argmax(ssim))
    assert res.stopped_early and res.steps < 12 and res.steps == vals[-1]["step"]
    assert res.steps - vals[best]["step"] == 2  # stopped `patience` validations after the best
    assert res.selected_step == vals[best]["step"] < res.steps
    assert vals[best]["selected"] and not vals[-1]["selected"]
    published = load_file(tmp_path / "run" / "model" / "model.safetensors")
    last = load_file(tmp_path / "run" / "checkpoints" / f"step_{res.steps}" / "model.safetensors")
    assert weights_digest(published) == res.selected_digest
    assert any(not torch.equal(published[k], last[f"model.{k}"]) for k in published)
    summary = json.loads((tmp_path / "run" / "model" / "training_summary.json").read_text())
    assert summary["steps"] == res.steps and summary["validation"]["ssim"] == pytest.approx(ssim[best])
    assert "in-distribution ssim gained" in summary["early_stopping"]


# -------------------------------------------------------------------- smoke runs


def _cli(monkeypatch, *argv: str) -> int:
    return mrizoo.cli.main(list(argv))


def _fastmri_ssim_of_published_model(run: Path, recipe_path: Path) -> tuple[float, float]:
    """fastMRI's SSIM of the published model on the validation volumes, with fastMRI's own masks
    (per-file seeds), averaged over volumes; and the SSIM the trainer logged for those weights."""
    evaluate = pytest.importorskip("fastmri.evaluate")
    subsample = pytest.importorskip("fastmri.data.subsample")
    import h5py

    from mrizoo.train.data import synthetic_volumes
    from mrizoo.train.recipe import load_recipe
    from mrizoo.zoo.pretrained import from_pretrained

    spec = load_recipe(recipe_path, smoke=True)[0]
    assert spec.masks.type == "equispaced_fraction"
    mask_func = subsample.EquispacedMaskFractionFunc(list(spec.masks.center_fractions),
                                                     list(spec.masks.accelerations))
    model = from_pretrained(run / "model")
    step = json.loads((run / "model" / "config.json").read_text())["training_step"]
    logged = next(v for v in _records(run, "val") if v["step"] == step)["id"]["ssim"]
    scores = []
    for f in synthetic_volumes(spec.data.val.synthetic, run / "data"):  # already generated by the run
        with h5py.File(f) as h:
            kspace = torch.from_numpy(h["kspace"][()])
            gt = h["reconstruction_rss"][()]
        s, _, rows, w = kspace.shape
        fm_mask, _ = mask_func((1, rows, w, 2), seed=tuple(map(ord, f.name)))
        mask = fm_mask.reshape(1, 1, w).bool().expand(s, rows, w)
        with torch.no_grad():
            pred = model.reconstruct(kspace * mask.unsqueeze(1), mask).numpy()
        scores.append(evaluate.ssim(gt, pred))
    return float(np.mean(scores)), logged


FAMILIES = ["unet-knee-r4", "varnet-pool-r4", "modl-brain-r4", "rcgan-brain-r4", "ncsnv2-brain"]


@pytest.mark.parametrize("recipe", FAMILIES)
def test_smoke_run_of_each_family_through_the_cli(recipe, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    rc = _cli(monkeypatch, "train", str(RECIPES / f"{recipe}.yaml"), "--smoke", "--out", str(run),
              "--no-progress")
    assert rc == 0
    out = capsys.readouterr().out
    assert f"model: {run / 'model'}" in out and "local zoo" not in out
    vals = _records(run, "val")
    assert vals and all(math.isfinite(v["id"]["ssim"]) for v in vals)
    assert _records(run, "train")[-1]["step"] == vals[-1]["step"]

    from mrizoo.models.provenance import load_training_summary
    from mrizoo.zoo.factory import load
    from mrizoo.zoo.pretrained import from_pretrained

    summary = load_training_summary(run / "training_summary.json")
    assert summary.recipe == recipe and summary.steps == vals[-1]["step"]
    assert (run / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    published = from_pretrained(run / "model").state_dict()
    last_ckpt = max((run / "checkpoints").iterdir(), key=lambda p: int(p.name.split("_")[1]))
    selected = json.loads((last_ckpt / "trainer_state.json").read_text())["selected"]
    assert weights_digest(published) == selected["weights_sha256"]
    from mrizoo.zoo.local import local_zoo_dir

    assert not local_zoo_dir(recipe).exists()  # a smoke run never replaces the zoo's weights
    loaded = load(run / "model")  # the run's model loads from its folder, saying so
    assert loaded.weights_source["kind"] == "folder" and loaded.weights_source["location"] == str(run / "model")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in published.items())

    if recipe == "unet-knee-r4":
        fastmri_ssim, logged = _fastmri_ssim_of_published_model(run, RECIPES / f"{recipe}.yaml")
        assert logged == pytest.approx(fastmri_ssim, abs=1e-4)
    if recipe == "rcgan-brain-r4":  # beta_SD auto-tune after each validation (Bendel et al. Eq. 23)
        from mrizoo.train.recipe import load_recipe

        p_val = load_recipe(RECIPES / f"{recipe}.yaml", smoke=True)[0].loss.params["p_val"]
        beta = 1.0
        for v in vals:
            beta += 0.02 * (v["id"]["psnr_single"] + 10 * math.log10(2 * p_val / (p_val + 1)) - v["id"]["psnr"])
            assert v["beta_sd"] == pytest.approx(beta, rel=1e-9)


TINY_NCSN = """
training:
  model: ncsnv2-brain
  model_overrides: {ngf: 4, variant: base, num_classes: 6, sigma_begin: 5.0, sigma_end: 0.05}
  data:
    train: {synthetic: {volumes: 2, slices: 2, shape: [32, 32], coils: 2, seed: 0}}
    val: {synthetic: {volumes: 1, slices: 2, shape: [32, 32], coils: 2, seed: 1}}
    target: mvue
    slices_per_batch: 2
  loss: {name: dsm, params: {ema: 0.9}}
  optimizer: {lr: 1.0e-2}
  schedule: {name: constant}
  steps: 3
  validate_every: 3
  early_stopping: {rule: none, metric: loss}
  checkpoint: {every_steps: 1, keep: 5}
  seed: 5
"""


def test_score_model_publishes_the_ema_of_its_weights(tmp_path):
    from accelerate.utils import set_seed

    from mrizoo.zoo.factory import create

    path = tmp_path / "ncsn-tiny.yaml"
    path.write_text(TINY_NCSN)
    res = train(path, _opts(tmp_path / "run"))
    assert res.selected_step == 3
    overrides = {"ngf": 4, "variant": "base", "num_classes": 6, "sigma_begin": 5.0, "sigma_end": 0.05}
    set_seed(5)
    init = create("ncsnv2-brain", **overrides).state_dict()  # the trainer seeds, then builds the model
    raw = [load_file(tmp_path / "run" / "checkpoints" / f"step_{s}" / "model.safetensors") for s in (1, 2, 3)]
    published = load_file(tmp_path / "run" / "model" / "model.safetensors")
    d = 0.9
    for k, w0 in init.items():
        if not w0.is_floating_point() or k.endswith(("sigmas", "running_mean", "running_var")):
            continue
        expected = d**3 * w0 + (1 - d) * (d**2 * raw[0][k] + d * raw[1][k] + raw[2][k])
        torch.testing.assert_close(published[k], expected, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(published[k], raw[2][k]) for k in published)


# ------------------------------------------------------------------- batching


class _Volumes:
    """A dataset stand-in: only the volume of every item matters to the samplers."""

    def __init__(self, sizes: list[int]) -> None:
        self.examples = [(v, s) for v, n in enumerate(sizes) for s in range(n)]
        self.volume_ids = [v for v, _ in self.examples]


@pytest.mark.parametrize("world,multiple", [(1, 1), (3, 1), (2, 2)])
def test_sharded_batches_split_each_epoch_between_processes(world, multiple):
    ds = _Volumes([5, 3, 4, 1, 6])
    shards = [ShardedVolumeBatches(ds, 2, seed=7, num_replicas=world, rank=r, multiple=multiple)
              for r in range(world)]
    for epoch in (0, 1):
        per_rank = [s.epoch_batches(epoch) for s in shards]
        assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) % multiple == 0
        assert len(per_rank[0]) == len(shards[0])
        flat = [b for rank in per_rank for b in rank]
        for b in flat:  # one volume per batch
            assert len({ds.volume_ids[i] for i in b}) == 1
        covered = sorted(i for b in {tuple(b) for b in flat} for i in b)
        assert covered == list(range(len(ds.examples)))  # every slice, once apart from the padding
        assert len(flat) - len({tuple(b) for b in flat}) < world * multiple
    assert shards[0].epoch_batches(0) != shards[0].epoch_batches(1)  # reshuffled per epoch
    shards[0].set_position(1, 2)
    assert list(iter(shards[0])) == shards[0].epoch_batches(1)[2:]


def test_validation_batches_keep_volumes_whole_and_disjoint():
    ds = _Volumes([3, 2, 4])
    parts = [validation_batches(ds, 2, num_replicas=2, rank=r) for r in range(2)]
    seen = [i for part in parts for b in part for i in b]
    assert sorted(seen) == list(range(9))
    for r, part in enumerate(parts):
        assert {ds.volume_ids[b[0]] % 2 for b in part} <= {r}


def test_training_masks_are_seeded_and_fresh_per_batch():
    spec = MaskSpec(type="equispaced_fraction", accelerations=(4.0, 8.0), center_fractions=(0.08, 0.04))
    a = draw_masks(spec, (32, 64), 6, seed=1)
    assert a.shape == (6, 32, 64) and a.dtype == torch.bool
    assert torch.equal(a, draw_masks(spec, (32, 64), 6, seed=1))
    assert not torch.equal(a, draw_masks(spec, (32, 64), 6, seed=2))
    lines = [int(m[0].sum()) for m in draw_masks(spec, (32, 64), 40, seed=3)]
    near = [min((abs(n - 64 / r), r) for r in (4, 8))[1] for n in lines]  # about 16 or 8 columns
    assert all(min(abs(n - 16), abs(n - 8)) <= 2 for n in lines) and set(near) == {4, 8}
    fixed = MaskSpec(type="equispaced_fraction", fresh_per_batch=False)
    m1 = draw_masks(fixed, (32, 64), 2, seed=1, fnames=["a.h5", "a.h5"], slices=[0, 1])
    m2 = draw_masks(fixed, (32, 64), 2, seed=9, fnames=["a.h5", "a.h5"], slices=[0, 1])
    assert torch.equal(m1, m2)


def test_a_mask_mix_draws_every_family_by_weight_and_checks_its_entries(tmp_path):
    from mrizoo._dataclass_io import from_dict
    from mrizoo.train.recipe import MaskAlternative, load_recipe

    spec = MaskSpec(mix=(MaskAlternative(type="random", weight=1.0),
                         MaskAlternative(type="poisson2d", accelerations=(6.0,), params={"calib": 12}, weight=2.0)))
    masks = draw_masks(spec, (48, 64), 200, seed=4)
    two_d = [not bool((m == m[0]).all()) for m in masks]  # 1D patterns repeat every row
    def regular(row: torch.Tensor) -> bool:  # equispaced: outside the centre, one gap (+-1)
        gaps = torch.nonzero(row).flatten().diff()
        gaps = gaps[gaps > 1]
        return float(((gaps - gaps.mode().values).abs() <= 1).float().mean()) >= 0.75

    equi = [not t and regular(m[0]) for m, t in zip(masks, two_d)]
    share_2d = sum(two_d) / len(two_d)
    assert 0.38 < share_2d < 0.62                      # weight 2 of 4
    assert 0.12 < sum(equi) / len(equi) < 0.38           # weight 1 of 4 (the main family)
    assert torch.equal(masks, draw_masks(spec, (48, 64), 200, seed=4))
    rates = masks.float().mean((1, 2))                 # each family keeps its own acceleration
    flags = torch.tensor(two_d)
    assert abs(rates[flags].mean().item() - 1 / 6) < 0.03 and abs(rates[~flags].mean().item() - 1 / 4) < 0.03
    bad = tmp_path / "bad.yaml"
    import yaml

    doc = yaml.safe_load((Path(__file__).parents[1] / "recipes" / "varnet-mini-r4.yaml").read_text())
    doc["training"]["masks"] = {"type": "equispaced_fraction", "mix": [{"type": "poisson2d", "weight": 0}]}
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match=r"masks\.mix\[0\]\.weight"):
        load_recipe(bad)
    with pytest.raises(InputError, match="mix"):
        from_dict(MaskSpec, {"mix": [{"kind": "random"}]})


POOL = """
name: toy
train: [{dataset: toy, split: train}]
test:
  toyval: [{dataset: toy, split: val}]
seed: 0
"""


def test_pool_sources_train_and_validate_on_the_pool_sets(tmp_path):
    pytest.importorskip("mrizoo.pools")
    import h5py

    from mrizoo.data.synthetic import make_test_volume

    root = tmp_path / "root"
    for split, count in (("train", 3), ("val", 2)):
        (root / "toy" / split).mkdir(parents=True)
        for i in range(count):
            path = make_test_volume(root / "toy" / split / f"toy_{split}_{i}.h5", num_slices=2, shape=(32, 32),
                                    num_coils=2, seed=10 * count + i)
            with h5py.File(path, "a") as f:
                f.attrs["dataset"] = "toy"
    pool = tmp_path / "toy.yaml"
    pool.write_text(POOL)
    recipe = tmp_path / "pool-unet.yaml"
    recipe.write_text(TINY_UNET.format(lr=1e-2, steps=3, validate_every=3, early_stopping="{rule: none}")
                      .replace("train: {synthetic: {volumes: 3, slices: 3, shape: [32, 32], coils: 2, seed: 0}}",
                               f"train: {{pool: {pool}}}")
                      .replace("val: {synthetic: {volumes: 2, slices: 2, shape: [32, 32], coils: 2, seed: 1}}",
                               f"val: {{pool: '{pool}:toyval'}}"))
    with pytest.raises(InputError, match="data root"):
        train(recipe, _opts(tmp_path / "no-root"))
    res = train(recipe, _opts(tmp_path / "run", data_root=root))
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["steps_per_epoch"] == 3  # three training volumes of two slices: one batch each
    val = _records(tmp_path / "run", "val")[-1]
    assert val["id"]["volumes"] == 2 and res.steps == 3
