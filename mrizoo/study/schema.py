"""Study files: an experiment of Lin & Heckel (ICML 2024) declared in YAML, as validated dataclasses.

A study names *arms* (a training recipe plus pool/data overrides, trained once per seed), the
*evaluation sets* every arm is validated on during training and scored on afterwards, the
*figures* it draws and the *findings* it judges::

    study:
      name: joint-vs-separate
      recipe: recipes/unet-tiny-64.yaml      # default recipe of the arms (path relative to this file)
      data: {minipool: {shapes: [[64, 64]], coils: [4, 4]}}   # or {root: DIR}: where the pools select from
      pools:                                 # pool files written inline (mrizoo.pools syntax)
        PQ: {train: [...], test: {P: [...], Q: [...]}}
      arms:
        P: {train: "PQ:P_train", val: "PQ:P"}
        joint: {train: PQ, val: "PQ:P", overrides: {steps: 400}}
      seeds: [0]
      evaluation: {sets: {P: {pool: "PQ:P"}, Q: {pool: "PQ:Q"}}}
      figures: {bars: {kind: bars, metric: ssim}}
      findings: {joint: {kind: joint_vs_separate, joint: joint, separate: {P: P, Q: Q}}}
      smoke: {...}                           # deep-merged onto the study by --smoke

``load_study`` reads and validates everything that can be checked before any work (keys, types,
names, references between arms, sets, figures and findings, pool files, recipes and every arm's
merged recipe); each problem is an :class:`~mrizoo.errors.InputError` naming the file and the
dotted key (``study.arms.P.overrides.optimizer.lr``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mrizoo._dataclass_io import from_dict, read_yaml_section
from mrizoo.errors import InputError

__all__ = [
    "DataRootSpec", "ArmSpec", "EvalSetSpec", "EvaluationSpec", "FigureSpec",
    "RuleSpec", "FindingSpec", "StudySpec", "StudyInfo", "load_study", "FIGURE_KINDS", "FINDING_KINDS",
]

FIGURE_KINDS = ("bars", "scatter", "curves")
FINDING_KINDS = ("joint_vs_separate", "effective_robustness", "distributional_overfitting")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: The arm's own in-distribution validation set, as a set name in figures and findings.
OWN_VAL = "val"


@dataclass(frozen=True)
class DataRootSpec:
    """Where the pools' datasets are: ``root`` (relative to the study file), else a demo mini-pool built
    under ``OUT/data`` from ``minipool`` (the settings of :class:`mrizoo.pools.minipool.MiniPoolConfig`)."""

    root: str | None = None
    minipool: dict[str, Any] | None = None


@dataclass(frozen=True)
class ArmSpec:
    """One arm: ``recipe`` (default: the study's) with ``train``/``val`` pool references and
    ``overrides`` (a ``training:`` mapping deep-merged onto the recipe), trained once per seed."""

    train: str | None = None
    val: str | None = None
    recipe: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    label: str | None = None


@dataclass(frozen=True)
class EvalSetSpec:
    """An evaluation set: a pool reference (``POOL`` or ``POOL:SET``) or a folder of ``.h5`` volumes."""

    pool: str | None = None
    folder: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class EvaluationSpec:
    """The sets every arm is validated on during training and scored on (``mrizoo evaluate``) at the end.

    The mask is the arm recipe's (its first acceleration and centre fraction) unless given here.
    """

    sets: dict[str, EvalSetSpec]
    metrics: tuple[str, ...] = ("ssim", "psnr")
    mask: str | None = None
    acceleration: float | None = None
    center_fraction: float | None = None


@dataclass(frozen=True)
class FigureSpec:
    """One figure.

    ``bars`` (Figure 3): the metric of ``arms`` on ``sets``, mean and spread over seeds.
    ``scatter`` (Figures 4/9): mean metric over ``y`` sets against mean over ``x`` sets, one
    colour per entry of ``groups`` (label -> arms), every validation of training as a small point
    (models sampled by early stopping) and the final models as large ones, a least-squares line per group.
    ``curves`` (Figure 8): the metric of ``x`` (in-distribution, default the arm's own
    validation set ``val``) and ``y`` sets against training epochs, per arm in ``arms``.
    A scatter with ``finding`` (an ``effective_robustness`` finding) draws that finding's models:
    OOD on its ``y`` sets against ID on P_best's set, groups P_best, the diverse arm, the
    reference and the other candidates (its ``x``, ``y`` and ``groups`` are then not given).
    """

    kind: Literal["bars", "scatter", "curves"]
    title: str | None = None
    metric: str = "ssim"
    arms: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    x: tuple[str, ...] = ()
    y: tuple[str, ...] = ()
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    finding: str | None = None


@dataclass(frozen=True)
class RuleSpec:
    """Parameters of one early-stopping rule replayed on a training history."""

    patience: int = 3
    min_delta: float = 1e-4


@dataclass(frozen=True)
class FindingSpec:
    """One claim of the paper, judged on the study's numbers (it can come out either way).

    ``joint_vs_separate``: the ``joint`` arm (and each of ``also``) is within ``tolerance`` of
    (or better than) the ``separate`` arm of every set (set -> arm trained on its distribution).
    ``effective_robustness``: among ``candidates`` (arm -> its in-distribution set), P_best is
    the arm with the best final metric on the ``y`` (out-of-distribution) sets; the ``diverse``
    arm's final model must lie more than ``margin`` above P_best's line (OOD on ``y`` against ID
    on P_best's set, fitted to P_best's validations and final models). ``reference`` (an arm
    trained on P and Q) is reported as the distribution-shift gap.
    ``distributional_overfitting``: the ``arm``'s OOD metric (``y`` sets) peaks and ends at least
    ``tolerance`` below the peak while its ID metric (``x``, default ``val``) ends higher than at the
    OOD peak (both curves as running means over ``smooth`` validations, so that step-to-step noise
    is not read as a trend); the paper's ID-only rule and the OOD-aware rule are replayed on the
    raw validations and the OOD-aware one must select a validation with a better OOD metric.
    """

    kind: Literal["joint_vs_separate", "effective_robustness", "distributional_overfitting"]
    claim: str = ""
    metric: str = "ssim"
    tolerance: float = 0.005
    joint: str | None = None
    also: tuple[str, ...] = ()
    separate: dict[str, str] = field(default_factory=dict)
    diverse: str | None = None
    candidates: dict[str, str] = field(default_factory=dict)
    reference: str | None = None
    margin: float = 0.0
    arm: str | None = None
    x: tuple[str, ...] = (OWN_VAL,)
    y: tuple[str, ...] = ()
    smooth: int = 3
    paper_rule: RuleSpec = field(default_factory=lambda: RuleSpec(patience=3, min_delta=1e-3))
    ood_rule: RuleSpec = field(default_factory=lambda: RuleSpec(patience=3, min_delta=1e-4))


@dataclass(frozen=True)
class StudySpec:
    """A whole study (see the module docstring)."""

    name: str
    arms: dict[str, ArmSpec]
    evaluation: EvaluationSpec
    description: str = ""
    recipe: str | None = None
    data: DataRootSpec = field(default_factory=DataRootSpec)
    pools: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    figures: dict[str, FigureSpec] = field(default_factory=dict)
    findings: dict[str, FindingSpec] = field(default_factory=dict)
    smoke: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyInfo:
    """Where a study came from: its file, the file's folder (relative paths start there), sha256, smoke."""

    path: str
    folder: Path
    sha256: str
    smoke: bool


# ----------------------------------------------------------------------------- validation


class _Check:
    def __init__(self, source: str, note: str = "") -> None:
        self.source, self.note = source, note

    def fail(self, key: str, problem: str, *, expected: Any = None, got: Any = None) -> None:
        raise InputError(problem + self.note, path=self.source, field=f"study.{key}", expected=expected, got=got)

    def require(self, ok: bool, key: str, problem: str, *, expected: Any = None, got: Any = None) -> None:
        if not ok:
            self.fail(key, problem, expected=expected, got=got)


def _check_names(c: _Check, key: str, names: Any) -> None:
    for name in names:
        c.require(isinstance(name, str) and bool(_NAME.match(name)) and name != OWN_VAL, f"{key}.{name}",
                  "invalid name", expected=f"letters, digits and _.+- (not {OWN_VAL!r}, the arm's own validation)",
                  got=repr(name))


def _check_sets(c: _Check, key: str, names: tuple[str, ...], known: list[str], *, own: bool = False,
                required: bool = True) -> None:
    allowed = known + ([OWN_VAL] if own else [])
    if required:
        c.require(len(names) >= 1, key, "names no evaluation set", expected=f"some of {allowed}")
    for i, n in enumerate(names):
        c.require(n in allowed, f"{key}[{i}]", "not an evaluation set", expected=f"one of {allowed}", got=repr(n))


def _check_arms(c: _Check, key: str, names: Any, arms: list[str]) -> None:
    for i, n in enumerate(names):
        c.require(n in arms, f"{key}[{i}]" if not isinstance(names, dict) else f"{key}.{n}", "not an arm",
                  expected=f"one of {arms}", got=repr(n))


def _check_figure(c: _Check, name: str, f: FigureSpec, arms: list[str], sets: list[str], metrics: tuple[str, ...],
                  findings: dict[str, Any]) -> None:
    k = f"figures.{name}"
    if f.finding is not None:
        c.require(f.kind == "scatter", f"{k}.finding", "only a scatter draws a finding's models", got=f.kind)
        known = [n for n, v in findings.items() if v.kind == "effective_robustness"]
        c.require(f.finding in known, f"{k}.finding", "not an effective_robustness finding of the study",
                  expected=f"one of {known}", got=repr(f.finding))
        c.require(not (f.x or f.y or f.groups), f"{k}.finding", "a finding's scatter takes its sets and groups "
                  "from the finding", expected="no x, y or groups", got="given")
        c.require(f.metric == findings[f.finding].metric, f"{k}.metric", "must be the finding's metric",
                  expected=findings[f.finding].metric, got=f.metric)
        return
    c.require(f.metric in metrics, f"{k}.metric", "not one of the evaluation metrics", expected=list(metrics),
              got=repr(f.metric))
    _check_arms(c, f"{k}.arms", f.arms, arms)
    if f.kind == "bars":
        _check_sets(c, f"{k}.sets", f.sets, sets, required=False)
    elif f.kind == "scatter":
        _check_sets(c, f"{k}.x", f.x, sets)
        _check_sets(c, f"{k}.y", f.y, sets)
        c.require(bool(f.groups), f"{k}.groups", "a scatter needs groups of arms", expected="label: [arms]")
        for label, members in f.groups.items():
            c.require(len(members) >= 1, f"{k}.groups.{label}", "empty group", expected="at least one arm")
            _check_arms(c, f"{k}.groups.{label}", members, arms)
    else:
        _check_sets(c, f"{k}.x", f.x or (OWN_VAL,), sets, own=True)
        _check_sets(c, f"{k}.y", f.y, sets)


def _check_finding(c: _Check, name: str, f: FindingSpec, arms: list[str], sets: list[str],
                   metrics: tuple[str, ...]) -> None:
    k = f"findings.{name}"
    c.require(f.metric in metrics, f"{k}.metric", "not one of the evaluation metrics", expected=list(metrics),
              got=repr(f.metric))
    c.require(f.tolerance >= 0, f"{k}.tolerance", "must not be negative", expected=">= 0", got=f.tolerance)
    for rk, rule in (("paper_rule", f.paper_rule), ("ood_rule", f.ood_rule)):
        c.require(rule.patience >= 1, f"{k}.{rk}.patience", "must be positive", expected=">= 1", got=rule.patience)
        c.require(rule.min_delta >= 0, f"{k}.{rk}.min_delta", "must not be negative", expected=">= 0",
                  got=rule.min_delta)
    c.require(f.smooth >= 1, f"{k}.smooth", "must be positive (1: no smoothing)", expected=">= 1", got=f.smooth)
    if f.kind == "joint_vs_separate":
        c.require(f.joint in arms, f"{k}.joint", "not an arm", expected=f"the arm trained on P+Q, one of {arms}",
                  got=repr(f.joint))
        _check_arms(c, f"{k}.also", f.also, arms)
        c.require(len(f.separate) >= 1, f"{k}.separate", "names no set", expected="set: arm trained on it")
        _check_sets(c, f"{k}.separate", tuple(f.separate), sets)
        for s, a in f.separate.items():
            c.require(a in arms, f"{k}.separate.{s}", "not an arm", expected=f"one of {arms}", got=repr(a))
    elif f.kind == "effective_robustness":
        c.require(f.diverse in arms, f"{k}.diverse", "not an arm", expected=f"one of {arms}", got=repr(f.diverse))
        c.require(len(f.candidates) >= 1, f"{k}.candidates", "names no arm", expected="arm: its ID set")
        for a, s in f.candidates.items():
            c.require(a in arms, f"{k}.candidates.{a}", "not an arm", expected=f"one of {arms}", got=repr(a))
            c.require(s in sets, f"{k}.candidates.{a}", "not an evaluation set", expected=f"one of {sets}",
                      got=repr(s))
        if f.reference is not None:
            c.require(f.reference in arms, f"{k}.reference", "not an arm", expected=f"one of {arms}",
                      got=repr(f.reference))
        _check_sets(c, f"{k}.y", f.y, sets)
    else:
        c.require(f.arm in arms, f"{k}.arm", "not an arm", expected=f"one of {arms}", got=repr(f.arm))
        _check_sets(c, f"{k}.x", f.x, sets, own=True)
        _check_sets(c, f"{k}.y", f.y, sets)


def _check_study(c: _Check, s: StudySpec) -> None:
    c.require(bool(_NAME.match(s.name)), "name", "invalid study name", expected="letters, digits and _.+-",
              got=repr(s.name))
    c.require(len(s.arms) >= 1, "arms", "a study needs at least one arm")
    _check_names(c, "arms", s.arms)
    _check_names(c, "evaluation.sets", s.evaluation.sets)
    _check_names(c, "pools", s.pools)
    c.require(len(s.seeds) >= 1 and len(set(s.seeds)) == len(s.seeds), "seeds", "need distinct seeds",
              got=list(s.seeds))
    for i, seed in enumerate(s.seeds):
        c.require(seed >= 0, f"seeds[{i}]", "must not be negative", got=seed)
    if s.data.root is not None and s.data.minipool is not None:
        c.fail("data", "give a data root or a mini-pool to build, not both", got="root and minipool")
    if s.data.minipool is not None:
        from mrizoo.pools.minipool import MiniPoolConfig

        cfg = from_dict(MiniPoolConfig, s.data.minipool, source=c.source, prefix="study.data.minipool")
        try:
            cfg.validate()
        except InputError as err:
            c.fail(f"data.minipool.{err.field}", err.problem, expected=err.expected, got=err.got)
    for name, arm in s.arms.items():
        if arm.seeds is not None:
            c.require(len(arm.seeds) >= 1 and len(set(arm.seeds)) == len(arm.seeds), f"arms.{name}.seeds",
                      "need distinct seeds", got=list(arm.seeds))
        c.require(arm.recipe is not None or s.recipe is not None, f"arms.{name}.recipe",
                  "no recipe: give the arm one or the study a default 'recipe'")
        c.require(isinstance(arm.overrides, dict), f"arms.{name}.overrides", "must be a training mapping")
        for bad in ("seed", "smoke"):
            c.require(bad not in arm.overrides and bad not in s.overrides,
                      f"arms.{name}.overrides.{bad}" if bad in arm.overrides else f"overrides.{bad}",
                      "set by the study (seeds) or not applicable to an arm", got=bad)
    ev = s.evaluation
    c.require(len(ev.sets) >= 1, "evaluation.sets", "a study needs at least one evaluation set")
    for name, es in ev.sets.items():
        c.require((es.pool is None) != (es.folder is None), f"evaluation.sets.{name}",
                  "give exactly one of pool and folder", got=[k for k in ("pool", "folder") if getattr(es, k)])
    from mrizoo.train.recipe import METRIC_HIGHER_IS_BETTER

    known = [m for m in METRIC_HIGHER_IS_BETTER if m != "loss"]
    c.require(len(ev.metrics) >= 1, "evaluation.metrics", "no metric", expected=f"some of {known}")
    for i, metric in enumerate(ev.metrics):
        c.require(metric in known, f"evaluation.metrics[{i}]", "unknown metric", expected=f"one of {known}",
                  got=repr(metric))
    if ev.acceleration is not None:
        c.require(ev.acceleration > 1, "evaluation.acceleration", "must exceed 1", got=ev.acceleration)
    if ev.center_fraction is not None:
        c.require(0 < ev.center_fraction < 1, "evaluation.center_fraction", "outside (0, 1)", got=ev.center_fraction)
    if ev.mask is not None:
        from mrizoo.masks import list_masks

        c.require(ev.mask in list_masks(), "evaluation.mask", "unknown mask type", expected=f"one of {list_masks()}",
                  got=repr(ev.mask))
    arms, sets = list(s.arms), list(ev.sets)
    for name, fig in s.figures.items():
        _check_names(c, "figures", [name])
        _check_figure(c, name, fig, arms, sets, ev.metrics, s.findings)
    for name, finding in s.findings.items():
        _check_names(c, "findings", [name])
        _check_finding(c, name, finding, arms, sets, ev.metrics)


# ----------------------------------------------------------------------------- loading


def load_study(path: str | Path, *, smoke: bool = False) -> tuple[StudySpec, StudyInfo]:
    """Read, merge (``smoke``: the ``study.smoke`` mapping deep-merged onto the study) and validate a study.

    Pools, recipes and the arms' merged recipes are checked too (see :func:`mrizoo.study.plan.plan_study`).
    """
    from mrizoo.train.recipe import deep_merge

    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError("study file not found", path=str(p), expected="an existing YAML file")
    raw = p.read_bytes()
    source = str(p)
    _, mapping = read_yaml_section(p, "study", raw.decode("utf-8", errors="replace"))
    if not isinstance(mapping, dict):
        raise InputError("expected a mapping", path=source, field="study", got=type(mapping).__name__)
    note = ""
    if smoke:
        base = from_dict(StudySpec, mapping, source=source, prefix="study")
        _check_study(_Check(source, " (in the study as written; --smoke overrides it)"), base)
        overrides = mapping.get("smoke") or {}
        if not isinstance(overrides, dict):
            raise InputError("expected a mapping", path=source, field="study.smoke", got=type(overrides).__name__)
        if "smoke" in overrides:
            raise InputError("the smoke mapping cannot hold 'smoke'", path=source, field="study.smoke.smoke")
        mapping = deep_merge(mapping, overrides)
        note = " (after merging study.smoke)"
    try:
        spec = from_dict(StudySpec, mapping, source=source, prefix="study")
    except InputError as err:
        if not note:
            raise
        raise InputError(err.problem + note, path=source, field=err.field, expected=err.expected,
                         got=err.got) from None
    _check_study(_Check(source, note), spec)
    info = StudyInfo(path=source, folder=p.resolve().parent, sha256=hashlib.sha256(raw).hexdigest(), smoke=smoke)
    return spec, info
