"""Study files are validated before any work: every error names the file and the study key."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from mrizoo.errors import InputError
from mrizoo.study.findings import judge
from mrizoo.study.plan import plan_study
from mrizoo.study.schema import load_study

STUDIES = Path(__file__).resolve().parents[1] / "studies"
SHIPPED = sorted(STUDIES.glob("*.yaml"))


def _base() -> dict[str, Any]:
    return yaml.safe_load((STUDIES / "joint-vs-separate.yaml").read_text())


def _load(tmp_path: Path, doc: dict[str, Any], *, smoke: bool = False) -> Any:
    (tmp_path / "recipes").mkdir(exist_ok=True)
    (tmp_path / "recipes" / "unet-small-64.yaml").write_text((STUDIES / "recipes" / "unet-small-64.yaml").read_text())
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    spec, info = load_study(path, smoke=smoke)
    return plan_study(spec, info, tmp_path / "out")


def test_shipped_studies_validate_as_written_and_with_smoke(tmp_path: Path) -> None:
    assert {p.stem for p in SHIPPED} >= {"joint-vs-separate", "diverse-vs-best", "distributional-overfitting"}
    for path in SHIPPED:
        for smoke in (False, True):
            spec, info = load_study(path, smoke=smoke)
            plan = plan_study(spec, info, tmp_path / path.stem)
            assert len(plan.runs) == sum(len(a.seeds or spec.seeds) for a in spec.arms.values())
            for run in plan.runs:  # every run is validated on every evaluation set
                ood = yaml.safe_load(run.recipe_text)["training"]["data"]["ood"]
                assert set(ood) == set(spec.evaluation.sets)


@pytest.mark.parametrize("edit, field, words", [
    (lambda d: d["study"]["arms"]["P"].update(bogus=1), "study.arms.P", "unknown key"),
    (lambda d: d["study"]["arms"]["P"].update(overrides={"optimizer": {"lr": -1.0}}),
     "study.arms.P.overrides.optimizer.lr", "learning rate"),
    (lambda d: d["study"]["overrides"].update(steps="many"), "study.overrides.steps", "wrong type"),
    (lambda d: d["study"]["arms"]["P"].update(train="contrasts:nope"), "study.arms.P.train", "no test set 'nope'"),
    (lambda d: d["study"]["arms"]["P"].update(train="nopool:P"), "study.arms.P.train", "unknown pool"),
    (lambda d: d["study"]["findings"]["joint_as_good"].update(joint="nobody"), "study.findings.joint_as_good",
     "not an arm"),
    (lambda d: d["study"]["findings"]["joint_as_good"].update(separate={"X": "P"}),
     "study.findings.joint_as_good.separate[0]", "not an evaluation set"),
    (lambda d: d["study"]["figures"]["joint_vs_separate"].update(metric="nmse"),
     "study.figures.joint_vs_separate.metric", "not one of the evaluation metrics"),
    (lambda d: d["study"]["evaluation"]["sets"]["P"].update(folder="x"), "study.evaluation.sets.P", "exactly one"),
    (lambda d: d["study"]["arms"]["P"].update(overrides={"early_stopping": {"rule": "ood"}}),
     "study.arms.P.overrides.early_stopping.ood_set", "must name its ood_set"),
    (lambda d: d["study"]["pools"]["contrasts"]["test"]["P"][0].update(colour="red"),
     "study.pools.contrasts.test.P[0].colour", "unknown column"),
    (lambda d: d["study"]["data"]["minipool"].update(bogus=3), "study.data.minipool", "unknown key"),
    (lambda d: d["study"]["smoke"]["overrides"].update(seed=3), "study.overrides.seed", "set by the study"),
    # rules declared on the schema's fields
    (lambda d: d["study"].update(name="joint vs separate"), "study.name", "invalid study name"),
    (lambda d: d["study"]["arms"].update(val=d["study"]["arms"]["P"]), "study.arms.val", "invalid name"),
    (lambda d: d["study"]["pools"].update({"bad pool": {}}), "study.pools.bad pool", "invalid name"),
    (lambda d: d["study"].update(seeds=[0, 0]), "study.seeds", "need distinct seeds"),
    (lambda d: d["study"].update(seeds=[-1]), "study.seeds[0]", "must not be negative"),
    (lambda d: d["study"]["arms"]["P"].update(seeds=[]), "study.arms.P.seeds", "need distinct seeds"),
    (lambda d: d["study"]["evaluation"].update(metrics=["ssim", "lpips"]), "study.evaluation.metrics[1]",
     "unknown metric"),
    (lambda d: d["study"]["evaluation"].update(metrics=[]), "study.evaluation.metrics", "no metric"),
    (lambda d: d["study"]["evaluation"].update(sets={}), "study.evaluation.sets", "at least one evaluation set"),
    (lambda d: d["study"]["evaluation"].update(acceleration=1.0), "study.evaluation.acceleration", "must exceed 1"),
    (lambda d: d["study"]["evaluation"].update(center_fraction=1.5), "study.evaluation.center_fraction",
     "outside (0, 1)"),
    (lambda d: d["study"]["evaluation"].update(mask="spiral"), "study.evaluation.mask", "unknown mask type"),
    (lambda d: d["study"]["findings"]["joint_as_good"].update(tolerance=-0.1),
     "study.findings.joint_as_good.tolerance", "must not be negative"),
    (lambda d: d["study"]["findings"]["joint_as_good"].update(paper_rule={"patience": 0}),
     "study.findings.joint_as_good.paper_rule.patience", "must be positive"),
    (lambda d: d["study"]["findings"]["joint_as_good"].update(smooth=0), "study.findings.joint_as_good.smooth",
     "no smoothing"),
    (lambda d: d["study"]["figures"].update({"val": {"kind": "bars"}}), "study.figures.val", "invalid name"),
])
def test_errors_name_the_file_and_key(tmp_path: Path, edit: Any, field: str, words: str) -> None:
    doc = _base()
    edit(doc)
    smoke = field == "study.overrides.seed"
    with pytest.raises(InputError) as info:
        _load(tmp_path, doc, smoke=smoke)
    err = info.value
    assert err.path == str(tmp_path / "s.yaml")
    assert (err.field or "").startswith(field), err
    assert words in str(err)


def test_rules_of_the_study_as_written_hold_under_smoke(tmp_path: Path) -> None:
    """A value the smoke mapping replaces is still checked, and the error says so."""
    doc = _base()
    doc["study"]["evaluation"]["center_fraction"] = 0.0
    doc["study"]["smoke"]["evaluation"] = {"center_fraction": 0.08}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    for smoke in (False, True):
        with pytest.raises(InputError, match="outside") as info:
            load_study(path, smoke=smoke)
        assert info.value.field == "study.evaluation.center_fraction"
    assert "--smoke overrides it" in str(info.value)


def _results(final: dict[str, dict[str, dict[str, float]]], history: dict[str, list] | None = None) -> dict[str, Any]:
    runs = [{"arm": arm, "seed": 0, "final": sets, "history": (history or {}).get(arm, [])} for arm, sets in final.items()]
    return {"runs": runs}


def test_joint_vs_separate_verdict_goes_both_ways(tmp_path: Path) -> None:
    doc = _base()
    doc["study"]["findings"] = {"j": {"kind": "joint_vs_separate", "joint": "PQ", "also": ["PQ_half"],
                                      "separate": {"P": "P", "Q": "Q"}, "tolerance": 0.01}}
    path = tmp_path / "s.yaml"
    _load(tmp_path, doc)
    spec, _ = load_study(path)

    def score(p: float, q: float) -> dict[str, dict[str, float]]:
        return {"P": {"ssim": p}, "Q": {"ssim": q}}

    good = judge(spec, _results({"P": score(0.90, 0.50), "Q": score(0.60, 0.80), "PQ": score(0.895, 0.805),
                                 "PQ_half": score(0.892, 0.799)}))[0]
    assert good.supported is True and math.isclose(good.numbers["worst_difference"], -0.008, abs_tol=1e-9)
    bad = judge(spec, _results({"P": score(0.90, 0.50), "Q": score(0.60, 0.80), "PQ": score(0.895, 0.805),
                                "PQ_half": score(0.87, 0.80)}))[0]
    assert bad.supported is False and math.isclose(bad.numbers["worst_difference"], -0.03, abs_tol=1e-9)


def test_effective_robustness_residual_is_the_distance_to_p_best_line() -> None:
    doc = yaml.safe_load((STUDIES / "diverse-vs-best.yaml").read_text())
    spec, _ = load_study(STUDIES / "diverse-vs-best.yaml")
    del doc

    def h(step: int, x: float, y: float, x_set: str) -> dict[str, Any]:
        return {"step": step, "epoch": step / 10, "val": {}, "sets": {x_set: {"ssim": x}, "FLAIR": {"ssim": y}}}

    # T2 is P_best (best final FLAIR score); its points lie on y = 0.5 x + 0.2
    final = {
        "T1": {"T1": {"ssim": 0.8}, "FLAIR": {"ssim": 0.50}},
        "T2": {"T2": {"ssim": 0.8}, "FLAIR": {"ssim": 0.60}},
        "PD": {"PD": {"ssim": 0.8}, "FLAIR": {"ssim": 0.55}},
        "diverse": {"T2": {"ssim": 0.7}, "FLAIR": {"ssim": 0.58}},
        "PQ": {"T2": {"ssim": 0.8}, "FLAIR": {"ssim": 0.75}},
    }
    hist = {"T2": [h(10, 0.6, 0.5, "T2"), h(20, 0.7, 0.55, "T2")]}
    verdict = next(v for v in judge(spec, _results(final, hist)) if v.name == "diverse_more_robust")
    assert verdict.numbers["p_best"] == "T2"
    assert math.isclose(verdict.numbers["slope"], 0.5, abs_tol=1e-9)
    assert math.isclose(verdict.numbers["residual"], 0.58 - (0.5 * 0.7 + 0.2), abs_tol=1e-9)
    assert verdict.supported is True and verdict.numbers["interpolated"] is True
    final["diverse"]["FLAIR"]["ssim"] = 0.54
    verdict = next(v for v in judge(spec, _results(final, hist)) if v.name == "diverse_more_robust")
    assert verdict.supported is False and verdict.numbers["residual"] < 0
    assert copy.deepcopy(verdict.to_dict())["name"] == "diverse_more_robust"


def test_overfitting_verdict_reads_trends_not_noise() -> None:
    spec, _ = load_study(STUDIES / "distributional-overfitting.yaml")

    def history(ood: list[float], idv: list[float]) -> list[dict[str, Any]]:
        return [{"step": 10 * (i + 1), "epoch": float(i + 1), "val": {},
                 "sets": {"T1_axial": {"ssim": a}, "T2_axial": {"ssim": b}}} for i, (a, b) in enumerate(zip(idv, ood))]
    # (the view and anatomy findings have no scores in this history: they are not judged)

    # OOD rises, then falls by 0.05 while ID keeps rising: overfitting, and the OOD-aware pick is better
    ood = [0.5, 0.6, 0.7, 0.72, 0.70, 0.68, 0.67, 0.66, 0.66, 0.65]
    idv = [0.5, 0.6, 0.7, 0.75, 0.78, 0.80, 0.81, 0.815, 0.82, 0.823]
    final = {"long": {s: {"ssim": 0.7} for s in spec.evaluation.sets}}
    verdicts = {v.name: v for v in judge(spec, _results(final, {"long": history(ood, idv)}))}
    assert verdicts["view_shift"].supported is None and verdicts["anatomy_shift"].supported is None
    verdict = verdicts["contrast_shift"]
    seed = verdict.numbers["seeds"][0]
    assert seed["overfit"] and verdict.supported is True
    assert seed["rules"]["ood"]["step"] == 40 and seed["rules"]["paper"]["step"] == 100
    assert math.isclose(seed["ood_rule_gain"], 0.72 - 0.65, abs_tol=1e-9)
    # the same OOD curve with an ID curve that falls too: no distributional overfitting
    idv_down = [0.5, 0.6, 0.7, 0.75, 0.74, 0.73, 0.72, 0.71, 0.70, 0.69]
    verdict = next(v for v in judge(spec, _results(final, {"long": history(ood, idv_down)}))
                   if v.name == "contrast_shift")
    assert verdict.numbers["seeds"][0]["overfit"] is False and verdict.supported is False
