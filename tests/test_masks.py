"""Sampling masks: fastMRI parity, reproducibility, achieved accelerations, GRO lists, errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mrizoo.errors import InputError
from mrizoo.masks import Mask, create_mask, describe_mask, list_masks, register_mask, seed_from_name

subsample = pytest.importorskip("fastmri.data.subsample", reason="the fastmri package is the parity oracle")

FASTMRI = {
    "random": subsample.RandomMaskFunc,
    "equispaced": subsample.EquiSpacedMaskFunc,
    "equispaced_fraction": subsample.EquispacedMaskFractionFunc,
    "magic": subsample.MagicMaskFunc,
}
WIDTHS = (368, 372, 320, 640, 179)
# (accelerations, center_fractions): single pairs and lists from which fastMRI draws one pair
SETTINGS = (
    ([4], [0.08]),
    ([8], [0.04]),
    ([2], [0.16]),
    ([16], [0.02]),
    ([4, 8], [0.08, 0.04]),
    ([3, 4, 8], [0.12, 0.08, 0.04]),
)
SEEDS = [*range(12), 123456789, (1, 2, 3), seed_from_name("file1000000.h5"), seed_from_name("file_brain_AXT2_200_2000019.h5")]


def _params(accs: list[int], cfs: list[float]) -> dict:
    if len(accs) == 1:
        return {"acceleration": accs[0], "center_fraction": cfs[0]}
    return {"accelerations": accs, "center_fractions": cfs}


def _fastmri_lines(name: str, width: int, accs, cfs, seed, offset=None) -> tuple[torch.Tensor, int]:
    mask, num_low = FASTMRI[name](cfs, accs)((1, 15, width, 2), offset=offset, seed=seed)
    assert mask.shape == (1, 1, width, 1)
    return mask.reshape(-1).bool(), int(num_low)


# ---------------------------------------------------------------- fastMRI parity


@pytest.mark.parametrize("name", sorted(FASTMRI))
@pytest.mark.parametrize("width", WIDTHS)
def test_fastmri_parity_random_offset(name: str, width: int) -> None:
    for accs, cfs in SETTINGS:
        for seed in SEEDS:
            ref, num_low = _fastmri_lines(name, width, accs, cfs, seed)
            ours = create_mask(name, (15, width), seed=seed, **_params(accs, cfs))
            assert torch.equal(ours.lines, ref), (name, width, accs, seed)
            assert ours.num_low_frequencies == num_low
            assert torch.equal(ours.mask, ref.expand(15, width))


@pytest.mark.parametrize("name", ["equispaced", "equispaced_fraction", "magic"])
@pytest.mark.parametrize("width", WIDTHS)
def test_fastmri_parity_given_offset(name: str, width: int) -> None:
    for accs, cfs in SETTINGS:
        for offset in range(min(accs)):
            for seed in (0, 7, (4, 2)):
                ref, num_low = _fastmri_lines(name, width, accs, cfs, seed, offset)
                ours = create_mask(name, (3, width), seed=seed, offset=offset, **_params(accs, cfs))
                assert torch.equal(ours.lines, ref), (name, width, accs, offset, seed)
                assert ours.num_low_frequencies == num_low


def test_seed_from_name_matches_fastmri_data_transform() -> None:
    """fastMRI's own transform seeds masks from the file name; ours must give the same mask."""
    transforms = pytest.importorskip("fastmri.data.transforms")
    fname, width = "file1000831.h5", 372
    mask_func = subsample.EquiSpacedMaskFunc([0.08], [4])
    kspace = np.ones((2, 16, width), dtype=np.complex64)
    attrs = {"padding_left": 0, "padding_right": width, "recon_size": (16, 16), "max": 1.0}
    sample = transforms.VarNetDataTransform(mask_func, use_seed=True)(kspace, None, None, attrs, fname, 0)
    ref = sample.mask.reshape(-1)
    ours = create_mask("equispaced", (16, width), seed=seed_from_name(fname), acceleration=4, center_fraction=0.08)
    assert torch.equal(ours.lines, ref)
    assert seed_from_name(Path("/data/knee") / fname) == seed_from_name(fname)


# ---------------------------------------------------------------- the Mask record


ALL_ARGS = {
    "random": {"acceleration": 4, "center_fraction": 0.08},
    "equispaced": {"acceleration": 4, "center_fraction": 0.08},
    "equispaced_fraction": {"acceleration": 4, "center_fraction": 0.08},
    "magic": {"acceleration": 4, "center_fraction": 0.08},
    "random_horizontal": {"acceleration": 4, "center_fraction": 0.08},
    "equispaced_horizontal": {"acceleration": 4, "center_fraction": 0.08},
    "equispaced_fraction_horizontal": {"acceleration": 4, "center_fraction": 0.08},
    "gaussian1d": {"acceleration": 4, "center_fraction": 0.08},
    "gaussian1d_horizontal": {"acceleration": 4, "center_fraction": 0.08},
    "gaussian2d": {"acceleration": 8, "calib": 16},
    "poisson2d": {"acceleration": 8, "calib": 16},
    "gro": {"acceleration": 8},
}


def test_every_registered_mask_is_exercised() -> None:
    """A newly registered mask must get arguments in ALL_ARGS (and ALL_ARGS names only real masks)."""
    registered = set(list_masks())
    assert registered - set(ALL_ARGS) == set(), "registered masks no test exercises"
    assert set(ALL_ARGS) - registered == set(), "ALL_ARGS names masks that are not registered"


@pytest.mark.parametrize("name", sorted(ALL_ARGS))
def test_mask_record(name: str) -> None:
    shape = (200, 384) if name == "gro" else (96, 130)
    m = create_mask(name, shape, seed=3, **ALL_ARGS[name])
    assert isinstance(m, Mask) and m.name == name
    assert m.mask.dtype == torch.bool and m.mask.shape == shape
    assert m.acceleration == pytest.approx(shape[0] * shape[1] / int(m.mask.sum()))
    if name in ("gaussian2d", "poisson2d"):
        assert m.lines is None and m.num_low_frequencies is None
    else:
        axis_len = shape[0] if name.endswith("_horizontal") else shape[1]
        assert m.lines.dtype == torch.bool and m.lines.shape == (axis_len,)
        full = m.lines[:, None].expand(shape) if name.endswith("_horizontal") else m.lines[None, :].expand(shape)
        assert torch.equal(m.mask, full)
        assert isinstance(m.num_low_frequencies, int)


# ---------------------------------------------------------------- reproducibility


RANDOM_FAMILIES = ["random", "gaussian1d", "gaussian2d", "poisson2d"]


@pytest.mark.parametrize("name", sorted(ALL_ARGS))
def test_same_seed_same_mask(name: str) -> None:
    shape = (64, 384) if name == "gro" else (90, 121)
    for seed in (0, 11, (5, 6)):
        a = create_mask(name, shape, seed=seed, **ALL_ARGS[name])
        b = create_mask(name, shape, seed=seed, **ALL_ARGS[name])
        assert torch.equal(a.mask, b.mask)


@pytest.mark.parametrize("name", RANDOM_FAMILIES)
def test_different_seeds_different_masks(name: str) -> None:
    masks = [create_mask(name, (90, 121), seed=s, **ALL_ARGS[name]).mask for s in range(6)]
    for i in range(len(masks)):
        for j in range(i):
            assert not torch.equal(masks[i], masks[j]), (name, i, j)
    fresh = [create_mask(name, (90, 121), seed=None, **ALL_ARGS[name]).mask for _ in range(2)]
    assert not torch.equal(*fresh)


@pytest.mark.parametrize("name", ["equispaced", "equispaced_fraction", "magic"])
def test_equispaced_offsets_vary_with_seed(name: str) -> None:
    distinct = {tuple(create_mask(name, (4, 320), seed=s, **ALL_ARGS[name]).lines.tolist()) for s in range(30)}
    # R = 4 allows 4 offsets; magic's offset pairs (1, 2) / (3, 0) / (3, 4) / (5, 2) differ only inside
    # the centre block for half of them, leaving 2 distinct masks
    assert len(distinct) >= (2 if name == "magic" else 3)


def test_gro_ignores_the_seed() -> None:
    a = create_mask("gro", (8, 384), seed=0, acceleration=4)
    b = create_mask("gro", (8, 384), seed=99, acceleration=4)
    assert torch.equal(a.mask, b.mask)


# ---------------------------------------------------------------- achieved accelerations


def test_random_hits_the_nominal_line_count_on_average() -> None:
    """Expected count is exactly W/R; mean over 400 seeds within 4 standard errors."""
    width, acc, cf = 368, 4, 0.08
    counts = np.array(
        [int(create_mask("random", (1, width), seed=s, acceleration=acc, center_fraction=cf).lines.sum()) for s in range(400)]
    )
    num_low = round(width * cf)
    p = (width / acc - num_low) / (width - num_low)
    std_err = math.sqrt((width - num_low) * p * (1 - p) / counts.size)
    assert abs(counts.mean() - width / acc) < 4 * std_err


@pytest.mark.parametrize("name", ["equispaced", "magic"])
@pytest.mark.parametrize("width", WIDTHS)
def test_equispaced_acceleration_bounds(name: str, width: int) -> None:
    """Centre block + every R-th line: at least max(n_low, floor(W/R)) - 1 lines, at most n_low + ceil(W/R)."""
    for acc, cf in ((4, 0.08), (8, 0.04), (2, 0.16)):
        num_low = round(width * cf)
        for seed in range(8):
            count = int(create_mask(name, (1, width), seed=seed, acceleration=acc, center_fraction=cf).lines.sum())
            assert max(num_low, width // acc - 1) <= count <= num_low + math.ceil(width / acc), (acc, seed)


@pytest.mark.parametrize("width", WIDTHS)
def test_equispaced_fraction_close_to_nominal(width: int) -> None:
    """Within 5 % + 2 lines of W/R (overlaps with the centre block cost a line or two)."""
    for acc, cf in ((4, 0.08), (8, 0.04), (2, 0.16), (16, 0.02)):
        for seed in range(8):
            m = create_mask("equispaced_fraction", (1, width), seed=seed, acceleration=acc, center_fraction=cf)
            assert abs(int(m.lines.sum()) - width / acc) <= 0.05 * width / acc + 2, (acc, seed)


@pytest.mark.parametrize("shape", [(320, 320), (640, 368), (218, 179)])
@pytest.mark.parametrize("acc", [2, 4, 8, 12.5])
def test_gaussian1d_exact_line_count(shape: tuple[int, int], acc: float) -> None:
    m = create_mask("gaussian1d", shape, seed=1, acceleration=acc, center_fraction=0.04)
    assert int(m.lines.sum()) == round(shape[1] / acc)


@pytest.mark.parametrize("name", ["gaussian2d", "poisson2d"])
@pytest.mark.parametrize("shape", [(320, 320), (256, 179), (64, 40)])
@pytest.mark.parametrize("acc", [2, 4, 8, 10])
def test_2d_exact_point_count(name: str, shape: tuple[int, int], acc: float) -> None:
    """Both 2D families keep exactly round(H W / R) points, so the achieved R is within rounding."""
    m = create_mask(name, shape, seed=2, acceleration=acc, calib=8)
    assert int(m.mask.sum()) == round(shape[0] * shape[1] / acc)
    assert m.acceleration == pytest.approx(acc, rel=2 / (shape[0] * shape[1] / acc))


@pytest.mark.parametrize("slope", [0.0, 3.0, 6.0])
def test_poisson_uniform_and_variable_density(slope: float) -> None:
    m = create_mask("poisson2d", (320, 320), seed=4, acceleration=8, calib=0, density_slope=slope, crop_corners=False)
    assert int(m.mask.sum()) == 12800
    x = m.mask.numpy()
    y, xx = np.mgrid[:320, :320]
    r = np.hypot(y - 160, xx - 160) / 160
    inner, outer = x[(r > 0.1) & (r < 0.3)].mean(), x[(r > 0.7) & (r < 0.9)].mean()
    if slope == 0:
        assert inner == pytest.approx(outer, rel=0.1)
    else:
        assert inner > 2 * outer


def test_poisson_disc_keeps_points_apart() -> None:
    """Uniform Poisson-disc at R = 8 has no two samples side by side; i.i.d. sampling would have ~2 N / R."""
    m = create_mask("poisson2d", (256, 200), seed=0, acceleration=8, density_slope=0).mask.numpy()
    adjacent = (m[1:] & m[:-1]).sum() + (m[:, 1:] & m[:, :-1]).sum()
    assert adjacent == 0
    assert m.sum() == 6400


def test_poisson_crop_corners() -> None:
    m = create_mask("poisson2d", (128, 96), seed=0, acceleration=3, calib=10).mask.numpy()
    y, x = np.mgrid[:128, :96]
    # distance beyond the calib square, normalised to 1 at the k-space edge
    dy = np.maximum(np.abs(y - 64) - 5, 0) / 59
    dx = np.maximum(np.abs(x - 48) - 5, 0) / 43
    assert not m[np.hypot(dy, dx) > 1.05].any()
    assert m[np.hypot(dy, dx) < 0.95].mean() > 1 / 3  # the budget went to the ellipse


def test_gaussian_densities_peak_at_the_centre() -> None:
    width = 320
    freq = np.zeros(width)
    for s in range(60):
        freq += create_mask("gaussian1d", (1, width), seed=s, acceleration=4, center_fraction=0.04).lines.numpy()
    dist = np.abs(np.arange(width) - width // 2)
    assert freq[(dist > 10) & (dist < 40)].mean() > 3 * freq[(dist > 110) & (dist < 150)].mean()
    m = create_mask("gaussian2d", (200, 200), seed=0, acceleration=6).mask.numpy()
    y, x = np.mgrid[:200, :200]
    r = np.hypot(y - 100, x - 100)
    assert m[r < 20].mean() > 3 * m[r > 70].mean()


# ---------------------------------------------------------------- centres


def _fastmri_center(n: int, k: int) -> np.ndarray:
    """fastMRI's centre block of k lines out of n (its calculate_center_mask)."""
    return subsample.RandomMaskFunc([0.08], [4]).calculate_center_mask((1, n, 2), k).astype(bool)


@pytest.mark.parametrize("width", WIDTHS)
def test_gaussian1d_centre_fully_sampled(width: int) -> None:
    for cf in (0.04, 0.08, 0.16):
        m = create_mask("gaussian1d", (2, width), seed=5, acceleration=4, center_fraction=cf)
        block = _fastmri_center(width, round(width * cf))
        assert m.lines.numpy()[block].all()
        assert m.num_low_frequencies == block.sum()


@pytest.mark.parametrize("name", ["gaussian2d", "poisson2d"])
@pytest.mark.parametrize("shape", [(320, 320), (179, 230)])
@pytest.mark.parametrize("calib", [1, 20, 21])
def test_2d_calib_square_fully_sampled(name: str, shape: tuple[int, int], calib: int) -> None:
    m = create_mask(name, shape, seed=0, acceleration=8, calib=calib).mask.numpy()
    square = np.outer(_fastmri_center(shape[0], calib), _fastmri_center(shape[1], calib))
    assert m[square].all() and m[shape[0] // 2, shape[1] // 2]


# ---------------------------------------------------------------- GRO

# The published rcGAN line lists ("a-b" inclusive); R = 4 adds the whole of 176..207.
GRO_R8 = "1,23,42,60,77,92,105,117,128,138,147,155,162,169,176,182,184-200,204,210,217,224,231,239,248,258,269,281,294,309,326,344,363"
GRO_R4 = (
    "0,10,19,28,37,46,54,61,69,76,83,89,95,101,107,112,118,122,127,132,136,140,144,148,151,155,158,161,164,"
    "167,170,173,176,178,181,183,186,188,191,193,196,198,201,203,206,208,211,214,217,220,223,226,229,233,236,"
    "240,244,248,252,257,262,266,272,277,283,289,295,301,308,315,323,330,338,347,356,365,374"
)


def _parse(spec: str) -> set[int]:
    out: set[int] = set()
    for item in spec.split(","):
        lo, _, hi = item.partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    return out


def test_gro_line_lists() -> None:
    r8 = create_mask("gro", (384, 384), acceleration=8)
    assert set(np.flatnonzero(r8.lines.numpy()).tolist()) == _parse(GRO_R8)
    assert int(r8.lines.sum()) == 48 and r8.acceleration == 8

    expected_r4 = _parse(GRO_R4) | set(range(176, 208))
    assert len(_parse(GRO_R4)) == 77 and len(expected_r4) == 96
    r4 = create_mask("gro", (100, 384), acceleration=4)
    assert set(np.flatnonzero(r4.lines.numpy()).tolist()) == expected_r4
    assert int(r4.lines.sum()) == 96 and r4.acceleration == 4
    # fully sampled centre runs around column 192: 184..200 and 176..208
    assert r8.num_low_frequencies == 17 and r4.num_low_frequencies == 33


def test_gro_rejects_other_widths_and_accelerations() -> None:
    with pytest.raises(InputError, match="384 columns"):
        create_mask("gro", (384, 368), acceleration=4)
    with pytest.raises(InputError, match="4 or 8") as err:
        create_mask("gro", (384, 384), acceleration=6)
    assert err.value.field == "acceleration"


# ---------------------------------------------------------------- horizontal variants


@pytest.mark.parametrize("name", ["random", "equispaced", "equispaced_fraction", "gaussian1d"])
@pytest.mark.parametrize("shape", [(320, 368), (179, 640)])
def test_horizontal_is_transposed_vertical(name: str, shape: tuple[int, int]) -> None:
    for seed in (0, 9):
        h = create_mask(name + "_horizontal", shape, seed=seed, acceleration=4, center_fraction=0.08)
        v = create_mask(name, shape[::-1], seed=seed, acceleration=4, center_fraction=0.08)
        assert torch.equal(h.mask, v.mask.t())
        assert torch.equal(h.lines, v.lines) and h.lines.shape == (shape[0],)
        assert h.num_low_frequencies == v.num_low_frequencies and h.acceleration == v.acceleration
        rows = h.mask.numpy()
        assert (rows.all(axis=1) | ~rows.any(axis=1)).all()  # whole rows


def test_horizontal_matches_fastmri_on_rows() -> None:
    ref, num_low = _fastmri_lines("equispaced", 320, [4], [0.08], seed=3)
    h = create_mask("equispaced_horizontal", (320, 200), seed=3, acceleration=4, center_fraction=0.08)
    assert torch.equal(h.lines, ref) and h.num_low_frequencies == num_low


# ---------------------------------------------------------------- registry


def test_list_masks_wildcards() -> None:
    names = list_masks()
    assert names == sorted(names)
    assert list_masks("*_horizontal") == [
        "equispaced_fraction_horizontal",
        "equispaced_horizontal",
        "gaussian1d_horizontal",
        "random_horizontal",
    ]
    assert list_masks("gauss*") == ["gaussian1d", "gaussian1d_horizontal", "gaussian2d"]
    assert list_masks("equispaced?fraction") == ["equispaced_fraction"]
    assert list_masks("no_such_*") == []
    assert "poisson2d" in describe_mask("poisson2d") and "density_slope" in describe_mask("poisson2d")


def test_duplicate_registration_is_an_error() -> None:
    with pytest.raises(InputError, match="already registered"):

        @register_mask("random")
        def another(shape, seed=None):  # pragma: no cover - never called
            raise AssertionError


def test_register_and_create_custom_mask() -> None:
    from mrizoo.masks import _registry

    @register_mask("test_every_other_column", description="every other column")
    def every_other(shape: tuple[int, int], seed=None, *, start: int = 0) -> Mask:
        lines = torch.zeros(shape[1], dtype=torch.bool)
        lines[start::2] = True
        return Mask(lines.expand(shape).clone(), 2.0, 0, "x", lines)

    try:
        assert list_masks("test_every_*") == ["test_every_other_column"]
        m = create_mask("test_every_other_column", (4, 6), start=1)
        assert m.name == "test_every_other_column" and m.lines.tolist() == [False, True] * 3
        with pytest.raises(InputError, match="start"):
            create_mask("test_every_other_column", (4, 6), stat=1)
    finally:
        del _registry._REGISTRY["test_every_other_column"]


# ---------------------------------------------------------------- bad input


def _raises(field: str, fn, *args, match: str | None = None, **kwargs) -> InputError:
    with pytest.raises(InputError, match=match) as err:
        fn(*args, **kwargs)
    assert err.value.field == field, str(err.value)
    assert f"'{field}'" in str(err.value)
    return err.value


@pytest.mark.parametrize("name", ["random", "equispaced", "equispaced_fraction", "magic", "gaussian1d", "random_horizontal"])
def test_bad_line_mask_parameters(name: str) -> None:
    flip = name.endswith("_horizontal")  # rows are the sampled axis
    shape = (320, 64) if flip else (64, 320)
    for acc in (1, 0.5, -4, math.nan, math.inf, "4", None):
        _raises("acceleration", create_mask, name, shape, acceleration=acc, center_fraction=0.08)
    for cf in (0, 1, -0.1, 1.5, math.nan, "0.08", None):
        _raises("center_fraction", create_mask, name, shape, acceleration=4, center_fraction=cf)
    # 0.3 * 320 = 96 centre lines >= the 80-line budget of R = 4
    err = _raises("center_fraction", create_mask, name, shape, acceleration=4, center_fraction=0.3)
    assert "budget" in str(err)
    _raises("acceleration", create_mask, name, (20, 64) if flip else (64, 20), acceleration=32, center_fraction=0.02)


@pytest.mark.parametrize("name", ["random", "equispaced", "equispaced_fraction", "magic"])
def test_bad_sequence_parameters(name: str) -> None:
    shape = (64, 320)
    err = _raises("center_fractions", create_mask, name, shape, accelerations=[4, 8], center_fractions=[0.08])
    assert "2 values" in str(err)
    _raises("center_fractions", create_mask, name, shape, accelerations=[4, 8])
    _raises("accelerations", create_mask, name, shape, accelerations=[], center_fractions=[])
    _raises("accelerations", create_mask, name, shape, accelerations=[4, 1], center_fractions=[0.08, 0.04])
    _raises("acceleration", create_mask, name, shape, acceleration=4, center_fractions=[0.08])


@pytest.mark.parametrize("name", ["equispaced", "magic"])
def test_equispaced_steps_need_integer_acceleration(name: str) -> None:
    _raises("acceleration", create_mask, name, (8, 320), acceleration=4.5, center_fraction=0.08, match="integer")
    assert create_mask(name, (8, 320), seed=0, acceleration=4.0, center_fraction=0.08).lines.sum() > 0


@pytest.mark.parametrize("name", ["equispaced", "equispaced_fraction", "magic"])
def test_bad_offset(name: str) -> None:
    for offset in (-1, 320, 1.5, "1"):
        _raises("offset", create_mask, name, (8, 320), acceleration=4, center_fraction=0.08, offset=offset)


@pytest.mark.parametrize("name", ["gaussian2d", "poisson2d"])
def test_bad_2d_parameters(name: str) -> None:
    _raises("acceleration", create_mask, name, (64, 64), acceleration=1.0)
    _raises("calib", create_mask, name, (64, 64), acceleration=4, calib=-1)
    _raises("calib", create_mask, name, (64, 64), acceleration=4, calib=65)
    err = _raises("calib", create_mask, name, (64, 64), acceleration=8, calib=24)  # 576 > 512 budget
    assert "budget" in str(err)


def test_bad_family_specific_parameters() -> None:
    _raises("std", create_mask, "gaussian1d", (8, 64), acceleration=4, center_fraction=0.08, std=0)
    _raises("std", create_mask, "gaussian2d", (8, 64), acceleration=4, std=math.inf)
    _raises("density_slope", create_mask, "poisson2d", (64, 64), acceleration=4, density_slope=-1)
    _raises("crop_corners", create_mask, "poisson2d", (64, 64), acceleration=4, crop_corners="yes")
    # the inscribed ellipse holds pi/4 of k-space, so R < 4/pi is out of reach with cropped corners
    err = _raises("acceleration", create_mask, "poisson2d", (64, 64), acceleration=1.2)
    assert "crop_corners" in str(err)
    assert int(create_mask("poisson2d", (64, 64), seed=0, acceleration=1.2, crop_corners=False).mask.sum()) == round(64 * 64 / 1.2)


def test_unknown_names_suggest_close_ones() -> None:
    err = _raises("name", create_mask, "equispace", (8, 320), acceleration=4, center_fraction=0.08)
    assert "'equispaced'" in str(err)
    err = _raises("acceleraton", create_mask, "random", (8, 320), acceleraton=4, center_fraction=0.08)
    assert "did you mean 'acceleration'" in str(err)
    _raises("offset", create_mask, "random", (8, 320), acceleration=4, center_fraction=0.08, offset=1)
    _raises("name", describe_mask, "poison2d")


def test_bad_shape_and_seed() -> None:
    for shape in ((320,), (0, 320), (320, -1), (320.0, 320), "320x320", (True, 3), (2, 3, 4), 320):
        _raises("shape", create_mask, "random", shape, acceleration=4, center_fraction=0.08)
    for seed in (-1, 2**32, 1.5, "abc", [], ["a"]):
        _raises("seed", create_mask, "random", (8, 320), seed=seed, acceleration=4, center_fraction=0.08)
    for fname in ("", None, 3):
        _raises("fname", seed_from_name, fname)
    assert seed_from_name("ab.h5") == (97, 98, 46, 104, 53)
