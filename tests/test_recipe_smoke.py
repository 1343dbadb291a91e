"""Every shipped training recipe runs ``--smoke`` end to end, and its run folder holds what
``mrizoo push`` and ``mrizoo card`` need: config and weights, metrics, the stopping record,
and a byte-exact copy of the recipe.

Which test smoke-runs which recipe (``recipes/*.yaml`` with a ``training:`` key):

- ``tests/test_train_loop.py::test_smoke_run_of_each_family_through_the_cli``: ``unet-knee-r4``,
  ``varnet-pool-r4``, ``modl-brain-r4``, ``rcgan-brain-r4``, ``ncsnv2-brain`` (one per family).
- this module, ``test_smoke_run_folder_is_complete``: every other one -- ``unet-pool-r4``,
  ``vit-pool-r4``, ``rcgan-brain-r8``, the demo rcGAN ``rcgan-mini-r4`` and its two competitors
  ``rcgan-mini-r4-adler`` and ``rcgan-mini-r4-ohayon``, and the fine-tuning recipes (``finetune-*.yaml``, whose
  smoke settings train the tiny model from scratch: the full recipe's ``init_from`` weights are
  not needed).

``test_every_training_recipe_is_smoke_run`` fails when a recipe is added that neither covers.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import mrizoo.cli
from mrizoo.train.loop import TrainOptions, train
from mrizoo.train.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("one_thread", "private_mrizoo_home")

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


def _training_recipes() -> list[str]:
    names = []
    for path in sorted(RECIPES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and "training" in doc:
            names.append(path.stem)
    return names


def _covered_by_train_loop_tests() -> set[str]:
    """``FAMILIES`` of tests/test_train_loop.py (read from its source, not imported)."""
    tree = ast.parse((ROOT / "tests" / "test_train_loop.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FAMILIES" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


ALL_RECIPES = _training_recipes()
COVERED_ELSEWHERE = _covered_by_train_loop_tests()
HERE = [n for n in ALL_RECIPES if n not in COVERED_ELSEWHERE]


def test_every_training_recipe_is_smoke_run():
    assert len(ALL_RECIPES) >= 10 and any(n.startswith("finetune-") for n in HERE)
    assert COVERED_ELSEWHERE <= set(ALL_RECIPES)  # the other module runs shipped recipes by name
    assert sorted(COVERED_ELSEWHERE | set(HERE)) == sorted(ALL_RECIPES)


def _cli(*argv: str) -> int:
    return mrizoo.cli.main(list(argv))


@pytest.mark.parametrize("name", HERE)
def test_smoke_run_folder_is_complete(name, tmp_path, capsys):
    from mrizoo.models.provenance import load_training_summary
    from mrizoo.zoo.factory import create
    from mrizoo.zoo.pretrained import from_pretrained
    from mrizoo.zoo.registry import REGISTRY

    source = RECIPES / f"{name}.yaml"
    run = tmp_path / "run"
    res = train(source, TrainOptions(smoke=True, out=run, install=False, progress=False))
    assert res.finished and res.steps >= 1 and res.installed is None

    # the recipe, byte for byte; run.json ties it (sha256) to the smoke flag it ran with
    copy = run / "recipe.yaml"
    assert copy.read_bytes() == source.read_bytes()
    meta = json.loads((run / "run.json").read_text())
    assert meta["recipe"] == name and meta["smoke"] is True
    assert meta["recipe_sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    spec = load_recipe(source, smoke=True)[0]
    assert load_recipe(copy, smoke=True)[0] == spec  # the copy reproduces the run's settings
    if name.startswith("finetune-"):
        assert load_recipe(source)[0].init_from is not None and spec.init_from is None

    # metrics and the stopping record
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in records if r["kind"] == "val"]
    assert vals and vals[-1]["step"] == res.steps and all(math.isfinite(v["id"]["ssim"]) for v in vals)
    assert set(vals[-1]["ood"]) == set(spec.data.ood)
    assert (run / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = load_training_summary(run / "model" / "training_summary.json")
    assert (run / "model" / "training_summary.json").read_text() == (run / "training_summary.json").read_text()
    assert summary.recipe == name and summary.steps == res.steps and summary.early_stopping
    assert summary.recipe_sha256 == meta["recipe_sha256"] and "smoke run" in summary.notes

    # config + weights: the recipe's architecture with the smoke overrides, strictly loadable
    model = from_pretrained(run / "model")
    expected = create(spec.model, **spec.model_overrides).state_dict()
    got = model.state_dict()
    assert got.keys() == expected.keys() and all(got[k].shape == expected[k].shape for k in got)
    assert all(torch.isfinite(v).all() for v in got.values() if v.is_floating_point())

    # `mrizoo card` for zoo entries, from the run's summary
    if name in REGISTRY.names():
        cards = tmp_path / "cards"
        assert _cli("card", name, "--training", str(run / "training_summary.json"), "--out", str(cards),
                    "--cards-dir", str(ROOT / "model_cards")) == 0
        card = (cards / f"{name}.md").read_text()
        assert meta["recipe_sha256"] in card

    # `mrizoo push --dry-run` stages config, weights and card
    stage = tmp_path / "stage"
    rc = _cli("push", str(run / "model"), "--repo-id", "org/x", "--dry-run", "--out", str(stage))
    err = capsys.readouterr().err
    assert rc == 0, err
    assert sorted(p.name for p in stage.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (stage / "config.json").read_bytes() == (run / "model" / "config.json").read_bytes()
    staged, published = load_file(stage / "model.safetensors"), load_file(run / "model" / "model.safetensors")
    assert staged.keys() == published.keys() and all(torch.equal(staged[k], published[k]) for k in staged)
    assert meta["recipe_sha256"] in (stage / "README.md").read_text()
