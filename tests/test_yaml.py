"""The one YAML reader: YAML 1.2 numbers (``1e-3`` is a float) in every file kind, errors name the file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mrizoo._dataclass_io import read_yaml_section
from mrizoo._yaml import parse_yaml, read_yaml
from mrizoo.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def test_numbers_read_as_yaml_1_2_reads_them() -> None:
    doc = parse_yaml("a: 1e-3\nb: -2E+5\nc: 1.5e3\nd: 3\ne: '1e-3'\nf: 1e\ng: .inf\nh: 0.5\ni: e5\nj: 1_000\n")
    assert doc["a"] == 0.001 and isinstance(doc["a"], float)
    assert doc["b"] == -200000.0 and isinstance(doc["b"], float)
    assert doc["c"] == 1500.0 and doc["h"] == 0.5
    assert doc["d"] == 3 and isinstance(doc["d"], int)
    assert doc["e"] == "1e-3"  # quoted: still a string
    assert doc["f"] == "1e" and doc["i"] == "e5"  # not numbers
    assert doc["g"] == math.inf
    assert doc["j"] == 1000


def test_loader_stays_safe() -> None:
    import yaml

    with pytest.raises(yaml.YAMLError):
        parse_yaml("!!python/object/apply:os.system ['true']")


def test_read_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(InputError, match="not valid YAML") as err:
        read_yaml(bad)
    assert str(bad) in str(err.value)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(InputError, match="UTF-8"):
        read_yaml(latin)
    with pytest.raises(InputError, match="cannot read"):
        read_yaml(tmp_path / "missing.yaml")
    assert read_yaml("named-only.yaml", b"x: 2e-2\n") == {"x": 0.02}


def test_entry_and_recipe_of_one_file_read_1e_minus_3_alike(tmp_path: Path) -> None:
    """An entry file and a recipe file read the same float: ``sigma_end: 1e-3`` is valid in both."""
    from mrizoo.train.recipe import load_recipe
    from mrizoo.zoo import read_entry_file

    shipped = REPO / "recipes" / "ncsnv2-brain.yaml"
    if not shipped.is_file():
        pytest.skip("the shipped recipes folder is not next to the tests")
    text = shipped.read_text()
    old_model = "  model: {arch: ncsnv2, preset: jalal2021}\n"
    old_smoke = "sigma_end: 0.01}"
    assert old_model in text and old_smoke in text
    text = text.replace(old_model, "  model: {arch: ncsnv2, preset: jalal2021, config: {sigma_end: 1e-3}}\n")
    text = text.replace(old_smoke, "sigma_end: 1e-3}")
    path = tmp_path / "ncsnv2-brain.yaml"
    path.write_text(text)

    entry = read_entry_file(path)
    assert entry.model.config["sigma_end"] == 0.001 and isinstance(entry.model.config["sigma_end"], float)
    recipe, _ = load_recipe(path, smoke=True)
    assert recipe.model_overrides["sigma_end"] == 0.001
    _, section = read_yaml_section(path, "training")
    assert section["smoke"]["model_overrides"]["sigma_end"] == 0.001
