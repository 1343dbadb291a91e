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
dotted key (``study.arms.P.overrides.optimizer.lr``). Single-field rules (names, ranges, known
metrics) are declared on the fields (:func:`mrizoo._dataclass_io.checked`); the references
between parts of the study are the small check functions below.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mrizoo._dataclass_io import Rule, checked, from_dict, read_yaml_section, with_note
from mrizoo.errors import InputError
from mrizoo.pools.minipool import MiniPoolConfig
from mrizoo.train.recipe import deep_merge
from mrizoo.train.recipe_schema import METRIC_HIGHER_IS_BETTER, mask_names

__all__ = [
    "DataRootSpec", "ArmSpec", "EvalSetSpec", "EvaluationSpec", "FigureSpec",
    "RuleSpec", "FindingSpec", "StudySpec", "StudyInfo", "load_study", "FIGURE_KINDS", "FINDING_KINDS",
]

FIGURE_KINDS = ("bars", "scatter", "curves")
FINDING_KINDS = ("joint_vs_separate", "effective_robustness", "distributional_overfitting")
#: The arm's own in-distribution validation set, as a set name in figures and findings.
OWN_VAL = "val"
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
#: Names of arms, evaluation sets, pools, figures and findings (the keys of their mappings).
_NAME_KEYS = Rule(pattern=f"(?!{re.escape(OWN_VAL)}$){_NAME}", problem="invalid name",
                  expected=f"letters, digits and _.+- (not {OWN_VAL!r}, the arm's own validation)")
_METRICS = [m for m in METRIC_HIGHER_IS_BETTER if m != "loss"]
_SEEDS = {"min_len": 1, "unique": True, "problem": "need distinct seeds", "each": Rule(ge=0)}


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
    seeds: tuple[int, ...] | None = checked(None, **_SEEDS)
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

    sets: dict[str, EvalSetSpec] = checked(min_len=1, problem="a study needs at least one evaluation set",
                                           keys=_NAME_KEYS)
    metrics: tuple[str, ...] = checked(("ssim", "psnr"), min_len=1, problem="no metric",
                                       expected=f"some of {_METRICS}",
                                       each=Rule(choices=_METRICS, problem="unknown metric"))
    mask: str | None = checked(None, choices=mask_names, problem="unknown mask type")
    acceleration: float | None = checked(None, gt=1)
    center_fraction: float | None = checked(None, gt=0, lt=1)


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

    patience: int = checked(3, ge=1)
    min_delta: float = checked(1e-4, ge=0)


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
    tolerance: float = checked(0.005, ge=0)
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
    smooth: int = checked(3, ge=1, problem="must be positive (1: no smoothing)")
    paper_rule: RuleSpec = field(default_factory=lambda: RuleSpec(patience=3, min_delta=1e-3))
    ood_rule: RuleSpec = field(default_factory=lambda: RuleSpec(patience=3, min_delta=1e-4))


@dataclass(frozen=True)
class StudySpec:
    """A whole study (see the module docstring)."""

    name: str = checked(pattern=_NAME, problem="invalid study name", expected="letters, digits and _.+-")
    arms: dict[str, ArmSpec] = checked(min_len=1, problem="a study needs at least one arm", keys=_NAME_KEYS)
    evaluation: EvaluationSpec
    description: str = ""
    recipe: str | None = None
    data: DataRootSpec = field(default_factory=DataRootSpec)
    pools: dict[str, dict[str, Any]] = checked(default_factory=dict, keys=_NAME_KEYS)
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = checked((0,), **_SEEDS)
    figures: dict[str, FigureSpec] = checked(default_factory=dict, keys=_NAME_KEYS)
    findings: dict[str, FindingSpec] = checked(default_factory=dict, keys=_NAME_KEYS)
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
    """Raises InputError for ``study.<key>`` of one file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str, *, expected: Any = None, got: Any = None) -> None:
        raise InputError(problem, path=self.source, field=f"study.{key}", expected=expected, got=got)

    def require(self, ok: bool, key: str, problem: str, *, expected: Any = None, got: Any = None) -> None:
        if not ok:
            self.fail(key, problem, expected=expected, got=got)


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


def _check_data_root(c: _Check, s: StudySpec) -> None:
    """A data root or a mini-pool to build, not both; the mini-pool's settings are valid."""
    if s.data.root is not None and s.data.minipool is not None:
        c.fail("data", "give a data root or a mini-pool to build, not both", got="root and minipool")
    if s.data.minipool is not None:
        cfg = from_dict(MiniPoolConfig, s.data.minipool, source=c.source, prefix="study.data.minipool")
        try:
            cfg.validate()
        except InputError as err:
            c.fail(f"data.minipool.{err.field}", err.problem, expected=err.expected, got=err.got)


def _check_arm_recipes(c: _Check, s: StudySpec) -> None:
    """Every arm has a recipe; overrides leave the seed and the smoke mapping to the study."""
    for name, arm in s.arms.items():
        c.require(arm.recipe is not None or s.recipe is not None, f"arms.{name}.recipe",
                  "no recipe: give the arm one or the study a default 'recipe'")
        for bad in ("seed", "smoke"):
            c.require(bad not in arm.overrides and bad not in s.overrides,
                      f"arms.{name}.overrides.{bad}" if bad in arm.overrides else f"overrides.{bad}",
                      "set by the study (seeds) or not applicable to an arm", got=bad)


def _check_study(c: _Check, s: StudySpec) -> None:
    """The rules across fields (the single-field rules are declared on the schema)."""
    _check_data_root(c, s)
    _check_arm_recipes(c, s)
    for name, es in s.evaluation.sets.items():
        c.require((es.pool is None) != (es.folder is None), f"evaluation.sets.{name}",
                  "give exactly one of pool and folder", got=[k for k in ("pool", "folder") if getattr(es, k)])
    arms, sets, metrics = list(s.arms), list(s.evaluation.sets), s.evaluation.metrics
    for name, fig in s.figures.items():
        _check_figure(c, name, fig, arms, sets, metrics, s.findings)
    for name, finding in s.findings.items():
        _check_finding(c, name, finding, arms, sets, metrics)


def _checked_study(mapping: dict[str, Any], source: str, note: str) -> StudySpec:
    """``mapping`` read as a study and validated; errors carry ``note``."""
    try:
        spec = from_dict(StudySpec, mapping, source=source, prefix="study")
        _check_study(_Check(source), spec)
    except InputError as err:
        raise with_note(err, note) from None
    return spec


# ----------------------------------------------------------------------------- loading


def load_study(path: str | Path, *, smoke: bool = False) -> tuple[StudySpec, StudyInfo]:
    """Read, merge (``smoke``: the ``study.smoke`` mapping deep-merged onto the study) and validate a study.

    Pools, recipes and the arms' merged recipes are checked too (see :func:`mrizoo.study.plan.plan_study`).
    """
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
        _checked_study(mapping, source, " (in the study as written; --smoke overrides it)")
        overrides = mapping.get("smoke") or {}
        if not isinstance(overrides, dict):
            raise InputError("expected a mapping", path=source, field="study.smoke", got=type(overrides).__name__)
        if "smoke" in overrides:
            raise InputError("the smoke mapping cannot hold 'smoke'", path=source, field="study.smoke.smoke")
        mapping = deep_merge(mapping, overrides)
        note = " (after merging study.smoke)"
    spec = _checked_study(mapping, source, note)
    info = StudyInfo(path=source, folder=p.resolve().parent, sha256=hashlib.sha256(raw).hexdigest(), smoke=smoke)
    return spec, info
