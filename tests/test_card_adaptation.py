"""The card's test-time-adaptation section: plain vs adapted vs baselines, settings, honest verdicts,
and ``mrizoo evaluate --adapt`` writing what the section reads into one results file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mrizoo.cards import render_card
from mrizoo.cards.adaptation import adaptation_verdict, section_adaptation
from mrizoo.errors import InputError
from mrizoo.results import EvaluationResults, load_results, save_results
from mrizoo.zoo import info, model_config

TITLE = "## With test-time adaptation"
CONFIG = {"steps": 20, "lr": 3e-4, "holdout": 0.1, "loss": 0.3, "params": "all", "patience": 10,
          "min_delta": 0.0, "seed": 0, "samples": 2, "hard_dc": True}


def _row(dataset: str, ssim: float, psnr: float, seconds: float, dist: str = "out") -> dict:
    return {"dataset": dataset, "distribution": dist, "acceleration": 4.0, "mask": "equispaced_fraction",
            "volumes": 1, "slices": 1, "center_fraction": 0.08,
            "metrics": {"ssim": ssim, "psnr": psnr, "nmse": 0.03, "seconds_per_slice": seconds}}


def _doc(adapted: tuple[float, float] = (0.765, 27.43), *, with_tta: bool = True) -> dict:
    """Results of the demo VarNet on two real-scan sets, as `mrizoo evaluate --adapt` writes them."""
    compared = {"zerofilled": [_row("demo_scan", 0.6205, 22.20, 0.01), _row("real_knee", 0.777, 29.12, 0.01)],
                "cgsense": [_row("demo_scan", 0.5965, 28.13, 1.9), _row("real_knee", 0.746, 31.15, 2.0)],
                "l1wavelet": [_row("demo_scan", 0.6375, 30.13, 6.1), _row("real_knee", 0.745, 31.48, 6.3)]}
    if with_tta:  # only the demo scan was adapted
        compared["varnet-mini-r4+tta"] = [_row("demo_scan", *adapted, 30.2)]
    return {"model": "varnet-mini-r4",
            "datasets": [_row("colin_val", 0.84, 26.2, 0.4, "in"), _row("demo_scan", 0.7611, 26.99, 0.41),
                         _row("real_knee", 0.752, 27.46, 0.45)],
            "compared": compared,
            "adaptation": {"config": dict(CONFIG), "threads": 2, "device": "cpu"} if with_tta else {}}


def _section(results: EvaluationResults | None, name: str = "varnet-mini-r4") -> str | None:
    return section_adaptation(info(name), results)


def test_section_shows_plain_adapted_and_baselines_with_settings_and_verdict() -> None:
    text = _section(EvaluationResults.from_dict(_doc()))
    assert text.startswith(TITLE)
    assert "### demo_scan (out of distribution, 4x equispaced_fraction, centre 0.08; 1 slice(s) in 1 volume(s))" in text
    assert "colin_val" not in text and "real_knee" not in text  # sets without an adapted row are not shown
    table = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert table == ["| `varnet-mini-r4` | 0.7611 | 26.99 | 0.41 |",
                     "| `varnet-mini-r4` adapted | 0.7650 | 27.43 | 30.2 |",
                     "| zero-filled | 0.6205 | 22.20 | 0.01 |",
                     "| CG-SENSE | 0.5965 | 28.13 | 1.9 |",
                     "| L1-wavelet | 0.6375 | 30.13 | 6.1 |"]
    assert ("Adaptation gains +0.44 dB PSNR and +0.0039 SSIM for 30.2 s per slice instead of 0.41 s; still 2.70 dB "
            "PSNR below L1-wavelet; SSIM above every baseline.") in text
    assert "at most 20 Adam steps at lr 0.0003, adapting all parameters" in text
    assert "10% of the measured k-space" in text and "seed 0" in text and "(2 CPU threads)" in text


def test_full_card_places_the_section_and_keeps_the_baselines_out_of_the_main_table() -> None:
    results = EvaluationResults.from_dict(_doc())
    card = render_card(info("varnet-mini-r4"), config=model_config("varnet-mini-r4"), results=results)
    assert card.index("## Evaluation") < card.index(TITLE) < card.index("## Limitations")
    evaluation = card[card.index("## Evaluation"):card.index(TITLE)]
    assert "CG-SENSE" not in evaluation and "30.2" not in evaluation  # only the model's own rows there
    front = card.split("\n---\n", 1)[0]
    assert "28.13" not in front  # the baselines' numbers are not this model's metadata


@pytest.mark.parametrize("doc", [None, _doc(with_tta=False)], ids=["no results", "no adapted rows"])
def test_without_adapted_results_the_card_says_it_was_not_measured(doc: dict | None) -> None:
    text = _section(None if doc is None else EvaluationResults.from_dict(doc))
    lines = text.splitlines()
    assert lines[0] == TITLE and len(lines) == 3
    assert "available for this model and was not measured for this card" in lines[2]
    assert "|" not in text


def test_methods_that_cannot_adapt_get_no_section() -> None:
    assert _section(None, "cgsense") is None and _section(None, "convdecoder") is None
    assert _section(None, "ncsnv2-brain") is None
    assert _section(None, "rcgan-mini-r4") is not None


def test_no_gain_is_claimed_when_the_adapted_row_is_worse() -> None:
    worse = _section(EvaluationResults.from_dict(_doc(adapted=(0.7500, 26.50))))
    verdict = worse.strip().splitlines()[-1]
    assert "gains" not in verdict and "PSNR above" not in verdict
    assert verdict.endswith("SSIM above every baseline.")  # true: 0.7500 beats L1-wavelet's 0.6375
    assert verdict.startswith("Adaptation loses 0.49 dB PSNR and 0.0111 SSIM")
    assert "still 3.63 dB PSNR below L1-wavelet" in verdict
    # mixed and within-rounding changes are said as they are
    mixed = _section(EvaluationResults.from_dict(_doc(adapted=(0.7700, 26.80)))).strip().splitlines()[-1]
    assert mixed.startswith("Adaptation loses 0.19 dB PSNR but gains +0.0089 SSIM")
    flat = _section(EvaluationResults.from_dict(_doc(adapted=(0.7611, 26.992)))).strip().splitlines()[-1]
    assert flat.startswith("Adaptation does not change PSNR and does not change SSIM")
    above = EvaluationResults.from_dict(_doc(adapted=(0.80, 30.50)))
    plain, tta = above.datasets[1], above.compared["varnet-mini-r4+tta"][0]
    base = {k: above.compared[k][0] for k in ("zerofilled", "cgsense", "l1wavelet")}
    assert "0.37 dB PSNR above the best baseline (L1-wavelet)" in adaptation_verdict(plain, tta, base)


def test_recorded_settings_are_validated() -> None:
    doc = _doc()
    doc["adaptation"]["config"]["params"] = "everything"
    with pytest.raises(InputError) as err:
        _section(EvaluationResults.from_dict(doc))
    assert err.value.field == "params" and "everything" in str(err.value)
    doc["adaptation"] = {}
    assert "settings were not recorded" in _section(EvaluationResults.from_dict(doc))


def test_evaluate_adapt_writes_plain_adapted_and_baselines_into_one_results_file(tmp_path: Path) -> None:
    """`mrizoo evaluate MODEL --adapt --out` (before: no file could hold `<model>+tta`), read back by the card."""
    from mrizoo.cli import main
    from mrizoo.data import make_test_volume

    make_test_volume(tmp_path / "scan.h5", num_slices=1, shape=(64, 64), num_coils=4, seed=3)
    out = tmp_path / "out"
    label = "varnet-mini-r4"
    rc = main(["evaluate", label, "zerofilled", "--no-baselines", "--data", f"scan={tmp_path / 'scan.h5'}",
               "--ood", "scan", "--adapt", "--adapt-steps", "1", "--center-fraction", "0.16", "--out", str(out),
               "--quiet"])
    assert rc == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("results.json"))
    assert written == ["varnet-mini-r4/results.json", "zerofilled/results.json"]  # no file for the +tta row
    res = load_results(out / label / "results.json")
    assert set(res.compared) == {f"{label}+tta", "zerofilled"}
    assert res.adaptation["config"]["steps"] == 1 and res.adaptation["config"]["params"] == "all"
    for rows in (res.datasets, *res.compared.values()):
        assert rows[0].dataset == "scan" and rows[0].metrics["seconds_per_slice"] > 0
    # adaptation costs more than one forward pass of the same network on the same slice
    assert res.compared[f"{label}+tta"][0].metrics["seconds_per_slice"] > res.datasets[0].metrics["seconds_per_slice"]
    save_results(res, tmp_path / "again.json")
    assert load_results(tmp_path / "again.json") == res
    assert json.loads((tmp_path / "again.json").read_text())["adaptation"]["config"]["lr"] == 3e-4
    per_volume = json.loads((out / "per_volume.json").read_text())
    assert {r["model"] for r in per_volume} == {label, f"{label}+tta", "zerofilled"}
    text = _section(res)
    assert "### scan (out of distribution" in text and "at most 1 Adam step at lr" in text
    # evaluate records VarNet's default refinement, and the card names the row and the hybrid for what they are
    assert res.adaptation["config"]["refine"] == "wavelet"
    assert re.search(r"\| `varnet-mini-r4` adapted \+ wavelet refinement \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|", text)
    assert "The adapted row is a hybrid, not the network alone" in text
    assert "Adaptation with the refinement " in text


def test_posterior_models_show_the_spread_before_and_after_adaptation() -> None:
    doc = _doc(adapted=(0.5487, 22.43))
    doc["model"] = "rcgan-mini-r4"
    doc["compared"]["rcgan-mini-r4+tta"] = doc["compared"].pop("varnet-mini-r4+tta")
    doc["datasets"][1]["metrics"].update(ssim=0.5491, psnr=22.44, apsd=0.3525)
    doc["compared"]["rcgan-mini-r4+tta"][0]["metrics"]["apsd"] = 0.3277
    doc["datasets"][1]["samples"] = doc["compared"]["rcgan-mini-r4+tta"][0]["samples"] = 8
    text = _section(EvaluationResults.from_dict(doc), "rcgan-mini-r4")
    assert "mean of 8 posterior samples" in text
    assert text.rstrip().endswith("Adaptation loses 0.01 dB PSNR and 0.0004 SSIM for 30.2 s per slice instead of "
                                  "0.41 s; still 7.70 dB PSNR below L1-wavelet; SSIM 0.0888 below L1-wavelet. "
                                  "Posterior spread (APSD): 0.352 plain, 0.328 adapted.")
