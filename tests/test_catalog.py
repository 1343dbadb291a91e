"""The dataset catalog against the paper (Table 1, Appendix G.1), its validation, local roots and
the ``mrizoo datasets`` command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from mrizoo._paths import mrizoo_home
from mrizoo.datasets import (
    DatasetRootError,
    catalog_rows,
    data_config_path,
    dataset_root,
    env_var_name,
    get_dataset,
    list_datasets,
    read_data_config,
    read_dataset_file,
    root_status,
)
from mrizoo.errors import InputError

SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "lin-heckel2024-diverse-training-data.txt"

# Table 1 of Lin & Heckel (ICML 2024), rows as printed (tab-separated).
TABLE_1 = """\
fastMRI knee (Zbontar et al., 2019)	knee	coronal	PD (50%), PDFS (50%)	Siemens	1.5T (45%), 3T (55%)	15	1.2k/1.2k	42k
fastMRI brain (Zbontar et al., 2019)	brain	axial	T1 (11%), T1POST (21%), T2 (60%), FLAIR (8%)	Siemens	1.5T (43%), 3T (67%)	4-20	6.4k/6.4k	100k
fastMRI prostate (Tibrewala et al., 2023)	prostate	axial	T2	Siemens	3T	10-30	312/312	9.5k
M4Raw (Lyu et al., 2023)	brain	axial	T1 (37%), T2 (37%), FLAIR (26%)	XGY	0.3T	4	1.4k/183	25k
SKM-TEA, 3D (Desai et al., 2021)	knee	sagittal	qDESS	GE	3T	8, 16	310/155	50k
Stanford 3D (Epperson, 2013)	knee	axial	PDFS	GE	3T	8	19/19	6k
Stanford 3D (Epperson, 2013)	knee	coronal	PDFS	GE	3T	8	19/19	6k
Stanford 3D (Epperson, 2013)	knee	sagittal	PDFS	GE	3T	8	19/19	4.8k
7T database, 3D (Caan, 2022)	brain	axial	MP2RAGE-ME	Philips	7T	32	385/77	112k
7T database, 3D (Caan, 2022)	brain	coronal	MP2RAGE-ME	Philips	7T	32	385/77	112k
7T database, 3D (Caan, 2022)	brain	sagittal	MP2RAGE-ME	Philips	7T	32	385/77	91k
CC-359, 3D (Souza et al., 2018)	brain	axial	GRE	GE	3T	12	67/67	17k
CC-359, 3D (Souza et al., 2018)	brain	coronal	GRE	GE	3T	12	67/67	14k
CC-359, 3D (Souza et al., 2018)	brain	sagittal	GRE	GE	3T	12	67/67	11k
Stanford 2D (Cheng, 2018)	various	various	various	GE	3T	3-32	89/89	2k
NYU data (Hammernik et al., 2018)	knee	various	PD (40%), PDFS (20%), T2FS(40%)	Siemens	3T	15	100/20	3.5k
M4Raw GRE (Lyu et al., 2023)	brain	axial	GRE	XGY	0.3T	4	366/183	6.6k"""

# Appendix G.1, the slices omitted per view.
APPENDIX_G1 = """\
CC-359, sagittal view: First 15 and last 15 slices are omitted.
CC-359, axial view: First 50 slices are omitted.
CC-359, coronal view: First 25 and 15 slices are omitted.
Stanford 3D, axial view: First 5 and last 5 slices are omitted.
Stanford 3D, coronal view: First 40 and last 40 slices are omitted.
Stanford 3D, sagittal view: First 30 and last 30 slices are omitted.
7T database, axial view: First 70 and last 70 slices are omitted.
7T database, coronal view: First 30 and last 30 slices are omitted.
7T database, sagittal view: First 30 and last 30 slices are omitted."""
G1_NAMES = {"CC-359": "cc359", "Stanford 3D": "stanford3d", "7T database": "7t"}


def _row(entry, view) -> str:
    return "\t".join([entry.title, entry.anatomy, view.name, entry.contrast_text, entry.vendor, entry.field_text,
                      entry.coils, f"{view.volumes}/{view.subjects}", view.slices])


def _squash(text: str) -> str:
    return re.sub(r"\s+\(", "(", text)  # the paper prints "T2FS(40%)" without a space


def test_the_embedded_tables_are_the_papers():
    if not SEED.exists():
        pytest.skip(f"paper text not found at {SEED} (only present in the development checkout)")
    text = SEED.read_text()
    for line in TABLE_1.splitlines():
        assert line in text
    for line in APPENDIX_G1.splitlines():
        assert f"- {line}" in text


def test_catalog_reproduces_table_1_row_by_row():
    rows = [_row(e, v) for e, v in catalog_rows()]
    assert [_squash(r) for r in rows] == [_squash(r) for r in TABLE_1.splitlines()]
    assert len(list_datasets()) == 11


def test_roles_are_13_training_rows_and_the_4_ood_test_sets():
    ood = {(e.name, v.name) for e, v in catalog_rows() if v.role == "ood-test"}
    assert ood == {("cc359", "sagittal"), ("stanford2d", "various"), ("nyu", "various"), ("m4raw-gre", "axial")}
    assert sum(v.role == "train" for _, v in catalog_rows()) == 13


def test_dropped_end_slices_follow_appendix_g1():
    expected = {}
    for line in APPENDIX_G1.splitlines():
        m = re.fullmatch(r"(.+), (\w+) view: First (\d+)(?: and (?:last )?(\d+))? slices are omitted\.", line)
        assert m, line
        expected[(G1_NAMES[m.group(1)], m.group(2))] = (int(m.group(3)), int(m.group(4) or 0))
    for entry, view in catalog_rows():
        got = (view.geometry.drop_first, view.geometry.drop_last)
        assert got == expected.get((entry.name, view.name), (0, 0)), (entry.name, view.name)


def test_conversion_settings_of_the_authors_converters():
    scale = {e.name: e.conversion.scale for e in map(get_dataset, list_datasets())}
    # REFERENCE.md, seed 002: Stanford 2D x1e-8, Stanford 3D x1e-7, CC-359 x1e-10, SKM-TEA /1e11, 7T /1e14
    assert scale["stanford2d"] == 1e-8 and scale["stanford3d"] == 1e-7 and scale["cc359"] == 1e-10
    assert scale["skm-tea"] == 1e-11 and scale["7t"] == 1e-14
    assert scale["fastmri-knee"] == scale["fastmri-brain"] == scale["fastmri-prostate"] == 1.0
    flipped = {e.name for e, v in catalog_rows() if v.geometry.flip_rows}
    assert flipped == {"stanford2d", "stanford3d", "nyu", "cc359", "m4raw", "skm-tea"}
    skm = get_dataset("skm-tea").conversion
    assert "e" in skm.axes and skm.image_axes == "x"
    prostate = get_dataset("fastmri-prostate").conversion.averages
    assert (prostate.mode, prostate.odd, prostate.even) == ("parity", (0, 2), (1,))
    for name in ("stanford3d", "7t", "cc359"):
        views = get_dataset(name).views
        assert len(views) == 3 and len({v.geometry.slice_axis for v in views}) == 3
    assert [v.name for v in get_dataset("skm-tea").views] == ["sagittal"]
    for entry in map(get_dataset, list_datasets()):
        assert entry.access.terms and entry.access.request and entry.source_format


def test_pool_names_one_per_table_row():
    names = [e.pool_name(v.name) for e, v in catalog_rows()]
    assert len(set(names)) == 17 and all(re.fullmatch(r"[a-z0-9][a-z0-9_]*", n) for n in names)
    assert names[:6] == ["fastmri_knee", "fastmri_brain", "fastmri_prostate", "m4raw", "skm_tea",
                         "stanford3d_axial"]
    assert names[-1] == "m4raw_gre"
    attrs = get_dataset("nyu").volume_attrs("various")
    assert attrs == {"dataset": "nyu", "catalog_dataset": "nyu", "vendor": "Siemens", "anatomy": "knee",
                     "field_strength": 3.0}  # three contrasts: the files tell which


# ----------------------------------------------------------------------------- validation
GOOD = """\
dataset:
  name: demo
  title: Demo (Someone, 2024)
  order: 99
  anatomy: knee
  contrasts: [{name: PD}]
  vendor: GE
  field_strengths: [{tesla: 3}]
  coils: "8"
  access: {terms: open, request: the demo page}
  conversion: {format: array, axes: xyzc, scale: 1.0e-3}
  views:
    - {name: axial, volumes: "2", subjects: "2", slices: "40", role: train,
       geometry: {slice_axis: z, drop_first: 2}}
"""


def test_a_valid_entry_file_loads(tmp_path):
    entry = read_dataset_file(tmp_path / "demo.yaml", GOOD)
    assert entry.views[0].geometry.slice_axis == "z" and entry.conversion.scale == 1e-3
    # 1e-3 without a dot is a float too (YAML 1.2), as in every other file the package reads
    assert read_dataset_file(tmp_path / "demo.yaml", GOOD.replace("scale: 1.0e-3", "scale: 1e-3")).conversion.scale == 1e-3


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("slice_axis: z, drop_first: 2", "slice_axis: z, drop_frist: 2", "dataset.views[0].geometry"),
        ('slices: "40"', "slices: 40", "dataset.views[0].slices"),
        ("role: train", "role: training", "dataset.views[0].role"),
        ("scale: 1.0e-3", "scale: '1e-3'", "dataset.conversion.scale"),  # quoted: text, not a number
        ("tesla: 3", "tesla: -3", "dataset.field_strengths[0]"),
        ("slice_axis: z,", "slice_axis: q,", "dataset.views[0].geometry"),
        ("format: array, axes: xyzc", "format: array", "dataset.conversion"),
        ("  anatomy: knee\n", "", "dataset.anatomy"),
    ],
)
def test_bad_entries_name_the_file_and_the_key(tmp_path, old, new, field):
    assert old in GOOD
    with pytest.raises(InputError) as err:
        read_dataset_file(tmp_path / "demo.yaml", GOOD.replace(old, new))
    assert err.value.path == str(tmp_path / "demo.yaml")
    assert err.value.field == field


def test_entry_file_name_must_match_and_unknown_names_suggest(tmp_path):
    with pytest.raises(InputError, match="file name must be the dataset name"):
        read_dataset_file(tmp_path / "other.yaml", GOOD)
    with pytest.raises(InputError, match="did you mean 'stanford3d'"):
        get_dataset("stanford-3d")


# ----------------------------------------------------------------------------- local roots
@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("MRIZOO_HOME", "MRIZOO_DATA_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    for name in list_datasets():
        monkeypatch.delenv(env_var_name(name), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return monkeypatch


def test_env_var_names():
    assert env_var_name("fastmri-knee") == "MRIZOO_DATA_FASTMRI_KNEE"
    assert env_var_name("7t") == "MRIZOO_DATA_7T"
    assert env_var_name("m4raw-gre") == "MRIZOO_DATA_M4RAW_GRE"


def test_roots_from_config_file_and_environment(clean_env, tmp_path):
    assert mrizoo_home() == tmp_path / "user" / ".cache" / "mrizoo"
    clean_env.setenv("MRIZOO_HOME", str(tmp_path / "home"))
    assert data_config_path() == tmp_path / "home" / "datasets.yaml"
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "knee").mkdir()
    (tmp_path / "data" / "cc").mkdir(parents=True)
    data_config_path().write_text(f"datasets:\n  fastmri-knee: knee\n  cc359: {tmp_path / 'data' / 'nope'}\n")
    assert dataset_root("fastmri-knee") == tmp_path / "home" / "knee"  # relative to the config file
    status = root_status("cc359")
    assert status.path == tmp_path / "data" / "nope" and not status.exists
    with pytest.raises(DatasetRootError, match="does not exist"):
        dataset_root("cc359")
    clean_env.setenv("MRIZOO_DATA_CC359", str(tmp_path / "data" / "cc"))  # the environment wins
    assert dataset_root("cc359") == tmp_path / "data" / "cc"
    assert "MRIZOO_DATA_CC359" in root_status("cc359").origin
    other = tmp_path / "elsewhere.yaml"
    other.write_text("datasets:\n  stanford3d: /x\n")
    clean_env.setenv("MRIZOO_DATA_CONFIG", str(other))
    assert read_data_config() == {"stanford3d": Path("/x")}


def test_missing_root_says_how_to_set_it_and_where_to_request_data(clean_env, tmp_path):
    clean_env.setenv("MRIZOO_HOME", str(tmp_path / "home"))
    with pytest.raises(DatasetRootError) as err:
        dataset_root("stanford3d")
    message = str(err.value)
    assert "MRIZOO_DATA_STANFORD3D" in message and str(tmp_path / "home" / "datasets.yaml") in message
    assert "Stanford Fullysampled 3D FSE Knees" in message and "downloads nothing" in message


def test_bad_config_files_name_the_file_and_key(clean_env, tmp_path):
    path = tmp_path / "datasets.yaml"
    path.write_text("datasets:\n  stanford-3d: /data\n")
    with pytest.raises(InputError) as err:
        read_data_config(path)
    assert err.value.path == str(path) and err.value.field == "datasets.stanford-3d"
    path.write_text("datasets:\n  nyu: 3\n")
    with pytest.raises(InputError, match="a folder path"):
        read_data_config(path)
    path.write_text("roots: {}\n")
    with pytest.raises(InputError, match="one mapping 'datasets'"):
        read_data_config(path)


# ----------------------------------------------------------------------------- CLI
def _cli(argv: list[str]) -> int:
    from mrizoo.cli import datasets as cli_datasets

    parser = argparse.ArgumentParser(prog="mrizoo")
    cli_datasets.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_table_and_one_dataset(clean_env, tmp_path, capsys):
    clean_env.setenv("MRIZOO_HOME", str(tmp_path / "home"))
    (tmp_path / "nyu").mkdir()
    clean_env.setenv("MRIZOO_DATA_NYU", str(tmp_path / "nyu"))
    assert _cli(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "anatomy", "view", "contrasts", "vendor", "field", "coils", "vol/subj",
                                "slices", "role", "local", "root"]
    body = lines[2:]
    assert len(body) == 17
    nyu = next(line for line in body if line.startswith("nyu "))
    assert str(tmp_path / "nyu") in nyu and "ood-test" in nyu and "100/20" in nyu
    assert sum(line.rstrip().endswith("not set") for line in body) == 16
    assert _cli(["datasets", "--role", "ood-test"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2 + 4
    assert _cli(["datasets", "cc359"]) == 0
    out = capsys.readouterr().out
    assert "CC-359, 3D (Souza et al., 2018)" in out and "drop_first: 50" in out
    assert "MRIZOO_DATA_CC359" in out and "mrizoo convert cc359 SRC DST --view axial" in out
    with pytest.raises(InputError, match="unknown dataset"):
        _cli(["datasets", "fastmri"])
