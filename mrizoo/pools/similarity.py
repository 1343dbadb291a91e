"""Train-test similarity of image sets: nearest-neighbour cosine similarity of features.

Lin & Heckel (ICML 2024, Fig. 5 and 10, App. D) explain robustness gains of diverse
training data by similarity: for each test image, the cosine similarity of its features to
the nearest training image; the mean over a test set measures how close the training pool
comes to it. The paper uses CLIP ViT-B/16 (DataComp-1B) features of 80x80 foreground patches.

The feature extractor is pluggable: any callable mapping images ``[N, 1, H, W]`` to
``[N, d]`` (:class:`FeatureExtractor`). :class:`DefaultFeatures` needs no weights;
:class:`TimmFeatures` wraps a timm image model, e.g. the CLIP tower
``vit_base_patch16_clip_224.datacompxl`` (the paper's model), when its weights are cached
locally or given as a file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from mrizoo._compat import import_timm
from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.errors import InputError, WeightsUnavailableError
from mrizoo.physics.coils import rss
from mrizoo.physics.fft import ifft2c

__all__ = [
    "CLIP_MODEL",
    "DefaultFeatures",
    "FeatureExtractor",
    "SetSimilarity",
    "TimmFeatures",
    "extract_features",
    "image_similarity",
    "load_slice_images",
    "make_extractor",
    "nearest_neighbours",
    "pool_similarity",
    "random_patches",
]

#: timm name of the CLIP image tower the paper used (ViT-B/16 trained on DataComp-1B).
CLIP_MODEL = "vit_base_patch16_clip_224.datacompxl"


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps magnitude images ``[N, 1, H, W]`` to feature vectors ``[N, d]``."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
        raise InputError("wrong image batch layout", field="images", expected="[N, 1, H, W]",
                         got=f"shape {tuple(getattr(images, 'shape', ()))}")
    x = images.abs() if images.is_complex() else images
    return x.to(torch.float32)


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


@dataclass
class DefaultFeatures:
    """Weight-free features: a ``size x size`` thumbnail and a radially averaged power spectrum.

    Thumbnail: area-average of the image to ``size x size``. Spectrum: mean of ``|FFT|^2``
    of the mean-removed image in ``bins`` rings of spatial frequency (0 to 0.5 cycles per
    pixel, so images of different sizes compare), on a log scale. Each block is centred and
    scaled to unit length and the blocks are weighted so that the cosine similarity of two
    feature vectors is ``(c_thumb + w * c_spec) / (1 + w)`` with ``w = spectrum_weight``:
    a weighted mean of the correlation of the thumbnails (layout, anatomy) and of the spectra
    (resolution, noise level, texture). The default ``w = 0.5`` lets the layout lead, since
    noise flattens every spectrum's tail alike. Both parts ignore the intensity scale.
    """

    size: int = 32
    bins: int = 32
    spectrum_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in ("size", "bins"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise InputError("must be an integer >= 2", field=name, got=v)
        if not (isinstance(self.spectrum_weight, (int, float)) and self.spectrum_weight >= 0
                and math.isfinite(self.spectrum_weight)):
            raise InputError("must be a number >= 0", field="spectrum_weight", got=self.spectrum_weight)

    def _spectrum(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        x64 = x.to(torch.float64)
        centred = x64 - x64.mean(dim=(-2, -1), keepdim=True)
        power = torch.fft.fft2(centred[:, 0]).abs().square().reshape(n, -1)
        fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
        fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
        radius = torch.sqrt(fy**2 + fx**2).reshape(-1)
        ring = torch.clamp((radius / 0.5 * self.bins).long(), max=self.bins)  # ring == bins: corners, dropped
        sums = torch.zeros(n, self.bins + 1, dtype=power.dtype).index_add_(1, ring, power)
        counts = torch.bincount(ring, minlength=self.bins + 1).clamp_min(1).to(power.dtype)
        mean = (sums / counts)[:, : self.bins]
        scale = mean.mean(dim=1, keepdim=True).clamp_min(1e-300)
        # rings below 1e-6 of the mean power are rounding noise; the floor keeps the log scale-free
        return torch.log(mean / scale + 1e-6).to(torch.float32)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = _check_images(images)
        thumb = _unit(F.adaptive_avg_pool2d(x, (self.size, self.size)).flatten(1))
        if self.spectrum_weight == 0:
            return thumb
        spec = _unit(self._spectrum(x))
        s = float(self.spectrum_weight)
        return torch.cat([thumb / math.sqrt(1 + s), spec * math.sqrt(s / (1 + s))], dim=1)


class TimmFeatures:
    """Embeddings of a timm image model (default: the CLIP tower the paper used).

    Images are scaled to ``[0, 1]`` per image, repeated to three channels, resized to the
    model's input size and normalised with its mean and std. ``checkpoint``: a local weights
    file; otherwise ``pretrained`` weights come from the Hugging Face cache (downloaded when
    online). ``create_kwargs`` go to ``timm.create_model`` (e.g. ``num_classes=0`` to drop
    a classifier head).
    """

    def __init__(
        self,
        model_name: str = CLIP_MODEL,
        *,
        pretrained: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
        **create_kwargs: Any,
    ) -> None:
        timm = import_timm()
        kwargs = dict(create_kwargs)
        if checkpoint is not None:
            if not Path(checkpoint).is_file():
                raise InputError("weights file not found", path=checkpoint)
            kwargs["pretrained_cfg_overlay"] = {"file": os.fspath(checkpoint)}
        try:
            model = timm.create_model(model_name, pretrained=pretrained or checkpoint is not None, **kwargs)
        except RuntimeError as err:  # unknown model names raise RuntimeError in timm
            if "Unknown model" in str(err):
                raise InputError("unknown timm model", field="model_name", got=repr(model_name)) from None
            raise WeightsUnavailableError(
                f"cannot load weights of timm model {model_name!r} ({type(err).__name__}: {err}); "
                "give checkpoint=<file> or fetch them once online into the Hugging Face cache"
            ) from err
        except OSError as err:  # missing from the cache and offline, or no network
            raise WeightsUnavailableError(
                f"weights of timm model {model_name!r} are not available offline ({type(err).__name__}: {err}); "
                "give checkpoint=<file> or fetch them once online into the Hugging Face cache"
            ) from err
        self.model = model.eval().to(device)
        cfg = timm.data.resolve_data_config({}, model=self.model)
        self.input_size = tuple(int(v) for v in cfg["input_size"][-2:])
        self.device = torch.device(device)
        self.mean = torch.tensor(cfg["mean"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.batch_size = int(batch_size)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = _check_images(images)
        outs = []
        for start in range(0, x.shape[0], self.batch_size):
            b = x[start : start + self.batch_size].to(self.device)
            lo = b.amin(dim=(1, 2, 3), keepdim=True)
            hi = b.amax(dim=(1, 2, 3), keepdim=True)
            b = (b - lo) / (hi - lo).clamp_min(1e-12)
            b = F.interpolate(b.expand(-1, 3, -1, -1), size=self.input_size, mode="bilinear", align_corners=False)
            feats = self.model((b - self.mean) / self.std)
            outs.append(feats.flatten(1).float().cpu())
        return torch.cat(outs)


def make_extractor(spec: str | FeatureExtractor | None = None, *, device: str = "cpu") -> FeatureExtractor:
    """``None``/``"default"``: :class:`DefaultFeatures`; ``"timm"`` or ``"timm:<model>[@<weights file>]"``:
    :class:`TimmFeatures`; a callable is returned as is."""
    if spec is None or spec == "default":
        return DefaultFeatures()
    if callable(spec):
        return spec
    if isinstance(spec, str) and (spec == "timm" or spec.startswith("timm:")):
        rest = spec[5:] or CLIP_MODEL
        name, _, weights = rest.partition("@")
        return TimmFeatures(name or CLIP_MODEL, checkpoint=weights or None, device=device)
    raise InputError("unknown feature extractor", field="features",
                     expected="'default', 'timm', 'timm:<model>' or 'timm:<model>@<weights file>'", got=repr(spec))


# ----------------------------------------------------------------------------- features and neighbours
def extract_features(
    images: torch.Tensor | Sequence[torch.Tensor | np.ndarray],
    extractor: FeatureExtractor | None = None,
    *,
    batch_size: int = 64,
) -> torch.Tensor:
    """Features ``[N, d]`` of images ``[N, 1, H, W]`` or of a list of 2D images of any sizes
    (images of one size are batched together; the output keeps the input order)."""
    extractor = extractor or DefaultFeatures()
    if isinstance(images, torch.Tensor):
        items = [images[i, 0] for i in range(images.shape[0])] if images.ndim == 4 else None
        if items is None:
            raise InputError("wrong image batch layout", field="images", expected="[N, 1, H, W] or a list of [H, W]",
                             got=f"shape {tuple(images.shape)}")
    else:
        items = [torch.as_tensor(np.asarray(im)) if not isinstance(im, torch.Tensor) else im for im in images]
    if not items:
        raise InputError("no images", field="images")
    for i, im in enumerate(items):
        if im.ndim != 2:
            raise InputError("each image must be 2D [H, W]", field=f"images[{i}]", got=f"shape {tuple(im.shape)}")
    groups: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(items):
        groups.setdefault((int(im.shape[0]), int(im.shape[1])), []).append(i)
    out: torch.Tensor | None = None
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            part = members[start : start + batch_size]
            batch = torch.stack([items[i] for i in part]).unsqueeze(1)
            feats = torch.as_tensor(extractor(batch))
            if feats.ndim != 2 or feats.shape[0] != len(part):
                raise InputError("feature extractor returned the wrong shape", field="extractor",
                                 expected=f"[{len(part)}, d]", got=f"shape {tuple(feats.shape)}")
            if out is None:
                out = torch.empty(len(items), feats.shape[1], dtype=torch.float32)
            elif feats.shape[1] != out.shape[1]:
                raise InputError("feature extractor gives different widths for different image sizes",
                                 field="extractor", expected=f"[N, {out.shape[1]}]", got=f"shape {tuple(feats.shape)}")
            out[part] = feats.detach().to(torch.float32).cpu()
    assert out is not None
    return out


def nearest_neighbours(
    test: torch.Tensor | np.ndarray, train: torch.Tensor | np.ndarray, *, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each test row, the cosine similarity to its nearest training row and that row's index.

    Works in blocks of ``chunk`` x ``chunk`` so large training sets fit in memory.
    """
    a = torch.as_tensor(test, dtype=torch.float32)
    b = torch.as_tensor(train, dtype=torch.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise InputError("features must be [N, d] and [M, d] with the same d", field="features",
                         got=f"{tuple(a.shape)} and {tuple(b.shape)}")
    if b.shape[0] == 0 or a.shape[0] == 0:
        raise InputError("empty feature set", field="features", got=f"{tuple(a.shape)} and {tuple(b.shape)}")
    a = F.normalize(a, dim=1, eps=1e-12)
    b = F.normalize(b, dim=1, eps=1e-12)
    best = torch.full((a.shape[0],), -math.inf)
    where = torch.zeros(a.shape[0], dtype=torch.long)
    for i in range(0, a.shape[0], chunk):
        ai = a[i : i + chunk]
        for j in range(0, b.shape[0], chunk):
            sim, arg = (ai @ b[j : j + chunk].T).max(dim=1)
            better = sim > best[i : i + chunk]
            best[i : i + chunk] = torch.where(better, sim, best[i : i + chunk])
            where[i : i + chunk] = torch.where(better, arg + j, where[i : i + chunk])
    return best, where


@dataclass
class SetSimilarity:
    """Nearest-neighbour similarities of one test set to the training set."""

    name: str
    similarity: np.ndarray
    neighbour: np.ndarray
    neighbour_dataset: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))

    @property
    def mean(self) -> float:
        return float(np.mean(self.similarity))

    def shares(self) -> dict[str, float]:
        """Fraction of test items whose nearest neighbour comes from each training dataset."""
        if self.neighbour_dataset.size == 0:
            return {}
        names, counts = np.unique(self.neighbour_dataset.astype(str), return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return {str(names[i]): float(counts[i] / counts.sum()) for i in order}

    def summary(self) -> dict[str, Any]:
        s = self.similarity
        return {"set": self.name, "n": int(s.size), "mean": self.mean, "median": float(np.median(s)),
                "p10": float(np.quantile(s, 0.1)), "p90": float(np.quantile(s, 0.9)), "nearest_from": self.shares()}


def image_similarity(
    train: torch.Tensor | Sequence[torch.Tensor | np.ndarray],
    tests: Mapping[str, torch.Tensor | Sequence[torch.Tensor | np.ndarray]],
    *,
    train_labels: Sequence[str] | np.ndarray | None = None,
    extractor: FeatureExtractor | None = None,
    batch_size: int = 64,
) -> dict[str, SetSimilarity]:
    """Nearest-neighbour similarity of each test set to the training images (see module docs)."""
    extractor = extractor or DefaultFeatures()
    train_feats = extract_features(train, extractor, batch_size=batch_size)
    labels = None if train_labels is None else np.asarray(train_labels, dtype=object)
    if labels is not None and labels.size != train_feats.shape[0]:
        raise InputError("one label per training image needed", field="train_labels",
                         expected=train_feats.shape[0], got=labels.size)
    out = {}
    for name, images in tests.items():
        sim, idx = nearest_neighbours(extract_features(images, extractor, batch_size=batch_size), train_feats)
        idx_np = idx.numpy()
        out[name] = SetSimilarity(name, sim.numpy(), idx_np,
                                  labels[idx_np] if labels is not None else np.zeros(0, dtype=object))
    return out


# ----------------------------------------------------------------------------- images from an index
def random_patches(
    image: torch.Tensor, size: int, count: int, *, generator: torch.Generator,
    threshold: float = 0.1, min_foreground: float = 0.5, tries: int = 20,
) -> list[torch.Tensor]:
    """Up to ``count`` random ``size x size`` patches whose pixels are mostly foreground
    (at least ``min_foreground`` of them above ``threshold`` times the image's 99th percentile);
    the whole image when it is smaller than a patch."""
    h, w = image.shape[-2:]
    if h < size or w < size:
        return [image]
    level = threshold * torch.quantile(image.flatten().float(), 0.99)
    out: list[torch.Tensor] = []
    for _ in range(count * tries):
        top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
        patch = image[top : top + size, left : left + size]
        if float((patch > level).float().mean()) >= min_foreground:
            out.append(patch)
            if len(out) == count:
                break
    return out


def load_slice_images(index: Any, rows: Sequence[int] | np.ndarray, *, target: str = "auto") -> list[torch.Tensor]:
    """Magnitude images of index rows: the stored ``reconstruction_rss`` (``target="auto"``, when
    the file has one) or the RSS of the fully sampled k-space (``"rss"``), or a stored target name."""
    rows = np.asarray(rows, dtype=np.int64)
    files = index.values("file", rows)
    slices = index.numbers("slice")[rows]
    out: list[torch.Tensor | None] = [None] * rows.size
    by_file: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        by_file.setdefault(str(f), []).append(i)
    for f, members in by_file.items():
        with FastMRIVolume(index.file_path(f)) as vol:
            key = target
            if target == "auto":
                key = "reconstruction_rss" if "reconstruction_rss" in vol.target_keys else "rss"
            for i in members:
                s = int(slices[i])
                if key == "rss":
                    k = vol.kspace(s)
                    img = ifft2c(k).abs() if k.ndim == 2 else rss(ifft2c(k))
                else:
                    img = vol.target(s, key)
                out[i] = img.to(torch.float32)
    return out  # type: ignore[return-value]


def _sample(rows: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or rows.size <= limit:
        return rows
    return np.sort(rng.choice(rows, size=limit, replace=False))


def pool_similarity(
    selection: Any,
    *,
    extractor: FeatureExtractor | None = None,
    train_per_dataset: int | None = 256,
    test_per_set: int | None = 256,
    patch_size: int | None = None,
    patches_per_image: int = 4,
    seed: int = 0,
    target: str = "auto",
    batch_size: int = 64,
) -> dict[str, SetSimilarity]:
    """Similarity of each test set of a :class:`~mrizoo.pools.selection.PoolSelection` to its training rows.

    Up to ``train_per_dataset`` random training slices per dataset and ``test_per_set`` per
    test set are read (seeded). With ``patch_size`` (the paper: 80), each image gives up to
    ``patches_per_image`` foreground patches and patches are compared instead of images.
    """
    index = selection.index
    if not selection.train.size:
        raise InputError("the pool's training selection is empty", field="train")
    rng = np.random.default_rng(seed)
    dcodes, _ = index.codes("dataset")
    train_rows = np.concatenate([
        _sample(selection.train[dcodes[selection.train] == c], train_per_dataset, rng)
        for c in np.unique(dcodes[selection.train])
    ])
    gen = torch.Generator().manual_seed(int(seed))

    def images(rows: np.ndarray) -> tuple[list[torch.Tensor], np.ndarray]:
        imgs = load_slice_images(index, rows, target=target)
        if patch_size is None:
            return imgs, rows
        patches, owner = [], []
        for r, im in zip(rows, imgs):
            got = random_patches(im, patch_size, patches_per_image, generator=gen)
            patches.extend(got)
            owner.extend([r] * len(got))
        return patches, np.asarray(owner, dtype=np.int64)

    train_imgs, train_owner = images(train_rows)
    if not train_imgs:
        raise InputError("no foreground patches in the training images", field="patch_size", got=patch_size)
    tests = {}
    for name, rows in selection.test.items():
        if rows.size:
            tests[name] = images(_sample(rows, test_per_set, rng))[0]
    return image_similarity(train_imgs, {k: v for k, v in tests.items() if v},
                            train_labels=index.values("dataset", train_owner),
                            extractor=extractor, batch_size=batch_size)
