"""Batched conjugate gradient for Hermitian positive (semi-)definite systems.

Solves ``(A^H A + lam I) x = b`` style problems for a whole batch at once, each item with its
own step sizes and its own stopping test. Plain differentiable torch ops, so unrolled models
(MoDL) can backpropagate through a fixed number of iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["conjugate_gradient", "CGInfo"]


@dataclass(frozen=True)
class CGInfo:
    """Iterations run and final relative residual ``||b - A x|| / ||b||`` per batch item."""

    iterations: int
    relative_residual: torch.Tensor


def _dot(a: torch.Tensor, b: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return torch.sum(a.conj() * b, dim=dims, keepdim=True).real


def conjugate_gradient(
    apply: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    max_iter: int = 10,
    tol: float = 0.0,
    system_ndim: int = 2,
    return_info: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, CGInfo]:
    """Solve ``apply(x) = b`` with conjugate gradient.

    ``b`` is ``[*batch, *system]`` where the last ``system_ndim`` axes form one unknown
    (default 2: an ``[H, W]`` image). ``apply`` must be Hermitian positive semi-definite.
    Items whose relative residual drops below ``tol`` stop updating; the loop ends when all
    have converged or after ``max_iter`` iterations (``tol=0`` runs exactly ``max_iter``, as
    unrolled networks need).
    """
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0; got {max_iter}")
    if not 1 <= system_ndim <= b.ndim:
        raise ValueError(f"system_ndim must be in [1, {b.ndim}] for b of shape {tuple(b.shape)}")
    dims = tuple(range(b.ndim - system_ndim, b.ndim))
    x = torch.zeros_like(b) if x0 is None else x0
    r = b - apply(x) if x0 is not None else b
    p = r
    rs = _dot(r, r, dims)
    b_norm = torch.sqrt(_dot(b, b, dims)).clamp_min(torch.finfo(rs.dtype).tiny)
    tiny = torch.finfo(rs.dtype).tiny
    it = 0
    for it in range(1, max_iter + 1):
        active = torch.sqrt(rs) / b_norm > tol
        if tol > 0 and not bool(active.any()):
            it -= 1
            break
        ap = apply(p)
        pap = _dot(p, ap, dims)
        alpha = torch.where(active & (pap > tiny), rs / pap.clamp_min(tiny), torch.zeros_like(rs))
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = _dot(r, r, dims)
        beta = torch.where(rs > tiny, rs_new / rs.clamp_min(tiny), torch.zeros_like(rs))
        p = r + beta * p
        rs = rs_new
    if not return_info:
        return x
    rel = (torch.sqrt(_dot(b - apply(x), b - apply(x), dims)) / b_norm).reshape(b.shape[: b.ndim - system_ndim])
    return x, CGInfo(iterations=it, relative_residual=rel.detach())
