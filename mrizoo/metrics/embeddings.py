"""Image embeddings for CFID.

An embedding is any callable mapping an image batch ``[N, C, H, W]`` to ``[N, d]``
(:class:`Embedding`). The default follows the rcGAN evaluation: VGG-16 convolutional features
(ImageNet weights, torchvision / timm ``vgg16.tv_in1k`` layout) after a global average pool,
512-d. Each image is first min-max scaled to ``[0, 1]``, grey images are repeated to three
channels, and the ImageNet mean/std normalisation is applied.

The ImageNet weights are not shipped with mrizoo. :func:`vgg16_embedding` loads them from a
file, or from the local Hugging Face cache (``timm/vgg16.tv_in1k``), and raises
:class:`WeightsUnavailableError` saying how to get them when neither is there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from mrizoo.errors import InputError, WeightsUnavailableError
from mrizoo.metrics._inputs import ArrayLike, to_tensor

__all__ = [
    "Embedding",
    "WeightsUnavailableError",
    "VGG16Features",
    "ConvFeatureEmbedding",
    "vgg16_embedding",
    "embed",
    "VGG16_HUB_ID",
]

VGG16_HUB_ID = "timm/vgg16.tv_in1k"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_VGG16_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


@runtime_checkable
class Embedding(Protocol):
    """Maps images ``[N, C, H, W]`` to embeddings ``[N, d]``."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class VGG16Features(nn.Module):
    """The 13 convolutions (ReLU, 5 max-pools) of VGG-16; ``features.<i>`` indices match
    torchvision's and timm's state dicts."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ConvFeatureEmbedding(nn.Module):
    """Image batch ``[N, C, H, W]`` (``C`` = 1 or 3) -> globally average-pooled conv features.

    Preprocessing: per-image min-max scaling to ``[0, 1]``, grey to RGB, ImageNet normalisation,
    then an optional bilinear resize to ``resize x resize``.
    """

    def __init__(self, features: nn.Module, resize: int | None = None) -> None:
        super().__init__()
        self.features = features
        self.resize = resize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise InputError(
                "wrong image batch layout", field="images",
                expected="[N, 1 or 3, H, W]", got=f"shape {tuple(images.shape)}",
            )
        x = images.to(self.mean.dtype)
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        x = (x - lo) / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        if self.resize is not None:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        return self.features(x).mean(dim=(-2, -1))


def _read_state_dict(weights: str | os.PathLike[str]) -> Mapping[str, torch.Tensor]:
    path = Path(weights)
    if not path.is_file():
        raise InputError("weights file not found", path=path)
    try:
        if path.suffix == ".safetensors":
            # imported on use: only a safetensors weights file needs it
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"cannot read weights ({type(err).__name__}: {err})", path=path) from err
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise InputError("not a state dict", path=path, expected="a mapping of tensor names to tensors")
    return state


def _cached_hub_file(hub_id: str, cache_dir: str | os.PathLike[str] | None, allow_download: bool) -> Path:
    try:
        # imported on use: only a download of the VGG-16 weights needs it (a clear error if it is missing)
        from huggingface_hub import hf_hub_download
    except ImportError as err:
        raise WeightsUnavailableError(
            "VGG-16 weights were not given and huggingface_hub is not installed; pass "
            "weights=<path to a torchvision/timm VGG-16 state dict> or use another embedding"
        ) from err
    try:
        return Path(
            hf_hub_download(
                hub_id, "model.safetensors",
                cache_dir=None if cache_dir is None else os.fspath(cache_dir),
                local_files_only=not allow_download,
            )
        )
    except Exception as err:
        where = "downloaded" if allow_download else "found in the local Hugging Face cache"
        raise WeightsUnavailableError(
            f"VGG-16 ImageNet weights ({hub_id}, model.safetensors) could not be {where} "
            f"({type(err).__name__}). Fetch them where there is internet "
            f"(`huggingface-cli download {hub_id} model.safetensors`), pass "
            "weights=<path to a torchvision/timm VGG-16 state dict>, or give CFID any callable "
            "embedding [N, C, H, W] -> [N, d]"
        ) from err


def vgg16_embedding(
    weights: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
    *,
    device: str | torch.device = "cpu",
    resize: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_download: bool = False,
    hub_id: str = VGG16_HUB_ID,
) -> ConvFeatureEmbedding:
    """The default 512-d CFID embedding: pretrained VGG-16 conv features, global average pool.

    ``weights``: a state dict or a ``.safetensors`` / ``.pt`` / ``.pth`` file in the torchvision
    or timm layout (only the ``features.*`` tensors are used). When ``None``, ``hub_id``'s
    ``model.safetensors`` is taken from the Hugging Face cache (downloaded only with
    ``allow_download=True``); otherwise :class:`WeightsUnavailableError` is raised.
    """
    origin: Path | None = None
    if weights is None:
        origin = _cached_hub_file(hub_id, cache_dir, allow_download)
        state = _read_state_dict(origin)
    elif isinstance(weights, Mapping):
        state = weights
    else:
        origin = Path(weights)
        state = _read_state_dict(origin)
    features = {k[k.index("features.") :]: v for k, v in state.items() if "features." in k}
    model = VGG16Features()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(features))
    if missing:
        raise InputError(
            "not a VGG-16 state dict: convolution weights are missing", path=origin,
            field=missing[0], expected=f"{len(expected)} tensors features.<i>.weight/bias",
            got=f"{len(missing)} of them missing",
        )
    for key, ref in expected.items():
        if tuple(features[key].shape) != tuple(ref.shape):
            raise InputError(
                "tensor has the wrong shape for VGG-16", path=origin, field=key,
                expected=tuple(ref.shape), got=tuple(features[key].shape),
            )
    model.load_state_dict({k: features[k] for k in expected})
    emb = ConvFeatureEmbedding(model, resize=resize).eval().requires_grad_(False)
    return emb.to(device)


def embed(
    images: ArrayLike,
    embedding: Embedding,
    *,
    batch_size: int = 32,
    name: str = "images",
) -> torch.Tensor:
    """Embed ``[N, C, H, W]`` (or ``[N, H, W]``) images in batches, without gradients -> float64 ``[N, d]``.

    Images are handed to the embedding as float32 on the embedding's device when it is an
    ``nn.Module`` (the images' own device otherwise).
    """
    x = to_tensor(images, name)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[0] == 0:
        raise InputError(
            "wrong image batch layout", field=name,
            expected="[N, C, H, W] or [N, H, W] with N >= 1", got=f"shape {tuple(x.shape)}",
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError("must be a positive integer", field="batch_size", got=batch_size)
    if not callable(embedding):
        raise InputError("not callable", field="embedding", expected="a callable [N, C, H, W] -> [N, d]")
    device = x.device
    if isinstance(embedding, nn.Module):
        param = next(iter(embedding.parameters()), None)
        if param is not None:
            device = param.device
    outs = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size].to(device=device, dtype=torch.float32)
            out = torch.as_tensor(embedding(chunk))
            if out.ndim != 2 or out.shape[0] != chunk.shape[0]:
                raise InputError(
                    "embedding returned the wrong shape", field="embedding",
                    expected=f"[{chunk.shape[0]}, d] for a batch of {chunk.shape[0]}", got=f"shape {tuple(out.shape)}",
                )
            outs.append(out.to(torch.float64))
    result = torch.cat(outs)
    if not bool(torch.isfinite(result).all()):
        raise InputError("embedding produced non-finite values", field="embedding", expected="finite embeddings")
    return result
