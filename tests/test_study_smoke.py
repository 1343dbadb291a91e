"""`mrizoo study --smoke` of every shipped study, end to end, on a small stand-in data root.

The stand-in root holds tiny simulated volumes under the dataset, view, contrast and split names
of the demo mini-pool, so the studies' pools select from it exactly as from a built mini-pool;
every arm really trains (a few steps), is evaluated, drawn and judged.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from mrizoo.errors import InputError

STUDIES = Path(__file__).resolve().parents[1] / "studies"


@pytest.fixture(scope="module")
def stand_in_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mrizoo.data.synthetic import make_test_volume

    root = tmp_path_factory.mktemp("mini")
    n = 0

    def volume(dataset: str, view: str, contrast: str, split: str, k: int) -> None:
        nonlocal n
        path = root / dataset / f"{view}_{contrast.lower()}_{split}_{k}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        make_test_volume(path, num_slices=2, shape=(32, 32), num_coils=2, seed=n, snr_db=30.0)
        with h5py.File(path, "a") as f:
            f.attrs.update({"dataset": dataset, "view": view, "contrast": contrast, "split": split,
                            "anatomy": "brain"})
        n += 1

    for contrast in ("T1", "T2", "PD", "FLAIR"):
        for view in ("axial", "coronal"):
            for k in range(2):
                volume(f"mini_colin_{view}", view, contrast, "train", k)
            volume(f"mini_colin_{view}", view, contrast, "val", 0)
        volume("mini_colin_sagittal", "sagittal", contrast, "test", 0)
        volume("mini_macaque", "axial", contrast, "test", 0)
    return root


@pytest.mark.usefixtures("one_thread", "private_mrizoo_home")
@pytest.mark.parametrize("name", ["joint-vs-separate", "diverse-vs-best", "distributional-overfitting"])
def test_shipped_study_smoke(name: str, stand_in_root: Path, tmp_path: Path) -> None:
    from mrizoo.study import StudyOptions, load_study, run_study

    path = STUDIES / f"{name}.yaml"
    spec, _ = load_study(path, smoke=True)
    result = run_study(path, StudyOptions(out=tmp_path / "out", smoke=True, data_root=stand_in_root))
    assert result.trained == sum(len(a.seeds or spec.seeds) for a in spec.arms.values()) and result.skipped == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {r["arm"] for r in results["runs"]} == set(spec.arms)
    for run in results["runs"]:
        assert set(run["final"]) == set(spec.evaluation.sets)
        assert all(0 < run["final"][s]["ssim"] <= 1 for s in spec.evaluation.sets)
        # every run was validated on every evaluation set during training
        assert run["history"] and all(set(h["sets"]) == set(spec.evaluation.sets) for h in run["history"])
    assert [v.name for v in result.verdicts] == list(spec.findings)
    report = result.report.read_text()
    assert "(smoke run)" in report and all(f"### {n}:" in report for n in spec.findings)
    for label in (a.label or n for n, a in spec.arms.items()):
        assert f"| {label} |" in report
    for figure in spec.figures:
        assert (tmp_path / "out" / "figures" / f"{figure}.png").stat().st_size > 1000


@pytest.mark.usefixtures("one_thread", "private_mrizoo_home")
def test_study_folder_is_resumed_not_overwritten(stand_in_root: Path, tmp_path: Path) -> None:
    from mrizoo.study import StudyOptions, run_study

    path = STUDIES / "distributional-overfitting.yaml"
    out = tmp_path / "out"
    first = run_study(path, StudyOptions(out=out, smoke=True, data_root=stand_in_root))
    assert first.trained == 1
    weights = out / "runs" / "long-seed0" / "model" / "model.safetensors"
    before = weights.read_bytes()
    with pytest.raises(InputError, match="--resume"):
        run_study(path, StudyOptions(out=out, smoke=True, data_root=stand_in_root))
    again = run_study(path, StudyOptions(out=out, smoke=True, resume=True, data_root=stand_in_root))
    assert (again.trained, again.skipped) == (0, 1)
    assert weights.read_bytes() == before
    assert [v.summary for v in again.verdicts] == [v.summary for v in first.verdicts]
    # a run without its completion record (interrupted) is resumed from its checkpoint, not retrained
    (out / "runs" / "long-seed0" / "study_run.json").unlink()
    resumed = run_study(path, StudyOptions(out=out, smoke=True, resume=True, data_root=stand_in_root))
    assert (resumed.trained, resumed.skipped) == (1, 0)
    assert weights.read_bytes() == before
    assert [v.summary for v in resumed.verdicts] == [v.summary for v in first.verdicts]
    with pytest.raises(InputError, match="smoke"):
        run_study(path, StudyOptions(out=out, smoke=False, resume=True, data_root=stand_in_root))
