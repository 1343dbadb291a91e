"""Zoo names, entries declared as data, the registry and its command line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import mrizoo
from mrizoo.cli import main
from mrizoo.errors import InputError, MrizooError
from mrizoo.zoo import (
    ARCHITECTURES,
    ModelEntry,
    Registry,
    UnknownModelError,
    WeightsUnavailableError,
    info,
    list_models,
    load,
    model_config,
    parse_name,
    read_entry_file,
    register_model,
)

ROOT = Path(__file__).resolve().parents[1]

ISSUE_NAMES = [
    "unet-knee-r4", "varnet-pool-r4", "vit-pool-r4", "rcgan-brain-r4", "rcgan-brain-r8", "ncsnv2-brain",
    "modl-brain-r4", "varnet-fastmri-knee", "varnet-fastmri-brain", "unet-fastmri-knee", "unet-fastmri-brain",
    "zerofilled", "cgsense", "l1wavelet", "convdecoder",
]


def test_every_expected_name_is_registered() -> None:
    names = list_models()
    assert set(ISSUE_NAMES) <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize(
    ("name", "arch", "data", "accel", "variant"),
    [
        ("unet-knee-r4", "unet", ("knee",), 4, ()),
        ("rcgan-brain-r8", "rcgan", ("brain",), 8, ()),
        ("ncsnv2-brain", "ncsnv2", ("brain",), None, ()),
        ("varnet-fastmri-knee", "varnet", ("fastmri", "knee"), None, ()),
        ("varnet-pool-r4-large", "varnet", ("pool",), 4, ("large",)),
        ("cgsense", "cgsense", (), None, ()),
    ],
)
def test_name_grammar(name: str, arch: str, data: tuple, accel: int | None, variant: tuple) -> None:
    parsed = parse_name(name)
    assert (parsed.arch, parsed.data, parsed.acceleration, parsed.variant) == (arch, data, accel, variant)


@pytest.mark.parametrize("bad", ["", "UNet-knee", "unet--knee", "r4-unet", "unet-r4-r8", "unet_knee r4"])
def test_name_grammar_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_name(bad)


def test_every_shipped_name_follows_the_grammar_and_its_entry() -> None:
    for name in list_models():
        e = info(name)
        parsed = parse_name(name)
        assert parsed.arch == e.model.arch
        if parsed.acceleration is not None:
            assert float(parsed.acceleration) in e.task.accelerations
        assert e.model.arch in ARCHITECTURES


def test_wildcards_and_filters() -> None:
    assert list_models("varnet-*") == ["varnet-fastmri-brain", "varnet-fastmri-knee", "varnet-mini-r4",
                                       "varnet-pool-r4"]
    assert "rcgan-brain-r8" not in list_models("*-r4")
    assert all(info(n).task.anatomy == "brain" for n in list_models(anatomy="brain"))
    assert set(list_models(arch="rcgan")) == {"rcgan-brain-r4", "rcgan-brain-r8", "rcgan-mini-r4",
                                              "rcgan-mini-r4-adler", "rcgan-mini-r4-ohayon"}
    assert set(list_models(tags=["competitor"])) == {"rcgan-mini-r4-adler", "rcgan-mini-r4-ohayon"}
    r8 = list_models(acceleration=8)
    assert "rcgan-brain-r8" in r8 and "rcgan-brain-r4" not in r8
    assert "ncsnv2-brain" in r8  # acceleration-agnostic prior is kept
    with_weights = list_models(has_weights=True)
    assert "varnet-fastmri-knee" in with_weights and "varnet-pool-r4" not in with_weights
    assert {"varnet-mini-r4", "rcgan-mini-r4"} <= set(with_weights)  # shipped inside the package
    assert set(list_models(tags=["demo"])) == {"varnet-mini-r4", "rcgan-mini-r4"}
    assert set(list_models(has_weights=False)).isdisjoint(with_weights)
    assert set(list_models(tags=["classical"])) == {"zerofilled", "cgsense", "l1wavelet"}
    assert list_models(tags=["untrained"]) == ["convdecoder"]


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(UnknownModelError, match="varnet-pool-r4") as err:
        info("varnet-pol-r4")
    assert err.value.suggestions[0] == "varnet-pool-r4"
    with pytest.raises(UnknownModelError, match="rcgan-brain-r4"):
        mrizoo.create("rcgan-brian-r4")


def test_registering_twice_is_an_error() -> None:
    reg = Registry(package=None)
    entry = ModelEntry(name="unet-test-r4", description="t", model=info("unet-knee-r4").model,
                       task=info("unet-knee-r4").task)
    reg.register(entry)
    with pytest.raises(MrizooError, match="already registered"):
        reg.register(entry)
    with pytest.raises(MrizooError, match="already registered"):
        register_model({"name": "cgsense", "description": "again", "model": {"arch": "cgsense"}})
    assert info("cgsense").description != "again"


def test_entry_validation_names_the_file_and_key(tmp_path: Path) -> None:
    good = (ROOT / "recipes" / "unet-knee-r4.yaml").read_text()
    cases = {
        "unknown key": (good.replace("  recipe: unet-knee-r4", "  recipe: unet-knee-r4\n  colour: red"), "entry"),
        "wrong type": (good.replace("accelerations: [4]", "accelerations: four"), "entry.task.accelerations"),
        "bad literal": (good.replace("target: rss", "target: magnitude"), "entry.task.target"),
        "name vs accel": (good.replace("accelerations: [4]", "accelerations: [8]"), "entry"),
        "missing model": (good.replace("  model: {arch: unet, preset: lin2024-small}\n", ""), "entry.model"),
    }
    for label, (text, field) in cases.items():
        path = tmp_path / "unet-knee-r4.yaml"
        path.write_text(text)
        with pytest.raises(InputError) as err:
            read_entry_file(path)
        assert str(path) in str(err.value), label
        assert f"'{field}'" in str(err.value), (label, str(err.value))
    wrong_name = tmp_path / "other.yaml"
    wrong_name.write_text(good)
    with pytest.raises(InputError, match="file name must be the entry name"):
        read_entry_file(wrong_name)


def test_weights_source_rules() -> None:
    base = {"name": "unet-x-r4", "description": "d", "model": {"arch": "unet"}, "task": {"accelerations": [4]}}
    from mrizoo._dataclass_io import from_dict

    with pytest.raises(InputError, match="revision"):
        from_dict(ModelEntry, {**base, "weights": {"kind": "hub", "repo_id": "org/x"}})
    with pytest.raises(InputError, match="sha256"):
        from_dict(ModelEntry, {**base, "weights": {"kind": "hub", "repo_id": "o/x", "revision": "v1", "sha256": "abc"}})
    ok = from_dict(ModelEntry, {**base, "weights": {"kind": "hub", "repo_id": "o/x", "revision": "v1", "sha256": "a" * 64}})
    assert ok.weights.available


def test_presets_and_overrides() -> None:
    cfg = model_config("varnet-pool-r4")
    assert (cfg.num_cascades, cfg.chans) == (8, 12)
    cfg = model_config("varnet-fastmri-knee", num_cascades=2)
    assert (cfg.num_cascades, cfg.chans, cfg.sens_chans) == (2, 18, 8)
    with pytest.raises(InputError, match="model.config"):
        model_config("varnet-pool-r4", colour="red")


def test_load_without_weights_names_the_recipe() -> None:
    with pytest.raises(WeightsUnavailableError, match="recipes/rcgan-brain-r4.yaml"):
        load("rcgan-brain-r4")
    assert isinstance(load("zerofilled"), mrizoo.models.base.ReconModel)


def test_cli_list_and_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "varnet-*"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^varnet-pool-r4\s+varnet\s+mixed\s+4\s", out, re.M)
    assert "rcgan" not in out
    assert main(["list", "--acceleration", "8", "--arch", "rcgan"]) == 0
    assert "rcgan-brain-r8" in capsys.readouterr().out
    assert main(["info", "rcgan-brain-r8"]) == 0
    out = capsys.readouterr().out
    assert "recipe: rcgan-brain-r8" in out and "mask: gro" in out
    assert main(["info", "rcgan-brain-r9"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_packaging_lists_every_subpackage_and_ships_entries() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(conf["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mrizoo").rglob("__init__.py")}
    assert on_disk <= listed, f"add to pyproject packages: {sorted(on_disk - listed)}"
    assert conf["tool"]["setuptools"]["package-dir"]["mrizoo.recipes"] == "recipes"


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_preset_resolves(arch: str) -> None:
    a = ARCHITECTURES[arch]
    assert dataclasses_is_config(a.make_config(None, {}))
    for preset in a.presets:
        cfg = a.make_config(preset, {})
        assert type(cfg) is a.config_class()


def dataclasses_is_config(obj: object) -> bool:
    import dataclasses

    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def test_wheel_ships_every_data_file(tmp_path: Path) -> None:
    """Entries, recipes, the dataset catalog, the shipped pools, the shipped weights and the demo scan
    must be inside the built wheel."""
    import shutil
    import subprocess
    import sys
    import zipfile

    if shutil.which("git") is None:
        pytest.skip("git is needed to copy the tracked tree")
    src = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    for rel in tracked:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("mrizoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"mrizoo/recipes/{p.name}" for p in (ROOT / "recipes").glob("*.yaml")}
    for folder in ("mrizoo/datasets/entries", "mrizoo/pools/shipped"):
        expected |= {f"{folder}/{p.name}" for p in (ROOT / folder).glob("*.yaml")}
    for folder in sorted((ROOT / "mrizoo" / "weights").iterdir()):
        if folder.is_dir() and folder.name != "__pycache__":
            expected |= {f"mrizoo/weights/{folder.name}/{n}"
                         for n in ("config.json", "model.safetensors", "training_summary.json")}
    expected |= {"mrizoo/demo/data/brain_t1_8ch_r4.h5", "mrizoo/demo/data/README.md"}
    assert len(expected) > 26
    assert expected <= names, sorted(expected - names)
