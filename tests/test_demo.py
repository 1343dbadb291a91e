"""The demo (README's first command): shipped scan + shipped models offline, real input, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mrizoo.cli import main
from mrizoo.demo import DemoConfig, run_demo
from mrizoo.errors import InputError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


def test_readme_demo_runs_offline_in_a_fresh_process(tmp_path: Path) -> None:
    """`mrizoo demo` with no network, an empty HF cache and an empty local zoo: everything it needs ships."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MRIZOO_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), MRIZOO_HOME=str(tmp_path / "home"),
               HF_ENDPOINT="http://127.0.0.1:9", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "mrizoo", "demo", "--out", "demo.png"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "shipped scan brain_t1_8ch_r4.h5" in out and "R = 4.09" in out
    for method in ("zero-filled", "CG-SENSE", "L1-wavelet", "varnet-mini-r4", "rcgan-mini-r4"):
        assert method in out, out
    assert "rcgan-mini-r4: mean posterior std" in out
    assert (tmp_path / "demo.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.png", "hf", "home"] or \
        not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
    assert not list((tmp_path / "hf").rglob("*.safetensors"))  # nothing fetched


def test_demo_scores_every_method_against_the_reference(tmp_path: Path) -> None:
    out = tmp_path / "fig" / "demo.png"
    res = run_demo(DemoConfig(output=out, samples=4))
    assert res.shape == (8, 230, 180) and 4.0 < res.acceleration < 4.2
    zf, cg, l1 = (res.metrics[k] for k in ("zero-filled", "CG-SENSE", "L1-wavelet"))
    varnet, rcgan = res.metrics["varnet-mini-r4"], res.metrics["rcgan-mini-r4"]
    assert cg["psnr"] > zf["psnr"] + 3 and l1["psnr"] > cg["psnr"]
    # zero-filling is fastMRI's RSS baseline (SSIM 0.62); the small rcGAN's mean stays near it on this real
    # scan (measured with 8 samples: 22.07 vs 22.20 dB)
    assert varnet["ssim"] > zf["ssim"] + 0.1 and rcgan["psnr"] > zf["psnr"] - 0.5
    assert res.mean_std["rcgan-mini-r4"] > 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in out.parent.iterdir()] == ["demo.png"]  # no temp files left


def test_demo_on_a_fully_sampled_real_file_undersamples_it(realdata: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo.png"
    res = run_demo(DemoConfig(input=realdata / "brain_t1_8ch_full.cfl", acceleration=8, center_fraction=0.04,
                              models=("varnet-mini-r4",), baselines=False, output=out))
    assert 7.5 < res.acceleration < 8.6 and res.source.endswith("brain_t1_8ch_full.cfl")
    assert set(res.metrics) == {"zero-filled", "varnet-mini-r4"}
    assert res.metrics["varnet-mini-r4"]["ssim"] > res.metrics["zero-filled"]["ssim"]


def test_demo_cli_without_reference_prints_timings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An undersampled file without a fully sampled reference: reconstructions and figure, no metrics."""
    import h5py

    from mrizoo.demo import demo_scan_path

    scan = tmp_path / "no_ref.h5"
    with h5py.File(demo_scan_path(), "r") as src, h5py.File(scan, "w") as dst:
        dst["kspace"], dst["mask"] = src["kspace"][()], src["mask"][()]
    out = tmp_path / "demo.png"
    assert main(["demo", "--input", str(scan), "--model", "varnet-mini-r4", "--no-baselines",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "undersampled" in text and "no fully sampled reference" in text and "no metrics" in text
    assert "varnet-mini-r4" in text and "R = 4.09" in text
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_demo_rejects_unsupported_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "scan.nii"
    bad.write_text("x")
    with pytest.raises(InputError, match="scan.nii"):
        run_demo(DemoConfig(input=bad, output=tmp_path / "x.png"))
    assert main(["demo", "--input", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert "expected a fastMRI .h5 file" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_demo_rejects_unknown_model_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--model", "varnet-mini-r5", "--out", str(tmp_path / "x.png")]) == 2
    assert "varnet-mini-r4" in capsys.readouterr().err  # the closest name is suggested
    assert not (tmp_path / "x.png").exists()


def test_demo_rejects_a_slice_outside_the_volume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--slice", "3", "--no-baselines", "--model", "varnet-mini-r4",
                 "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "slice index out of range" in err and "brain_t1_8ch_r4.h5" in err and "0..0" in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--acceleration", "0"], "argument --acceleration: bad acceleration (expected a finite number > 1, got 0.0)"),
    (["--center-fraction", "1.5"], "argument --center-fraction: bad centre fraction"),
    (["--samples", "1"], "argument --samples: must be an integer >= 2 (got 1)"),
    (["--seed", "-1"], "argument --seed: must be an integer >= 0 (got -1)"),
    (["--mask", "bogus"], "'mask': unknown mask"),
])
def test_demo_options_are_checked_before_any_work(argv: list[str], message: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["demo", *argv, "--out", str(tmp_path / "x.png")])
    except SystemExit as stop:  # the parser's own errors
        code = stop.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_demo_figure_path_may_not_be_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "the figure path is a folder" in capsys.readouterr().err


def test_demo_needs_two_samples_for_a_std() -> None:
    with pytest.raises(InputError, match="samples"):
        DemoConfig(samples=1)


def test_help_works_in_a_fresh_interpreter() -> None:
    res = subprocess.run([sys.executable, "-m", "mrizoo", "--help"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for command in ("demo", "list", "info", "convert"):
        assert command in res.stdout
