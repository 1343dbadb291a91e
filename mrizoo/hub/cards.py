"""Model cards: a ``README.md`` per zoo model, built with ``huggingface_hub.ModelCard``.

A card is generated from data only -- the zoo entry, its recipe file, the architecture config,
and, when given, evaluation results (:mod:`mrizoo.hub.evaluation`), a training summary and a
description of the training pool -- so regenerating it from the same inputs gives the same
text (no timestamps). ``model_cards/<name>.md`` holds the card of every shipped entry;
evaluation results are looked up in ``model_cards/results/<name>.json`` and training summaries
in ``model_cards/training/<name>.json``.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mrizoo._dataclass_io import from_dict, to_dict
from mrizoo._yaml import parse_yaml, read_yaml
from mrizoo.errors import InputError
from mrizoo.hub.card_adaptation import section_adaptation
from mrizoo.hub.card_calibration import CALIBRATION_KEYS, section_calibration
from mrizoo.hub.evaluation import (
    POSTERIOR_METRICS,
    REQUIRED_METRICS,
    DatasetResult,
    EvaluationResults,
    atomic_write_text,
    load_results,
    results_path,
)
from mrizoo.zoo.entry import ModelEntry

__all__ = [
    "CITATIONS", "CARDS_DIR", "PoolDataset", "PoolDescription", "TrainingSummary", "CheckpointFacts",
    "load_training_summary", "training_path", "card_path", "recipe_training_section", "shipped_entry_names",
    "build_model_card", "render_card", "card_for", "write_card", "regenerate_cards",
]

CARDS_DIR = "model_cards"

# BibTeX of the papers zoo entries cite (``entry.papers`` keys).
CITATIONS: dict[str, str] = {
    "lin2024": """@inproceedings{lin2024,
  title     = {Robustness of Deep Learning for Accelerated {MRI}: Benefits of Diverse Training Data},
  author    = {Lin, Kang and Heckel, Reinhard},
  booktitle = {Proceedings of the 41st International Conference on Machine Learning},
  series    = {Proceedings of Machine Learning Research},
  volume    = {235},
  publisher = {PMLR},
  year      = {2024}
}""",
    "bendel2023": """@inproceedings{bendel2023,
  title     = {A Regularized Conditional {GAN} for Posterior Sampling in Image Recovery Problems},
  author    = {Bendel, Matthew C. and Ahmad, Rizwan and Schniter, Philip},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {36},
  year      = {2023}
}""",
    "jalal2021": """@inproceedings{jalal2021,
  title     = {Robust Compressed Sensing {MRI} with Deep Generative Priors},
  author    = {Jalal, Ajil and Arvinte, Marius and Daras, Giannis and Price, Eric and Dimakis, Alexandros G. and
               Tamir, Jonathan I.},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {34},
  pages     = {14938--14954},
  year      = {2021}
}""",
    "zbontar2018": """@misc{zbontar2018,
  title         = {{fastMRI}: An Open Dataset and Benchmarks for Accelerated {MRI}},
  author        = {Zbontar, Jure and Knoll, Florian and Sriram, Anuroop and Murrell, Tullie and Huang, Zhengnan and
                   Muckley, Matthew J. and Defazio, Aaron and Stern, Ruben and Johnson, Patricia and Bruno, Mary and
                   Parente, Marc and Geras, Krzysztof J. and Katsnelson, Joe and Chandarana, Hersh and
                   Zhang, Zizhao and Drozdzal, Michal and Romero, Adriana and Rabbat, Michael and Vincent, Pascal and
                   Yakubova, Nafissa and Pinkerton, James and Wang, Duo and Owens, Erich and Zitnick, C. Lawrence and
                   Recht, Michael P. and Sodickson, Daniel K. and Lui, Yvonne W.},
  eprint        = {1811.08839},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CV},
  year          = {2018}
}""",
    "sriram2020": """@inproceedings{sriram2020,
  title     = {End-to-End Variational Networks for Accelerated {MRI} Reconstruction},
  author    = {Sriram, Anuroop and Zbontar, Jure and Murrell, Tullie and Defazio, Aaron and Zitnick, C. Lawrence and
               Yakubova, Nafissa and Knoll, Florian and Johnson, Patricia},
  booktitle = {Medical Image Computing and Computer Assisted Intervention -- {MICCAI} 2020},
  series    = {Lecture Notes in Computer Science},
  volume    = {12262},
  pages     = {64--73},
  publisher = {Springer},
  year      = {2020},
  doi       = {10.1007/978-3-030-59713-6_7}
}""",
    "darestani2021": """@article{darestani2021,
  title   = {Accelerated {MRI} With Un-Trained Neural Networks},
  author  = {Darestani, Mohammad Zalbagi and Heckel, Reinhard},
  journal = {IEEE Transactions on Computational Imaging},
  volume  = {7},
  year    = {2021}
}""",
}

# short author-year labels used in the card text
_PAPER_LABELS = {
    "lin2024": "Lin & Heckel, ICML 2024",
    "bendel2023": "Bendel, Ahmad & Schniter, NeurIPS 2023",
    "jalal2021": "Jalal et al., NeurIPS 2021",
    "zbontar2018": "Zbontar et al., 2018",
    "sriram2020": "Sriram et al., MICCAI 2020",
    "darestani2021": "Darestani & Heckel, IEEE TCI 2021",
}

_TARGETS = {
    "rss": "RSS magnitude image (root-sum-of-squares of the coil images)",
    "mvue": "MVUE image (coil images combined with ESPIRiT sensitivity maps, SENSE-style)",
    "complex": "complex-valued image",
}

_METRIC_HEADERS = {"ssim": "SSIM", "psnr": "PSNR (dB)", "nmse": "NMSE", "apsd": "APSD", "cfid": "CFID"}
_METRIC_FORMATS = {"ssim": "{:.4f}", "psnr": "{:.2f}", "nmse": "{:.4g}", "apsd": "{:.3g}", "cfid": "{:.3g}"}


# --------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PoolDataset:
    """One dataset of a training pool."""

    name: str
    slices: int
    volumes: int | None = None
    anatomy: str = ""
    contrasts: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True)
class PoolDescription:
    """The training pool of a model: its datasets and slice counts (filled in when a pool is built)."""

    name: str
    datasets: tuple[PoolDataset, ...]
    notes: str = ""

    @property
    def total_slices(self) -> int:
        return sum(d.slices for d in self.datasets)


@dataclass(frozen=True)
class TrainingSummary:
    """How a published checkpoint was trained: written by the training run, read by the card.

    ``checkpoint_epoch`` is the epoch whose weights are published and ``early_stopping`` says
    why training stopped there (e.g. in-distribution validation SSIM stopped improving).
    """

    recipe: str
    epochs_trained: int
    max_epochs: int | None = None
    checkpoint_epoch: int | None = None
    early_stopping: str = ""
    steps: int | None = None
    validation: dict[str, float] = field(default_factory=dict)
    hardware: str = ""
    wall_time_hours: float | None = None
    recipe_sha256: str | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.epochs_trained < 1:
            raise InputError("epochs_trained must be >= 1", field="epochs_trained", got=self.epochs_trained)
        if self.max_epochs is not None and self.max_epochs < self.epochs_trained:
            raise InputError("more epochs trained than planned", field="max_epochs",
                             expected=f">= epochs_trained ({self.epochs_trained})", got=self.max_epochs)
        if self.checkpoint_epoch is not None and not 1 <= self.checkpoint_epoch <= self.epochs_trained:
            raise InputError("checkpoint epoch outside the epochs trained", field="checkpoint_epoch",
                             expected=f"1..{self.epochs_trained}", got=self.checkpoint_epoch)
        if self.steps is not None and self.steps < 1:
            raise InputError("steps must be >= 1", field="steps", got=self.steps)
        if self.wall_time_hours is not None and not self.wall_time_hours >= 0:
            raise InputError("wall_time_hours must be >= 0", field="wall_time_hours", got=self.wall_time_hours)
        if self.recipe_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.recipe_sha256):
            raise InputError("recipe_sha256 must be 64 lowercase hex digits", field="recipe_sha256",
                             got=repr(self.recipe_sha256))


@dataclass(frozen=True)
class CheckpointFacts:
    """What a card says about one concrete checkpoint (set when pushing a run folder)."""

    weights_sha256: str
    num_parameters: int
    num_tensors: int
    mrizoo_version: str | None = None
    recipe_sha256: str | None = None


def load_training_summary(path: str | os.PathLike[str]) -> TrainingSummary:
    """Read and validate a training summary JSON file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("training summary not found", path=p) from None
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError) as err:
        raise InputError(f"not a valid JSON training summary ({err})", path=p) from None
    try:
        return from_dict(TrainingSummary, doc, source=str(p))
    except InputError as err:
        if err.path is None:
            raise InputError(err.problem, path=p, field=err.field, expected=err.expected, got=err.got) from None
        raise


def card_path(name: str, cards_dir: str | os.PathLike[str] = CARDS_DIR) -> Path:
    return Path(cards_dir) / f"{name}.md"


def training_path(name: str, cards_dir: str | os.PathLike[str] = CARDS_DIR) -> Path:
    return Path(cards_dir) / "training" / f"{name}.json"


def recipe_training_section(recipe: str | None) -> dict[str, Any] | None:
    """The ``training:`` mapping of ``recipes/<recipe>.yaml`` (None when absent or no recipe)."""
    if not recipe:
        return None
    item = importlib.resources.files("mrizoo.recipes") / f"{recipe}.yaml"
    if not item.is_file():
        return None
    source = f"recipes/{recipe}.yaml"
    doc = read_yaml(source, item.read_text())
    section = (doc or {}).get("training") if isinstance(doc, dict) else None
    if section is not None and not isinstance(section, dict):
        raise InputError("the training section must be a mapping", path=source, field="training",
                         got=type(section).__name__)
    return section


def shipped_entry_names() -> list[str]:
    """Names of the entries declared by the entry files shipped in ``recipes/`` (sorted)."""
    from mrizoo.zoo.registry import read_entry_file

    names = []
    root = importlib.resources.files("mrizoo.recipes")
    for item in root.iterdir():
        if item.name.endswith(".yaml"):
            text = item.read_text()
            if "entry" in (parse_yaml(text) or {}):
                names.append(read_entry_file(str(item), text).name)
    return sorted(names)


# --------------------------------------------------------------------------------------------- text


def _fmt_num(value: float) -> str:
    return f"{value:g}"


def _accelerations(entry: ModelEntry) -> str:
    acc = entry.task.accelerations
    if not acc:
        return "any (not tied to an acceleration)"
    return " and ".join(f"{_fmt_num(a)}x" for a in acc)


def _mask(entry: ModelEntry) -> str:
    t = entry.task
    if t.mask is None:
        return "any Cartesian sampling mask"
    text = f"`{t.mask}`"
    if t.center_fractions:
        if len(t.center_fractions) == len(t.accelerations) and len(t.accelerations) > 1:
            parts = [f"{_fmt_num(c)} at {_fmt_num(a)}x" for c, a in zip(t.center_fractions, t.accelerations)]
            text += f", fully sampled centre fraction {', '.join(parts)}"
        else:
            text += f", fully sampled centre fraction {', '.join(_fmt_num(c) for c in t.center_fractions)}"
    return text + " (columns = phase-encode direction)"


def _coils(entry: ModelEntry) -> str:
    t = entry.task
    if t.coils == "single":
        return "single-coil"
    if t.num_coils:
        return f"multi-coil, exactly {t.num_coils} coils (compress other counts to {t.num_coils} virtual coils)"
    return "multi-coil, any number of coils"


def _anatomy(entry: ModelEntry) -> str:
    t = entry.task
    anatomy = {"any": "any (no training data)", "mixed": "mixed (several anatomies)"}.get(t.anatomy, t.anatomy)
    return anatomy + (f"; contrasts {', '.join(t.contrasts)}" if t.contrasts else "")


def _is_posterior(entry: ModelEntry) -> bool:
    return "posterior" in entry.tags or entry.model.arch.split("_")[0] in ("rcgan", "ncsnv2")


def _image_size(entry: ModelEntry) -> str | None:
    m = re.search(r"(\d+)\s*x\s*(\d+)", entry.task.data)
    return f"{m.group(1)}x{m.group(2)}" if m else None


def _weights_line(entry: ModelEntry) -> str:
    w = entry.weights
    if w.kind == "builtin" and "untrained" in entry.tags:
        return "none needed (un-trained network: its weights are fitted to each scan's own measurements)"
    if w.kind == "builtin":
        return "none needed (classical method without learned parameters)"
    if w.kind == "upstream":
        return f"official checkpoint of the original authors, converted to safetensors (converter `{w.converter}`)"
    if w.kind == "hub":
        return f"`{w.repo_id}` at revision `{w.revision}` on the Hugging Face Hub"
    if w.kind == "package":
        return f"shipped inside the mrizoo package (`mrizoo/weights/{w.path}/`, sha256 pinned)"
    how = f"the recipe `{entry.recipe}` trains them" if entry.recipe else "no recipe trains them yet"
    return f"not published yet ({how})"


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return "Not stated."
    first = text.split(" ", 1)[0]
    if first.islower():  # "diverse pool ..." -> "Diverse pool ...", but "fastMRI ..." stays
        text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _yaml_block(data: Any) -> str:
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100).rstrip()
    return f"```yaml\n{text}\n```"


def _cite(entry: ModelEntry) -> str:
    labels = [_PAPER_LABELS[p] for p in entry.papers if p in _PAPER_LABELS]
    return f" ({'; '.join(labels)})" if labels else ""


def _section_what(entry: ModelEntry, config: Any, arch_description: str, load_spec: str | None = None) -> str:
    t = entry.task
    kind = "posterior sampler" if _is_posterior(entry) else "reconstruction method"
    domain = "single-coil" if t.coils == "single" else "multi-coil"
    out = (f"Reconstructs {domain} 2D Cartesian MRI from undersampled k-space: a {kind} "
           f"producing the {_TARGETS[t.target]}.")
    rows = [
        ["Architecture", f"`{entry.model.arch}`" + (f" (preset `{entry.model.preset}`)" if entry.model.preset else "")
         + f": {arch_description}"],
        ["Anatomy", _anatomy(entry)],
        ["Acceleration", _accelerations(entry)],
        ["Mask", _mask(entry)],
        ["Coils", _coils(entry)],
        ["Target", f"`{t.target}`: {_TARGETS[t.target]}"],
        ["Weights", "this checkpoint (`model.safetensors`, sha256 below)" if load_spec else _weights_line(entry)],
    ]
    if _image_size(entry):
        rows.insert(5, ["Image size", f"{_image_size(entry)} (as trained)"])
    parts = ["## What the model does", "", out, "", _table(["Property", "Value"], rows)]
    if config is not None:
        parts += ["", "Architecture configuration:", "", _yaml_block(to_dict(config))]
    return "\n".join(parts)


def _section_use(entry: ModelEntry, checkpoint: CheckpointFacts | None, load_spec: str | None = None) -> str:
    name = entry.name
    parts = [
        "## How to use",
        "",
        "```python",
        "import mrizoo",
        f'model = mrizoo.load("{load_spec or name}")',
        "image = model.reconstruct(kspace, mask)",
        "```",
        "",
        "`kspace`: complex64 tensor `[B, C, H, W]` (centred k-space, zeros where not sampled); "
        "`mask`: bool `[B, H, W]` or `[H, W]`, True where sampled; `image`: float32 magnitude `[B, H, W]`.",
    ]
    if _is_posterior(entry):
        parts += ["", "`model.reconstruct` returns the magnitude of the mean of a few posterior samples; "
                      "`model.sample(kspace, mask, n=32)` returns `n` samples with their pixel-wise mean and "
                      "standard deviation."]
    if not entry.weights.available and checkpoint is None:
        parts += ["", f"No weights are published yet, so `mrizoo.load` raises until they are; "
                      f'`mrizoo.create("{name}")` builds the model with random weights.']
    if load_spec:
        parts += ["", f"These weights are not the zoo's `{name}` weights: `mrizoo.load(\"{name}\")` loads those. "
                      "This repository holds a checkpoint in mrizoo's format (`config.json` + `model.safetensors`, "
                      "sha256 checked at every load); a downloaded copy loads with `mrizoo.load(folder)`."]
    elif entry.weights.kind == "package":
        parts += ["", f"The weights ship inside the mrizoo package (`mrizoo/weights/{entry.weights.path}/`): "
                      "`mrizoo.load` needs no network and checks their sha256 before loading."]
    elif checkpoint is not None:
        parts += ["", "This repository holds a checkpoint in mrizoo's format (`config.json` + "
                      "`model.safetensors`); a downloaded copy loads with `mrizoo.hub.from_pretrained(folder)`."]
    return "\n".join(parts)


def _section_data(entry: ModelEntry, pool: PoolDescription | None, training: dict[str, Any] | None) -> str:
    parts = ["## Training data", ""]
    w, t = entry.weights, entry.task
    if w.kind == "builtin" and "untrained" in entry.tags:
        parts.append("None: an un-trained network, fitted from a random initialisation to the measurements of the "
                     "scan it reconstructs; no other data is ever used.")
        return "\n".join(parts)
    if w.kind == "builtin":
        parts.append("None: a classical method without learned parameters.")
        return "\n".join(parts)
    if w.kind == "upstream":
        parts.append(f"{_sentence(t.data)} The original authors trained these weights{_cite(entry)}; "
                     "mrizoo did not retrain them.")
    else:
        parts.append(_sentence(t.data))
    if t.contrasts:
        parts += ["", f"Contrasts: {', '.join(t.contrasts)}."]
    pool_name = training.get("pool") if training else None
    if isinstance(pool_name, dict):
        pool_name = pool_name.get("name")
    if pool is not None:
        rows = [[d.name, d.anatomy or "-", ", ".join(d.contrasts) or "-",
                 "-" if d.volumes is None else f"{d.volumes:,}", f"{d.slices:,}"] for d in pool.datasets]
        rows.append(["**total**", "", "", "", f"**{pool.total_slices:,}**"])
        parts += ["", f"Training pool `{pool.name}` ({len(pool.datasets)} datasets, {pool.total_slices:,} slices):",
                  "", _table(["Dataset", "Anatomy", "Contrasts", "Volumes", "Slices"], rows)]
        if pool.notes:
            parts += ["", pool.notes]
    elif pool_name or "pool" in entry.tags:
        named = f" `{pool_name}`" if pool_name else ""
        parts += ["", f"The model trains on the data pool{named} its recipe selects. The per-dataset table "
                      "(datasets and slice counts) is added here once the pool is built."]
    return "\n".join(parts)


def _section_training(entry: ModelEntry, training: dict[str, Any] | None, summary: TrainingSummary | None) -> str:
    parts = ["## Training procedure", ""]
    w = entry.weights
    recipe = f"`{entry.recipe}` (`recipes/{entry.recipe}.yaml`)" if entry.recipe else None
    if w.kind == "builtin" and "untrained" in entry.tags:
        parts.append("No training. For each slice a fresh, seeded network is fitted to the measured k-space by Adam; a "
                     "seeded part of the measured locations is held out, and the weights with the lowest held-out "
                     "error are kept (fitting stops when it has not improved for a while; see the configuration "
                     "above).")
        return "\n".join(parts)
    if w.kind == "builtin":
        parts.append("No training: the method has fixed parameters (see the configuration above).")
        return "\n".join(parts)
    if w.kind == "upstream":
        parts.append(f"Trained by the original authors{_cite(entry)}; mrizoo downloads their published weights "
                     f"({w.url}) and converts them to safetensors with the converter `{w.converter}`.")
        return "\n".join(parts)
    if summary is not None:
        epochs = f"{summary.epochs_trained} epochs"
        if summary.max_epochs is not None:
            epochs += f" of {summary.max_epochs} planned"
        line = f"Trained with the recipe `{summary.recipe}` for {epochs}"
        line += f" ({summary.steps:,} steps)." if summary.steps else "."
        parts.append(line)
        if summary.checkpoint_epoch is not None:
            parts += ["", f"Published weights: epoch {summary.checkpoint_epoch}."
                      + (f" Early stopping: {_sentence(summary.early_stopping)}" if summary.early_stopping else "")]
        elif summary.early_stopping:
            parts += ["", f"Early stopping: {_sentence(summary.early_stopping)}"]
        if summary.validation:
            vals = ", ".join(f"{_METRIC_HEADERS.get(k, k)} {_fmt_metric(k, v)}"
                             for k, v in sorted(summary.validation.items()))
            parts += ["", f"Validation at the published epoch: {vals}."]
        extra = []
        if summary.hardware:
            extra.append(f"hardware: {summary.hardware}")
        if summary.wall_time_hours is not None:
            extra.append(f"wall time: {summary.wall_time_hours:.1f} h")
        if summary.recipe_sha256:
            extra.append(f"recipe sha256: `{summary.recipe_sha256}`")
        if extra:
            text = "; ".join(extra)
            parts += ["", text[0].upper() + text[1:] + "."]
        if summary.notes:
            parts += ["", _sentence(summary.notes)]
    elif w.kind in ("hub", "package"):
        parts.append(f"Trained with the recipe {recipe}; no training summary is recorded for these weights."
                     if recipe else "No training summary is recorded for these weights.")
    else:
        parts.append("Not trained yet. " + (f"The recipe {recipe} trains it." if recipe
                                            else "No recipe trains it yet."))
    if training:
        facts = []
        if "epochs" in training or "max_epochs" in training:
            facts.append(f"epochs: {training.get('epochs', training.get('max_epochs'))}")
        stop = training.get("early_stopping")
        if stop:
            facts.append(f"early stopping: {stop if isinstance(stop, str) else json.dumps(stop, sort_keys=True)}")
        parts += ["", "Recipe" + (f" ({'; '.join(facts)})" if facts else "") + ":", "", _yaml_block(training)]
    elif recipe and summary is None:
        parts += ["", "The recipe file does not declare its training section yet."]
    return "\n".join(parts)


def _fmt_metric(key: str, value: float) -> str:
    return _METRIC_FORMATS.get(key, "{:.4g}").format(value)


def _metric_cell(d: DatasetResult, key: str) -> str:
    if key not in d.metrics:
        return "-"
    text = _fmt_metric(key, d.metrics[key])
    if key in d.std:
        text += f" ± {_fmt_metric(key, d.std[key])}"
    return text


def _section_evaluation(entry: ModelEntry, results: EvaluationResults | None) -> str:
    parts = ["## Evaluation", ""]
    if results is None:
        parts.append("Not evaluated yet.")
        return "\n".join(parts)
    columns = list(REQUIRED_METRICS) + (list(POSTERIOR_METRICS) if _is_posterior(entry) else [])
    extra = sorted({k for d in results.datasets for k in d.metrics} - set(columns) - set(CALIBRATION_KEYS))
    columns += extra
    header = ["Dataset", "Split", "R", "Mask", "Volumes", "Slices"] + [_METRIC_HEADERS.get(c, c) for c in columns]
    parts.append("Means over volumes (± standard deviation where recorded), fastMRI conventions "
                 "(`mrizoo.metrics`).")
    for title, group in (("In distribution", results.in_distribution()),
                         ("Out of distribution", results.out_of_distribution())):
        parts += ["", f"### {title}", ""]
        if not group:
            parts.append("No results.")
            continue
        rows = []
        for d in group:
            mask = d.mask + (f" ({_fmt_num(d.center_fraction)})" if d.center_fraction is not None else "")
            rows.append([d.dataset, d.split, f"{_fmt_num(d.acceleration)}x", mask, f"{d.volumes:,}",
                         f"{d.slices:,}"] + [_metric_cell(d, c) for c in columns])
        parts.append(_table(header, rows))
    notes = [f"{d.dataset}: {d.notes}" for d in results.datasets if d.notes]
    samples = sorted({d.samples for d in results.datasets if d.samples is not None})
    if samples and _is_posterior(entry):
        notes.append(f"Posterior metrics use {', '.join(map(str, samples))} samples per slice.")
    if results.notes:
        notes.append(results.notes)
    if notes:
        parts += [""] + [f"- {n}" for n in notes]
    return "\n".join(parts)


def _section_limits(entry: ModelEntry) -> str:
    t, w = entry.task, entry.weights
    items = ["Research use only. Not a medical device and not for clinical diagnosis or treatment decisions."]
    if "demo" in entry.tags:
        items.append("**Demo quality.** A small model trained for about an hour on a two-core CPU on the demo pool (a few "
                     "template and real brains of installed packages, with simulated coils, phase and noise). It "
                     "shows the workflow (load, reconstruct, sample, evaluate) offline; it is not a baseline for "
                     "research results: on real scans it loses PSNR to L1-wavelet (see the evaluation), and the "
                     "models trained on the diverse pool are the ones to use for research.")
    if w.kind != "builtin":
        seen = f"{t.anatomy} ({', '.join(t.contrasts)})" if t.contrasts else t.anatomy
        if t.anatomy == "mixed":
            items.append(f"Trained on a diverse pool of anatomies and contrasts ({', '.join(t.contrasts)}). Diverse "
                         "training improves robustness to distribution shifts (Lin & Heckel, 2024) but does not "
                         "remove them: anatomies, contrasts, scanners and field strengths outside the pool can "
                         "lower the quality.")
        else:
            items.append(f"Trained on {seen} only: other anatomies, contrasts, scanners and field strengths are "
                         "distribution shifts that lower the quality, often with plausible-looking artefacts.")
        if t.accelerations:
            acc = " and ".join(f"{_fmt_num(a)}x" for a in t.accelerations)
            items.append(f"Trained for {acc} acceleration; other accelerations (fewer or more sampled lines) "
                         "are out of distribution.")
        else:
            items.append("Not tied to an acceleration or mask, but quality drops as the acceleration grows.")
        if t.mask:
            items.append(f"Trained with `{t.mask}` masks; other sampling patterns (random vs equispaced, "
                         "different centre fractions, 2D or horizontal masks) are out of distribution.")
        if t.num_coils:
            items.append(f"Expects exactly {t.num_coils} coils: compress data with more coils "
                         f"(`mrizoo.coil_compress`); data with fewer coils is out of distribution.")
        if _image_size(entry):
            items.append(f"Trained on {_image_size(entry)} images; other matrix sizes need cropping or padding.")
        items.append("Learned reconstructions can hallucinate or remove small structures, most of all out of "
                     "distribution; compare with the zero-filled or a classical reconstruction.")
    elif entry.model.arch == "zerofilled":
        items.append("No learned parameters and no regularisation: aliasing artefacts grow with the acceleration. "
                     "It is the floor other methods are compared against.")
    elif "untrained" in entry.tags:
        items.append("No training data, so no training-distribution shift; the network's structure is the prior. "
                     "Fitting takes seconds to minutes per slice (hundreds of network steps), far slower than one "
                     "network pass, and the result depends on the seed and on when the held-out error stops the fit.")
    else:
        items.append("No learned parameters, so no training-distribution shift, but its regularisation weight is "
                     "fixed rather than tuned per dataset, and it iterates (slower than one network pass). "
                     "In distribution, learned methods are usually more accurate at high accelerations.")
    if t.target == "rss":
        items.append("Outputs an RSS-like magnitude: score it against RSS references; against MVUE/SENSE "
                     "references the numbers are lower (the two targets differ, SSIM ~0.8 on T2 brains).")
    elif t.target == "mvue":
        items.append("Outputs an MVUE-style image: score it against MVUE references, not against fastMRI's "
                     "RSS targets (the two differ, SSIM ~0.8 on T2 brains).")
    if _is_posterior(entry):
        items.append("Posterior samples and their spread reflect the trained model, not a calibrated clinical "
                     "uncertainty.")
    if "ncsnv2" == entry.model.arch.split("_")[0]:
        items.append("Posterior sampling by annealed Langevin dynamics takes minutes per slice on a GPU.")
    if w.kind == "upstream" and not (w.converter or "").startswith("fastmri"):
        items.append(f"The weights come from the original authors{_cite(entry)}, published under the "
                     f"{entry.license.upper()} licence at {w.url}; mrizoo only converts them. Upstream publishes no "
                     "checksums: the sha256 of the first download is recorded with the converted weights, which are "
                     "checked at every load.")
    elif w.kind == "upstream":
        items.append(f"The weights come from the fastMRI authors{_cite(entry)}, published at {w.url}; mrizoo "
                     "only converts them. Upstream publishes no checksums. The fastMRI data are shared under "
                     "the fastMRI dataset sharing agreement.")
    return "\n".join(["## Limitations and intended use", ""] + [f"- {i}" for i in items])


def _section_checkpoint(checkpoint: CheckpointFacts) -> str:
    rows = [["`model.safetensors` sha256", f"`{checkpoint.weights_sha256}`"],
            ["Parameters", f"{checkpoint.num_parameters:,} in {checkpoint.num_tensors} tensors"]]
    if checkpoint.mrizoo_version:
        rows.append(["Written by", f"mrizoo {checkpoint.mrizoo_version}"])
    if checkpoint.recipe_sha256:
        rows.append(["Recipe sha256", f"`{checkpoint.recipe_sha256}`"])
    return "\n".join(["## Checkpoint", "", _table(["Property", "Value"], rows)])


def _section_citation(entry: ModelEntry) -> str:
    unknown = [p for p in entry.papers if p not in CITATIONS]
    if unknown:
        raise InputError("no BibTeX for paper key(s)", field="entry.papers",
                         expected=f"keys of mrizoo.hub.cards.CITATIONS {sorted(CITATIONS)}", got=unknown)
    parts = ["## Citation", ""]
    if not entry.papers:
        parts.append("This entry cites no paper.")
        return "\n".join(parts)
    parts += ["If you use this model, please cite:", "", "```bibtex",
              "\n\n".join(CITATIONS[p] for p in entry.papers), "```"]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------- cards


def _dataset_ids(entry: ModelEntry, pool: PoolDescription | None) -> list[str] | None:
    if entry.weights.kind == "builtin":
        return None
    if pool is not None:
        return [re.sub(r"[^a-z0-9]+", "-", d.name.lower()).strip("-") for d in pool.datasets]
    if "fastmri" in entry.task.data.lower() and entry.task.anatomy in ("knee", "brain"):
        return [f"fastmri-{entry.task.anatomy}"]
    return None


def _eval_results(entry: ModelEntry, results: EvaluationResults) -> list[Any]:
    from huggingface_hub import EvalResult

    out = []
    for d in results.datasets:
        config = f"r{_fmt_num(d.acceleration)}-{d.mask}"
        args = {"distribution": d.distribution, "volumes": d.volumes, "slices": d.slices}
        if d.center_fraction is not None:
            args["center_fraction"] = d.center_fraction
        known = [k for k in _METRIC_HEADERS if k in d.metrics]
        for key in known + sorted(set(d.metrics) - set(known)):
            out.append(EvalResult(
                task_type="mri-reconstruction",
                task_name=f"Accelerated MRI reconstruction ({_fmt_num(d.acceleration)}x, {d.mask})",
                dataset_type=d.slug,
                dataset_name=d.dataset,
                dataset_config=config,
                dataset_split=d.split,
                dataset_args=args,
                metric_type=key,
                metric_name=_METRIC_HEADERS.get(key, key),
                metric_value=d.metrics[key],
            ))
    return out


def _fine_tunes(recipe_name: str, entry_name: str) -> bool:
    """Whether the shipped recipe ``recipe_name`` trains (fine-tunes) the architecture of ``entry_name``."""
    from mrizoo.train.recipe import load_recipe

    try:
        recipe, _ = load_recipe(recipe_name)
    except Exception:  # unknown or invalid recipe: not a fine-tuning recipe of this entry
        return False
    return recipe.model == entry_name and recipe.init_from is not None


def build_model_card(
    entry: ModelEntry,
    *,
    config: Any = None,
    results: EvaluationResults | None = None,
    training_summary: TrainingSummary | None = None,
    pool: PoolDescription | None = None,
    recipe_training: dict[str, Any] | None = None,
    checkpoint: CheckpointFacts | None = None,
    load_spec: str | None = None,
) -> Any:
    """The :class:`huggingface_hub.ModelCard` of ``entry`` (metadata + the sections, deterministic).

    ``load_spec`` (e.g. ``hf-hub:org/repo``) makes it the card of one checkpoint that is not the
    entry's published weights: the card says how to load that checkpoint, not the zoo name.
    """
    from huggingface_hub import ModelCard, ModelCardData

    from mrizoo.zoo.architectures import ARCHITECTURES

    if results is not None and results.model != entry.name:
        raise InputError("evaluation results are for another model", field="model", expected=entry.name,
                         got=results.model)
    if (training_summary is not None and entry.recipe and training_summary.recipe != entry.recipe
            and not _fine_tunes(training_summary.recipe, entry.name)):
        raise InputError("training summary is for another recipe", field="recipe",
                         expected=f"{entry.recipe} or a fine-tuning recipe of {entry.name}",
                         got=training_summary.recipe)
    arch = ARCHITECTURES.get(entry.model.arch)
    tags = ["mrizoo", "mri", "mri-reconstruction", "accelerated-mri", entry.model.arch.split("_")[0]]
    if entry.task.anatomy not in ("any", "mixed"):
        tags.append(entry.task.anatomy)
    if _is_posterior(entry):
        tags.append("posterior-sampling")
    tags += list(entry.tags)
    data = ModelCardData(
        license=entry.license,
        library_name="mrizoo",
        tags=tags,
        datasets=_dataset_ids(entry, pool),
        metrics=(sorted({k for d in results.datasets for k in d.metrics}) if results else None),
        model_name=entry.name if results else None,
        eval_results=_eval_results(entry, results) if results else None,
    )
    sections = [
        f"# {entry.name}\n\n{entry.description}",
        _section_what(entry, config, arch.description if arch else "custom architecture", load_spec),
        _section_use(entry, checkpoint, load_spec),
        _section_data(entry, pool, recipe_training),
        _section_training(entry, recipe_training, training_summary),
        _section_evaluation(entry, results),
        *filter(None, [section_calibration(results)]),
        *filter(None, [section_adaptation(entry, results)]),
        _section_limits(entry),
    ]
    if checkpoint is not None:
        sections.append(_section_checkpoint(checkpoint))
    sections.append(_section_citation(entry))
    body = "\n\n".join(sections)
    # the metadata block is rendered by ModelCardData (its YAML dump and model-index conversion)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def render_card(entry: ModelEntry, **inputs: Any) -> str:
    """The card text of ``entry`` (see :func:`build_model_card` for ``inputs``), ending in one newline."""
    return str(build_model_card(entry, **inputs)).rstrip("\n") + "\n"


def _load_optional(path: Path | None, default: Path, loader: Any) -> Any:
    if path is not None:
        return loader(path)
    return loader(default) if default.is_file() else None


def card_for(
    name: str,
    *,
    cards_dir: str | os.PathLike[str] = CARDS_DIR,
    results: str | os.PathLike[str] | EvaluationResults | None = None,
    training: str | os.PathLike[str] | TrainingSummary | None = None,
    pool: PoolDescription | None = None,
) -> str:
    """The card text of zoo model ``name``.

    ``results``/``training`` default to ``<cards_dir>/results/<name>.json`` and
    ``<cards_dir>/training/<name>.json`` when those files exist.
    """
    from mrizoo.zoo import REGISTRY, model_config

    entry = REGISTRY.get(name)
    checkpoint = _shipped_checkpoint_facts(entry)
    if not isinstance(results, EvaluationResults):
        results = _load_optional(None if results is None else Path(results), results_path(name, cards_dir),
                                 load_results)
    if not isinstance(training, TrainingSummary):
        training = _load_optional(None if training is None else Path(training), training_path(name, cards_dir),
                                  load_training_summary)
    return render_card(entry, config=model_config(name), results=results, training_summary=training, pool=pool,
                       recipe_training=recipe_training_section(entry.recipe), checkpoint=checkpoint)


def _shipped_checkpoint_facts(entry: ModelEntry) -> CheckpointFacts | None:
    """Checkpoint facts of weights that ship inside the package (None for other sources)."""
    if entry.weights.kind != "package":
        return None
    from mrizoo.hub.push import check_checkpoint
    from mrizoo.weights import package_checkpoint

    folder = package_checkpoint(str(entry.weights.path), str(entry.weights.sha256), what=entry.name)
    return check_checkpoint(folder).facts


def write_card(text: str, path: str | os.PathLike[str]) -> bool:
    """Write a card atomically; returns False (and leaves the file alone) when the text is unchanged."""
    p = Path(path)
    if p.is_file() and p.read_text(encoding="utf-8") == text:
        return False
    atomic_write_text(p, text)
    return True


def regenerate_cards(
    names: Iterable[str],
    *,
    cards_dir: str | os.PathLike[str] = CARDS_DIR,
    out_dir: str | os.PathLike[str] | None = None,
    results: str | os.PathLike[str] | None = None,
    training: str | os.PathLike[str] | None = None,
) -> dict[str, bool]:
    """Regenerate the cards of ``names`` into ``out_dir`` (default ``cards_dir``).

    Every card is generated before any is written, so one bad input writes nothing.
    Returns name -> whether its file changed.
    """
    names = list(names)
    if (results is not None or training is not None) and len(names) != 1:
        raise InputError("--results/--training apply to one model, not to several",
                         expected="one name", got=f"{len(names)} names")
    texts = {n: card_for(n, cards_dir=cards_dir, results=results, training=training) for n in names}
    out = Path(out_dir if out_dir is not None else cards_dir)
    return {n: write_card(text, card_path(n, out)) for n, text in texts.items()}
