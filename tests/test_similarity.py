"""Nearest-neighbour feature similarity: the search against brute force, the weight-free default
features on images whose nearest neighbours are known, pool-level reports and the CLI."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mrizoo.data.synthetic import ellipse_phantom, make_test_volume
from mrizoo.errors import InputError, WeightsUnavailableError
from mrizoo.pools.index import build_slice_index
from mrizoo.pools.selection import select_pool
from mrizoo.pools.similarity import (
    DefaultFeatures,
    extract_features,
    image_similarity,
    load_slice_images,
    make_extractor,
    nearest_neighbours,
    pool_similarity,
    random_patches,
)


def _cos_brute(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty((a.shape[0], b.shape[0]))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i, j] = float(x @ y) / (np.linalg.norm(x) * np.linalg.norm(y))
    return out


def test_nearest_neighbours_match_brute_force_in_blocks() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(53, 7)).astype(np.float32)
    test = rng.normal(size=(19, 7)).astype(np.float32)
    cos = _cos_brute(test, train)
    for chunk in (4, 16, 4096):
        sim, idx = nearest_neighbours(test, train, chunk=chunk)
        assert idx.tolist() == cos.argmax(axis=1).tolist()
        np.testing.assert_allclose(sim.numpy(), cos.max(axis=1), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="same d"):
        nearest_neighbours(test, train[:, :3])


def _patterns(size: int = 48) -> list[torch.Tensor]:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    gen = torch.Generator().manual_seed(3)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(1, 1, size, size, generator=gen), 7, 1, 3)[0, 0]
    return [
        ellipse_phantom((size, size)),
        ellipse_phantom((size, size), z=0.7),
        1 + torch.sin(3 * math.pi * xx),                       # vertical stripes
        1 + torch.sin(5 * math.pi * yy),                       # horizontal stripes, other frequency
        ((xx - 0.4) ** 2 + (yy + 0.3) ** 2 < 0.1).float(),     # off-centre disk
        torch.exp(-(xx**2 + yy**2) / 0.3),                     # centred blob
        smooth,
    ]


def _perturb(img: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scale = 0.5 + 4.5 * float(torch.rand((), generator=gen))
    noisy = img * scale + 0.03 * scale * img.max() * torch.randn(img.shape, generator=gen)
    return torch.roll(noisy, shifts=(1, -1), dims=(0, 1)).abs()


def test_default_features_find_the_known_nearest_neighbours() -> None:
    train = _patterns()
    test = [_perturb(img, seed=i) for i, img in enumerate(train)]
    feats = DefaultFeatures()
    sim, idx = nearest_neighbours(extract_features(test, feats), extract_features(train, feats))
    assert idx.tolist() == list(range(len(train)))
    cos = _cos_brute(extract_features(test, feats).numpy(), extract_features(train, feats).numpy())
    runner_up = np.sort(cos, axis=1)[:, -2]
    assert (sim.numpy() - runner_up > 0.05).all()
    # intensity scale does not change the features; the same image has similarity 1
    x = torch.stack(train).unsqueeze(1)
    torch.testing.assert_close(feats(7.5 * x), feats(x), rtol=1e-4, atol=1e-5)
    self_sim, _ = nearest_neighbours(feats(x), feats(x))
    np.testing.assert_allclose(self_sim.numpy(), 1.0, atol=1e-5)
    # the blocks: thumbnail only vs both
    assert DefaultFeatures(spectrum_weight=0)(x).shape == (len(train), 32 * 32)
    assert feats(x).shape == (len(train), 32 * 32 + 32)


def test_per_set_summary_and_nearest_dataset() -> None:
    pats = _patterns()
    train = [pats[0], pats[1], pats[2], pats[3]]
    labels = ["phantoms", "phantoms", "stripes", "stripes"]
    tests = {
        "phantom_like": [_perturb(pats[0], 10), _perturb(pats[1], 11)],
        "stripe_like": [_perturb(pats[2], 12), _perturb(pats[3], 13)],
        "unseen": [_perturb(pats[4], 14), _perturb(pats[5], 15), _perturb(pats[6], 16)],
    }
    report = image_similarity(train, tests, train_labels=labels)
    assert report["phantom_like"].shares() == {"phantoms": 1.0}
    assert report["stripe_like"].shares() == {"stripes": 1.0}
    assert report["unseen"].mean < min(report["phantom_like"].mean, report["stripe_like"].mean)
    summary = report["unseen"].summary()
    assert summary["n"] == 3 and summary["p10"] <= summary["median"] <= summary["p90"]


def test_a_custom_extractor_plugs_in() -> None:
    rng = np.random.default_rng(1)
    train = [torch.tensor(rng.random((6, 5)), dtype=torch.float32) for _ in range(9)]
    test = [torch.tensor(rng.random((6, 5)), dtype=torch.float32) for _ in range(4)]

    def flatten(images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)

    report = image_similarity(train, {"t": test}, extractor=flatten)
    cos = _cos_brute(np.stack([t.numpy().ravel() for t in test]), np.stack([t.numpy().ravel() for t in train]))
    np.testing.assert_allclose(report["t"].similarity, cos.max(axis=1), rtol=1e-5)
    assert report["t"].neighbour.tolist() == cos.argmax(axis=1).tolist()
    # images of different sizes are batched per size and keep their order
    def pooled(images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(images, (2, 2)).flatten(1)

    mixed = [train[0], torch.rand(3, 3), train[1], torch.rand(3, 3)]
    out = extract_features(mixed, pooled, batch_size=1)
    for i, im in enumerate(mixed):
        torch.testing.assert_close(out[i], pooled(im[None, None])[0])
    with pytest.raises(InputError, match="different widths"):
        extract_features(mixed, flatten)
    with pytest.raises(InputError, match="wrong shape"):
        extract_features(train, lambda x: x)
    with pytest.raises(InputError, match="unknown feature"):
        make_extractor("clip-from-nowhere")


def test_random_patches_keep_foreground() -> None:
    img = torch.zeros(64, 64)
    img[:, :32] = 1.0
    gen = torch.Generator().manual_seed(0)
    patches = random_patches(img, 16, 6, generator=gen)
    assert len(patches) == 6
    assert all(p.shape == (16, 16) and float((p > 0.1).float().mean()) >= 0.5 for p in patches)
    assert random_patches(torch.zeros(64, 64), 16, 3, generator=gen) == []
    assert random_patches(img[:8, :8], 16, 3, generator=gen)[0].shape == (8, 8)


@pytest.fixture(scope="module")
def two_dataset_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("simroot")
    (root / "phantoms").mkdir()
    (root / "stripes").mkdir()
    for i in range(4):
        make_test_volume(root / "phantoms" / f"p{i}.h5", num_slices=3, shape=(32, 32), num_coils=2, seed=i)
    xx = np.linspace(-1, 1, 32)[None, :].repeat(32, 0)
    for i in range(3):
        src = root / f"stripes_{i}.npy"
        np.save(src, (1 + np.sin((3 + i) * np.pi * xx)).astype(np.complex64))
        make_test_volume(root / "stripes" / f"s{i}.h5", num_slices=2, num_coils=2, seed=20 + i, source=src)
        src.unlink()
    return root


def test_pool_similarity_over_an_index(two_dataset_root: Path, tmp_path: Path) -> None:
    index = build_slice_index(two_dataset_root, dataset={"phantoms": "cc359_axial", "stripes": "nyu"},
                              volume_metadata={"p3": {"split": "val"}, "s2": {"split": "val"}}
                              | {f"p{i}": {"split": "train"} for i in range(3)}
                              | {f"s{i}": {"split": "train"} for i in range(2)}, cache_dir=tmp_path)
    pool = {"name": "p", "train": [{"dataset": "cc359_axial", "split": "train"}],
            "test": {"same": [{"dataset": "cc359_axial", "split": "val"}],
                     "other": [{"dataset": "nyu", "split": "val"}]}}
    sel = select_pool(index, pool)
    report = pool_similarity(sel, train_per_dataset=5, test_per_set=3)
    assert report["same"].similarity.size == 3 and report["other"].similarity.size == 2
    assert report["same"].mean > report["other"].mean
    assert report["same"].shares() == {"cc359_axial": 1.0}
    # images come from the stored RSS targets
    rows = sel.test["same"][:1]
    img = load_slice_images(index, rows)[0]
    from mrizoo.data.fastmri_h5 import FastMRIVolume

    rec = index.records(rows)[0]
    with FastMRIVolume(two_dataset_root / rec["file"]) as vol:
        torch.testing.assert_close(img, vol.target(rec["slice"]))
    patched = pool_similarity(sel, train_per_dataset=5, test_per_set=3, patch_size=16, patches_per_image=2)
    assert patched["same"].similarity.size == 6


def test_similarity_command(two_dataset_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mrizoo.cli import pools

    pool_file = tmp_path / "p.yaml"
    pool_file.write_text("name: p\ntrain: [{dataset: cc359_axial}]\ntest: {stripes: [{dataset: nyu}]}\n")
    parser = argparse.ArgumentParser(prog="mrizoo")
    pools.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["similarity", str(pool_file), "--root", str(two_dataset_root),
                              "--dataset", "phantoms=cc359_axial", "--dataset", "stripes=nyu",
                              "--cache-dir", str(tmp_path / "c"), "--train-per-dataset", "4", "--test-per-set", "3"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "stripes" in out and "cc359_axial 100%" in out


def test_timm_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        from mrizoo._compat import import_timm

        import_timm()
    except Exception as err:  # noqa: BLE001 - any import problem means the hook cannot be tested here
        pytest.skip(f"timm is not importable: {err}")
    from mrizoo.pools.similarity import TimmFeatures

    tiny = TimmFeatures("resnet18", pretrained=False, num_classes=0)
    out = tiny(torch.rand(3, 1, 40, 36))
    assert out.shape == (3, 512)
    from huggingface_hub import constants  # read at import, so set the module values (offline, empty cache)

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_hf"))
    with pytest.raises(WeightsUnavailableError, match="resnet18"):
        TimmFeatures("resnet18", pretrained=True)
    with pytest.raises(InputError, match="not found"):
        TimmFeatures("resnet18", checkpoint=tmp_path / "missing.safetensors")
    # local weights load through the hook (here: the random tiny model's, saved with its head)
    from safetensors.torch import save_file

    with_head = TimmFeatures("resnet18", pretrained=False)
    save_file({k: v.contiguous() for k, v in with_head.model.state_dict().items()}, tmp_path / "w.safetensors")
    loaded = TimmFeatures("resnet18", checkpoint=tmp_path / "w.safetensors", num_classes=0)
    tiny.model.load_state_dict({k: v for k, v in with_head.model.state_dict().items() if not k.startswith("fc.")})
    images = torch.rand(2, 1, 40, 36)
    torch.testing.assert_close(loaded(images), tiny(images))
