"""Small text pieces every card section uses: number and metric formats, Markdown tables, and the
plain-words description of a zoo entry's task (acceleration, mask, coils, anatomy, weights)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from mrizoo.cards.bib import PAPER_LABELS
from mrizoo.models.registry import ARCHITECTURES
from mrizoo.zoo.entry import ModelEntry

__all__ = ["TARGETS", "METRIC_HEADERS", "fmt_num", "fmt_metric", "table", "yaml_block", "sentence", "cite",
           "is_posterior", "family", "accelerations", "mask_text", "coils_text", "anatomy_text", "image_size",
           "weights_line"]

TARGETS = {
    "rss": "RSS magnitude image (root-sum-of-squares of the coil images)",
    "mvue": "MVUE image (coil images combined with ESPIRiT sensitivity maps, SENSE-style)",
    "complex": "complex-valued image",
}

METRIC_HEADERS = {"ssim": "SSIM", "psnr": "PSNR (dB)", "nmse": "NMSE", "apsd": "APSD", "cfid": "CFID"}
_METRIC_FORMATS = {"ssim": "{:.4f}", "psnr": "{:.2f}", "nmse": "{:.4g}", "apsd": "{:.3g}", "cfid": "{:.3g}"}


def fmt_num(value: float) -> str:
    return f"{value:g}"


def fmt_metric(key: str, value: float) -> str:
    return _METRIC_FORMATS.get(key, "{:.4g}").format(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def yaml_block(data: Any) -> str:
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100).rstrip()
    return f"```yaml\n{text}\n```"


def sentence(text: str) -> str:
    """``text`` as one sentence: capitalised unless it starts with a mixed-case name, ending in '.'."""
    text = text.strip()
    if not text:
        return "Not stated."
    first = text.split(" ", 1)[0]
    if first.islower():  # "diverse pool ..." -> "Diverse pool ...", but "fastMRI ..." stays
        text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def cite(entry: ModelEntry) -> str:
    """`` (Author et al., venue year; ...)`` for the entry's papers, or an empty string."""
    labels = [PAPER_LABELS[p] for p in entry.papers if p in PAPER_LABELS]
    return f" ({'; '.join(labels)})" if labels else ""


def family(entry: ModelEntry) -> str:
    """The architecture family of an entry (``rcgan_small`` -> ``rcgan``)."""
    return entry.model.arch.split("_")[0]


def is_posterior(entry: ModelEntry) -> bool:
    return "posterior" in entry.tags or entry.model.arch in ARCHITECTURES and ARCHITECTURES[entry.model.arch].is_posterior


def accelerations(entry: ModelEntry) -> str:
    acc = entry.task.accelerations
    if not acc:
        return "any (not tied to an acceleration)"
    return " and ".join(f"{fmt_num(a)}x" for a in acc)


def trained_masks(recipe_training: dict[str, Any] | None) -> str | None:
    """The mask families and accelerations a recipe mixes in training (``masks.mix``), e.g.
    ``"`equispaced_fraction` (4x), `poisson2d` (4x, 8x)"``; None without a mix."""
    masks = (recipe_training or {}).get("masks")
    mix = masks.get("mix") if isinstance(masks, dict) else None
    if not mix:
        return None
    parts = []
    for m in [masks, *mix]:
        acc = ", ".join(f"{fmt_num(float(a))}x" for a in (m.get("accelerations") or [4.0]))
        parts.append(f"`{m.get('type', 'equispaced_fraction')}` ({acc})")
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def mask_text(entry: ModelEntry) -> str:
    t = entry.task
    if t.mask is None:
        return "any Cartesian sampling mask"
    text = f"`{t.mask}`"
    if t.center_fractions:
        if len(t.center_fractions) == len(t.accelerations) and len(t.accelerations) > 1:
            parts = [f"{fmt_num(c)} at {fmt_num(a)}x" for c, a in zip(t.center_fractions, t.accelerations)]
            text += f", fully sampled centre fraction {', '.join(parts)}"
        else:
            text += f", fully sampled centre fraction {', '.join(fmt_num(c) for c in t.center_fractions)}"
    return text + " (columns = phase-encode direction)"


def coils_text(entry: ModelEntry) -> str:
    t = entry.task
    if t.coils == "single":
        return "single-coil"
    if t.num_coils:
        return f"multi-coil, exactly {t.num_coils} coils (compress other counts to {t.num_coils} virtual coils)"
    return "multi-coil, any number of coils"


def anatomy_text(entry: ModelEntry) -> str:
    t = entry.task
    anatomy = {"any": "any (no training data)", "mixed": "mixed (several anatomies)"}.get(t.anatomy, t.anatomy)
    return anatomy + (f"; contrasts {', '.join(t.contrasts)}" if t.contrasts else "")


def image_size(entry: ModelEntry) -> str | None:
    """The training matrix size named in ``task.data``: ``"320x320"``, or a range ``"192x160 to 240x192"``."""
    m = re.search(r"(\d+)\s*x\s*(\d+)(?:\s*(?:-|to)\s*(\d+)\s*x\s*(\d+))?", entry.task.data)
    if not m:
        return None
    size = f"{m.group(1)}x{m.group(2)}"
    return size if m.group(3) is None else f"{size} to {m.group(3)}x{m.group(4)}"


def weights_line(entry: ModelEntry) -> str:
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
