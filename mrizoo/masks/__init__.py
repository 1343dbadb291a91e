"""k-space sampling masks: a registry of named, seed-reproducible mask functions.

>>> from mrizoo.masks import create_mask, list_masks
>>> m = create_mask("equispaced", (640, 368), seed=0, acceleration=4, center_fraction=0.08)
>>> m.mask.shape, m.lines.shape
(torch.Size([640, 368]), torch.Size([368]))

The fastMRI families (``random``, ``equispaced``, ``equispaced_fraction``, ``magic``) match
``fastmri.data.subsample`` bit for bit for the same seed; pass ``seed=seed_from_name(fname)`` to
get fastMRI's test-time masks. ``*_horizontal`` variants select rows instead of columns.
:func:`detect_sampling` reads the sampling of existing k-space from the data itself and
:func:`mask_from_any` accepts every stored mask layout (see :mod:`mrizoo.masks.sampling`).
"""

from __future__ import annotations

from mrizoo.masks import cartesian, gaussian, gro, poisson  # noqa: F401  (registers the families)
from mrizoo.masks._registry import (
    Mask,
    SeedLike,
    create_mask,
    describe_mask,
    list_masks,
    mask_params,
    register_mask,
    seed_from_name,
)
from mrizoo.masks.sampling import SamplingInfo, analyse_mask, detect_sampling, mask_from_any

__all__ = [
    "Mask",
    "SeedLike",
    "create_mask",
    "describe_mask",
    "mask_params",
    "list_masks",
    "register_mask",
    "seed_from_name",
    "SamplingInfo",
    "analyse_mask",
    "detect_sampling",
    "mask_from_any",
]
