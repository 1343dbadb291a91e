"""``mrizoo evaluate``: metrics against fastmri.evaluate on the same reconstructions, results files, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mrizoo
from mrizoo.data import FastMRIVolume, make_test_volume
from mrizoo.errors import InputError
from mrizoo.evaluate import EvalSet, evaluate_models, markdown_table, robustness_plot
from mrizoo.masks import create_mask, seed_from_name
from mrizoo.metrics import ConvFeatureEmbedding
from mrizoo.physics.coils import rss
from mrizoo.physics.fft import ifft2c
from mrizoo.results import load_results

fastmri_evaluate = pytest.importorskip("fastmri.evaluate")

def _fm(metric: str, gt: np.ndarray, pred: np.ndarray) -> float:
    """A fastmri.evaluate metric as a float."""
    return float(np.squeeze(getattr(fastmri_evaluate, metric)(gt, pred)))


CF = 0.16  # 64 columns: enough fully sampled centre lines for ESPIRiT
ACC = 4.0


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaldata")
    (root / "id").mkdir()
    (root / "ood").mkdir()
    make_test_volume(root / "id" / "vol_a.h5", num_slices=2, shape=(64, 64), seed=1)
    make_test_volume(root / "id" / "vol_b.h5", num_slices=3, shape=(64, 64), seed=2)
    make_test_volume(root / "ood" / "vol_c.h5", num_slices=2, shape=(64, 64), seed=3, snr_db=20,
                     phase_strength=3.0)
    return {"id": root / "id", "ood": root / "ood"}


def _direct(model: torch.nn.Module, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Target and reconstruction of one volume, built without mrizoo.evaluate."""
    with FastMRIVolume(path) as vol:
        full = torch.stack([vol.kspace(i) for i in range(vol.num_slices)])
    h, w = full.shape[-2:]
    mask = torch.as_tensor(create_mask("equispaced_fraction", (h, w), seed=seed_from_name(path.name),
                                       acceleration=ACC, center_fraction=CF).mask).bool().expand(h, w)
    kspace = torch.where(mask, full, torch.zeros((), dtype=full.dtype))
    with torch.no_grad():
        recon = model.reconstruct(kspace, mask)
    return rss(ifft2c(full)).numpy(), recon.numpy()


@pytest.fixture(scope="module")
def classical(data: dict[str, Path]):
    models = {"zerofilled": mrizoo.create("zerofilled"), "cgsense": mrizoo.create("cgsense")}
    sets = [EvalSet("id", data["id"]), EvalSet("ood", data["ood"], "out")]
    return models, evaluate_models(models, sets, acceleration=ACC, center_fraction=CF, masked=True,
                                   match_mean_std=True)


def test_metrics_match_fastmri(data, classical) -> None:
    models, ev = classical
    for label, model in models.items():
        scores = {v.file: v for v in ev.models[label].volumes}
        assert sorted(scores) == ["vol_a.h5", "vol_b.h5", "vol_c.h5"]
        per_set: dict[str, list[float]] = {"id": [], "ood": []}
        for name, folder in data.items():
            for path in sorted(folder.glob("*.h5")):
                gt, pred = _direct(model, path)
                got = scores[path.name].metrics
                assert scores[path.name].slices == gt.shape[0]
                assert got["ssim"] == pytest.approx(_fm("ssim", gt, pred), abs=1e-4)
                assert got["psnr"] == pytest.approx(_fm("psnr", gt, pred), abs=1e-3)
                assert got["nmse"] == pytest.approx(_fm("nmse", gt, pred), rel=1e-4)
                per_set[name].append(_fm("ssim", gt, pred))
        res = ev.results(label)
        by_name = {d.dataset: d for d in res.datasets}
        assert by_name["id"].distribution == "in" and by_name["ood"].distribution == "out"
        assert by_name["id"].volumes == 2 and by_name["id"].slices == 5
        assert by_name["id"].metrics["ssim"] == pytest.approx(np.mean(per_set["id"]), abs=1e-4)
        assert by_name["id"].std["ssim"] == pytest.approx(np.std(per_set["id"]), abs=1e-4)
        for key in ("ssim_masked", "psnr_masked", "ssim_matched", "psnr_matched", "nmse_matched", "artifact"):
            assert key in by_name["ood"].metrics
    # CG-SENSE beats zero filling on in-distribution data
    zf = ev.results("zerofilled").datasets[0].metrics["ssim"]
    cg = ev.results("cgsense").datasets[0].metrics["ssim"]
    assert cg > zf


def test_table_and_plot(classical, tmp_path: Path) -> None:
    _, ev = classical
    table = markdown_table(ev)
    rows = [line for line in table.splitlines() if line.startswith("| zerofilled") or line.startswith("| cgsense")]
    assert len(rows) == 4
    png = robustness_plot(ev, tmp_path / "rob.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    only_id = type(ev)(models=ev.models, sets=[s for s in ev.sets if s.distribution == "in"], mask=ev.mask,
                       acceleration=ev.acceleration, center_fraction=ev.center_fraction, samples=None)
    assert robustness_plot(only_id, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_posterior_model_curves_apsd_cfid(data, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = mrizoo.create("rcgan-brain-r4", chans=8, in_coils=4, disc_input_size=None).eval()
    torch.manual_seed(1)
    emb = ConvFeatureEmbedding(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())).eval()
    ev = evaluate_models({"rcgan-brain-r4": net}, [EvalSet("ood", data["ood"], "out")], acceleration=ACC,
                         center_fraction=CF, samples=4, embedding=emb)
    res = ev.results("rcgan-brain-r4")
    metrics = res.datasets[0].metrics
    assert res.datasets[0].samples == 4
    assert {"ssim_p1", "ssim_p2", "ssim_p4", "psnr_p1", "psnr_p2", "psnr_p4"} <= set(metrics)
    assert "ssim_p8" not in metrics
    assert metrics["cfid"] >= 0
    # oracle: regenerate the same samples and score them with numpy / fastmri.evaluate
    path = data["ood"] / "vol_c.h5"
    with FastMRIVolume(path) as vol:
        full = torch.stack([vol.kspace(i) for i in range(vol.num_slices)])
    h, w = full.shape[-2:]
    mask = torch.as_tensor(create_mask("equispaced_fraction", (h, w), seed=seed_from_name(path.name),
                                       acceleration=ACC, center_fraction=CF).mask).bool().expand(h, w)
    kspace = torch.where(mask, full, torch.zeros((), dtype=full.dtype))
    with torch.no_grad():
        smp = net.sample(kspace, mask.expand(kspace.shape[0], h, w), None, n=4,
                         generator=torch.Generator().manual_seed(0)).samples.double().numpy()
    gt = rss(ifft2c(full)).double().numpy()
    assert metrics["apsd"] == pytest.approx(np.std(smp, axis=0).mean(), rel=1e-4)
    for p in (1, 2, 4):
        assert metrics[f"psnr_p{p}"] == pytest.approx(_fm("psnr", gt, smp[:p].mean(0)), abs=1e-3)
        assert metrics[f"ssim_p{p}"] == pytest.approx(_fm("ssim", gt, smp[:p].mean(0)), abs=1e-4)
    assert metrics["ssim"] == pytest.approx(metrics["ssim_p4"], abs=1e-9)
    # calibration of the P = min(reconstruct_samples, samples) = 4 sample mean, numpy oracle
    assert metrics["calib_samples"] == 4
    err2 = ((smp.mean(0) - gt) ** 2).mean()
    var = smp.var(axis=0, ddof=1).mean()
    assert metrics["var_error_ratio"] == pytest.approx((1 + 1 / 4) * var / err2, rel=1e-6)
    single = ((smp - gt) ** 2).mean()
    assert metrics["prop33_ratio"] == pytest.approx(single / err2, rel=1e-6)
    assert metrics["prop33_target"] == pytest.approx(8 / 5)
    assert 0 <= metrics["coverage_1sd"] <= metrics["coverage_2sd"] <= 1
    cal = ev.models["rcgan-brain-r4"].calibration["ood"]
    assert cal.pixels == gt.size and sum(cal.curve_count) == gt.size
    from mrizoo.figures import calibration_plot

    png = calibration_plot({"rcgan / ood": cal}, tmp_path / "cal.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    two = evaluate_models({"rcgan-brain-r4": net}, [EvalSet("ood", data["ood"], "out")], acceleration=ACC,
                          center_fraction=CF, samples=4, calibration_samples=2)
    assert two.results("rcgan-brain-r4").datasets[0].metrics["calib_samples"] == 2
    with pytest.raises(InputError, match="calibration"):
        evaluate_models({"rcgan-brain-r4": net}, [EvalSet("ood", data["ood"], "out")], samples=4,
                        calibration_samples=5)


@pytest.fixture
def cli():
    import mrizoo.cli as cli_module

    return cli_module.main


def test_cli_writes_results_with_baselines(cli, data, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    rc = cli(["evaluate", "zerofilled", "--data", f"id={data['id']}", "--data", f"ood={data['ood']}",
              "--ood", "ood", "--center-fraction", str(CF), "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| cgsense | ood | out |" in printed and "| zerofilled | id | in |" in printed
    for name in ("zerofilled", "cgsense"):
        res = load_results(out / name / "results.json")
        assert res.model == name
        assert {d.dataset: d.distribution for d in res.datasets} == {"id": "in", "ood": "out"}
    assert (out / "table.md").read_text() in printed
    assert len(json.loads((out / "per_volume.json").read_text())) == 6
    assert (out / "effective_robustness.png").stat().st_size > 0


def test_cli_errors(cli, data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture) -> None:
    assert cli(["evaluate", "zerofilled", "--data", str(data["id"]), "--ood", "nope"]) == 2
    assert "--ood" in capsys.readouterr().err
    assert cli(["evaluate", "zerofilled", "--data", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli(["evaluate", "zerofilled", "--data", str(data["id"]), "--cfid", "--no-baselines"]) == 2
    assert "VGG-16" in capsys.readouterr().err


def test_cli_pool_test_sets_marked_in_and_out(cli, data, tmp_path: Path) -> None:
    pool = tmp_path / "tiny.yaml"
    pool.write_text("name: tiny\ndescription: two test sets\ntrain:\n  - {dataset: fastmri_knee, split: train}\n"
                    "test:\n  knee: [{dataset: fastmri_knee}]\n  brain: [{dataset: fastmri_brain}]\n")
    out = tmp_path / "out"
    rc = cli(["evaluate", "zerofilled", "--pool", str(pool), "--data-root", str(data["id"].parent),
              "--dataset", "id=fastmri_knee", "--dataset", "ood=fastmri_brain", "--cache-dir", str(tmp_path / "c"),
              "--center-fraction", str(CF), "--no-baselines", "--quiet", "--out", str(out)])
    assert rc == 0
    res = load_results(out / "zerofilled" / "results.json")
    got = {d.dataset: (d.distribution, d.volumes, d.slices) for d in res.datasets}
    assert got == {"knee": ("in", 2, 5), "brain": ("out", 1, 2)}


def test_models_never_get_coil_maps_of_the_fully_sampled_data(data: dict[str, Path]) -> None:
    """An MVUE target needs ESPIRiT maps of the fully sampled k-space; CG-SENSE must still estimate its own
    maps from the undersampled k-space, exactly as ``model.reconstruct(kspace, mask)`` does."""
    path = data["id"] / "vol_a.h5"
    net = mrizoo.create("cgsense")
    ev = evaluate_models({"cgsense": net}, [EvalSet("a", [path])], center_fraction=CF, target="mvue")
    _, recon = _direct(net, path)
    from mrizoo.data.slices import SliceDataset
    from mrizoo.metrics import score

    ds = SliceDataset([path], target="mvue", mask="equispaced_fraction",
                      mask_params={"acceleration": ACC, "center_fraction": CF}, seed_mode="filename")
    target = torch.stack([ds[i].target for i in range(len(ds))])
    want = score(target, torch.from_numpy(recon))
    got = ev.models["cgsense"].volumes[0].metrics
    for key in ("ssim", "psnr", "nmse"):
        assert got[key] == pytest.approx(want[key], abs=1e-6), key
