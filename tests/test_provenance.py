"""Which weights ran is never a surprise: ``model.weights_source`` says where every loaded model's
weights came from (with their sha256), and locally trained weights that hide the shipped ones are
announced on stderr at every load."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mrizoo
from mrizoo.models.checkpoint import WEIGHTS_NAME, describe_weights, save_pretrained, sha256_file

pytestmark = pytest.mark.usefixtures("one_thread", "private_mrizoo_home")

NAME = "varnet-mini-r4"  # ships inside the package
KEYS = {"name", "kind", "location", "revision", "sha256"}


def _shadow(home: Path) -> Path:
    """A locally trained stand-in for the shipped model: another (smaller) model under the same name."""
    small = mrizoo.create(NAME, num_cascades=1, chans=4, sens_chans=2, pools=2, sens_pools=2)
    return save_pretrained(small, home / "zoo" / NAME)


def test_weights_source_of_every_kind_of_load(tmp_path):
    shipped = mrizoo.load(NAME)
    src = shipped.weights_source
    assert set(src) == KEYS and src["kind"] == "package" and src["name"] == NAME
    assert src["sha256"] == mrizoo.info(NAME).weights.sha256 == sha256_file(Path(src["location"]) / WEIGHTS_NAME)
    assert describe_weights(shipped) == f"{NAME}: shipped package weights, sha256 {src['sha256'][:12]}..."

    created = mrizoo.create(NAME)
    assert created.weights_source["kind"] == "random" and created.weights_source["sha256"] == ""
    assert "random initialisation" in describe_weights(created)
    assert mrizoo.load("zerofilled").weights_source["kind"] == "builtin"

    folder = save_pretrained(created, tmp_path / "ckpt")
    from_folder = mrizoo.load(folder)
    assert from_folder.weights_source == {"name": NAME, "kind": "folder", "location": str(folder), "revision": "",
                                          "sha256": sha256_file(folder / WEIGHTS_NAME)}
    assert str(folder) in describe_weights(from_folder)


def test_local_weights_that_shadow_shipped_ones_are_announced_at_each_load(tmp_path, caplog):
    local = _shadow(tmp_path / "home")
    with caplog.at_level(logging.INFO, logger="mrizoo.zoo"):
        first = mrizoo.load(NAME)
        second = mrizoo.load(NAME)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "mrizoo.zoo"]
    assert len(warned) == 2  # every load, not once per process
    text = warned[0].getMessage()
    assert NAME in text and str(local) in text and "shipped package weights" in text
    assert "prefer_local=False" in text and "\n" not in text
    for model in (first, second):
        assert model.weights_source["kind"] == "local" and model.weights_source["location"] == str(local)
        assert model.weights_source["sha256"] == sha256_file(local / WEIGHTS_NAME)
        assert "locally trained weights" in describe_weights(model)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mrizoo.zoo"):
        published = mrizoo.load(NAME, prefer_local=False)
    assert published.weights_source["kind"] == "package"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_announcement_reaches_stderr_without_any_logging_setup(tmp_path):
    home = tmp_path / "home"
    local = _shadow(home)
    env = {**os.environ, "MRIZOO_HOME": str(home), "OMP_NUM_THREADS": "1"}
    code = f"import mrizoo; mrizoo.load({NAME!r}); mrizoo.load({NAME!r})"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if str(local) in line]
    assert len(lines) == 2 and all(line.startswith(f"{NAME}: loading the locally trained weights") for line in lines)


def test_training_summary_round_trips_and_the_shipped_ones_load(tmp_path):
    """The provenance written beside a checkpoint reads back equal; the shipped weights' summaries are valid."""
    import dataclasses
    import json

    from mrizoo.models.provenance import TRAINING_SUMMARY_NAME, TrainingSummary, load_training_summary

    summary = TrainingSummary(recipe="varnet-mini-r4", epochs_trained=3, max_epochs=5, checkpoint_epoch=2,
                              steps=600, validation={"ssim": 0.9}, wall_time_hours=0.5, recipe_sha256="0" * 64)
    path = tmp_path / TRAINING_SUMMARY_NAME
    path.write_text(json.dumps(dataclasses.asdict(summary)))
    assert load_training_summary(path) == summary
    shipped = sorted((Path(mrizoo.__file__).parent / "weights").glob(f"*/{TRAINING_SUMMARY_NAME}"))
    assert shipped, "the package ships its demo weights with their training summaries"
    for p in shipped:
        assert load_training_summary(p).recipe == p.parent.name
    path.write_text(json.dumps({**dataclasses.asdict(summary), "checkpoint_epoch": 9}))
    with pytest.raises(mrizoo.InputError, match="checkpoint epoch") as err:
        load_training_summary(path)
    assert str(err.value.path) == str(path) and err.value.field == "checkpoint_epoch"


def test_provenance_imports_no_zoo_hub_train_or_cards():
    """Provenance is plain data at the models layer: importing it loads none of the layers above."""
    code = ("import sys, mrizoo.models.provenance; "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['mrizoo', 'zoo'], ['mrizoo', 'hub'], ['mrizoo', 'train'], ['mrizoo', 'cards'])))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
