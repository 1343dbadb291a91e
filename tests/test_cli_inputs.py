"""Bad input to ``reconstruct`` and ``evaluate`` is refused before any work, and nothing is half-written."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import mrizoo
from mrizoo.cli import build_parser, main
from mrizoo.data.synthetic import make_test_volume
from mrizoo.errors import InputError
from mrizoo.reconstruct import pick_device, reconstruct_file, reconstruct_path

SHAPE = (32, 32)


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vol")
    return make_test_volume(folder / "file_brain_001.h5", num_slices=2, shape=SHAPE, num_coils=4,
                            snr_db=40.0, crop=(24, 24))


def _files(folder: Path) -> list[str]:
    """Every entry under ``folder``, hidden temporary files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _parse_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# --------------------------------------------------------------------------- numeric options
@pytest.mark.parametrize("option, value, words", [
    ("--acceleration", "0", "bad acceleration (expected a finite number > 1, got 0.0)"),
    ("--acceleration", "-4", "bad acceleration (expected a finite number > 1, got -4.0)"),
    ("--acceleration", "1", "bad acceleration"),
    ("--acceleration", "nan", "must be a finite number"),
    ("--acceleration", "four", "not a number"),
    ("--center-fraction", "0", "bad centre fraction (expected a number in (0, 1)"),
    ("--center-fraction", "1.5", "bad centre fraction"),
    ("--batch-size", "0", "must be an integer >= 1 (got 0)"),
    ("--batch-size", "2.5", "not an integer"),
    ("--samples", "1", "must be an integer >= 2 (got 1)"),
    ("--upsample", "0", "must be an integer >= 1"),
    ("--seed", "-1", "must be an integer >= 0 (got -1)"),
    ("--figure-slice", "middle", "not an integer"),
    ("--device", "tpu", "unknown device"),
])
def test_reconstruct_numeric_options_are_refused_at_parse_time(option, value, words, capsys):
    err = _parse_error(["reconstruct", "zerofilled", "in.h5", option, value], capsys)
    assert f"argument {option}: {words}" in err


@pytest.mark.parametrize("option, value, words", [
    ("--acceleration", "0", "bad acceleration"),
    ("--acceleration", "-4", "bad acceleration"),
    ("--center-fraction", "-0.1", "bad centre fraction"),
    ("--samples", "0", "must be an integer >= 2"),
    ("--samples-max", "0", "must be an integer >= 1"),
    ("--batch-size", "-3", "must be an integer >= 1"),
    ("--plot-metric", "ssmi", "invalid choice: 'ssmi'"),
])
def test_evaluate_numeric_options_are_refused_at_parse_time(option, value, words, capsys):
    err = _parse_error(["evaluate", "zerofilled", "--data", "x", option, value], capsys)
    assert f"argument {option}: {words}" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused_before_work(volume, tmp_path, capsys):
    for cmd in (["reconstruct", "zerofilled", str(volume)], ["evaluate", "zerofilled", "--data", str(volume)]):
        err = _parse_error([*cmd, "--device", "cuda"], capsys)
        assert "argument --device: CUDA is not available on this machine" in err
    with pytest.raises(InputError, match="CUDA is not available") as err_info:
        reconstruct_file("zerofilled", volume, tmp_path / "o.h5", device="cuda", progress=False)
    assert err_info.value.field == "device"
    assert not (tmp_path / "o.h5").exists()


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="unknown device"):
        pick_device("gpu0")
    n = torch.cuda.device_count()
    with pytest.raises(InputError, match="CUDA"):
        pick_device(f"cuda:{n}")


@pytest.mark.parametrize("kwargs, field, words", [
    ({"acceleration": 0}, "acceleration", "bad acceleration"),
    ({"acceleration": -4}, "acceleration", "bad acceleration"),
    ({"acceleration": 4, "center_fraction": 0.0}, "center_fraction", "bad centre fraction"),
    ({"batch_size": 0}, "batch_size", "batch size must be a positive integer"),
    ({"seed": -2}, "seed", "bad integer parameter"),
    ({"mask": "zigzag"}, "mask", "unknown mask"),
    ({"figure_slice": 1.5}, "figure_slice", "slice index must be an integer"),
    ({"save_samples": True}, "save_samples", "saving samples needs --samples"),
])
def test_api_refuses_nonsense_before_any_work(volume, tmp_path, kwargs, field, words):
    with pytest.raises(InputError, match=words) as err:
        reconstruct_file("zerofilled", volume, tmp_path / "o.h5", progress=False, **kwargs)
    assert err.value.field == field
    assert _files(tmp_path) == []


# ------------------------------------------------------------------------- nothing half-written
def test_bad_figure_slice_leaves_no_output(volume, tmp_path):
    out, fig = tmp_path / "o.h5", tmp_path / "o.png"
    with pytest.raises(InputError, match="slice index out of range") as err:
        reconstruct_file("zerofilled", volume, out, figure=fig, figure_slice=7, progress=False)
    assert err.value.field == "figure_slice" and "0 <= index < 2" in str(err.value)
    assert _files(tmp_path) == []
    rc = main(["reconstruct", "zerofilled", str(volume), str(out), "--figure", str(fig), "--figure-slice", "-3",
               "--no-progress"])
    assert rc == 2 and _files(tmp_path) == []


def test_existing_figure_is_refused_before_the_h5_is_written(volume, tmp_path):
    fig = tmp_path / "o.png"
    fig.write_bytes(b"earlier figure")
    with pytest.raises(InputError, match="figure exists"):
        reconstruct_file("zerofilled", volume, tmp_path / "o.h5", figure=fig, progress=False)
    assert _files(tmp_path) == ["o.png"] and fig.read_bytes() == b"earlier figure"


def test_disk_full_leaves_no_partial_file(volume, tmp_path, monkeypatch):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    real = h5py.Group.create_dataset

    def full_disk(self, name, *args, **kwargs):
        real(self, name, *args, **kwargs)  # some bytes reach the temporary file, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(h5py.Group, "create_dataset", full_disk)
    with pytest.raises(InputError, match="no space left on the device; nothing was written") as err:
        reconstruct_file("zerofilled", volume, out_dir / "o.h5", figure=out_dir / "o.png", progress=False)
    assert err.value.path == os.fspath(out_dir / "o.h5")
    assert _files(out_dir) == []  # neither the .h5, nor its temporary file, nor the figure drawn first


def test_hdf5_wrapped_disk_full_message_is_recognised(volume, tmp_path, monkeypatch):
    def full_disk(self, name, *args, **kwargs):
        raise OSError("Unable to synchronously write data (file write failed: errno = 28, "
                      "error message = 'No space left on device')")

    monkeypatch.setattr(h5py.Group, "create_dataset", full_disk)
    with pytest.raises(InputError, match="no space left"):
        reconstruct_file("zerofilled", volume, tmp_path / "o.h5", progress=False)
    assert _files(tmp_path) == []


def test_read_only_file_system_while_writing_is_a_clear_error(volume, tmp_path, monkeypatch):
    def read_only(self, name, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(h5py.Group, "create_dataset", read_only)
    with pytest.raises(InputError, match=r"cannot write there \(read-only or no permission\); nothing was written"):
        reconstruct_file("zerofilled", volume, tmp_path / "o.h5", progress=False)
    assert _files(tmp_path) == []


def test_read_only_target_is_refused_before_work(volume, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user (root) whom file permissions do not restrict")
        with pytest.raises(InputError, match=r"cannot write there \(read-only or no permission\)") as err:
            reconstruct_file("zerofilled", volume, ro / "sub" / "o.h5", progress=False)
        assert err.value.path == os.fspath(ro)
        with pytest.raises(InputError, match="cannot write there"):
            main(["evaluate", "zerofilled", "--data", str(volume), "--out", str(ro / "res")]) and None
    finally:
        ro.chmod(0o755)
    assert _files(ro) == []


def test_not_enough_space_is_refused_before_the_model_runs(volume, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(InputError, match="not enough free space for the output"):
        reconstruct_file("zerofilled", volume, tmp_path / "o.h5", progress=False)
    assert _files(tmp_path) == []


def test_outputs_get_the_users_umask(volume, tmp_path):
    old = os.umask(0o022)
    try:
        res = reconstruct_file("zerofilled", volume, tmp_path / "o.h5", figure=tmp_path / "o.png", progress=False)
    finally:
        os.umask(old)
    assert res.output.stat().st_mode & 0o777 == 0o644
    assert res.figure.stat().st_mode & 0o777 == 0o644


def test_output_never_replaces_the_input(volume, tmp_path):
    src = tmp_path / "in.h5"
    src.write_bytes(volume.read_bytes())
    with pytest.raises(InputError, match="output would replace the input"):
        reconstruct_file("zerofilled", src, src, overwrite=True, progress=False)
    with pytest.raises(InputError, match="the output folder is the input folder"):
        reconstruct_path("zerofilled", tmp_path, tmp_path, overwrite=True, progress=False)
    assert src.read_bytes() == volume.read_bytes()


# ------------------------------------------------------------------------------ folder resume
def test_skip_existing_resumes_a_folder_run(volume, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.h5", "b.h5", "c.h5"):
        (src / name).write_bytes(volume.read_bytes())
    out = tmp_path / "out"
    first = reconstruct_file("zerofilled", src / "a.h5", out / "a.h5", progress=False)  # a run that stopped
    before = first.output.read_bytes()
    with pytest.raises(InputError, match="--skip-existing to resume"):
        reconstruct_path("zerofilled", src, out, progress=False)
    with pytest.raises(InputError, match="exclude each other"):
        reconstruct_path("zerofilled", src, out, overwrite=True, skip_existing=True, progress=False)
    rc = main(["reconstruct", "zerofilled", str(src), str(out), "--skip-existing", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "a.h5: skipped (output exists)" in text and text.count("skipped") == 1
    assert _files(out) == ["a.h5", "b.h5", "c.h5"]
    assert (out / "a.h5").read_bytes() == before
    with h5py.File(out / "c.h5") as f:
        assert f["reconstruction"].shape == (2, *SHAPE) and f.attrs["input_file"] == "c.h5"
    # an existing file that is not a complete reconstruction is not silently kept
    (out / "b.h5").write_bytes(b"cut short")
    with pytest.raises(InputError, match="not a complete reconstruction") as err:
        reconstruct_path("zerofilled", src, out, skip_existing=True, progress=False)
    assert err.value.path == os.fspath(out / "b.h5")


def test_folder_run_checks_every_file_before_the_first(volume, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.h5").write_bytes(volume.read_bytes())
    (src / "b.h5").write_text("not hdf5")
    out = tmp_path / "out"
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        reconstruct_path("zerofilled", src, out, progress=False)
    assert not out.exists()


# --------------------------------------------------------------------------------- evaluate --out
def test_evaluate_out_is_checked_before_work(volume, tmp_path, capsys):
    as_file = tmp_path / "results.txt"
    as_file.write_text("x")
    assert main(["evaluate", "zerofilled", "--data", str(volume), "--out", str(as_file), "--quiet"]) == 2
    assert "the output must be a folder but is a file" in capsys.readouterr().err
    assert main(["evaluate", "zerofilled", "--data", str(volume), "--target", "reconstruction_esc", "--quiet"]) == 2
    assert "'reconstruction_esc': no such target" in capsys.readouterr().err
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "table.md").write_text("earlier results")
    assert main(["evaluate", "zerofilled", "--data", str(volume), "--out", str(earlier), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'--out': the output folder holds earlier results" in err and "--overwrite" in err
    assert (earlier / "table.md").read_text() == "earlier results"


def test_evaluate_writes_results_with_weights_and_overwrites_only_on_request(volume, tmp_path, capsys):
    out = tmp_path / "res"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "table.md").write_text("earlier results")
    rc = main(["evaluate", "zerofilled", "--data", f"test={volume}", "--no-baselines", "--out", str(out),
               "--overwrite", "--quiet"])
    assert rc == 0
    assert _files(out) == ["notes.txt", "per_volume.json", "table.md", "weights.json", "zerofilled",
                           "zerofilled/results.json"]
    assert (out / "notes.txt").read_text() == "mine"  # files the run does not name are kept
    assert "zerofilled" in (out / "table.md").read_text()
    weights = json.loads((out / "weights.json").read_text())
    assert weights["zerofilled"]["kind"] == "builtin"
    assert "weights zerofilled: builtin" in capsys.readouterr().out


def test_evaluate_disk_full_writes_no_results(volume, tmp_path, monkeypatch):
    out = tmp_path / "res"
    real = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == "per_volume.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(InputError, match="no space left"):
        from mrizoo.cli.evaluate import _evaluate

        args = build_parser().parse_args(["evaluate", "zerofilled", "--data", str(volume), "--no-baselines",
                                          "--out", str(out), "--quiet"])
        _evaluate(args)
    assert _files(out) == []


# ------------------------------------------------------------------------------- provenance
def test_reconstruct_records_the_weights(volume, tmp_path):
    from mrizoo.models.checkpoint import save_pretrained

    torch.manual_seed(0)
    model = mrizoo.create("varnet-fastmri-brain", num_cascades=1, sens_chans=2, sens_pools=1, chans=2, pools=1)
    ckpt = save_pretrained(model, tmp_path / "ckpt")
    sha = hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
    res = reconstruct_file(ckpt, volume, tmp_path / "o.h5", progress=False)
    with h5py.File(res.output) as f:
        source = json.loads(f.attrs["weights_source"])
        assert f.attrs["weights_sha256"] == sha
    assert source["sha256"] == sha and source["kind"] == "folder"
    assert sha[:8] in res.weights
    # evaluate records the same digest in its results
    from mrizoo.evaluate import EvalSet, evaluate_models

    ev = evaluate_models([str(ckpt)], [EvalSet("t", [volume])])
    (label,) = ev.models
    assert ev.results(label).weights_sha256 == sha and ev.weights[label]["sha256"] == sha
