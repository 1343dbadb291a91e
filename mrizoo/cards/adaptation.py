"""The test-time-adaptation section of a model card, from evaluation results.

``mrizoo evaluate MODEL --adapt`` scores the model plain and adapted to every slice
(``<model>+tta``, :mod:`mrizoo.models.adapt`) on the same slices, beside the classical baselines,
and records in the model's results the adapted and baseline rows (``compared``) and the
``AdaptConfig`` used (``adaptation``). The card shows, per test set that has an adapted row,
SSIM / PSNR / seconds per slice of the plain and the adapted model and of the baselines, the
settings, and one plain sentence saying what adaptation gained or lost and where it still stands
against the best baseline. A model that can adapt but has no adapted results gets one line
saying so; methods that cannot adapt get no section.
"""

from __future__ import annotations

from typing import Any

from mrizoo._dataclass_io import from_dict
from mrizoo.errors import InputError
from mrizoo.models.adapt import AdaptConfig
from mrizoo.models.registry import ARCHITECTURES
from mrizoo.results import DatasetResult, EvaluationResults
from mrizoo.zoo.entry import ModelEntry

__all__ = ["TTA_SUFFIX", "can_adapt", "adaptation_verdict", "section_adaptation"]

#: Label suffix ``mrizoo evaluate --adapt`` gives the adapted row of a model.
TTA_SUFFIX = "+tta"

_BASELINE_ORDER = ("zerofilled", "cgsense", "l1wavelet", "convdecoder")
_DISPLAY = {"zerofilled": "zero-filled", "cgsense": "CG-SENSE", "l1wavelet": "L1-wavelet",
            "convdecoder": "ConvDecoder"}
_PARAMS = {"all": "all parameters", "norm": "normalisation layers only",
           "last": "the last quarter of the parameter tensors"}
# smallest differences the card's rounding shows (PSNR 2 decimals, SSIM 4)
_PSNR_EPS, _SSIM_EPS = 0.005, 0.00005


def can_adapt(entry: ModelEntry) -> bool:
    """Whether the entry is a learned model of a family that adapts at test time."""
    arch = ARCHITECTURES.get(entry.model.arch)
    return entry.weights.kind != "builtin" and arch is not None and arch.adapts


def _name(label: str) -> str:
    return _DISPLAY.get(label, f"`{label}`")


def _change(delta: float, eps: float, unit: str, digits: int) -> str:
    if delta >= eps:
        return f"gains +{delta:.{digits}f}{unit}"
    if delta <= -eps:
        return f"loses {-delta:.{digits}f}{unit}"
    return f"does not change{unit.replace(' dB', '')}"


def adaptation_verdict(plain: DatasetResult, adapted: DatasetResult,
                       baselines: dict[str, DatasetResult] | None = None, *, subject: str = "Adaptation") -> str:
    """One sentence: what adaptation changed (PSNR, SSIM, time) and where it stands against the baselines.

    Gains are only claimed when the adapted value is higher by at least what the card's rounding shows.
    ``subject`` names what changed the image (e.g. adaptation and a refinement).
    """
    p, a = plain.metrics, adapted.metrics
    psnr = _change(a["psnr"] - p["psnr"], _PSNR_EPS, " dB PSNR", 2)
    ssim = _change(a["ssim"] - p["ssim"], _SSIM_EPS, " SSIM", 4)
    verb_p, verb_s = psnr.split()[0], ssim.split()[0]
    if verb_p == verb_s and verb_p in ("gains", "loses"):
        text = f"{subject} {psnr} and {ssim.split(' ', 1)[1]}"  # "gains +0.44 dB PSNR and +0.0040 SSIM"
    else:
        text = f"{subject} {psnr} {'but' if 'gains' in (verb_p, verb_s) else 'and'} {ssim}"
    if "seconds_per_slice" in a and "seconds_per_slice" in p:
        text += f" for {a['seconds_per_slice']:.3g} s per slice instead of {p['seconds_per_slice']:.3g} s"
    parts = [text]
    if baselines:
        best_label = max(baselines, key=lambda k: baselines[k].metrics["psnr"])
        diff = a["psnr"] - baselines[best_label].metrics["psnr"]
        if diff <= -_PSNR_EPS:
            parts.append(f"still {-diff:.2f} dB PSNR below {_name(best_label)}")
        elif diff >= _PSNR_EPS:
            parts.append(f"{diff:.2f} dB PSNR above the best baseline ({_name(best_label)})")
        else:
            parts.append(f"PSNR level with {_name(best_label)}")
        best_ssim = max(baselines, key=lambda k: baselines[k].metrics["ssim"])
        sdiff = a["ssim"] - baselines[best_ssim].metrics["ssim"]
        if sdiff >= _SSIM_EPS:
            parts.append("SSIM above every baseline")
        elif sdiff <= -_SSIM_EPS:
            parts.append(f"SSIM {-sdiff:.4f} below {_name(best_ssim)}")
        else:
            parts.append(f"SSIM level with {_name(best_ssim)}")
    return "; ".join(parts) + "."


def _settings(adaptation: dict[str, Any]) -> list[str]:
    """Sentences on the recorded ``AdaptConfig`` and where the seconds were measured."""
    config = adaptation.get("config")
    if not isinstance(config, dict):
        return ["The adaptation settings were not recorded with these results."]
    try:
        cfg = from_dict(AdaptConfig, config, prefix="adaptation.config")
    except InputError as err:
        raise InputError(f"recorded adaptation settings are not valid: {err.problem}", field=err.field,
                         expected=err.expected, got=err.got) from None
    params = _PARAMS.get(cfg.params or "", "the family's default parameters")
    steps = f"{cfg.steps} Adam step{'s' if cfg.steps != 1 else ''}"
    out = [f"Settings (`AdaptConfig`): at most {steps} at lr {cfg.lr:g}, adapting {params}; a seeded "
           f"{cfg.holdout:.0%} of the measured k-space outside the calibration region is held out and the weights "
           f"of the step with the lowest held-out error are kept (stop after {cfg.patience} steps without "
           f"improvement); at each step the model predicts a fresh random {cfg.loss:.0%} of the other measured "
           f"samples from the rest; seed {cfg.seed}; "
           + ("the measured samples are put back in the final image." if cfg.hard_dc else "no data consistency.")]
    if cfg.refine == "wavelet":
        out.append(f"The adapted row is a hybrid, not the network alone: its coil images are the prior of an "
                   f"L1-wavelet problem (prior weight {cfg.refine_weight:g}; sparsity weight and iterations of the "
                   "`l1wavelet` baseline) and the part they hold outside the ESPIRiT maps' range is kept "
                   "(`mrizoo.models.refine`). On the real scans of `benchmarks/tta.py` most of its lead over "
                   "L1-wavelet comes from that outside part (zero in the classical SENSE images; it holds the noise "
                   "floor of the RSS references): L1-wavelet given the same part comes within 0.2-0.5 dB PSNR of "
                   "the hybrid.")
    threads, device = adaptation.get("threads"), adaptation.get("device")
    cpu = f"{threads} CPU thread{'s' if threads != 1 else ''}" if isinstance(threads, int) else None
    gpu = device if isinstance(device, str) and device != "cpu" else None
    where = ", ".join(x for x in (cpu, gpu) if x)
    out.append("Seconds are wall-clock per slice on the machine that ran the evaluation"
               + (f" ({where})" if where else "") + ", adaptation included for the adapted row and ESPIRiT maps "
               "for the methods that use them.")
    return out


def _cell(d: DatasetResult, key: str, fmt: str) -> str:
    return format(d.metrics[key], fmt) if key in d.metrics else "-"


def section_adaptation(entry: ModelEntry, results: EvaluationResults | None) -> str | None:
    """The ``## With test-time adaptation`` section (None for methods that cannot adapt)."""
    if not can_adapt(entry):
        return None
    head = ["## With test-time adaptation", ""]
    usage = ("Test-time adaptation (`model.adapt(kspace, mask)`; `--adapt` of `mrizoo reconstruct`, `demo` and "
             "`evaluate`) fits a copy of the model to each scan's own measurements")
    adapted_rows = {} if results is None else {d.key: d for d in results.compared.get(results.model + TTA_SUFFIX, ())}
    plain = [] if results is None else [d for d in (*results.in_distribution(), *results.out_of_distribution())
                                        if d.key in adapted_rows]
    if results is None or not plain:
        return "\n".join(head + [f"{usage}; it is available for this model and was not measured for this card."])
    order = {k: i for i, k in enumerate(_BASELINE_ORDER)}
    labels = sorted((k for k in results.compared if not k.endswith(TTA_SUFFIX)),
                    key=lambda k: (order.get(k, len(order)), k))
    parts = head + [f"{usage} (self-supervised: part of the measured k-space is the input, another part the "
                    "target). Scored by `mrizoo evaluate --adapt` on the same slices and masks as the plain model"
                    + (" and the methods without learned weights" if labels else "")
                    + ", fastMRI conventions (`mrizoo.metrics`); means over volumes.", ""]
    parts += "\n\n".join(_settings(results.adaptation)).split("\n")
    config = results.adaptation.get("config") if isinstance(results.adaptation, dict) else None
    refine = config.get("refine") if isinstance(config, dict) else None
    refined = f" + {refine} refinement" if refine not in (None, "none") else ""
    for d in plain:
        a = adapted_rows[d.key]
        base = {k: r for k in labels for r in results.compared[k] if r.key == d.key}
        where = "in distribution" if d.distribution == "in" else "out of distribution"
        cf = f", centre {d.center_fraction:g}" if d.center_fraction is not None else ""
        cf += f"; learned models: mean of {d.samples} posterior samples" if d.samples else ""
        rows = [(f"`{results.model}`", d), (f"`{results.model}` adapted{refined}", a),
                *((_name(k), r) for k, r in base.items())]
        parts += ["", f"### {d.dataset} ({where}, {d.acceleration:g}x {d.mask}{cf}; {d.slices} slice(s) in "
                      f"{d.volumes} volume(s))", "",
                  "| Method | SSIM | PSNR (dB) | Seconds / slice |", "|---|---|---|---|"]
        parts += [f"| {n} | {_cell(r, 'ssim', '.4f')} | {_cell(r, 'psnr', '.2f')} | "
                  f"{_cell(r, 'seconds_per_slice', '.3g')} |" for n, r in rows]
        verdict = adaptation_verdict(d, a, base, subject="Adaptation with the refinement" if refined else "Adaptation")
        if "apsd" in d.metrics and "apsd" in a.metrics:
            verdict += f" Posterior spread (APSD): {d.metrics['apsd']:.3g} plain, {a.metrics['apsd']:.3g} adapted."
        parts += ["", verdict]
    return "\n".join(parts)
