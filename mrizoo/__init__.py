"""mrizoo: a model zoo for accelerated-MRI reconstruction.

Public API (everything else is private):

- physics: ``fft2c``, ``ifft2c``, ``to_real``, ``to_complex``, ``rss``, ``sense_combine``,
  ``coil_compress``, ``espirit_maps``, ``forward_op``, ``adjoint_op``, ``MultiCoilOperator``,
  ``conjugate_gradient``
- masks: ``create_mask``, ``list_masks``, ``register_mask``, ``Mask``, ``seed_from_name``
- data: ``FastMRIVolume``, ``write_volume``, ``read_cfl``, ``SliceDataset``,
  ``VolumeBatchSampler``, ``simulate_multicoil``
- metrics: ``ssim``, ``psnr``, ``nmse``, ``evaluate_volume`` and more in :mod:`mrizoo.metrics`
- classical reconstructions: ``zero_filled``, ``cg_sense``, ``l1_wavelet``
- the zoo: ``list_models``, ``info``, ``create``, ``load``, ``register_model``
- running models on files: ``reconstruct_file``, ``reconstruct_path``, ``evaluate_models``
"""

__version__ = "0.1.0"

from mrizoo._lazy import lazy_attributes
from mrizoo.errors import InputError, MrizooError

# Public names and the module that defines each: imported on first use, so that light entry
# points (``mrizoo --help``, ``mrizoo list``) do not pay for torch.
_LAZY = {
    **dict.fromkeys(("cg_sense", "l1_wavelet", "zero_filled"), "mrizoo.classical"),
    **dict.fromkeys(("FastMRIVolume", "SliceDataset", "VolumeBatchSampler", "read_cfl", "simulate_multicoil",
                     "write_volume"), "mrizoo.data"),
    **dict.fromkeys(("Mask", "create_mask", "list_masks", "register_mask", "seed_from_name"), "mrizoo.masks"),
    **dict.fromkeys(("SamplingInfo", "detect_sampling", "mask_from_any"), "mrizoo.masks.sampling"),
    **dict.fromkeys(("evaluate_volume", "nmse", "psnr", "ssim"), "mrizoo.metrics"),
    **dict.fromkeys(("MultiCoilOperator", "adjoint_op", "coil_compress", "conjugate_gradient", "espirit_maps",
                     "fft2c", "forward_op", "ifft2c", "rss", "sense_combine", "to_complex", "to_real"),
                    "mrizoo.physics"),
    **dict.fromkeys(("UnknownModelError", "create", "info", "list_models", "load", "register_model"),
                    "mrizoo.zoo"),
    "evaluate_models": "mrizoo.evaluate",
    **dict.fromkeys(("reconstruct_file", "reconstruct_path"), "mrizoo.reconstruct"),
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "__version__",
    "InputError", "MrizooError", "UnknownModelError",
    "fft2c", "ifft2c", "to_real", "to_complex", "rss", "sense_combine", "coil_compress", "espirit_maps",
    "forward_op", "adjoint_op", "MultiCoilOperator", "conjugate_gradient",
    "Mask", "create_mask", "list_masks", "register_mask", "seed_from_name",
    "FastMRIVolume", "SliceDataset", "VolumeBatchSampler", "read_cfl", "simulate_multicoil", "write_volume",
    "ssim", "psnr", "nmse", "evaluate_volume",
    "zero_filled", "cg_sense", "l1_wavelet",
    "list_models", "info", "create", "load", "register_model",
    "reconstruct_file", "reconstruct_path", "evaluate_models",
]
