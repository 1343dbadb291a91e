"""k-space sampling masks: a registry of named, seed-reproducible mask functions.

>>> from mrizoo.masks import create_mask, list_masks
>>> m = create_mask("equispaced", (640, 368), seed=0, acceleration=4, center_fraction=0.08)
>>> m.mask.shape, m.lines.shape
(torch.Size([640, 368]), torch.Size([368]))

The fastMRI families (``random``, ``equispaced``, ``equispaced_fraction``, ``magic``) match
``fastmri.data.subsample`` bit for bit for the same seed; pass ``seed=seed_from_name(fname)`` to
get fastMRI's test-time masks. ``*_horizontal`` variants select rows instead of columns.
"""

from __future__ import annotations

from mrizoo.masks import cartesian, gaussian, gro, poisson  # noqa: F401  (registers the families)
from mrizoo.masks._registry import (
    Mask,
    SeedLike,
    create_mask,
    describe_mask,
    mask_params,
    list_masks,
    register_mask,
    seed_from_name,
)

__all__ = [
    "Mask",
    "SeedLike",
    "create_mask",
    "describe_mask",
    "mask_params",
    "list_masks",
    "register_mask",
    "seed_from_name",
]
