"""Pulling checkpoints: Hub entries (pinned, sha256-checked), hf-hub: specs, local folders, the local zoo,
upstream URLs (fetch, verify, convert once), the errors a user sees, and ``mrizoo pull`` / ``mrizoo cache``.

Servers run on 127.0.0.1 only (tests/hub_server.py): a Hub-compatible resolve endpoint over local
git repos driven by the real ``huggingface_hub`` client, and a plain file server for upstream
URLs. Oracles: the original model's weights and outputs (bit-identical), the ``fastmri``
reference VarNet for converted upstream checkpoints, and sha256 of the served bytes.
The fresh-process round trip through ``olah`` is in test_hub_server.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path

import pytest
import torch
from hub_server import FileServer, MiniHub, git, git_commit_folder, sample_input, tiny_entry

import mrizoo
from mrizoo.errors import InputError, WeightsUnavailableError
from mrizoo.hub.download import (
    ChecksumMismatchError,
    HubFileNotFoundError,
    HubRepoNotFoundError,
    HubRevisionNotFoundError,
    WeightsNotCachedError,
    parse_hub_spec,
)
from mrizoo.models.base import ReconModel
from mrizoo.models.checkpoint import save_pretrained
from mrizoo.models.varnet import VarNet, VarNetConfig
from mrizoo.zoo import registry as registry_module
from mrizoo.zoo.local import local_zoo_dir
from mrizoo.zoo.registry import Registry
from mrizoo.zoo.resolve import cached_items
from mrizoo.zoo.upstream import upstream_cache_dir

pytestmark = pytest.mark.skipif(not __import__("shutil").which("git"), reason="the git command is needed")

REPO = "mrizoo-test/varnet-tiny"
SECRET = "hf_thisIsNotARealTokenButMustNeverBePrinted"


# --------------------------------------------------------------------------- fixtures


def _point_hub_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """What HF_ENDPOINT does at import time, for this (already running) process."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fresh MRIZOO_HOME and Hugging Face cache, no token, and no endpoint outside this machine."""
    from huggingface_hub import constants

    hf = tmp_path / "hf"
    monkeypatch.setenv("MRIZOO_HOME", str(tmp_path / "mrizoo"))
    monkeypatch.setenv("HF_HOME", str(hf))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    for attr, value in (("HF_HOME", hf), ("HF_HUB_CACHE", hf / "hub"), ("HF_TOKEN_PATH", hf / "token"),
                        ("HF_STORED_TOKENS_PATH", hf / "stored_tokens")):
        monkeypatch.setattr(constants, attr, str(value))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    _point_hub_at(monkeypatch, "http://127.0.0.1:9")  # the discard port: nothing listens there
    return tmp_path


@pytest.fixture
def zoo(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A fresh registry (shipped entries + the test's own) in place of the global one."""
    fresh = Registry()
    monkeypatch.setattr(registry_module, "REGISTRY", fresh)
    return fresh


def _register(zoo: Registry, name: str, weights: dict | None = None, config: dict | None = None) -> None:
    from mrizoo._dataclass_io import from_dict
    from mrizoo.zoo.entry import ModelEntry

    zoo.register(from_dict(ModelEntry, tiny_entry(name, weights, config), prefix="entry"))


@pytest.fixture
def published(env: Path, zoo: Registry) -> dict:
    """A tiny VarNet saved with save_pretrained and committed to a local git repo."""
    _register(zoo, "varnet-tiny-r4")
    torch.manual_seed(3)
    model = mrizoo.create("varnet-tiny-r4").eval()
    folder = model.save_pretrained(env / "ckpt")
    sha = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    root = env / "git"
    commit = git_commit_folder(root, REPO, folder)
    return {"model": model, "folder": folder, "sha256": sha, "commit": commit, "root": root}


@pytest.fixture
def hub(published: dict, monkeypatch: pytest.MonkeyPatch):
    with MiniHub(published["root"]) as server:
        _point_hub_at(monkeypatch, server.url)
        yield server


def _same_model(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    kspace, mask = sample_input()
    a.eval(), b.eval()  # inference in both (the CPU inference pass rounds differently from training's)
    with torch.no_grad():
        assert torch.equal(a.reconstruct(kspace, mask), b.reconstruct(kspace, mask))


def _hub_weights(published: dict, **over: object) -> dict:
    return {"kind": "hub", "repo_id": REPO, "revision": published["commit"], "sha256": published["sha256"], **over}


def _cached_weights(repo: str = REPO) -> list[Path]:
    from huggingface_hub import constants

    return list((Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))).glob("snapshots/*/*.safetensors"))


# --------------------------------------------------------------------------- the Hub


def test_load_by_name_from_a_pinned_hub_revision(published: dict, hub: MiniHub, zoo: Registry, env: Path) -> None:
    _register(zoo, "varnet-hubtest-r4", _hub_weights(published))
    model = mrizoo.load("varnet-hubtest-r4")
    _same_model(model, published["model"])
    assert not model.training
    # it came through the Hub client into the Hugging Face cache, at the pinned commit
    assert Path(model.pretrained_from).name == published["commit"]
    assert Path(model.pretrained_from).is_relative_to(env / "hf" / "hub")
    assert {s.path for s in hub.seen} >= {f"/{REPO}/resolve/{published['commit']}/model.safetensors",
                                           f"/{REPO}/resolve/{published['commit']}/config.json"}
    assert all(s.authorization is None for s in hub.seen)  # no token set, none sent


def test_hf_hub_specs_folders_and_from_pretrained(published: dict, hub: MiniHub, monkeypatch, env: Path) -> None:
    sha = published["commit"]
    _same_model(mrizoo.load(f"hf-hub:{REPO}@{sha}"), published["model"])
    _same_model(mrizoo.load(f"hf-hub:{REPO}"), published["model"])  # unpinned: main
    assert any(s.path.startswith(f"/{REPO}/resolve/main/") for s in hub.seen)
    _same_model(ReconModel.from_pretrained(REPO, revision=sha), published["model"])
    monkeypatch.chdir(env)
    _same_model(mrizoo.load("./ckpt"), published["model"])
    _same_model(ReconModel.from_pretrained(published["folder"]), published["model"])
    assert parse_hub_spec("hf-hub:org/repo/sub/dir@v1").filename == "sub/dir/model.safetensors"
    with pytest.raises(InputError, match="hf-hub:org/missing@REVISION"):
        mrizoo.load("org/missing")
    with pytest.raises(InputError, match="config.json is missing"):
        mrizoo.load(str(env / "git"))
    with pytest.raises(InputError, match="two different revisions"):
        mrizoo.load(f"hf-hub:{REPO}@main", revision=sha)


def test_from_pretrained_takes_the_hub_options(published: dict, hub: MiniHub, env: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """cache_dir, local_files_only, force_download and token reach the download, as in huggingface_hub."""
    sha = published["commit"]
    own_cache = env / "own-cache"
    model = ReconModel.from_pretrained(REPO, revision=sha, cache_dir=own_cache)
    _same_model(model, published["model"])
    assert Path(model.pretrained_from).is_relative_to(own_cache)
    assert not (env / "hf" / "hub" / "models--mrizoo-test--varnet-tiny").exists()
    assert model.weights_source["kind"] == "hub" and model.weights_source["revision"] == sha
    asked = len(hub.seen)
    again = ReconModel.from_pretrained(REPO, revision=sha, cache_dir=own_cache, local_files_only=True)
    _same_model(again, published["model"])
    assert len(hub.seen) == asked  # nothing was asked of the Hub
    with pytest.raises(WeightsNotCachedError, match="only local files"):
        ReconModel.from_pretrained(REPO, revision=sha, local_files_only=True)  # the default cache is empty
    ReconModel.from_pretrained(REPO, revision=sha, cache_dir=own_cache, force_download=True, token=SECRET)
    fetched = hub.seen[asked:]
    assert any(s.path.endswith("/model.safetensors") for s in fetched)  # fetched again although cached
    assert all(s.authorization == f"Bearer {SECRET}" for s in fetched)
    with pytest.raises(InputError, match="mrizoo.load"):
        ReconModel.from_pretrained("varnet-mini-r4-not-a-folder")


def test_a_hand_built_model_saves_and_loads_with_its_own_config(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = VarNet(VarNetConfig(num_cascades=2, chans=4, pools=2, sens_chans=2, sens_pools=2))
    model.save_pretrained(tmp_path / "mine")
    doc = json.loads((tmp_path / "mine" / "config.json").read_text())
    assert doc["arch"] == "varnet" and doc["name"] == "varnet-custom" and doc["config"]["chans"] == 4
    loaded = ReconModel.from_pretrained(tmp_path / "mine")
    _same_model(loaded, model)
    loaded.save_pretrained(tmp_path / "again")  # what it was loaded with is kept
    assert json.loads((tmp_path / "again" / "config.json").read_text())["name"] == "varnet-custom"
    with pytest.raises(InputError, match="no config to save"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "plain")  # a plain module has no config


def test_wrong_revision_says_so(published: dict, hub: MiniHub, zoo: Registry) -> None:
    _register(zoo, "varnet-hubtest-r4", _hub_weights(published, revision="f" * 40))
    with pytest.raises(HubRevisionNotFoundError, match=f"no revision '{'f' * 40}'.*pinned revision") as err:
        mrizoo.load("varnet-hubtest-r4")
    assert REPO in str(err.value)
    with pytest.raises(HubRevisionNotFoundError, match="'no-such-branch'"):
        mrizoo.load(f"hf-hub:{REPO}@no-such-branch")
    assert not _cached_weights()
    # a repo that holds weights but no config.json is not a checkpoint
    repo = published["root"] / "models" / REPO
    git(repo, "rm", "-q", "config.json")
    git(repo, "commit", "-q", "-m", "drop config")
    commit = git(repo, "rev-parse", "HEAD").decode().strip()
    with pytest.raises(HubFileNotFoundError, match="no file 'config.json'.*mrizoo checkpoint"):
        mrizoo.load(f"hf-hub:{REPO}@{commit}")


def test_unknown_repo_says_whether_a_token_was_set_and_never_its_value(
    hub: MiniHub, env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubRepoNotFoundError, match="no token is set") as err:
        mrizoo.load("hf-hub:mrizoo-test/missing@main")
    assert "mrizoo-test/missing" in str(err.value) and hub.url in str(err.value)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with pytest.raises(HubRepoNotFoundError, match="a token is set") as err:
        mrizoo.load("hf-hub:mrizoo-test/missing@main")
    assert hub.seen[-1].authorization == f"Bearer {SECRET}"  # HF_TOKEN is honoured ...
    out = capsys.readouterr()
    for text in (str(err.value), repr(err.value), caplog.text, out.out, out.err):  # ... and never shown
        assert SECRET not in text and SECRET[3:20] not in text


def test_sha256_mismatch_of_a_fresh_download_is_quarantined(published: dict, hub: MiniHub, zoo: Registry,
                                                            env: Path) -> None:
    _register(zoo, "varnet-badpin-r4", _hub_weights(published, sha256="0" * 64))
    with pytest.raises(ChecksumMismatchError, match="moved to") as err:
        mrizoo.load("varnet-badpin-r4")
    bad = err.value.path
    assert err.value.got == published["sha256"] and err.value.expected == "0" * 64
    assert bad is not None and bad.is_relative_to(env / "mrizoo" / "quarantine")
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == published["sha256"]
    assert not _cached_weights()  # nothing loadable is left in the Hugging Face cache
    # the right pin still works afterwards (downloads again)
    _register(zoo, "varnet-hubtest-r4", _hub_weights(published))
    _same_model(mrizoo.load("varnet-hubtest-r4"), published["model"])


def test_sha256_mismatch_of_a_cached_file_deletes_nothing(published: dict, hub: MiniHub, zoo: Registry) -> None:
    _register(zoo, "varnet-hubtest-r4", _hub_weights(published))
    mrizoo.load("varnet-hubtest-r4")
    (cached,) = _cached_weights()
    _register(zoo, "varnet-badpin-r4", _hub_weights(published, sha256="0" * 64))
    with pytest.raises(ChecksumMismatchError, match="left in place.*mrizoo cache clean varnet-badpin-r4"):
        mrizoo.load("varnet-badpin-r4")
    assert cached.exists() and hashlib.sha256(cached.read_bytes()).hexdigest() == published["sha256"]


def test_offline_with_an_empty_cache_says_what_to_run(published: dict, hub: MiniHub, zoo: Registry,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _register(zoo, "varnet-hubtest-r4", _hub_weights(published))
    with pytest.raises(WeightsNotCachedError, match="HF_HUB_OFFLINE.*`mrizoo pull varnet-hubtest-r4`"):
        mrizoo.load("varnet-hubtest-r4")
    _register(zoo, "varnet-upstream-r4", {"kind": "upstream", "url": f"{hub.url}/x.pt", "converter": "fastmri-varnet"})
    with pytest.raises(WeightsNotCachedError, match="`mrizoo pull varnet-upstream-r4`"):
        mrizoo.load("varnet-upstream-r4")
    assert hub.seen == []  # offline means no request at all


# --------------------------------------------------------------------------- the local zoo


def test_locally_trained_weights_load_by_name_and_take_precedence(
    published: dict, hub: MiniHub, zoo: Registry, caplog: pytest.LogCaptureFixture, env: Path
) -> None:
    # an entry without published weights: the message names its recipe and where trained weights go
    with pytest.raises(WeightsUnavailableError, match="recipes/varnet-pool-r4.yaml"):
        mrizoo.load("varnet-pool-r4")
    torch.manual_seed(11)
    trained = mrizoo.create("varnet-pool-r4", num_cascades=1, chans=2, sens_chans=2, sens_pools=1, pools=1)
    trained.save_pretrained(local_zoo_dir("varnet-pool-r4"))
    assert local_zoo_dir("varnet-pool-r4") == env / "mrizoo" / "zoo" / "varnet-pool-r4"
    _same_model(mrizoo.load("varnet-pool-r4"), trained)

    # a Hub entry with local weights: local wins (logged); prefer_local=False gives the published ones
    _register(zoo, "varnet-hubtest-r4", _hub_weights(published))
    torch.manual_seed(12)
    local = mrizoo.create("varnet-hubtest-r4")
    local.save_pretrained(local_zoo_dir("varnet-hubtest-r4"))
    with caplog.at_level(logging.INFO, logger="mrizoo.zoo"):
        _same_model(mrizoo.load("varnet-hubtest-r4"), local)
    assert "locally trained weights" in caplog.text and "instead of the published Hub weights" in caplog.text
    assert any(r.levelno == logging.WARNING for r in caplog.records)  # shown on stderr at every load
    assert hub.seen == []
    _same_model(mrizoo.load("varnet-hubtest-r4", prefer_local=False), published["model"])


# --------------------------------------------------------------------------- upstream checkpoints


@pytest.fixture
def fastmri_pt():
    """A small fastMRI VarNet (the reference implementation) and its .pt state dict bytes."""
    fm = pytest.importorskip("fastmri.models")
    torch.manual_seed(5)
    ref = fm.VarNet(num_cascades=2, sens_chans=2, sens_pools=2, chans=4, pools=2).eval()
    with torch.no_grad():
        for block in ref.cascades:
            block.dc_weight.uniform_(0.2, 2.0)
    buf = io.BytesIO()
    torch.save(ref.state_dict(), buf)
    return ref, buf.getvalue()


def _upstream(url: str, sha256: str | None) -> dict:
    return {"kind": "upstream", "url": url, "converter": "fastmri-varnet", "sha256": sha256}


def _matches_fastmri(model: torch.nn.Module, ref: torch.nn.Module) -> None:
    sd = ref.state_dict()
    assert model.state_dict().keys() == sd.keys()
    assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())
    kspace, mask = sample_input(seed=2)
    masked = torch.view_as_real(kspace)
    col = mask[0][None, None, None, :, None]
    with torch.no_grad():
        ours, theirs = model(masked, col), ref(masked, col)
    assert float((ours - theirs).abs().max() / theirs.abs().max()) <= 1e-5


def test_upstream_checkpoint_is_fetched_verified_converted_once(fastmri_pt, env: Path, zoo: Registry) -> None:
    ref, blob = fastmri_pt
    sha = hashlib.sha256(blob).hexdigest()
    with FileServer({"/varnet.pt": blob}) as server:
        url = f"{server.url}/varnet.pt"
        _register(zoo, "varnet-upstream-r4", _upstream(url, sha))
        model = mrizoo.load("varnet-upstream-r4")
        _matches_fastmri(model, ref)
        folder = upstream_cache_dir("varnet-upstream-r4", url, sha, "fastmri-varnet")
        assert Path(model.pretrained_from) == folder
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "source.json"]
        assert not any((env / "mrizoo" / "downloads").rglob("*.pt"))  # the raw download is gone
        requests = len(server.seen)
        _matches_fastmri(mrizoo.load("varnet-upstream-r4"), ref)  # from the converted cache
        assert len(server.seen) == requests


def test_upstream_sha256_mismatch_converts_and_loads_nothing(fastmri_pt, env: Path, zoo: Registry) -> None:
    _, blob = fastmri_pt
    with FileServer({"/varnet.pt": blob}) as server:
        url = f"{server.url}/varnet.pt"
        _register(zoo, "varnet-upstream-r4", _upstream(url, "1" * 64))
        with pytest.raises(ChecksumMismatchError, match="nothing was converted or loaded") as err:
            mrizoo.load("varnet-upstream-r4")
    assert err.value.got == hashlib.sha256(blob).hexdigest()
    assert err.value.path.read_bytes() == blob and err.value.path.is_relative_to(env / "mrizoo" / "quarantine")
    assert not (env / "mrizoo" / "upstream").exists()
    assert not any((env / "mrizoo" / "downloads").rglob("*.*"))


def test_upstream_without_sha256_records_it_and_resumes(fastmri_pt, env: Path, zoo: Registry,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    import json

    ref, blob = fastmri_pt
    sha = hashlib.sha256(blob).hexdigest()
    with FileServer({"/weights/varnet.pt": blob}) as server:
        url = f"{server.url}/weights/varnet.pt"
        _register(zoo, "varnet-upstream-r4", _upstream(url, None))
        key = upstream_cache_dir("varnet-upstream-r4", url, None, "fastmri-varnet").name
        part = env / "mrizoo" / "downloads" / "varnet-upstream-r4" / f"{key}-varnet.pt.part"
        part.parent.mkdir(parents=True)
        part.write_bytes(blob[:1000])  # an interrupted earlier download
        with caplog.at_level(logging.WARNING, logger="mrizoo.zoo"):
            model = mrizoo.load("varnet-upstream-r4")
        assert [s.range for s in server.seen] == ["bytes=1000-"]
    _matches_fastmri(model, ref)
    assert sha in caplog.text and "pins no sha256" in caplog.text
    source = json.loads((Path(model.pretrained_from) / "source.json").read_text())
    assert source["sha256"] == sha and source["sha256_pinned"] is False and source["url"] == url


def test_upstream_file_that_does_not_fit_the_entry(fastmri_pt, env: Path, zoo: Registry) -> None:
    _, blob = fastmri_pt
    with FileServer({"/varnet.pt": blob}) as server:
        _register(zoo, "varnet-upstream-r4", _upstream(f"{server.url}/varnet.pt", None),
                  config={"num_cascades": 3, "chans": 4, "sens_chans": 2, "sens_pools": 2, "pools": 2})
        with pytest.raises(InputError, match="does not fit the entry's model config"):
            mrizoo.load("varnet-upstream-r4")
        _register(zoo, "varnet-gone-r4", _upstream(f"{server.url}/missing.pt", None))
        with pytest.raises(WeightsUnavailableError, match="HTTP 404"):
            mrizoo.load("varnet-gone-r4")
    assert not list((env / "mrizoo").rglob("config.json"))  # nothing converted


def test_upstream_unet_checkpoint(env: Path, zoo: Registry) -> None:
    """The fastmri-unet converter: a fastMRI U-Net's tensors arrive unchanged in the zoo model."""
    from mrizoo._dataclass_io import from_dict
    from mrizoo.zoo.entry import ModelEntry

    fm = pytest.importorskip("fastmri.models")
    torch.manual_seed(6)
    ref = fm.Unet(in_chans=1, out_chans=1, chans=4, num_pool_layers=2)
    buf = io.BytesIO()
    torch.save({"state_dict": {f"unet.{k}": v for k, v in ref.state_dict().items()}}, buf)  # a Lightning file
    with FileServer({"/unet.pt": buf.getvalue()}) as server:
        entry = {**tiny_entry("unet-upstream-r4"), "model": {"arch": "unet", "config": {
            "in_chans": 1, "out_chans": 1, "chans": 4, "num_pool_layers": 2}},
            "weights": {"kind": "upstream", "url": f"{server.url}/unet.pt", "converter": "fastmri-unet",
                        "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}}
        zoo.register(from_dict(ModelEntry, entry, prefix="entry"))
        model = mrizoo.load("unet-upstream-r4")
    sd = ref.state_dict()
    assert model.state_dict().keys() == sd.keys()
    assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())


# --------------------------------------------------------------------------- CLI: pull and cache


@pytest.fixture
def cli():
    import mrizoo.cli as cli_module

    return cli_module.main


def test_cli_pull_list_and_clean(published: dict, hub: MiniHub, zoo: Registry, cli, env: Path,
                                 capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import hf_hub_download

    _register(zoo, "varnet-hubtest-r4", _hub_weights(published))
    assert cli(["pull", "varnet-hubtest-r4"]) == 0
    out = capsys.readouterr().out
    assert "sha256 verified" in out and published["commit"] in out
    assert cli(["pull", "zerofilled"]) == 0 and "nothing to download" in capsys.readouterr().out
    assert cli(["pull", "varnet-pool-r4"]) == 2 and "recipes/varnet-pool-r4.yaml" in capsys.readouterr().err

    # a repo of the Hugging Face cache that is not mrizoo's, and locally trained weights: both are kept
    other = env / "other"
    other.mkdir()
    (other / "data.txt").write_text("not a model")
    commit = git_commit_folder(published["root"], "someone/dataset", other)
    kept = Path(hf_hub_download("someone/dataset", "data.txt", revision=commit))
    mrizoo.create("varnet-tiny-r4").save_pretrained(local_zoo_dir("varnet-tiny-r4"))

    assert cli(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert REPO in out and "someone/dataset" not in out and "locally trained, not cleaned" in out
    assert {i.kind for i in cached_items()} == {"hub", "local-zoo"}

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: no prompt, nothing deleted
    assert cli(["cache", "clean"]) == 1
    assert _cached_weights()
    assert cli(["cache", "clean", "--yes"]) == 0
    assert not _cached_weights() and kept.read_text() == "not a model"
    assert (local_zoo_dir("varnet-tiny-r4") / "model.safetensors").exists()

    # offline after a pull works; after cleaning, offline says what to run
    assert cli(["pull", "varnet-hubtest-r4"]) == 0
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _same_model(mrizoo.load("varnet-hubtest-r4"), published["model"])
    assert cli(["cache", "clean", "varnet-hubtest-r4", "--yes"]) == 0
    assert cli(["pull", "varnet-hubtest-r4"]) == 2
    assert "mrizoo pull varnet-hubtest-r4" in capsys.readouterr().err


def test_bad_specs(env: Path, zoo: Registry) -> None:
    with pytest.raises(InputError, match="not a Hub checkpoint reference"):
        mrizoo.load("hf-hub:just-one-part")
    with pytest.raises(InputError, match="empty revision"):
        mrizoo.load("hf-hub:org/repo@")
    with pytest.raises(mrizoo.UnknownModelError, match="did you mean"):
        mrizoo.load("varnet-pool-r5")
    with pytest.raises(InputError, match="no revisions"):
        mrizoo.load("zerofilled", revision="main")
    assert os.environ["MRIZOO_HOME"] == str(env / "mrizoo")
