"""Verdicts: each finding of a study judged on its measured numbers (it can come out either way).

- ``joint_vs_separate`` (Figure 3): is the model trained on P+Q (and each ``also`` arm, e.g. P+Q at
  half size) within ``tolerance`` of the model trained on each set's own distribution, on that set?
- ``effective_robustness`` (Figures 4/9): P_best is the candidate with the best final OOD
  metric; a line is fitted to P_best's models (every validation during training and the final
  model, all seeds: OOD against ID on P_best's set); is the diverse model more than ``margin``
  above that line at its own ID performance?
- ``distributional_overfitting`` (Figure 8): on the arm's validations (running means over ``smooth``),
  does the OOD metric peak and end at least ``tolerance`` below the peak while ID ends higher than at
  the OOD peak; and which
  validation do the paper's ID-only rule and the OOD-aware rule (both replayed with
  :class:`mrizoo.train.early_stopping.EarlyStopping`, as the trainer applies them) select?

Means over seeds of each arm's final scores (``mrizoo evaluate`` on the selected model) are
used unless said otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mrizoo.study.schema import OWN_VAL, FindingSpec, StudySpec
from mrizoo.train.early_stopping import EarlyStopping
from mrizoo.train.recipe import METRIC_HIGHER_IS_BETTER

__all__ = ["Verdict", "judge", "arm_final", "arm_points", "replay_rules", "running_mean", "set_value"]


@dataclass
class Verdict:
    """One finding's outcome: ``supported`` (True / False / None: cannot be judged), a one-line
    summary with the deciding numbers, and a table (header + rows) of the supporting numbers."""

    name: str
    kind: str
    claim: str
    supported: bool | None
    summary: str
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _runs(results: dict[str, Any], arm: str) -> list[dict[str, Any]]:
    return [r for r in results["runs"] if r["arm"] == arm]


def set_value(scores: dict[str, dict[str, float]], sets: tuple[str, ...] | list[str], metric: str) -> float:
    """Mean of ``metric`` over ``sets`` of one score mapping (set -> metrics); NaN when missing."""
    vals = [scores.get(s, {}).get(metric, math.nan) for s in sets]
    vals = [float(v) for v in vals if v is not None]
    return float(np.mean(vals)) if vals and all(math.isfinite(v) for v in vals) else math.nan


def arm_final(results: dict[str, Any], arm: str, sets: tuple[str, ...] | list[str], metric: str) -> tuple[float, float, int]:
    """Mean, standard deviation and count over seeds of an arm's final score (mean over ``sets``)."""
    vals = [set_value(r["final"], sets, metric) for r in _runs(results, arm)]
    vals = [v for v in vals if math.isfinite(v)]
    if not vals:
        return math.nan, math.nan, 0
    return float(np.mean(vals)), float(np.std(vals)), len(vals)


def _hist_value(h: dict[str, Any], sets: tuple[str, ...] | list[str], metric: str) -> float:
    vals = [(h["val"] if s == OWN_VAL else h["sets"].get(s, {})).get(metric, math.nan) for s in sets]
    return float(np.mean(vals)) if vals else math.nan


def arm_points(results: dict[str, Any], arm: str, x: tuple[str, ...], y: tuple[str, ...], metric: str,
               *, validations: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(vx, vy, fx, fy)``: the arm's validation points (all seeds) and final points (one per seed)."""
    vx, vy, fx, fy = [], [], [], []
    for r in _runs(results, arm):
        if validations:
            for h in r["history"]:
                vx.append(_hist_value(h, x, metric))
                vy.append(_hist_value(h, y, metric))
        fx.append(set_value(r["final"], x, metric))
        fy.append(set_value(r["final"], y, metric))
    return tuple(np.asarray(v, dtype=float) for v in (vx, vy, fx, fy))  # type: ignore[return-value]


def _fmt(v: float, metric: str) -> str:
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.2f}" if metric == "psnr" else f"{v:.4f}"


def _pm(mean: float, std: float, n: int, metric: str) -> str:
    return _fmt(mean, metric) + (f" ± {_fmt(std, metric)}" if n > 1 else "")


def _signed(v: float, metric: str) -> str:
    return ("+" if v >= 0 else "") + _fmt(v, metric) if math.isfinite(v) else "n/a"


def _still_improving(results: dict[str, Any], arms: list[str], metric: str) -> list[str]:
    """Arms with a run whose best own-validation ``metric`` is its last validation (not converged)."""
    sign = 1.0 if METRIC_HIGHER_IS_BETTER.get(metric, True) else -1.0
    out = []
    for arm in dict.fromkeys(arms):
        for r in _runs(results, arm):
            vals = [sign * float(h["val"].get(metric, math.nan)) for h in r["history"]]
            if len(vals) >= 2 and math.isfinite(vals[-1]) and vals[-1] >= np.nanmax(vals):
                out.append(arm)
                break
    return out


def _caveat(results: dict[str, Any], arms: list[str], metric: str) -> str:
    late = _still_improving(results, arms, metric)
    if not late:
        return ""
    return (f"; caution: {', '.join(late)} still improved at the last validation (in-distribution {metric.upper()}), "
            "so the comparison is not at convergence")


# ----------------------------------------------------------------------------- Figure 3


def _joint_vs_separate(name: str, f: FindingSpec, results: dict[str, Any]) -> Verdict:
    m, tol = f.metric, f.tolerance
    joint = [str(f.joint), *f.also]
    header = ["set", "separate arm", f"separate {m}"] + [f"{a} {m}" for a in joint] + [f"{a} - separate" for a in joint]
    rows, worst, ok = [], math.inf, True
    per_arm: dict[str, tuple[float, str]] = {}
    for s, sep in f.separate.items():
        sm, ss, sn = arm_final(results, sep, [s], m)
        cells, diffs = [], []
        for a in joint:
            am, as_, an = arm_final(results, a, [s], m)
            cells.append(_pm(am, as_, an, m))
            diffs.append(am - sm)
            if a not in per_arm or not am - sm >= per_arm[a][0]:
                per_arm[a] = (am - sm, s)
        rows.append([s, sep, _pm(sm, ss, sn, m), *cells, *[_signed(d, m) for d in diffs]])
        for d in diffs:
            if not math.isfinite(d):
                ok = False
            worst = min(worst, d)
    if not math.isfinite(worst):
        return Verdict(name, f.kind, f.claim, None, "cannot be judged: a score is missing", header, rows)
    supported = ok and worst >= -tol
    each = "; ".join(f"{a} {_signed(d, m)} (on {s})" for a, (d, s) in per_arm.items())
    summary = (f"worst difference to the separate model on its own set, {m.upper()}: {each} (tolerance {tol:g}): "
               + ("the joint models are as good as the separate ones" if supported
                  else "a joint model is worse than a separate one by more than the tolerance")
               + _caveat(results, [*joint, *f.separate.values()], m))
    return Verdict(name, f.kind, f.claim, supported, summary, header, rows, {"worst_difference": worst, "tolerance": tol})


# ----------------------------------------------------------------------------- Figure 4


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) <= 0:
        return None
    slope, icpt = np.polyfit(x[ok], y[ok], 1)
    return float(slope), float(icpt)


def _effective_robustness(name: str, f: FindingSpec, results: dict[str, Any]) -> Verdict:
    m, y = f.metric, f.y
    ranking = sorted(((arm_final(results, a, y, m)[0], a) for a in f.candidates),
                     key=lambda t: -t[0] if math.isfinite(t[0]) else math.inf)
    header = ["arm", f"ID {m} (on P_best's set)", f"OOD {m} ({', '.join(y)})", "above P_best's line"]
    if not ranking or not math.isfinite(ranking[0][0]):
        return Verdict(name, f.kind, f.claim, None, "cannot be judged: no candidate has an OOD score", header, [])
    best = ranking[0][1]
    x = (f.candidates[best],)
    vx, vy, fx, fy = arm_points(results, best, x, y, m)
    fit = _line(np.r_[vx, fx], np.r_[vy, fy])
    rows = []

    def row(arm: str, role: str) -> float:
        xm = arm_final(results, arm, x, m)
        ym = arm_final(results, arm, y, m)
        res = ym[0] - (fit[0] * xm[0] + fit[1]) if fit else math.nan
        rows.append([f"{arm} ({role})", _pm(*xm, m), _pm(*ym, m), _signed(res, m)])
        return res

    others = {a: row(a, "P_best" if a == best else "candidate") for _, a in ranking}
    residual = row(str(f.diverse), "diverse P")
    higher = [f"{a} ({_signed(r, m)})" for a, r in others.items() if a != best and math.isfinite(r) and r >= residual]
    gap = row(f.reference, "P and Q") if f.reference else math.nan
    if fit is None:
        return Verdict(name, f.kind, f.claim, None, f"cannot be judged: P_best ({best}) has fewer than two distinct "
                       "points to fit its line", header, rows, {"p_best": best})
    all_x = np.r_[vx, fx]
    dx = arm_final(results, str(f.diverse), x, m)[0]
    inside = bool(np.nanmin(all_x) <= dx <= np.nanmax(all_x))
    supported = bool(math.isfinite(residual) and residual > f.margin)
    summary = (f"P_best = {best} (best final OOD {m.upper()} among {len(ranking)} candidates); the diverse model "
               f"({f.diverse}) lies {_signed(residual, m)} {m.upper()} "
               f"{'above' if residual >= 0 else 'below'} P_best's line at its ID {m.upper()} {_fmt(dx, m)}"
               + ("" if inside else " (outside the ID range of P_best's points: the line is extrapolated)")
               + f" (margin {f.margin:g}); in absolute terms its OOD {m.upper()} is "
               + f"{_signed(arm_final(results, str(f.diverse), y, m)[0] - ranking[0][0], m)} against P_best's"
               + (f"; the model trained on P and Q ({f.reference}) lies {_signed(gap, m)}" if f.reference else "")
               + (f"; single-distribution models lie as high or higher above the line: {', '.join(higher)}, so the "
                  "distance is not specific to diversity" if higher else "")
               + _caveat(results, [best, str(f.diverse)], m))
    return Verdict(name, f.kind, f.claim, supported, summary, header, rows,
                   {"p_best": best, "slope": fit[0], "intercept": fit[1], "residual": residual, "reference_residual": gap,
                    "interpolated": inside, "margin": f.margin})


# ----------------------------------------------------------------------------- Figure 8


def replay_rules(history: list[dict[str, Any]], f: FindingSpec) -> dict[str, dict[str, Any]]:
    """The validation each early-stopping rule selects (and where it stops) on a recorded history."""
    out = {}
    for rule, params in (("paper", f.paper_rule), ("ood", f.ood_rule)):
        es = EarlyStopping(rule, metric=f.metric, patience=params.patience, min_delta=params.min_delta,
                           ood_set="ood")
        for h in history:
            es.update(h["step"], int(math.ceil(h["epoch"])), _hist_value(h, f.x, f.metric),
                      {"ood": _hist_value(h, f.y, f.metric)})
        i = es.best_index if es.best_index is not None else len(history) - 1
        out[rule] = {"index": i, "step": history[i]["step"], "epoch": history[i]["epoch"],
                     "id": _hist_value(history[i], f.x, f.metric), "ood": _hist_value(history[i], f.y, f.metric),
                     "stop_step": None if es.stop_index is None else history[es.stop_index]["step"],
                     "reason": es.reason}
    return out


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean over the last ``window`` values at every position (fewer at the start)."""
    c = np.cumsum(np.r_[0.0, values])
    lo = np.maximum(np.arange(1, len(values) + 1) - window, 0)
    return (c[1:] - c[lo]) / (np.arange(1, len(values) + 1) - lo)


def _overfitting(name: str, f: FindingSpec, results: dict[str, Any]) -> Verdict:
    m, tol, w = f.metric, f.tolerance, f.smooth
    sm = f" (running mean of {w})" if w > 1 else ""
    header = ["seed", f"OOD peak {m}{sm} (epoch)", f"OOD last {m}{sm}", f"ID{sm} at the OOD peak", f"ID last{sm}",
              "paper rule: epoch, ID / OOD", "OOD-aware rule: epoch, ID / OOD"]
    rows, per_seed = [], []
    for r in _runs(results, str(f.arm)):
        h = r["history"]
        if len(h) < 2:
            continue
        ood = running_mean(np.array([_hist_value(v, f.y, m) for v in h]), w)
        idv = running_mean(np.array([_hist_value(v, f.x, m) for v in h]), w)
        if not (np.isfinite(ood).any() and np.isfinite(idv[-1])):
            continue
        p = int(np.nanargmax(ood))
        drop = float(ood[p] - ood[-1])
        id_gain = float(idv[-1] - idv[p])
        overfit = bool(p < len(h) - 1 and drop >= tol and id_gain > 0)
        rules = replay_rules(h, f)
        better = rules["ood"]["ood"] - rules["paper"]["ood"]
        per_seed.append({"seed": r["seed"], "peak_index": p, "peak_epoch": h[p]["epoch"], "peak": float(ood[p]),
                         "last": float(ood[-1]), "drop": drop, "id_gain_after_peak": id_gain, "overfit": overfit,
                         "rules": rules, "ood_rule_gain": better, "smooth": w})
        rows.append([str(r["seed"]), f"{_fmt(ood[p], m)} ({h[p]['epoch']:.1f})", _fmt(ood[-1], m), _fmt(idv[p], m),
                     _fmt(float(idv[-1]), m),
                     f"{rules['paper']['epoch']:.1f}: {_fmt(rules['paper']['id'], m)} / {_fmt(rules['paper']['ood'], m)}",
                     f"{rules['ood']['epoch']:.1f}: {_fmt(rules['ood']['id'], m)} / {_fmt(rules['ood']['ood'], m)}"])
    if not per_seed:
        return Verdict(name, f.kind, f.claim, None, "cannot be judged: fewer than two validations", header, rows)
    overfit = all(s["overfit"] for s in per_seed)
    picks_better = all(s["ood_rule_gain"] > 0 for s in per_seed)
    same = all(s["ood_rule_gain"] == 0 for s in per_seed)
    drop = float(np.mean([s["drop"] for s in per_seed]))
    gain = float(np.mean([s["id_gain_after_peak"] for s in per_seed]))
    ood_gain = float(np.mean([s["ood_rule_gain"] for s in per_seed]))
    summary = (f"OOD {m.upper()}{sm} fell {_fmt(drop, m)} from its peak to the last validation while ID{sm} changed by "
               f"{_signed(gain, m)} from the OOD peak to the last validation (tolerance {tol:g}): "
               + ("distributional overfitting" if overfit else "no distributional overfitting by this test")
               + f"; the OOD-aware rule's selection is {_signed(ood_gain, m)} OOD {m.upper()} against the paper's "
               "ID-only rule" + (" (both select the same validation)" if same else ""))
    return Verdict(name, f.kind, f.claim, bool(overfit and picks_better), summary, header, rows,
                   {"seeds": per_seed, "overfitting": overfit, "ood_rule_better": picks_better})


def judge(spec: StudySpec, results: dict[str, Any]) -> list[Verdict]:
    """Every finding of the study, in file order."""
    kinds = {"joint_vs_separate": _joint_vs_separate, "effective_robustness": _effective_robustness,
             "distributional_overfitting": _overfitting}
    return [kinds[f.kind](name, f, results) for name, f in spec.findings.items()]
