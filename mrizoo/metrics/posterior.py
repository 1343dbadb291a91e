"""Metrics for posterior samplers: APSD and CFID (Bendel et al. 2023; Soloveitchik et al. 2021).

APSD, the average posterior standard deviation, measures sample diversity. CFID, the
conditional Frechet inception distance, compares the true posterior ``p(x | y)`` with the
generated one ``p(xhat | y)`` through embeddings, modelling ``(x, y)`` and ``(xhat, y)`` as jointly
Gaussian:

``CFID = ||mu_x - mu_xhat||^2``
``     + Tr[(C_xy - C_xhat,y) C_yy^+ (C_yx - C_y,xhat)]``
``     + Tr[C_x|y + C_xhat|y - 2 (C_x|y^(1/2) C_xhat|y C_x|y^(1/2))^(1/2)]``

with ``C_x|y = C_xx - C_xy C_yy^+ C_yx``. The first two terms are ``E_y ||E[x|y] - E[xhat|y]||^2``,
the third the Frechet (Bures) distance of the conditional covariances, so CFID is the expected
squared 2-Wasserstein distance between the two Gaussian posteriors. Covariances are normalised
by ``N`` (as the reference implementation); ``C_yy^+`` is the pseudo-inverse. CFID is biased
at small ``N``; compare values only at equal ``N``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from mrizoo.errors import InputError
from mrizoo.metrics._inputs import ArrayLike, to_tensor
from mrizoo.metrics.embeddings import Embedding, embed

__all__ = [
    "apsd",
    "posterior_mean_std",
    "cfid",
    "cfid_terms",
    "cfid_from_images",
    "CFIDTerms",
    "ApsdDefinition",
    "sqrtm_psd",
    "trace_sqrt_product",
]

ApsdDefinition = Literal["mean_std", "rms"]


def _samples(samples: ArrayLike, correction: int) -> torch.Tensor:
    s = to_tensor(samples, "samples")
    if s.ndim < 3:
        raise InputError(
            "wrong number of dimensions", field="samples",
            expected="posterior samples [P, ..., H, W] (P samples first)", got=f"shape {tuple(s.shape)}",
        )
    if s.shape[0] < 2 or s.shape[0] <= correction:
        raise InputError(
            "too few samples for a standard deviation", field="samples",
            expected=f"P >= {max(2, correction + 1)} along axis 0", got=f"P = {s.shape[0]}",
        )
    return s


def posterior_mean_std(samples: ArrayLike, correction: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-wise mean and std over the sample axis 0 (``correction=0``: population std)."""
    s = _samples(samples, correction)
    return s.mean(dim=0), s.std(dim=0, correction=correction)


def apsd(samples: ArrayLike, *, correction: int = 0, definition: ApsdDefinition = "mean_std") -> float:
    """Average posterior standard deviation of ``samples [P, ..., H, W]``.

    ``"mean_std"`` (default, as the rcGAN evaluation code: ``mean(std(samples, axis=0))``): the
    pixel-wise std over the ``P`` samples, averaged over all pixels (and images).
    ``"rms"`` (the formula printed in the rcGAN paper, ``(1/(NP) sum_i ||xbar - x_i||^2)^(1/2)``
    with ``N`` pixels): the square root of the pixel-averaged variance, per ``[H, W]`` image,
    then averaged over images. ``correction=0`` uses the population std (divide by ``P``) like
    both references; ``correction=1`` gives the unbiased-variance sample std. The two
    definitions agree when every pixel has the same spread; otherwise ``rms >= mean_std``.
    """
    if definition not in ("mean_std", "rms"):
        raise InputError("unknown definition", field="definition", expected="'mean_std' or 'rms'", got=repr(definition))
    s = _samples(samples, correction)
    if definition == "mean_std":
        return float(s.std(dim=0, correction=correction).mean())
    var = s.var(dim=0, correction=correction)
    return float(var.mean(dim=(-2, -1)).sqrt().mean())


def sqrtm_psd(mat: torch.Tensor) -> torch.Tensor:
    """Symmetric PSD square root via ``eigh`` (negative round-off eigenvalues clipped to 0)."""
    sym = 0.5 * (mat + mat.transpose(-2, -1))
    vals, vecs = torch.linalg.eigh(sym)
    return (vecs * vals.clamp_min(0).sqrt().unsqueeze(-2)) @ vecs.transpose(-2, -1)


def trace_sqrt_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Tr sqrt(a^(1/2) b a^(1/2))`` for symmetric PSD ``a``, ``b`` (= ``Tr sqrt(a b)``)."""
    ra = sqrtm_psd(a)
    m = ra @ b @ ra
    vals = torch.linalg.eigvalsh(0.5 * (m + m.transpose(-2, -1)))
    return vals.clamp_min(0).sqrt().sum()


@dataclass(frozen=True)
class CFIDTerms:
    """The three non-negative parts of CFID (module docstring) and their sum."""

    mean: float
    """``||mu_x - mu_xhat||^2``."""
    cross: float
    """``Tr[(C_xy - C_xhat,y) C_yy^+ (C_yx - C_y,xhat)]``."""
    covariance: float
    """Frechet distance between ``C_x|y`` and ``C_xhat|y``."""

    @property
    def total(self) -> float:
        return self.mean + self.cross + self.covariance


def _embeddings(x: ArrayLike, name: str, device: torch.device | None) -> torch.Tensor:
    t = to_tensor(x, name, device)
    if t.ndim != 2:
        raise InputError(
            "wrong number of dimensions", field=name, expected="embeddings [N, d]", got=f"shape {tuple(t.shape)}"
        )
    if t.shape[0] < 2 or t.shape[1] < 1:
        raise InputError(
            "too few embeddings", field=name, expected="N >= 2 rows and d >= 1 columns", got=f"shape {tuple(t.shape)}"
        )
    return t


def cfid_terms(x_emb: ArrayLike, xhat_emb: ArrayLike, y_emb: ArrayLike) -> CFIDTerms:
    """CFID split into its terms; rows ``i`` of the three ``[N, d]`` arrays belong together.

    With ``P`` posterior samples per measurement, repeat the true-image and measurement
    embeddings ``P`` times so that every sample has its own row.

    Computed in float64 from the thin SVD of the centred ``y`` embeddings: the conditional
    covariances are covariances of least-squares residuals (PSD by construction) and the
    pseudo-inverse keeps singular values above ``max(N, d_y) * eps * s_max`` (numpy's rank rule).
    """
    x = _embeddings(x_emb, "x_emb", None)
    xh = _embeddings(xhat_emb, "xhat_emb", x.device)
    y = _embeddings(y_emb, "y_emb", x.device)
    if xh.shape != x.shape:
        raise InputError(
            "shape does not match the true-image embeddings", field="xhat_emb",
            expected=f"shape {tuple(x.shape)} (same as x_emb)", got=f"shape {tuple(xh.shape)}",
        )
    if y.shape[0] != x.shape[0]:
        raise InputError(
            "number of rows does not match the image embeddings", field="y_emb",
            expected=f"{x.shape[0]} rows (one per row of x_emb)", got=f"{y.shape[0]} rows",
        )
    n = x.shape[0]
    xc = x - x.mean(dim=0)
    xhc = xh - xh.mean(dim=0)
    yc = y - y.mean(dim=0)
    u, s, _ = torch.linalg.svd(yc, full_matrices=False)
    tol = max(yc.shape) * torch.finfo(torch.float64).eps * (float(s[0]) if s.numel() else 0.0)
    u = u[:, s > tol]  # orthonormal basis of the span of the centred y embeddings
    # regression residuals on y: covariances of these are the conditional covariances
    rx = xc - u @ (u.T @ xc)
    rxh = xhc - u @ (u.T @ xhc)
    c_x = rx.T @ rx / n
    c_xh = rxh.T @ rxh / n
    mean_term = float(torch.sum((x.mean(dim=0) - xh.mean(dim=0)) ** 2))
    cross_term = float(torch.sum((u.T @ (xc - xhc)) ** 2)) / n
    cov_term = float(torch.trace(c_x) + torch.trace(c_xh) - 2.0 * trace_sqrt_product(c_x, c_xh))
    return CFIDTerms(mean=mean_term, cross=cross_term, covariance=max(cov_term, 0.0))


def cfid(x_emb: ArrayLike, xhat_emb: ArrayLike, y_emb: ArrayLike) -> float:
    """Conditional Frechet distance from embeddings ``[N, d]`` of true images, reconstructions
    and measurements (module docstring); 0 when ``xhat_emb == x_emb``."""
    return cfid_terms(x_emb, xhat_emb, y_emb).total


def cfid_from_images(
    x: ArrayLike,
    xhat: ArrayLike,
    y: ArrayLike,
    embedding: Embedding,
    cond_embedding: Embedding | None = None,
    *,
    batch_size: int = 32,
) -> float:
    """CFID of image batches ``[N, C, H, W]`` (or ``[N, H, W]``): ``x`` true images, ``xhat``
    reconstructions, ``y`` measurement images (e.g. zero-filled magnitudes).

    ``embedding`` maps images to ``[N, d]`` (any callable, see :mod:`mrizoo.metrics.embeddings`);
    ``cond_embedding`` embeds ``y`` and defaults to ``embedding``, as in the rcGAN evaluation.
    """
    ex = embed(x, embedding, batch_size=batch_size, name="x")
    exh = embed(xhat, embedding, batch_size=batch_size, name="xhat")
    ey = embed(y, cond_embedding if cond_embedding is not None else embedding, batch_size=batch_size, name="y")
    return cfid(ex, exh, ey)
