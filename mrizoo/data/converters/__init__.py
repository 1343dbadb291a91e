"""Converters from raw-data formats and public datasets to fastMRI-convention volumes.

Generic, declarative pieces: :class:`ConversionSpec` (how a source is read) and
:class:`ViewGeometry` (how one view is cut), readers for fastMRI HDF5, ISMRMRD HDF5 and
array files, and :func:`convert_folder`, the resumable parallel folder conversion. The
modules ``generic`` and ``catalog_converters`` register the ``mrizoo convert`` commands.
"""

from mrizoo.data.converters.batch import (
    BatchResult,
    ConversionFailedError,
    OutputView,
    VolumeOutcome,
    convert_folder,
    find_sources,
    output_state,
)
from mrizoo.data.converters.ismrmrd import read_ismrmrd
from mrizoo.data.converters.pipeline import LabeledVolume, cut_view, fftc, ifftc
from mrizoo.data.converters.readers import SourceVolume, load_array, read_source
from mrizoo.data.converters.spec import AveragesSpec, ConversionSpec, ViewGeometry

__all__ = [
    "AveragesSpec", "BatchResult", "ConversionFailedError", "ConversionSpec", "LabeledVolume", "OutputView",
    "SourceVolume", "ViewGeometry", "VolumeOutcome", "convert_folder", "cut_view", "fftc", "find_sources",
    "ifftc", "load_array", "output_state", "read_ismrmrd", "read_source",
]
