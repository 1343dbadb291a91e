"""Image-quality and posterior metrics for MRI reconstruction.

- :mod:`~mrizoo.metrics.image`: SSIM / PSNR / NMSE with fastMRI's conventions.
- :mod:`~mrizoo.metrics.region`: :func:`score`, the one way a reconstruction is scored (fastMRI's
  centre crop to the reference's size, then SSIM / PSNR / NMSE), and the figure caption.
- :mod:`~mrizoo.metrics.reference`: the reference of fully sampled data a volume is scored against.
- :mod:`~mrizoo.metrics.masked`: the same restricted to the object (Jalal et al. 2021 protocol).
- :mod:`~mrizoo.metrics.normalize`: mean/std-matched evaluation (Lin & Heckel 2024 OOD protocol).
- :mod:`~mrizoo.metrics.artifact`: variance-of-Laplacian artifact score (Lin & Heckel 2024).
- :mod:`~mrizoo.metrics.posterior`: APSD and CFID for posterior samplers (Bendel et al. 2023).
- :mod:`~mrizoo.metrics.embeddings`: pluggable image embeddings for CFID.

Inputs may be numpy arrays or torch tensors on any device; results are Python floats computed
in float64.
"""

from mrizoo.metrics.artifact import LAPLACIAN_KERNEL, artifact_score, laplacian
from mrizoo.metrics.embeddings import (
    ConvFeatureEmbedding,
    Embedding,
    VGG16Features,
    WeightsUnavailableError,
    embed,
    vgg16_embedding,
)
from mrizoo.metrics.image import evaluate_volume, local_ssim, mse, nmse, psnr, ssim, ssim_map
from mrizoo.metrics.masked import mask_from_reference, masked_psnr, masked_ssim
from mrizoo.metrics.normalize import evaluate_matched, match_mean_std
from mrizoo.metrics.posterior import (
    CFIDTerms,
    apsd,
    cfid,
    cfid_from_images,
    cfid_terms,
    posterior_mean_std,
    sqrtm_psd,
    trace_sqrt_product,
)
from mrizoo.metrics.reference import Reference, reference_problem, slice_reference
from mrizoo.metrics.region import caption, captions, center_crop, metric_region, score

__all__ = [
    "ssim",
    "ssim_map",
    "local_ssim",
    "psnr",
    "nmse",
    "mse",
    "evaluate_volume",
    "score",
    "caption",
    "captions",
    "Reference",
    "reference_problem",
    "slice_reference",
    "center_crop",
    "metric_region",
    "mask_from_reference",
    "masked_ssim",
    "masked_psnr",
    "match_mean_std",
    "evaluate_matched",
    "laplacian",
    "artifact_score",
    "LAPLACIAN_KERNEL",
    "apsd",
    "posterior_mean_std",
    "cfid",
    "cfid_terms",
    "cfid_from_images",
    "CFIDTerms",
    "sqrtm_psd",
    "trace_sqrt_product",
    "Embedding",
    "ConvFeatureEmbedding",
    "VGG16Features",
    "WeightsUnavailableError",
    "vgg16_embedding",
    "embed",
]
