"""ISMRMRD XML headers for converted volumes: read the fields converters need, keep the rest.

A source header is kept (scanner, protocol and field strength stay available for
selecting training pools); only the matrix sizes and phase-encode limits are rewritten when
a view changes them. Sources without a header get a minimal one carrying the catalog's
vendor, field strength and contrast.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from mrizoo.data.fastmri_h5 import ISMRMRD_NAMESPACE
from mrizoo.data.writer import make_ismrmrd_header
from mrizoo.errors import InputError

__all__ = ["HeaderInfo", "read_header_info", "output_header"]

_NS = f"{{{ISMRMRD_NAMESPACE}}}"


def _child(node: ET.Element | None, name: str) -> ET.Element | None:
    if node is None:
        return None
    found = node.find(f"{_NS}{name}")
    return found if found is not None else node.find(name)


def _path(root: ET.Element, names: list[str]) -> ET.Element | None:
    node: ET.Element | None = root
    for name in names:
        node = _child(node, name)
    return node


def _int(node: ET.Element | None) -> int | None:
    try:
        return int((node.text or "").strip()) if node is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class HeaderInfo:
    """What converters read from an ISMRMRD header (None where absent)."""

    encoded: tuple[int, int, int] | None = None
    recon: tuple[int, int, int] | None = None
    limits: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (min, max, center)
    user_long: dict[str, int] = field(default_factory=dict)


def _parse(xml: str | bytes, path: str | os.PathLike[str] | None) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as err:
        raise InputError(f"ISMRMRD header is not well-formed XML ({err})", path=path,
                         field="ismrmrd_header") from None


def read_header_info(xml: str | bytes, *, path: str | os.PathLike[str] | None = None) -> HeaderInfo:
    """Matrix sizes, encoding limits and integer user parameters of the first encoding."""
    root = _parse(xml, path)
    enc = _child(root, "encoding")
    sizes = []
    for space in ("encodedSpace", "reconSpace"):
        values = [_int(_path(enc, [space, "matrixSize", a])) if enc is not None else None for a in "xyz"]
        sizes.append(tuple(v if v is not None else 1 for v in values) if values[0] and values[1] else None)
    limits = {}
    lim_root = _child(enc, "encodingLimits")
    if lim_root is not None:
        for node in lim_root:
            name = node.tag.replace(_NS, "")
            vals = [_int(_child(node, k)) for k in ("minimum", "maximum", "center")]
            if all(v is not None for v in vals):
                limits[name] = tuple(vals)
    user = {}
    params = _child(root, "userParameters")
    if params is not None:
        for node in params:
            if node.tag.replace(_NS, "") == "userParameterLong":
                name, value = _child(node, "name"), _int(_child(node, "value"))
                if name is not None and name.text and value is not None:
                    user[name.text.strip()] = value
    return HeaderInfo(encoded=sizes[0], recon=sizes[1], limits=limits, user_long=user)  # type: ignore[arg-type]


def _set_sizes(enc: ET.Element, space: str, size: tuple[int, int, int]) -> None:
    matrix = _path(enc, [space, "matrixSize"])
    if matrix is None:
        return
    for axis, value in zip("xyz", size):
        node = _child(matrix, axis)
        if node is not None:
            node.text = str(value)


def _set_limit(enc: ET.Element, name: str, n: int) -> None:
    node = _path(enc, ["encodingLimits", name])
    if node is None:
        return
    for key, value in (("minimum", 0), ("maximum", n - 1), ("center", n // 2)):
        item = _child(node, key)
        if item is not None:
            item.text = str(value)


def _metadata_header(encoded: tuple[int, int, int], recon: tuple[int, int, int], meta: dict[str, str]) -> str:
    root = ET.fromstring(make_ismrmrd_header(encoded, recon))
    children = list(root)
    at = next((i for i, c in enumerate(children) if c.tag == f"{_NS}experimentalConditions"), 0)
    system = [(k, meta[k]) for k in ("systemVendor", "systemModel", "systemFieldStrength_T", "receiverChannels")
              if meta.get(k)]
    if system:
        node = ET.Element(f"{_NS}acquisitionSystemInformation")
        for key, value in system:
            ET.SubElement(node, f"{_NS}{key}").text = str(value)
        root.insert(at, node)
    if meta.get("protocolName"):
        node = ET.Element(f"{_NS}measurementInformation")
        ET.SubElement(node, f"{_NS}protocolName").text = str(meta["protocolName"])
        root.insert(at, node)
    ET.register_namespace("", ISMRMRD_NAMESPACE)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def output_header(
    source_xml: str | bytes | None,
    size: tuple[int, int],
    crop: tuple[int, int],
    *,
    meta: dict[str, str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> bytes:
    """Header of an output volume with k-space ``size`` (H, W) and target ``crop``.

    The source header is returned unchanged when its sizes already match; otherwise its
    encoded/recon matrix sizes and phase-encode limits are rewritten. Without a source
    header, a minimal one with ``meta`` (vendor, field strength, protocol) is made.
    """
    encoded = (int(size[0]), int(size[1]), 1)
    recon = (int(crop[0]), int(crop[1]), 1)
    if source_xml is None:
        return _metadata_header(encoded, recon, meta or {}).encode("utf-8")
    raw = source_xml.encode("utf-8") if isinstance(source_xml, str) else bytes(source_xml)
    info = read_header_info(raw, path=path)
    if info.encoded == encoded and info.recon == recon:
        return raw
    root = _parse(raw, path)
    enc = _child(root, "encoding")
    if enc is None or info.encoded is None or info.recon is None:
        return _metadata_header(encoded, recon, meta or {}).encode("utf-8")
    _set_sizes(enc, "encodedSpace", encoded)
    _set_sizes(enc, "reconSpace", recon)
    _set_limit(enc, "kspace_encoding_step_1", encoded[1])
    _set_limit(enc, "kspace_encoding_step_2", 1)
    ET.register_namespace("", ISMRMRD_NAMESPACE)
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n").encode("utf-8")
