"""No pickle runs and no tampered weights load: planted pickles in a training checkpoint are never
executed on resume, damaged checkpoints are skipped for an older intact one (and the run says so),
and a checkpoint folder whose weights changed after saving is refused with both digests."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import mrizoo
from mrizoo.errors import InputError
from mrizoo.models.checkpoint import WEIGHTS_NAME, save_pretrained, sha256_file
from mrizoo.train.checkpointing import STATE_NAME
from mrizoo.train.loop import TrainOptions, train
from mrizoo.zoo.pretrained import from_pretrained

pytestmark = pytest.mark.usefixtures("one_thread", "private_mrizoo_home")

TINY = """
training:
  model: unet-knee-r4
  model_overrides: {chans: 4, num_pool_layers: 2}
  data:
    train: {synthetic: {volumes: 2, slices: 2, shape: [32, 32], coils: 2, seed: 0}}
    val: {synthetic: {volumes: 1, slices: 2, shape: [32, 32], coils: 2, seed: 1}}
    slices_per_batch: 2
  masks: {type: equispaced_fraction, accelerations: [4], center_fractions: [0.08]}
  loss: {name: ssim}
  optimizer: {lr: 1.0e-2}
  schedule: {name: constant}
  steps: 4
  validate_every: 2
  checkpoint: {every_steps: 1, keep: 3}
  seed: 5
"""


class _Payload:
    """A pickle that creates ``marker`` when unpickled (what a crafted checkpoint file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _recipe(tmp_path: Path) -> Path:
    path = tmp_path / "unet-safety.yaml"
    path.write_text(TINY)
    return path


def _opts(out: Path, **kw) -> TrainOptions:
    return TrainOptions(out=out, progress=False, data_cache=out.parent / "data-cache", **kw)


def _planted(tmp_path: Path) -> tuple[Path, bytes]:
    """A malicious pickle payload, shown to work: unpickling it creates the marker file."""
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Payload(marker))
    pickle.loads(payload)  # the control: this payload does run code when unpickled
    assert marker.exists()
    marker.unlink()
    return marker, payload


def test_resume_never_unpickles_planted_files(tmp_path, capsys):
    recipe = _recipe(tmp_path)
    train(recipe, _opts(tmp_path / "run", max_steps=2))
    step2 = tmp_path / "run" / "checkpoints" / "step_2"
    assert not list(step2.glob("*.pkl"))  # the trainer writes no pickle of its own state
    marker, payload = _planted(tmp_path)
    # what accelerate would unpickle with weights_only=False (registered objects) and its RNG file
    for name in ("custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "random_states_0.pkl"):
        (step2 / name).write_bytes(payload)
    # an attacker who also rewrites a listed torch file and its digest: read with weights_only=True only
    step1 = tmp_path / "run" / "checkpoints" / "step_1"
    torch.save(_Payload(marker), step1 / "optimizer.bin")
    doc = json.loads((step1 / STATE_NAME).read_text())
    doc["files"]["optimizer.bin"] = sha256_file(step1 / "optimizer.bin")
    (step1 / STATE_NAME).write_text(json.dumps(doc))
    capsys.readouterr()
    with pytest.raises(InputError, match="no checkpoint of the run can be loaded"):
        train(recipe, _opts(tmp_path / "run", resume=True))
    assert not marker.exists()
    err = capsys.readouterr().err
    assert "did not write" in err and "custom_checkpoint_0.pkl" in err  # step_2 refused, by name
    assert "cannot be loaded" in err  # step_1's optimizer file refused by torch's weights_only loader


def test_resume_from_truncated_newest_checkpoint_falls_back(tmp_path, capsys):
    recipe = _recipe(tmp_path)
    straight = train(recipe, _opts(tmp_path / "straight"))
    train(recipe, _opts(tmp_path / "cut", max_steps=3))
    newest = tmp_path / "cut" / "checkpoints" / "step_3" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a disk filled up mid-write
    capsys.readouterr()
    resumed = train(recipe, _opts(tmp_path / "cut", resume=True))
    err = capsys.readouterr().err
    assert "step_3" in err and "changed or damaged" in err
    assert "resuming from the older checkpoint" in err and "step 2" in err
    assert resumed.resumed_from == 2 and resumed.finished and resumed.steps == straight.steps
    a = load_file(tmp_path / "straight" / "model" / WEIGHTS_NAME)
    b = load_file(tmp_path / "cut" / "model" / WEIGHTS_NAME)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same weights as an uninterrupted run


def test_resume_of_a_missing_run_folder_is_refused(tmp_path):
    recipe = _recipe(tmp_path)
    with pytest.raises(InputError, match="run folder does not exist") as err:
        train(recipe, _opts(tmp_path / "nothing-here", resume=True))
    assert "nothing-here" in str(err.value)
    assert not (tmp_path / "nothing-here").exists()  # nothing started
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no run"):
        train(recipe, _opts(tmp_path / "empty", resume=True))


def _flip(path: Path, count: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    start = len(data) // 2  # inside the tensor data: the file still parses as safetensors
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_tampered_weights_are_refused_at_every_load(tmp_path, monkeypatch):
    model = mrizoo.create("unet-knee-r4", chans=4, num_pool_layers=2)
    folder = save_pretrained(model, tmp_path / "ckpt")
    recorded = json.loads((folder / "config.json").read_text())["weights_sha256"]
    assert recorded == sha256_file(folder / WEIGHTS_NAME)
    assert mrizoo.load(folder).weights_source["sha256"] == recorded  # intact: loads
    _flip(folder / WEIGHTS_NAME)
    got = sha256_file(folder / WEIGHTS_NAME)
    for load in (lambda: mrizoo.load(folder), lambda: from_pretrained(folder)):
        with pytest.raises(InputError, match="changed or damaged") as err:
            load()
        text = str(err.value)
        assert str(folder / WEIGHTS_NAME) in text and recorded in text and got in text
    # the same check for weights in the local zoo, loaded by name
    home = tmp_path / "home"
    monkeypatch.setenv("MRIZOO_HOME", str(home))
    local = save_pretrained(model, home / "zoo" / "unet-knee-r4")
    _flip(local / WEIGHTS_NAME)
    with pytest.raises(InputError, match="changed or damaged"):
        mrizoo.load("unet-knee-r4")
