"""``mrizoo import FORMAT FILE OUT_DIR``: each format converts with parity against its reference code, the
folder loads with ``mrizoo.load`` and stages with ``mrizoo push --dry-run``, and bad input is refused first.

Oracles: the ``fastmri`` package (VarNet, U-Net) and the authors' NCSNv2 (``../shared/oracles``).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import types
from pathlib import Path

import pytest
import torch

import mrizoo
from mrizoo.cli import main

ORACLES = Path(__file__).resolve().parents[2] / "shared" / "oracles"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MRIZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _imported(out: Path, src: Path, fmt: str, name: str) -> dict:
    doc = json.loads((out / "config.json").read_text())
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert doc["name"] == name and doc["imported"] == {"format": fmt, "file": src.name, "sha256": digest}
    card = (out / "README.md").read_text()
    assert digest in card and f"`{src.name}`" in card and f"mrizoo import {fmt}" in card
    return doc


def _push_dry_run(capsys: pytest.CaptureFixture[str], out: Path, name: str) -> None:
    code, stdout, err = _run(capsys, "push", str(out), "--repo-id", "someone/imported", "--dry-run")
    assert code == 0, err
    assert f"of '{name}' for someone/imported@main" in stdout and "nothing was uploaded" in stdout
    # the card that a push stages names the imported file and its sha256, not a training run
    from mrizoo.cards.publish import stage_checkpoint

    doc = json.loads((out / "config.json").read_text())
    staged = out.parent / f"{out.name}-staged"
    stage_checkpoint(out, staged)
    card = (staged / "README.md").read_text()
    imported = doc["imported"]
    assert f"imported with `mrizoo import {imported['format']}`" in card and imported["sha256"] in card
    assert "trained with mrizoo" not in card


def test_fastmri_varnet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fm = pytest.importorskip("fastmri.models")
    torch.manual_seed(7)
    ref = fm.VarNet(num_cascades=2, sens_chans=2, sens_pools=2, chans=4, pools=2).eval()
    with torch.no_grad():
        for block in ref.cascades:
            block.dc_weight.uniform_(0.2, 2.0)
    src = tmp_path / "varnet.pt"
    torch.save({f"module.{k}": v for k, v in ref.state_dict().items()}, src)  # a DataParallel file
    out = tmp_path / "varnet-ckpt"
    code, stdout, err = _run(capsys, "import", "fastmri-varnet", str(src), str(out))
    assert code == 0, err
    assert f"wrote {out} (varnet-imported, varnet" in stdout
    doc = _imported(out, src, "fastmri-varnet", "varnet-imported")
    assert doc["config"]["num_cascades"] == 2 and doc["config"]["chans"] == 4
    model = mrizoo.load(str(out))
    assert all(torch.equal(v, ref.state_dict()[k]) for k, v in model.state_dict().items())
    g = torch.Generator().manual_seed(1)
    kspace = torch.randn(1, 3, 32, 24, 2, generator=g, dtype=torch.float64)
    mask = torch.zeros(1, 1, 1, 24, 1, dtype=torch.bool)
    mask[..., ::3, :] = True
    mask[..., 10:14, :] = True
    with torch.no_grad():
        ours, theirs = model.double()(kspace * mask, mask), ref.double()(kspace * mask, mask)
    assert float((ours - theirs).abs().max() / theirs.abs().max()) <= 1e-10
    _push_dry_run(capsys, out, "varnet-imported")


def test_fastmri_unet_into_a_zoo_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fm = pytest.importorskip("fastmri.models")
    torch.manual_seed(8)
    ref = fm.Unet(in_chans=1, out_chans=1, chans=4, num_pool_layers=2).eval()
    src = tmp_path / "unet.ckpt"
    torch.save({"state_dict": {f"unet.{k}": v for k, v in ref.state_dict().items()}}, src)  # Lightning
    out = tmp_path / "unet-ckpt"
    code, _, err = _run(capsys, "import", "fastmri-unet", str(src), str(out), "--name", "unet-mine-r4")
    assert code == 0, err
    _imported(out, src, "fastmri-unet", "unet-mine-r4")
    model = mrizoo.load(str(out))
    image = torch.randn(2, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours, theirs = model.double()(image), ref.double()(image)
    assert float((ours - theirs).abs().max() / theirs.abs().max()) <= 1e-12
    _push_dry_run(capsys, out, "unet-mine-r4")
    # a U-Net file does not fit the official VarNet entry, nor a U-Net entry of another size
    code, _, err = _run(capsys, "import", "fastmri-unet", str(src), str(tmp_path / "x"), "--name",
                        "varnet-fastmri-brain")
    assert code == 2 and "zoo model 'varnet-fastmri-brain' has another architecture than a fastmri-unet file" in err
    code, _, err = _run(capsys, "import", "fastmri-unet", str(src), str(tmp_path / "x"), "--name",
                        "unet-fastmri-knee")
    assert code == 2 and "the checkpoint does not fit the model 'unet-fastmri-knee'" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(not (ORACLES / "csgm_ncsnv2").is_dir(), reason=f"the reference NCSNv2 code is not in {ORACLES}")
def test_csgm_ncsnv2_into_the_official_entry_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tarfile

    sys.path.insert(0, str(ORACLES))
    try:
        from csgm_ncsnv2.ncsnv2 import NCSNv2Deeper
    finally:
        sys.path.remove(str(ORACLES))
    ns = types.SimpleNamespace
    cfg = ns(device="cpu", data=ns(channels=2, logit_transform=False, rescaled=False, image_size=32),
             model=ns(sigma_begin=50, sigma_end=0.01, num_classes=20, sigma_dist="geometric",
                      normalization="InstanceNorm++", nonlinearity="elu", ngf=4, spec_norm=False))
    torch.manual_seed(9)
    ref = NCSNv2Deeper(cfg)
    g = torch.Generator().manual_seed(10)
    shadow = {k: v.detach() + 0.02 * torch.randn(v.shape, generator=g) for k, v in ref.named_parameters()}
    buf = io.BytesIO()
    torch.save([torch.nn.DataParallel(ref).state_dict(), {}, 0, 1, shadow], buf)
    src = tmp_path / "release.tar.gz"
    with tarfile.open(src, "w:gz") as tar:
        info = tarfile.TarInfo("ncsnv2-mri-mvue/logs/mri-mvue/checkpoint_100000.pth")
        info.size = len(buf.getvalue())
        tar.addfile(info, io.BytesIO(buf.getvalue()))
    out = tmp_path / "prior"
    code, _, err = _run(capsys, "import", "csgm-ncsnv2", str(src), str(out))
    assert code == 0, err
    doc = _imported(out, src, "csgm-ncsnv2", "ncsnv2-imported")
    assert doc["config"]["variant"] == "deeper" and doc["config"]["num_classes"] == 20
    assert doc["config"]["sigma_begin"] == 50.0 and doc["config"]["sigma_end"] == 0.01
    assert doc["config"]["sampler"]["start_level"] == 1156 and doc["task"]["target"] == "mvue"
    model = mrizoo.load(str(out))
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(shadow[name])
    x = torch.rand(2, 2, 64, 64, generator=torch.Generator().manual_seed(4))
    labels = torch.tensor([0, 19])
    with torch.no_grad():
        ours, theirs = model.net(x, labels), ref(x, labels)
    assert bool(torch.isfinite(theirs).all())
    assert float((ours - theirs).abs().max() / theirs.abs().max()) <= 1e-5
    _push_dry_run(capsys, out, "ncsnv2-imported")
    # into the official entry: its network size does not fit this small file
    code, _, err = _run(capsys, "import", "csgm-ncsnv2", str(src), str(tmp_path / "y"), "--name",
                        "ncsnv2-fastmri-brain")
    assert code == 2 and "does not fit the model 'ncsnv2-fastmri-brain'" in err and not (tmp_path / "y").exists()


def test_bad_input_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "w.pt"
    torch.save({"a": torch.zeros(2)}, src)
    with pytest.raises(SystemExit):
        main(["import", "deepinv-varnet", str(src), str(tmp_path / "o")])
    assert "invalid choice: 'deepinv-varnet'" in capsys.readouterr().err
    code, _, err = _run(capsys, "import", "fastmri-varnet", str(tmp_path / "missing.pt"), str(tmp_path / "o"))
    assert code == 2 and "missing.pt: 'FILE': checkpoint file not found (expected an existing file)" in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code, _, err = _run(capsys, "import", "fastmri-varnet", str(src), str(busy))
    assert code == 2 and "the output folder is not empty; pass --overwrite" in err
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    code, _, err = _run(capsys, "import", "fastmri-varnet", str(src), str(tmp_path / "o"))
    assert code == 2 and "keys do not match the varnet model" in err
    code, _, err = _run(capsys, "import", "fastmri-varnet", str(src), str(tmp_path / "o"), "--name", "unet-x")
    assert code == 2 and "the name must start with the architecture" in err
    code, _, err = _run(capsys, "import", "fastmri-varnet", str(src), str(tmp_path), "--overwrite")
    assert code == 2 and "the output folder holds the file being imported" in err
    src.write_bytes(b"not a pickle")
    code, _, err = _run(capsys, "import", "csgm-ncsnv2", str(src), str(tmp_path / "o"))
    assert code == 2 and "not a readable PyTorch checkpoint" in err
    assert not (tmp_path / "o").exists()
