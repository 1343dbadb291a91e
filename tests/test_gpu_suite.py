"""benchmarks/gpu_suite.py: the one-command GPU suite, run here at toy sizes on the CPU.

One real run (``--device cpu --tiny``) of the NCSNv2 + Langevin part next to an rcGAN part
given a budget too short to finish: the results JSON and Markdown are written with their
keys, the killed part is recorded as a timeout and the other part still runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.py"
ROW_KEYS = {"measure", "value", "unit", "reference", "reference_name", "ratio", "target", "met", "note"}


@pytest.fixture(scope="module")
def suite():
    """The suite's modules (benchmarks/ is not a package)."""
    sys.path.insert(0, str(SUITE.parent))
    try:
        import _gpu_checks
        import gpu_suite
    finally:
        sys.path.remove(str(SUITE.parent))
    return gpu_suite, _gpu_checks


def test_tiny_cpu_run_writes_results_and_survives_a_killed_part(tmp_path):
    out = tmp_path / "results"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SUITE), "--out", str(out), "--device", "cpu", "--tiny",
                           "--parts", "2:0.5,3:60"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    doc = json.loads((out / "results.json").read_text())
    assert {"suite", "command", "device", "tiny", "budget_s", "started", "wall_s", "environment", "parts"} <= set(doc)
    assert doc["device"] == "cpu" and doc["tiny"] is True and list(doc["parts"]) == ["2", "3"]
    assert {"torch", "cuda", "python", "mrizoo", "fastmri"} <= set(doc["environment"])

    killed = doc["parts"]["2"]
    assert killed["status"] == "timeout"
    assert any("budget" in e["error"] for e in killed["errors"])

    part = doc["parts"]["3"]
    assert part["status"] == "ok", part["errors"]
    assert part["rows"] and all(set(r) == ROW_KEYS for r in part["rows"])
    nfe = [r for r in part["rows"] if "network evaluations per second" in r["measure"]]
    assert nfe and all(r["value"] > 0 for r in nfe)
    projected = [r for r in part["rows"] if "projected time per slice" in r["measure"]]
    assert projected and all(r["reference"] == 14 * 60.0 for r in projected)
    assert all(r["ratio"] == pytest.approx(r["value"] / r["reference"]) for r in projected)
    assert part["data"]["setup"]["schedule_steps"] == 30  # the toy ladder: 10 levels x 3 steps
    assert (out / part["log"]).is_file()

    report = (out / "results.md").read_text()
    assert report.startswith("# mrizoo GPU suite")
    assert "## Part 2" in report and "status **timeout**" in report
    part3 = report.split("## Part 3")[1]
    assert "status **ok**" in part3 and "network evaluations per second" in part3


def test_existing_results_are_not_overwritten(suite, tmp_path, capsys):
    (tmp_path / "results.json").write_text("{}")
    assert suite[0].main(["--out", str(tmp_path), "--device", "cpu", "--tiny"]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert (tmp_path / "results.json").read_text() == "{}"


@pytest.mark.parametrize(("args", "match"), [
    (["--parts", "1,7"], "unknown part"),
    (["--parts", "2:abc"], "positive number of seconds"),
    (["--budget-s", "0"], "must be positive"),
    (["--device", "tpu"], "device"),
])
def test_bad_arguments_are_refused_before_work(suite, tmp_path, capsys, args, match):
    out = tmp_path / "new"
    assert suite[0].main(["--out", str(out), "--device", "cpu", *args] if "--device" not in args
                         else ["--out", str(out), *args]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()


def test_cuda_tests_are_found(suite):
    ids = suite[1].cuda_test_ids()
    assert "tests/test_espirit.py::test_cuda_matches_cpu" in ids
    assert all(i.startswith("tests/test_") for i in ids)


@pytest.mark.parametrize(("decorator", "needs"), [
    ("pytest.mark.cuda", True),
    ("pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')", True),
    ("pytest.mark.skipif(torch.cuda.device_count() == 0, reason='no GPU')", True),
    ("pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')", False),
    ("pytest.mark.skipif(sys.platform == 'win32', reason='posix only')", False),
    ("pytest.mark.slow", False),
])
def test_which_decorators_mean_a_test_needs_cuda(suite, decorator, needs):
    import ast

    assert suite[1]._needs_cuda(ast.parse(decorator, mode="eval").body) is needs
