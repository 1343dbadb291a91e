"""Studies: an experiment of Lin & Heckel (ICML 2024) declared in one YAML file and run by one command.

A study trains its arms (recipes plus pool overrides, over seeds) with :mod:`mrizoo.train`,
scores them with :mod:`mrizoo.evaluate`, draws the paper's figures (joint vs separate bars,
effective-robustness scatter, metric against epochs) and judges each declared finding
(``mrizoo study STUDY.yaml``). Names load on first use.
"""

from __future__ import annotations

from mrizoo._lazy import lazy_attributes

_EXPORTS: dict[str, str] = {
    **{name: "mrizoo.study.schema" for name in (
        "StudySpec", "ArmSpec", "EvalSetSpec", "EvaluationSpec", "FigureSpec", "FindingSpec", "RuleSpec",
        "DataRootSpec", "StudyInfo", "load_study",
    )},
    **{name: "mrizoo.study.plan" for name in ("RunPlan", "StudyPlan", "plan_study")},
    **{name: "mrizoo.study.runner" for name in ("StudyOptions", "StudyResult", "run_study")},
    **{name: "mrizoo.study.findings" for name in ("Verdict", "judge", "replay_rules")},
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
