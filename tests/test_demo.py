"""The demo (README's first command) offline: synthetic and real input, figure, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mrizoo.cli import main
from mrizoo.demo import DemoConfig, run_demo
from mrizoo.errors import InputError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_on_real_brain_writes_figure_and_beats_zero_filled(realdata: Path, tmp_path: Path) -> None:
    out = tmp_path / "fig" / "demo.png"
    res = run_demo(DemoConfig(input=realdata / "brain_t1_8ch_full.cfl", output=out))
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert res.shape == (8, 230, 180)
    assert 3.8 < res.acceleration < 4.3
    # measured: zero-filled SSIM 0.68 / 22.2 dB, CG-SENSE 0.82 / 29.0 dB, L1-wavelet 0.88 / 32.0 dB
    zf, cg, l1 = (res.metrics[k] for k in ("zero-filled", "CG-SENSE", "L1-wavelet"))
    assert cg["psnr"] > zf["psnr"] + 4 and cg["ssim"] > zf["ssim"] + 0.08
    assert l1["psnr"] > cg["psnr"] + 1 and l1["ssim"] > cg["ssim"]
    assert [p.name for p in out.parent.iterdir()] == ["demo.png"]  # no temp files left


def test_demo_cli_synthetic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.png"
    assert main(["demo", "--out", str(out), "--acceleration", "4"]) == 0
    text = capsys.readouterr().out
    assert "synthetic 8-coil phantom" in text and "L1-wavelet" in text and str(out) in text
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_demo_rejects_unsupported_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "scan.nii"
    bad.write_text("x")
    with pytest.raises(InputError, match="scan.nii"):
        run_demo(DemoConfig(input=bad, output=tmp_path / "x.png"))
    assert main(["demo", "--input", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert "expected a fastMRI .h5 file" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_help_works_in_a_fresh_interpreter() -> None:
    res = subprocess.run([sys.executable, "-m", "mrizoo", "--help"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for command in ("demo", "list", "info", "convert"):
        assert command in res.stdout
