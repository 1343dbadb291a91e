"""Columns of the slice index and the normalisation of per-volume metadata.

One vocabulary for pool files, the index and dataset catalogs: dataset names are lower-case
snake (``fastmri_knee``, ``cc359_sagittal``, ``7t_axial``), anatomy and view lower case,
contrasts upper case (``PD``, ``PDFS``, ``T1``, ``T1POST``, ``T2``, ``FLAIR``, ``GRE``),
field strengths in tesla at their nominal value (a header's 2.89362 T is 3.0), scanner models
as their ISMRMRD ``systemModel`` (``Skyra``, ``Aera``, ``Prisma_fit``, ``Biograph_mMR``,
``Avanto``). Matching in selections ignores the case of strings.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from mrizoo.errors import InputError

__all__ = [
    "KNOWN_DATASETS",
    "METADATA_KEYS",
    "NUMERIC_COLUMNS",
    "SELECTABLE_COLUMNS",
    "STRING_COLUMNS",
    "contrast_from_protocol",
    "dataset_defaults",
    "header_metadata",
    "nominal_field_strength",
    "normalize_metadata",
    "view_from_protocol",
]

#: The 17 datasets of Lin & Heckel (ICML 2024), Table 1, under the names pools use.
KNOWN_DATASETS = (
    "fastmri_knee", "fastmri_brain", "fastmri_prostate", "m4raw", "skm_tea",
    "stanford3d_axial", "stanford3d_coronal", "stanford3d_sagittal",
    "7t_axial", "7t_coronal", "7t_sagittal",
    "cc359_axial", "cc359_coronal", "cc359_sagittal",
    "stanford2d", "nyu", "m4raw_gre",
)

#: Text columns; ``""`` means unknown.
STRING_COLUMNS = (
    "dataset", "anatomy", "view", "contrast", "vendor", "scanner", "protocol", "subject", "split",
)
#: Numeric columns and their Python type; an unknown field strength is NaN.
NUMERIC_COLUMNS: dict[str, type] = {"field_strength": float, "coils": int, "height": int, "width": int}
#: Columns a selection may name.
SELECTABLE_COLUMNS = (*STRING_COLUMNS, "volume", *NUMERIC_COLUMNS)
#: Keys a metadata mapping (catalog, sidecar, caller) may set for a volume.
METADATA_KEYS = (*STRING_COLUMNS, "field_strength", "skip_first", "skip_last")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_NOMINAL_TESLA = (0.3, 0.35, 0.5, 0.55, 1.0, 1.5, 3.0, 5.0, 7.0, 9.4, 10.5, 11.7)
_VIEW_PREFIX = (("SAG", "sagittal"), ("COR", "coronal"), ("AX", "axial"), ("TRA", "axial"))
_VIEWS = ("axial", "coronal", "sagittal", "various")


def nominal_field_strength(value: Any) -> float:
    """Tesla rounded to the nearest common magnet (within 10 %), else to 0.01 T; NaN if unknown."""
    try:
        tesla = float(value)
    except (TypeError, ValueError):
        return math.nan
    if not math.isfinite(tesla) or tesla <= 0:
        return math.nan
    near = min(_NOMINAL_TESLA, key=lambda t: abs(t - tesla))
    return near if abs(near - tesla) <= 0.1 * near else round(tesla, 2)


def view_from_protocol(protocol: str) -> str:
    """``axial``/``coronal``/``sagittal`` from a protocol prefix (``AXT2``, ``CORPD_FBK``), else ``""``."""
    p = protocol.strip().upper()
    for prefix, view in _VIEW_PREFIX:
        if p.startswith(prefix):
            return view
    return ""


def contrast_from_protocol(protocol: str) -> str:
    """Contrast named by a fastMRI-style protocol: ``CORPDFS_FBK`` -> ``PDFS``, ``AXT1POST`` ->
    ``T1POST``, ``AXFLAIR`` -> ``FLAIR``; ``""`` when the name does not follow that pattern."""
    p = protocol.strip().upper()
    for prefix, _ in _VIEW_PREFIX:
        if p.startswith(prefix):
            p = p[len(prefix):]
            break
    p = re.sub(r"_?FBK$", "", p).strip("_ ")
    return p if re.fullmatch(r"(PD|PDFS|T1|T1PRE|T1POST|T2|T2FS|FLAIR|GRE)", p) else ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def header_metadata(xml: str | bytes) -> dict[str, Any]:
    """Vendor, scanner, field strength and protocol from an ISMRMRD XML header (missing ones left out)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    found: dict[str, str] = {}
    for node in root.iter():
        name = _local(node.tag)
        if name in ("systemVendor", "systemModel", "systemFieldStrength_T", "protocolName") and node.text:
            found.setdefault(name, node.text.strip())
    out: dict[str, Any] = {}
    if found.get("systemVendor"):
        out["vendor"] = found["systemVendor"]
    if found.get("systemModel"):
        out["scanner"] = found["systemModel"]
    if "systemFieldStrength_T" in found:
        tesla = nominal_field_strength(found["systemFieldStrength_T"])
        if not math.isnan(tesla):
            out["field_strength"] = tesla
    if found.get("protocolName"):
        out["protocol"] = found["protocolName"]
    return out


def _text(value: Any, key: str, where: str | None) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError("must be a single text value", path=where, field=key,
                         got=f"{type(value).__name__} {value!r}")
    return str(value).strip()


def normalize_metadata(
    meta: Mapping[str, Any], *, source: str | None = None, strict: bool = True
) -> dict[str, Any]:
    """Validated, canonical copy of a metadata mapping (keys of :data:`METADATA_KEYS`).

    ``strict``: unknown keys raise :class:`InputError` naming ``source``; otherwise they are
    dropped (for catalog entries that carry more than the index stores).
    """
    if not isinstance(meta, Mapping):
        raise InputError("metadata must be a mapping", path=source, got=type(meta).__name__)
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if key not in METADATA_KEYS:
            if strict:
                raise InputError("unknown metadata key", path=source, field=str(key),
                                 expected=f"one of {list(METADATA_KEYS)}")
            continue
        if value is None:
            continue
        if key in ("skip_first", "skip_last"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError("must be a whole number >= 0", path=source, field=key, got=repr(value))
            out[key] = int(value)
        elif key == "field_strength":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InputError("must be a positive number of tesla", path=source, field=key, got=repr(value))
            out[key] = nominal_field_strength(value)
        else:
            text = _text(value, key, source)
            if key == "split":
                text = text.lower()
            if key in ("dataset", "split") and text and not _NAME.match(text):
                raise InputError("must be lower-case letters, digits and '_'", path=source, field=key,
                                 expected="e.g. 'fastmri_knee' or 'train'", got=repr(text))
            if key in ("anatomy", "view"):
                text = text.lower()
            elif key == "contrast":
                text = text.upper()
            if key == "view" and text and text not in _VIEWS:
                raise InputError("unknown view", path=source, field=key, expected=f"one of {list(_VIEWS)}",
                                 got=repr(text))
            out[key] = text
    return out


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _single(value: Any, attr: str) -> Any:
    """The one plain value of ``value``: itself, the item of a one-item list, or that item's ``attr``
    (``Share(name='PD')`` -> ``'PD'``); None when there are several or none."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            return None
        value = value[0]
    if value is not None and not isinstance(value, (str, int, float)):
        value = _get(value, attr)
    return value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None


def dataset_defaults(entry: Any) -> dict[str, Any]:
    """Dataset-level metadata from a catalog entry (an object or a mapping).

    Reads ``anatomy``, ``vendor``, ``view`` (or a one-item ``views`` of objects with
    ``name``), ``contrast`` (or a one-item ``contrasts``, items may have ``name``),
    ``field_strength`` (or a one-item ``field_strengths``, items may have ``tesla``; text
    such as ``"3T"`` is read), ``skip_first`` and ``skip_last``. Fields with several values
    (``contrasts: [PD, PDFS]``) say nothing about one volume and are left out: those come
    from the files. Other fields of the entry are ignored.
    """
    raw: dict[str, Any] = {}
    for key, plural, attr in (("anatomy", None, ""), ("vendor", None, ""), ("view", "views", "name"),
                              ("contrast", "contrasts", "name"), ("field_strength", "field_strengths", "tesla"),
                              ("skip_first", None, ""), ("skip_last", None, "")):
        value = _single(_get(entry, key), attr)
        if value is None and plural:
            value = _single(_get(entry, plural), attr)
        if value is not None and value != "":
            raw[key] = value
    if str(raw.get("view", "")).lower() not in _VIEWS:
        raw.pop("view", None)
    if str(raw.get("contrast", "")).lower() == "various":
        raw.pop("contrast")
    if isinstance(raw.get("field_strength"), str):  # e.g. "3T"
        raw["field_strength"] = nominal_field_strength(raw["field_strength"].rstrip("Tt ").strip() or "nan")
        if math.isnan(raw["field_strength"]):
            del raw["field_strength"]
    return normalize_metadata(raw, source=f"catalog entry {_get(entry, 'name')!r}", strict=False)
