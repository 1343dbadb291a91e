"""Data: fastMRI-convention HDF5 volumes (read, write, convert), slice datasets, synthetic data."""

from mrizoo.data.bart import cfl_base, read_cfl, write_cfl
from mrizoo.data.convert import (
    ConversionResult,
    ConverterSpec,
    available_converters,
    bart_to_kspace,
    convert_bart,
    convert_to_fastmri,
    get_converter,
    kspace_to_volume,
    register_converter,
)
from mrizoo.data.fastmri_h5 import FastMRIVolume, HeaderSizes, parse_ismrmrd_header
from mrizoo.data.slices import (
    Sample,
    SampleBatch,
    SliceDataset,
    VolumeBatchSampler,
    VolumeInfo,
    center_crop,
    collate_samples,
)
from mrizoo.data.synthetic import (
    birdcage_maps,
    ellipse_phantom,
    make_test_volume,
    simulate_multicoil,
    smooth_phase,
)
from mrizoo.data.transforms import SampleTransform, SliceRecord
from mrizoo.data.writer import make_ismrmrd_header, write_volume

__all__ = [
    "cfl_base", "read_cfl", "write_cfl",
    "ConversionResult", "ConverterSpec", "available_converters", "bart_to_kspace", "convert_bart",
    "convert_to_fastmri", "get_converter", "kspace_to_volume", "register_converter",
    "FastMRIVolume", "HeaderSizes", "parse_ismrmrd_header",
    "Sample", "SampleBatch", "SliceDataset", "VolumeBatchSampler", "VolumeInfo", "center_crop",
    "collate_samples", "SampleTransform", "SliceRecord",
    "birdcage_maps", "ellipse_phantom", "make_test_volume", "simulate_multicoil", "smooth_phase",
    "make_ismrmrd_header", "write_volume",
]
