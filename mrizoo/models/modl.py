"""MoDL: model-based deep learning with a shared CNN denoiser and CG data consistency.

Aggarwal, Mani & Jacob, "MoDL: Model-Based Deep Learning Architecture for Inverse Problems",
IEEE TMI 38 (2019). Starting from ``x_0 = A^H y``, every unroll denoises and then solves the
regularised normal equations with a fixed number of conjugate-gradient steps::

    z_k     = D(x_k)
    x_{k+1} = argmin_x ||A x - y||^2 + lam ||x - z_k||^2
            = (A^H A + lam I)^{-1} (A^H y + lam z_k)

with ``A = M F S`` (ESPIRiT maps ``S``), one denoiser ``D`` shared by all unrolls and a
trainable ``lam > 0`` (kept positive by a softplus). The default configuration is the
baseline of Jalal et al. (NeurIPS 2021): 6 unrolls, 6 CG steps, a residual network of four
pre-activation residual blocks with 64 channels, 3x3 convolutions without bias or batch
norm and reflection padding (about 220k parameters).

Without biases and batch norm the denoiser is positively homogeneous, so the whole network
is equivariant to scaling the k-space; ``reconstruct`` still normalises the input by the
99th percentile of ``|A^H y|`` to keep activations in a well-conditioned range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mrizoo.errors import InputError
from mrizoo.models.base import ReconModel, check_inputs
from mrizoo.models.registry import Architecture, register_architecture
from mrizoo.physics.cg import conjugate_gradient
from mrizoo.physics.operators import MultiCoilOperator

__all__ = ["MoDLConfig", "MoDL", "ResNetDenoiser", "build_modl", "MODL_JALAL2021"]


@dataclass(frozen=True)
class MoDLConfig:
    """MoDL hyper-parameters.

    ``num_unrolls``: denoise + data-consistency iterations. ``cg_iters``: CG steps per data
    consistency. ``chans``: hidden channels of the denoiser. ``num_blocks``: residual blocks
    (two convolutions each; the first maps 2 -> ``chans``, the last ``chans`` -> 2).
    ``kernel_size``: odd convolution size. ``batch_norm``: batch norm before each ReLU.
    ``lam_init``: initial weight of the proximity term (relative: the maps are normalised,
    so ``A^H A`` has eigenvalues in ``[0, 1]``). ``train_lam``: learn ``lam``.
    """

    num_unrolls: int = 6
    cg_iters: int = 6
    chans: int = 64
    num_blocks: int = 4
    kernel_size: int = 3
    batch_norm: bool = False
    lam_init: float = 0.05
    train_lam: bool = True

    def __post_init__(self) -> None:
        for name in ("num_unrolls", "cg_iters", "chans"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError("must be a positive integer", field=name, expected="int >= 1", got=value)
        if isinstance(self.num_blocks, bool) or not isinstance(self.num_blocks, int) or self.num_blocks < 2:
            raise InputError("the denoiser needs an input and an output block", field="num_blocks",
                             expected="int >= 2", got=self.num_blocks)
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise InputError("must be a positive odd integer", field="kernel_size",
                             expected="1, 3, 5, ...", got=self.kernel_size)
        if not (isinstance(self.lam_init, (int, float)) and math.isfinite(self.lam_init) and self.lam_init > 0):
            raise InputError("must be a positive number", field="lam_init", expected="> 0", got=self.lam_init)


#: The MoDL baseline of Jalal et al. 2021 (appendix G.3): 6 unrolls x 6 CG steps, ~220k parameters.
MODL_JALAL2021 = MoDLConfig()


class _ResBlock(nn.Module):
    """Pre-activation residual block: ``x -> skip(x) + conv2(act(conv1(act(x))))``.

    ``skip`` is a 1x1 convolution when the channel count changes. The output block has no
    activation between its two convolutions.
    """

    def __init__(self, cin: int, chans: int, cout: int, kernel_size: int, batch_norm: bool,
                 mid_act: bool) -> None:
        super().__init__()
        self.pad = kernel_size // 2
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None
        self.conv1 = nn.Conv2d(cin, chans, kernel_size, bias=False)
        self.conv2 = nn.Conv2d(chans, cout, kernel_size, bias=False)
        self.norm1 = nn.BatchNorm2d(cin) if batch_norm else nn.Identity()
        self.norm2 = nn.BatchNorm2d(chans) if batch_norm and mid_act else nn.Identity()
        self.mid_act = mid_act

    def _conv(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x if self.skip is None else self.skip(x)
        out = self._conv(self.conv1, F.relu(self.norm1(x)))
        if self.mid_act:
            out = F.relu(self.norm2(out))
        return res + self._conv(self.conv2, out)


class ResNetDenoiser(nn.Module):
    """Residual CNN on real/imag channels ``[B, 2, H, W]``: ``D(x) = x + R(x)``."""

    def __init__(self, chans: int = 64, num_blocks: int = 4, kernel_size: int = 3,
                 batch_norm: bool = False) -> None:
        super().__init__()
        blocks = [_ResBlock(2, chans, chans, kernel_size, batch_norm, True)]
        blocks += [_ResBlock(chans, chans, chans, kernel_size, batch_norm, True) for _ in range(num_blocks - 2)]
        blocks.append(_ResBlock(chans, chans, 2, kernel_size, batch_norm, False))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.blocks(x)


def _complex_to_chan(x: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(x).permute(0, 3, 1, 2)


def _chan_to_complex(x: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(x.permute(0, 2, 3, 1).contiguous())


class MoDL(ReconModel):
    """Unrolled MoDL; ``forward(kspace, mask, maps)`` returns the complex image ``[B, H, W]``."""

    adapt_family = "modl"

    needs_maps = True

    def __init__(self, config: MoDLConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MoDLConfig()
        self.denoiser = ResNetDenoiser(cfg.chans, cfg.num_blocks, cfg.kernel_size, cfg.batch_norm)
        raw = torch.tensor([math.log(math.expm1(cfg.lam_init))])  # softplus^{-1}(lam_init)
        self.lam_raw = nn.Parameter(raw, requires_grad=cfg.train_lam)

    @property
    def lam(self) -> torch.Tensor:
        """The (positive) proximity weight ``lam``."""
        return F.softplus(self.lam_raw)

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the shared denoiser to a complex image ``[B, H, W]``."""
        return _chan_to_complex(self.denoiser(_complex_to_chan(x)))

    def data_consistency(self, op: MultiCoilOperator, rhs0: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``(A^H A + lam I)^{-1} (A^H y + lam z)`` with ``cg_iters`` CG steps, warm-started at ``z``."""
        lam = self.lam.to(rhs0.real.dtype)

        def normal(x: torch.Tensor) -> torch.Tensor:
            return op.normal(x) + lam * x

        return conjugate_gradient(normal, rhs0 + lam * z, z, max_iter=self.config.cg_iters)

    def forward(self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """Complex image ``[B, H, W]`` from k-space ``[B, C, H, W]``, mask ``[B, H, W]`` and maps."""
        op = MultiCoilOperator(maps, mask)
        rhs0 = op.adjoint(kspace)
        x = rhs0
        for _ in range(self.config.num_unrolls):
            x = self.data_consistency(op, rhs0, self.denoise(x))
        return x

    def reconstruct(self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None, *,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        kspace, mask, maps = check_inputs(kspace, mask, maps)
        maps = self._maps(kspace, maps).to(kspace.dtype)
        kspace = kspace * mask.unsqueeze(1).to(kspace.real.dtype)
        x0 = MultiCoilOperator(maps, mask).adjoint(kspace).abs().flatten(1)
        scale = torch.quantile(x0, 0.99, dim=1).clamp_min(torch.finfo(x0.dtype).tiny)
        scale = scale.view(-1, 1, 1, 1)
        out = self(kspace / scale, mask, maps)
        return (out.abs() * scale.view(-1, 1, 1)).float()


def build_modl(config: MoDLConfig | None = None) -> MoDL:
    """Build a MoDL network from its configuration (defaults: the Jalal et al. 2021 baseline)."""
    return MoDL(config)


register_architecture(Architecture(
    "modl", "MoDL: shared residual CNN denoiser unrolled with CG data consistency",
    MoDLConfig, build_modl, {"jalal2021": MODL_JALAL2021},
    needs_maps=True, domain="image", losses=("ssim", "l1", "ssim_l1"), task="supervised", adapts=True,
))
