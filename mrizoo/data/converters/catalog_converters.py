"""One converter per catalog dataset: ``mrizoo convert stanford3d SRC DST --view axial``.

Each is the generic folder conversion with the settings of the dataset's catalog entry
(source format, scale, flips, views, dropped end slices, echoes, averages). ``SRC`` may be
``@`` for the dataset's configured local folder (see :mod:`mrizoo.datasets.roots`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from mrizoo.data.convert import is_registered, register_converter
from mrizoo.data.converters.batch import BatchResult, OutputView, convert_folder, print_progress
from mrizoo.data.converters.generic import OUTPUT_HELP
from mrizoo.datasets.catalog import DatasetEntry, get_dataset, load_catalog
from mrizoo.datasets.roots import dataset_root
from mrizoo.errors import InputError

__all__ = ["convert_dataset", "register_converters", "selected_views"]

CONFIGURED_ROOT = "@"


def selected_views(entry: DatasetEntry, view: str | None) -> list[OutputView]:
    """The views to write: the only one, the named one, or ``all``."""
    names = [v.name for v in entry.views]
    if view is None:
        if len(names) > 1:
            raise InputError("this dataset has several views: choose one, or all", field="view",
                             expected=f"--view one of {names + ['all']}")
        view = names[0]
    chosen = entry.views if view == "all" else (entry.view(view),)
    return [OutputView(v.name, v.geometry, entry.volume_attrs(v.name)) for v in chosen]


def convert_dataset(
    name: str,
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    view: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    verbose: bool = False,
) -> BatchResult:
    """Convert a local copy of catalog dataset ``name`` (``source``: folder, file, or ``@``)."""
    entry = get_dataset(name)
    views = selected_views(entry, view)
    if os.fspath(source) == CONFIGURED_ROOT:
        source = dataset_root(name)
    return convert_folder(
        source, dest, entry.conversion, views, dataset=entry.name, meta=entry.header_meta(), workers=workers,
        overwrite=overwrite, subfolders=view == "all", progress=print_progress if verbose else None,
    )


def _arguments(entry: DatasetEntry) -> Callable[[argparse.ArgumentParser], None]:
    names = [v.name for v in entry.views]

    def add(parser: argparse.ArgumentParser) -> None:
        several = len(names) > 1
        parser.add_argument(
            "--view", choices=names + (["all"] if several else []), default=None,
            help=("view to write (required; 'all' writes one subfolder per view)" if several
                  else f"the dataset's only view ({names[0]})"),
        )
        parser.add_argument("--workers", type=int, default=1, help="source files converted in parallel")
        parser.add_argument("--quiet", dest="verbose", action="store_false", help="no progress lines")

    return add


def _register(entry: DatasetEntry) -> None:
    if is_registered(entry.name):
        return

    def convert(source: str | os.PathLike[str], dest: str | os.PathLike[str], *, view: str | None = None,
                workers: int = 1, overwrite: bool = False, verbose: bool = False) -> BatchResult:
        return convert_dataset(entry.name, source, dest, view=view, workers=workers, overwrite=overwrite,
                               verbose=verbose)

    convert.__name__ = f"convert_{entry.name.replace('-', '_')}"
    convert.__doc__ = f"Convert {entry.title} into fastMRI volumes."
    views = ", ".join(v.name for v in entry.views)
    register_converter(
        entry.name,
        help=f"{entry.title}: {entry.conversion.format} files to fastMRI volumes (views: {views})",
        add_arguments=_arguments(entry),
        input_help=f"folder (or file) of the {entry.name} source files, or '{CONFIGURED_ROOT}' for its configured "
                   "local folder",
        output_help=OUTPUT_HELP,
    )(convert)


def register_converters() -> None:
    """Register one converter per catalog dataset (those missing from the registry)."""
    for entry in load_catalog().values():
        _register(entry)
