"""Reconstruction ViT (Lin & Heckel): size of the seed configurations, layout, any image size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mrizoo.errors import InputError
from mrizoo.models.vit import (
    VIT_LIN2024_LARGE,
    VIT_LIN2024_SMALL,
    VisionTransformer,
    ViTConfig,
    ViTRecon,
    build_vit,
    unpatchify,
)

TINY = ViTConfig(patch_size=10, embed_dim=24, depth=2, num_heads=3, avg_image_size=60)


def _layout_count(cfg: ViTConfig) -> int:
    """Parameters of the described layout: conv patch embedding, pos-embed grid, pre-norm blocks
    (qkv without bias, biased projection, 2-layer MLP), final norm, linear head."""
    d, p, g = cfg.embed_dim, cfg.patch_size, cfg.avg_image_size // cfg.patch_size
    hidden = int(d * cfg.mlp_ratio)
    block = 2 * d + 3 * d * d + (d * d + d) + 2 * d + (d * hidden + hidden) + (hidden * d + d)
    return (p * p * d + d) + d * g * g + cfg.depth * block + 2 * d + (d * p * p + p * p)


def test_large_preset_has_127m_parameters_meta_device() -> None:
    with torch.device("meta"):
        model = build_vit(VIT_LIN2024_LARGE)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 127e6) / 127e6 < 0.02, n
    assert n == _layout_count(VIT_LIN2024_LARGE)
    assert (VIT_LIN2024_LARGE.embed_dim, VIT_LIN2024_LARGE.num_heads, VIT_LIN2024_LARGE.depth) == (1024, 16, 10)


def test_small_preset_layout() -> None:
    with torch.device("meta"):
        model = build_vit()
    assert model.config == VIT_LIN2024_SMALL
    assert sum(p.numel() for p in model.parameters()) == _layout_count(VIT_LIN2024_SMALL)
    assert model.pos_embed.shape == (1, 396, 32, 32)  # 320 / 10 patches a side
    assert model.blocks[0].attn.qkv.bias is None


def test_unpatchify_matches_fold() -> None:
    tokens = torch.randn(2, 3 * 5, 2 * 4 * 4)
    ours = unpatchify(tokens, (3, 5), 4)
    ref = F.fold(tokens.transpose(1, 2), output_size=(12, 20), kernel_size=4, stride=4)
    torch.testing.assert_close(ours, ref)


def test_position_embedding_resizing() -> None:
    """Stored grid for the average image, bilinearly resized (half-pixel centres) otherwise."""
    from skimage.transform import resize

    torch.manual_seed(0)
    net = VisionTransformer(TINY)
    base = net.pos_embed
    assert net.interpolate_pos_embed((6, 6)) is base
    stored = base.detach()[0].double().numpy()
    for grid in [(4, 6), (9, 7)]:
        resized = net.interpolate_pos_embed(grid)
        assert resized.shape == (1, 24, *grid)
        ref = np.stack([resize(c, grid, order=1, mode="edge", anti_aliasing=False) for c in stored])
        np.testing.assert_allclose(resized.detach()[0].numpy(), ref, atol=1e-6)
    assert not torch.allclose(net.interpolate_pos_embed((4, 6))[..., :4, :4], base[..., :4, :4])


@pytest.mark.parametrize("shape", [(1, 4, 37, 53), (2, 3, 32, 24)])
def test_reconstruct_forward_backward_any_size(shape: tuple[int, int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_vit(TINY)
    g = torch.Generator().manual_seed(1)
    kspace = torch.randn(*shape, dtype=torch.complex64, generator=g)
    mask = torch.zeros(shape[-2:], dtype=torch.bool)
    mask[:, ::3] = True
    out = model.reconstruct(kspace * mask, mask)
    assert out.shape == (shape[0], *shape[-2:]) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_forward_keeps_shape_and_rejects_non_multiples() -> None:
    model = build_vit(TINY)
    x = torch.randn(2, 1, 40, 70)
    assert model(x).shape == x.shape
    with pytest.raises(InputError, match="multiples of the patch"):
        model(torch.randn(1, 1, 37, 53))


def test_reconstruction_follows_the_data_scale() -> None:
    """Per-sample standardization in, de-standardization out: scaling k-space scales the output."""
    torch.manual_seed(0)
    model = build_vit(TINY).eval()
    kspace = torch.randn(2, 4, 33, 27, dtype=torch.complex64)
    mask = torch.ones(33, 27, dtype=torch.bool)
    with torch.no_grad():
        a = model.reconstruct(kspace, mask)
        b = model.reconstruct(kspace * 1e3, mask)
    torch.testing.assert_close(b, a * 1e3, rtol=1e-4, atol=1e-3)
    assert not torch.allclose(a, a.mean(), atol=1e-3)


def test_config_errors() -> None:
    with pytest.raises(InputError, match="embed_dim"):
        ViTConfig(embed_dim=100, num_heads=3)
    with pytest.raises(InputError, match="pos_interp"):
        ViTConfig(pos_interp="nearest")
    with pytest.raises(InputError, match="in_chans"):
        ViTRecon(ViTConfig(in_chans=2, embed_dim=24, num_heads=3))
