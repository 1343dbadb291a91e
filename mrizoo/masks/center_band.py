"""The fully sampled band around the centre of a sampling profile, as fastMRI's VarNet finds it."""

from __future__ import annotations

import torch

__all__ = ["center_band"]


def _leading_ones(x: torch.Tensor) -> torch.Tensor:
    """Length of the run of True at the start of each row of ``x`` ``[B, N]``."""
    return torch.cumprod(x.to(torch.int32), dim=1).sum(dim=1)


def center_band(profile: torch.Tensor, *, fastmri_rule: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fully sampled band around the centre of a 1D sampling profile ``[B, N]``.

    Counts the sampled run just left of ``N // 2`` and the run from ``N // 2`` on, takes
    ``num = max(2 * min(left, right), 1)`` (a symmetric band) and returns
    ``(start, num)`` with ``start = (N - num + 1) // 2``, as fastMRI's VarNet does.

    ``fastmri_rule=True`` reproduces fastMRI exactly, including its treatment of a half that
    is sampled up to the edge as a run of length 0. With ``False`` such runs count in full and
    a fully sampled profile gives the whole axis.
    """
    b, n = profile.shape
    cent = n // 2
    sampled = profile != 0
    left = _leading_ones(sampled[:, :cent].flip(1))
    right = _leading_ones(sampled[:, cent:])
    if fastmri_rule:
        left = torch.where(left == cent, torch.zeros_like(left), left)
        right = torch.where(right == n - cent, torch.zeros_like(right), right)
    num = torch.clamp_min(2 * torch.minimum(left, right), 1)
    if not fastmri_rule:
        num = torch.where(sampled.all(dim=1), torch.full_like(num, n), num)
    start = (n - num + 1) // 2
    return start.long(), num.long()
