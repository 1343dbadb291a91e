"""Model cards and evaluation results: content, metadata validity, citations, determinism, CLI."""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
from pathlib import Path

import pytest
import yaml

from mrizoo.cards import (
    PoolDataset,
    PoolDescription,
    card_for,
    card_path,
    regenerate_cards,
    render_card,
    shipped_entry_names,
)
from mrizoo.cards.bib import parse_bib, shipped_papers
from mrizoo.errors import InputError
from mrizoo.models.provenance import TrainingSummary, load_training_summary
from mrizoo.results import DatasetResult, EvaluationResults, load_results, results_path, save_results
from mrizoo.zoo import info, model_config

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "model_cards"
SEEDS = ROOT.parent / "shared" / "seeds"
CITATIONS = {key: entry.text for key, entry in shipped_papers().items()}
SECTIONS = ["## What the model does", "## How to use", "## Training data", "## Training procedure",
            "## Evaluation", "## Limitations and intended use", "## Citation"]


def _front_matter(text: str) -> tuple[dict, str]:
    m = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    assert m, "card does not start with a YAML block"
    return yaml.safe_load(m.group(1)), m.group(2)


def _section(text: str, title: str) -> str:
    start = text.index(title)
    nxt = text.find("\n## ", start + len(title))
    return text[start: nxt if nxt >= 0 else len(text)]


def _result(name: str = "unet-knee-r4", **extra_metrics: float) -> EvaluationResults:
    return EvaluationResults(model=name, datasets=(
        DatasetResult("fastMRI knee", "in", 4, "equispaced_fraction", 199, 7135,
                      {"ssim": 0.9123, "psnr": 35.81, "nmse": 0.0087, **extra_metrics}, std={"ssim": 0.031},
                      center_fraction=0.08, split="val"),
        DatasetResult("fastMRI brain", "out", 4, "equispaced_fraction", 30, 480,
                      {"ssim": 0.8712, "psnr": 33.2, "nmse": 0.0191, **extra_metrics}),
    ))


# ----------------------------------------------------------------------------- shipped cards


def test_every_zoo_entry_has_an_up_to_date_card() -> None:
    names = shipped_entry_names()
    on_disk = sorted(p.stem for p in CARDS.glob("*.md"))
    assert on_disk == names, "model_cards/ and the zoo differ; regenerate with `mrizoo card --all`"
    stale = [n for n in names if card_for(n, cards_dir=CARDS) != card_path(n, CARDS).read_text(encoding="utf-8")]
    assert not stale, f"stale cards {stale}; regenerate with `mrizoo card --all`"


@pytest.mark.parametrize("name", shipped_entry_names())
def test_shipped_card_metadata_and_sections(name: str) -> None:
    from huggingface_hub import ModelCard

    entry = info(name)
    text = card_path(name, CARDS).read_text(encoding="utf-8")
    meta, body = _front_matter(text)
    assert meta["library_name"] == "mrizoo"
    assert meta["license"] == entry.license
    assert set(entry.tags) <= set(meta["tags"]) and "mrizoo" in meta["tags"]
    results_file = CARDS / "results" / f"{name}.json"
    if results_file.is_file():  # evaluated (the shipped demo models): model-index and the table
        from mrizoo.results import load_results

        results = load_results(results_file)
        assert meta["model-index"][0]["name"] == name
        evaluation = _section(body, "## Evaluation")
        assert all(f"| {d.dataset} |" in evaluation for d in results.datasets)
    else:
        assert "model-index" not in meta  # nothing is evaluated yet
        assert "Not evaluated yet." in _section(body, "## Evaluation")
    positions = [body.index(s) for s in SECTIONS]
    assert positions == sorted(positions), "sections out of order"
    usage = re.search(r"```python\n(.*?)```", _section(body, "## How to use"), re.S).group(1).splitlines()
    assert usage == ["import mrizoo", f'model = mrizoo.load("{name}")', "image = model.reconstruct(kspace, mask)"]
    limits = _section(body, "## Limitations and intended use")
    assert "Research use only" in limits and "not for clinical diagnosis" in limits
    card = ModelCard(text)  # the library's own parser accepts it
    assert card.data.library_name == "mrizoo"


def test_cards_describe_the_task_of_each_kind_of_entry() -> None:
    knee = card_path("unet-knee-r4", CARDS).read_text()
    what = _section(knee, "## What the model does")
    assert "| Acceleration | 4x |" in what and "`equispaced_fraction`" in what and "0.08" in what
    assert "`rss`" in what and "knee; contrasts PD, PDFS" in what
    assert "Not trained yet" in knee and "`unet-knee-r4`" in _section(knee, "## Training procedure")
    assert "knee" in _section(knee, "## Limitations and intended use")

    rcgan = card_path("rcgan-brain-r8", CARDS).read_text()
    assert "exactly 8 coils" in rcgan and "| Acceleration | 8x |" in rcgan and "`gro`" in rcgan
    assert "model.sample(" in _section(rcgan, "## How to use")

    # the demo models: the masks their recipes mix, the range of matrix sizes, any coil count
    varnet = _section(card_path("varnet-mini-r4", CARDS).read_text(), "## Limitations and intended use")
    assert "`equispaced_fraction` (4x), `random` (4x) and `poisson2d` (4x, 8x) masks" in varnet
    assert "Trained on 192x160 to 240x192 images" in varnet and "Trained for 4x" not in varnet
    mini = card_path("rcgan-mini-r4", CARDS).read_text()
    assert "exactly 8 coils" not in mini and "any number of coils" in _section(mini, "## What the model does")
    assert "score it against RSS references" in mini and "MVUE references" not in mini.split("## Limitations")[1]

    upstream = card_path("varnet-fastmri-brain", CARDS).read_text()
    url = info("varnet-fastmri-brain").weights.url
    assert url in _section(upstream, "## Training procedure")
    assert "fastMRI authors" in _section(upstream, "## Limitations and intended use")
    assert "Not trained yet" not in upstream

    pool = card_path("unet-pool-r4", CARDS).read_text()
    assert "data pool" in _section(pool, "## Training data")

    classical = card_path("zerofilled", CARDS).read_text()
    assert "None: a classical method" in _section(classical, "## Training data")
    assert "cites no paper" in _section(classical, "## Citation")


# ----------------------------------------------------------------------------- citations


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[{}\"“”*,.:]", "", text)).lower().strip()


def _bib_field(bib: str, key: str) -> str:
    m = re.search(rf"^\s*{key}\s*=\s*\{{(.*?)\}},?\s*$", bib, re.M | re.S)
    assert m, f"no {key} in {bib[:40]}"
    return re.sub(r"\s+", " ", m.group(1))


# venue and year facts per key (from the papers' title pages / proceedings)
_FACTS = {
    "lin2024": ("International Conference on Machine Learning", "2024"),
    "bendel2023": ("Neural Information Processing Systems", "2023"),
    "jalal2021": ("Neural Information Processing Systems", "2021"),
    "zbontar2018": ("1811.08839", "2018"),
    "sriram2020": ("MICCAI", "2020"),
    "darestani2021": ("IEEE Transactions on Computational Imaging", "2021"),
}


def test_bibtex_entries_are_well_formed_and_cover_every_cited_key() -> None:
    cited = {p for n in shipped_entry_names() for p in info(n).papers}
    assert cited <= set(CITATIONS)
    for key, bib in CITATIONS.items():
        assert bib.count("{") == bib.count("}")
        assert re.match(rf"@(inproceedings|article|misc)\{{{key},", bib)
        venue, year = _FACTS[key]
        assert venue in bib and _bib_field(bib, "year") == year
        for name in ("title", "author"):
            _bib_field(bib, name)


def test_papers_bib_is_printed_verbatim_and_read_field_by_field() -> None:
    bib_file = (ROOT / "mrizoo" / "cards" / "papers.bib").read_text(encoding="utf-8")
    papers = shipped_papers()
    assert list(papers) == re.findall(r"^@\w+\{(\w+),", bib_file, re.M)  # every entry, in file order
    for key, entry in papers.items():
        assert entry.text in bib_file and entry.fields["year"] == _bib_field(entry.text, "year")
    card = render_card(info("rcgan-brain-r4"))  # cites more than one paper
    block = card.split("```bibtex\n", 1)[1].split("\n```", 1)[0]
    assert block == "\n\n".join(papers[k].text for k in info("rcgan-brain-r4").papers)
    assert papers["jalal2021"].fields["pages"] == "14938--14954"
    assert papers["lin2024"].fields["title"].startswith("Robustness of Deep Learning for Accelerated {MRI}")


def test_bib_reader_accepts_the_bibtex_it_documents() -> None:
    text = """% a comment line
@comment{ignored {nested} text}
@Article( key1,
  Title = "Quoted {Title}", author = {A, B and C, D},
  year = 2020 , note = {a {deep {nested}} value}
)
"""
    entry = parse_bib(text)["key1"]
    assert (entry.kind, entry.key) == ("article", "key1")
    assert entry.fields == {"title": "Quoted {Title}", "author": "A, B and C, D", "year": "2020",
                            "note": "a {deep {nested}} value"}
    assert entry.text.startswith("@Article( key1,") and entry.text.endswith(")")


@pytest.mark.parametrize("text, problem, where", [
    ("@misc{k1, title = {T}, author = {A}}", "lacks required fields", "k1"),
    ("@misc{k1, title = {T}, author = {A}, year = {1}}\n@misc{k1, title = {T}, author = {A}, year = {2}}",
     "duplicate key", ":2"),
    ("@misc{k1, title = {T, author = {A}, year = {1}}", "unclosed", ":1"),
    ("stray words\n@misc{k1, title = {T}, author = {A}, year = {1}}", "text outside an entry", ":1"),
    ("@misc{k1, title = {T} author = {A}, year = {1}}", "expected ','", "k1"),
    ("@misc{k1, title = {T}, title = {U}, author = {A}, year = {1}}", "given twice", "k1"),
    ("@string{x = {y}}", "not supported", ":1"),
    ("@misc{title = {T}}", "without a key", ":1"),
])
def test_bib_reader_errors_name_the_line_or_entry(text: str, problem: str, where: str) -> None:
    with pytest.raises(InputError, match=problem) as info_:
        parse_bib(text, "x.bib")
    err = info_.value
    assert where in f"{err.path}|{err.field}" and "x.bib" in str(err.path)


def test_cards_follow_the_template_file() -> None:
    """The section order of every card is the template's: a heading moved there moves in every card."""
    template = (ROOT / "mrizoo" / "cards" / "template.md.j2").read_text(encoding="utf-8")
    fixed = re.findall(r"^(## [^{\n]+)$", template, re.M)
    assert fixed == ["## How to use", "## Limitations and intended use", "## Checkpoint", "## Citation"]
    for name in shipped_entry_names():
        headings = [h for h in re.findall(r"^## .+$", card_path(name, CARDS).read_text(encoding="utf-8"), re.M)]
        order = [h for h in headings if h in fixed]
        assert order == [h for h in fixed if h in headings] and {"## How to use", "## Citation"} <= set(order)
        assert headings[0] == "## What the model does" and headings[-1] == "## Citation"


@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"paper texts not found at {SEEDS}")
def test_bibtex_titles_and_authors_match_the_papers() -> None:
    """Each title appears in the papers (own title page or a reference list) next to its authors."""
    papers = [p.read_text(encoding="utf-8").splitlines() for p in sorted(SEEDS.glob("*.txt"))]
    for key, bib in CITATIONS.items():
        title = _norm(_bib_field(bib, "title"))
        window = []
        for lines in papers:
            for i, line in enumerate(lines):
                if title in _norm(line):  # title page: authors follow up to the abstract; reference: same line
                    if i < 5:
                        head = lines[i:i + 40]
                        window += head[:next((j for j, x in enumerate(head) if x.strip() == "Abstract"), 12)]
                    else:
                        window.append(line)
        assert window, f"{key}: title {title!r} not found in the papers"
        words = _norm(" ".join(window)).split()
        for author in _bib_field(bib, "author").split(" and "):
            surname = _norm(author.split(",")[0])
            assert difflib.get_close_matches(surname, words, n=1, cutoff=0.85), \
                f"{key}: author {surname!r} not in the reference"


def test_unknown_paper_key_is_an_error() -> None:
    import dataclasses

    entry = dataclasses.replace(info("unet-knee-r4"), papers=("nobody1999",))
    with pytest.raises(InputError, match="nobody1999"):
        render_card(entry)


# ----------------------------------------------------------------------------- with results / training / pool


def test_evaluation_results_fill_model_index_and_tables() -> None:
    results = _result()
    text = render_card(info("unet-knee-r4"), config=model_config("unet-knee-r4"), results=results)
    meta, body = _front_matter(text)
    index = meta["model-index"]
    assert len(index) == 1 and index[0]["name"] == "unet-knee-r4"
    got = {(r["dataset"]["name"], m["type"]): m["value"] for r in index[0]["results"] for m in r["metrics"]}
    want = {(d.dataset, k): v for d in results.datasets for k, v in d.metrics.items()}
    assert got == want
    first = index[0]["results"][0]
    assert first["dataset"]["split"] == "val" and first["dataset"]["config"] == "r4-equispaced_fraction"
    assert first["dataset"]["args"]["distribution"] == "in"
    evaluation = _section(body, "## Evaluation")
    ind = evaluation[evaluation.index("### In distribution"): evaluation.index("### Out of distribution")]
    ood = evaluation[evaluation.index("### Out of distribution"):]
    assert "fastMRI knee" in ind and "fastMRI brain" not in ind
    assert "fastMRI brain" in ood and "fastMRI knee" not in ood
    assert "0.9123 ± 0.0310" in ind and "35.81" in ind and "7,135" in ind
    assert "APSD" not in evaluation  # not a posterior model

    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    _, evals = model_index_to_eval_results(index)
    assert len(evals) == 6
    assert ModelCard(text).data.eval_results[0].metric_value == pytest.approx(0.9123)


def test_posterior_models_report_apsd_and_cfid() -> None:
    results = _result("rcgan-brain-r4", apsd=5.9e-6, cfid=3.1)
    text = render_card(info("rcgan-brain-r4"), results=results)
    header = next(line for line in _section(text, "## Evaluation").splitlines() if line.startswith("| Dataset"))
    assert header.endswith("| SSIM | PSNR (dB) | NMSE | APSD | CFID |")
    assert "5.9e-06" in text and "| 3.1 |" in text


def test_posterior_calibration_section_covers_every_set_that_has_it() -> None:
    """The in-distribution and every OOD set get a row, with a verdict from the ratio; the main
    table leaves the calibration keys out; no calibration in the results, no section."""
    calib = {"calib_samples": 8.0, "var_error_ratio": 0.0022, "coverage_1sd": 0.043, "coverage_2sd": 0.0965,
             "prop33_ratio": 1.0017, "prop33_target": 16 / 9, "calib_rms_std": 0.0033, "calib_rmse": 0.0749}
    results = EvaluationResults(model="rcgan-brain-r4", datasets=(
        DatasetResult("pool val", "in", 4, "equispaced_fraction", 3, 24,
                      {"ssim": 0.8, "psnr": 30.0, "nmse": 0.01, **calib, "var_error_ratio": 1.1, "coverage_2sd": 0.93},
                      samples=32),
        DatasetResult("pool test", "in", 4, "equispaced_fraction", 3, 24,
                      {"ssim": 0.8, "psnr": 30.0, "nmse": 0.01, **calib, "var_error_ratio": 0.96, "coverage_2sd": 0.71},
                      samples=32),
        DatasetResult("real brain", "out", 4, "equispaced_fraction", 1, 1,
                      {"ssim": 0.57, "psnr": 22.5, "nmse": 0.07, **calib}, samples=32),
        DatasetResult("real knee", "out", 4, "equispaced_fraction", 1, 1, {"ssim": 0.7, "psnr": 28.0, "nmse": 0.03}),
    ))
    text = render_card(info("rcgan-brain-r4"), results=results)
    section = _section(text, "## Posterior calibration")
    rows = [line for line in section.splitlines() if line.startswith("| ") and "Dataset" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| pool val", "| pool test", "| real brain"]
    assert "| 1.1 |" in rows[0] and rows[0].endswith("| calibrated |")
    # a pooled ratio in the band with the spread where the error is not: not called calibrated
    assert "| 0.96 |" in rows[1] and rows[1].endswith("| right size on average, misplaced: 71% within 2σ |")
    assert "| 0.0022 | 4.3% | 9.7% | 1.002 / 1.778 |" in rows[2]
    assert "overconfident: std 21.3x too small" in rows[2]
    header = next(line for line in _section(text, "## Evaluation").splitlines() if line.startswith("| Dataset"))
    assert "var_error_ratio" not in header and "coverage" not in header
    assert "## Posterior calibration" not in render_card(info("rcgan-brain-r4"), results=_result("rcgan-brain-r4"))


def test_results_for_another_model_are_refused() -> None:
    with pytest.raises(InputError, match="another model"):
        render_card(info("unet-pool-r4"), results=_result("unet-knee-r4"))


def test_training_summary_and_pool_description() -> None:
    summary = TrainingSummary(recipe="unet-pool-r4", epochs_trained=40, max_epochs=40, checkpoint_epoch=24,
                              early_stopping="in-distribution validation SSIM improved by less than 1e-3 "
                                             "per epoch after epoch 24", steps=812_000)
    datasets = (PoolDataset("fastMRI knee", 34_742, 973, "knee", ("PD", "PDFS")),
                PoolDataset("fastMRI brain", 67_558, 4_469, "brain", ("T1", "T2")),
                PoolDataset("SKM-TEA", 11_424))
    pool = PoolDescription("pool13", datasets)
    text = render_card(info("unet-pool-r4"), training_summary=summary, pool=pool)
    training = _section(text, "## Training procedure")
    assert "40 epochs of 40 planned" in training and "epoch 24" in training and "less than 1e-3" in training
    assert "Not trained yet" not in training
    data = _section(text, "## Training data")
    assert "| fastMRI brain | brain | T1, T2 | 4,469 | 67,558 |" in data
    assert f"**{34_742 + 67_558 + 11_424:,}**" in data and "3 datasets" in data
    meta, _ = _front_matter(text)
    assert meta["datasets"] == ["fastmri-knee", "fastmri-brain", "skm-tea"]
    with pytest.raises(InputError, match="another recipe"):
        render_card(info("unet-knee-r4"), training_summary=summary)


@pytest.mark.parametrize("bad, field", [
    ({"epochs_trained": 0}, "epochs_trained"),
    ({"checkpoint_epoch": 50}, "checkpoint_epoch"),
    ({"max_epochs": 10}, "max_epochs"),
    ({"epoch": 3}, "TrainingSummary"),
])
def test_training_summary_validation(tmp_path: Path, bad: dict, field: str) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"recipe": "unet-pool-r4", "epochs_trained": 40, **bad}))
    with pytest.raises(InputError) as err:
        load_training_summary(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_rendering_is_deterministic() -> None:
    kwargs = dict(config=model_config("vit-pool-r4"), results=_result("vit-pool-r4"))
    assert render_card(info("vit-pool-r4"), **kwargs) == render_card(info("vit-pool-r4"), **kwargs)


# ----------------------------------------------------------------------------- results files


def test_results_round_trip_through_json(tmp_path: Path) -> None:
    results = _result()
    path = save_results(results, tmp_path / "r" / "unet-knee-r4.json")
    assert load_results(path) == results
    assert json.loads(path.read_text())["datasets"][1]["distribution"] == "out"
    assert results_path("x-r4", tmp_path) == tmp_path / "results" / "x-r4.json"
    assert [p.name for p in path.parent.iterdir()] == ["unet-knee-r4.json"]  # no temporary left behind


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["datasets"][0]["metrics"].pop("psnr"), "datasets[0].metrics"),
    (lambda d: d["datasets"][0]["metrics"].update(ssim=1.2), "datasets[0].metrics.ssim"),
    (lambda d: d["datasets"][1]["metrics"].update(nmse=-0.1), "datasets[1].metrics.nmse"),
    (lambda d: d["datasets"][0].update(distribution="near"), "datasets[0].distribution"),
    (lambda d: d["datasets"][0].update(acceleration=1), "datasets[0].acceleration"),
    (lambda d: d["datasets"][0].update(volumes=10, slices=5), "datasets[0].volumes/slices"),
    (lambda d: d["datasets"].append(d["datasets"][0]), "datasets[2]"),
    (lambda d: d.update(datasets=[]), "datasets"),
    (lambda d: d.update(model="Not A Name"), "model"),
    (lambda d: d.update(format_version=99), "format_version"),
])
def test_invalid_results_name_file_and_field(tmp_path: Path, edit, field: str) -> None:
    doc = _result().to_dict()
    edit(doc)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as err:
        load_results(path)
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)


def test_nan_and_broken_json_are_refused(tmp_path: Path) -> None:
    doc = _result().to_dict()
    doc["datasets"][0]["metrics"]["psnr"] = math.nan
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(doc))  # json writes NaN, which is not JSON
    with pytest.raises(InputError, match="NaN"):
        load_results(path)
    path.write_text('{"model": "unet-knee-r4", ')
    with pytest.raises(InputError, match="not valid JSON"):
        load_results(path)


# ----------------------------------------------------------------------------- regeneration and CLI


def test_regeneration_is_all_or_nothing(tmp_path: Path) -> None:
    good = tmp_path / "unet-knee-r4.md"
    good.write_text("a good card\n")
    save_results(_result(), results_path("unet-knee-r4", tmp_path))
    bad = results_path("vit-pool-r4", tmp_path)
    bad.write_text('{"model": "vit-pool-r4", "datasets": []}')
    with pytest.raises(InputError, match="vit-pool-r4.json"):
        regenerate_cards(["unet-knee-r4", "vit-pool-r4"], cards_dir=tmp_path)
    assert good.read_text() == "a good card\n"
    assert not (tmp_path / "vit-pool-r4.md").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    bad.unlink()
    changed = regenerate_cards(["unet-knee-r4", "vit-pool-r4"], cards_dir=tmp_path)
    assert changed == {"unet-knee-r4": True, "vit-pool-r4": True}
    assert "model-index" in good.read_text()  # picked up results/unet-knee-r4.json
    assert regenerate_cards(["unet-knee-r4"], cards_dir=tmp_path) == {"unet-knee-r4": False}


def _cli():
    import mrizoo.cli as cli

    return cli.main


def test_card_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main = _cli()
    assert main(["card", "--all", "--check", "--cards-dir", str(CARDS)]) == 0
    out = tmp_path / "out"
    results = tmp_path / "r.json"
    save_results(_result(), results)
    assert main(["card", "unet-knee-r4", "--results", str(results), "--cards-dir", str(CARDS),
                 "--out", str(out)]) == 0
    assert f"wrote {out / 'unet-knee-r4.md'}" in capsys.readouterr().out
    assert "model-index" in (out / "unet-knee-r4.md").read_text()
    assert main(["card", "unet-knee-r4", "--check", "--cards-dir", str(CARDS), "--out", str(out)]) == 1
    assert "out of date" in capsys.readouterr().err
    # bad input: error exit, the card written before stays as it was
    before = (out / "unet-knee-r4.md").read_text()
    results.write_text("{}")
    assert main(["card", "unet-knee-r4", "--results", str(results), "--out", str(out)]) == 2
    assert "missing required key" in capsys.readouterr().err
    assert (out / "unet-knee-r4.md").read_text() == before
    assert main(["card", "--all", "--results", str(results), "--out", str(out)]) == 2
    assert main(["card"]) == 2


def test_card_parser_registers_both_commands() -> None:
    from mrizoo.cli import publish

    parser = argparse.ArgumentParser()
    publish.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["push", "run", "--repo-id", "org/x", "--dry-run", "--private"])
    assert (args.run_dir, args.repo_id, args.dry_run, args.private, args.revision) == ("run", "org/x", True, True,
                                                                                        None)
