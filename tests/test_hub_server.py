"""Round trip over HTTP through the real ``huggingface_hub`` client, in a fresh process.

The checkpoint that ships with the package for ``varnet-mini-r4`` (the demo weights) is
committed, as is, to a local git repo; ``olah`` (a Hub mirror, serving local git repos with
its ``mirrors-path`` option) serves it on 127.0.0.1. A zoo entry pins the repo, the commit sha
and the sha256 of model.safetensors; a new Python process with ``HF_ENDPOINT`` and ``HF_HOME``
set loads it by name and must give bit-identical outputs to ``mrizoo.load("varnet-mini-r4")``; then, with the server stopped and
``HF_HUB_OFFLINE=1``, the same load works from the cache. The same round trip also runs
against the small Hub-compatible server of tests/hub_server.py (so it runs where olah is
not installed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_server import MiniHub, OlahServer, git_commit_folder, sample_input
from safetensors.torch import load_file, save_file

import mrizoo
from mrizoo.hub.download import ChecksumMismatchError, HubRepoNotFoundError

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="the git command is needed")

ROOT = Path(__file__).resolve().parents[1]
NAME = "varnet-roundtrip-r4"
REPO = "mrizoo-test/varnet-mini-r4"
SHIPPED = "varnet-mini-r4"

_CHILD = """
import json, sys
import torch
from safetensors.torch import load_file, save_file
import mrizoo
from mrizoo.errors import MrizooError

mrizoo.register_model(json.loads(sys.argv[1]))
inputs = load_file(sys.argv[2])
try:
    model = mrizoo.load(sys.argv[3])
except MrizooError as err:
    print(f"{type(err).__name__}: {err}")
    sys.exit(3)
with torch.no_grad():
    out = model.reconstruct(torch.view_as_complex(inputs["kspace"]), inputs["mask"])
save_file({"out": out.contiguous()}, sys.argv[4])
print(model.pretrained_from)
"""


def _entry_like_shipped(weights: dict) -> dict:
    """The mapping of a zoo entry like the shipped demo VarNet's, under another name and source."""
    from mrizoo._dataclass_io import to_dict
    from mrizoo.zoo import REGISTRY

    doc = to_dict(REGISTRY.get(SHIPPED))
    doc.update(name=NAME, weights=weights, recipe=None)
    return doc


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The shipped demo VarNet, its output on a fixed input, and a git repo holding its checkpoint folder."""
    from mrizoo.zoo.resolve import resolve_checkpoint

    tmp = tmp_path_factory.mktemp("roundtrip")
    folder = resolve_checkpoint(SHIPPED, prefer_local=False).folder
    model = mrizoo.load(SHIPPED, prefer_local=False)
    kspace, mask = sample_input(seed=4, coils=8, h=48, w=40)
    with torch.no_grad():
        expected = model.reconstruct(kspace, mask)
    inputs = tmp / "inputs.safetensors"
    save_file({"kspace": torch.view_as_real(kspace).contiguous(), "mask": mask}, str(inputs))
    root = tmp / "mirrors"
    commit = git_commit_folder(root, REPO, folder)
    sha = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert sha == mrizoo.info(SHIPPED).weights.sha256
    entry = _entry_like_shipped({"kind": "hub", "repo_id": REPO, "revision": commit, "sha256": sha})
    return {"root": root, "commit": commit, "sha256": sha, "entry": entry, "inputs": inputs,
            "expected": expected, "tmp": tmp}


def _child_env(tmp: Path, endpoint: str | None, offline: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_")) and k not in ("MRIZOO_HOME", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HOME=str(tmp / "hf"), MRIZOO_HOME=str(tmp / "mrizoo"), HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    env["HF_ENDPOINT"] = endpoint or "http://127.0.0.1:9"  # nothing listens on the discard port
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def _load_in_fresh_process(published: dict, tmp: Path, endpoint: str | None, *, offline: bool = False,
                           spec: str = NAME) -> subprocess.CompletedProcess:
    out = tmp / "out.safetensors"
    out.unlink(missing_ok=True)
    return subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(published["entry"]), str(published["inputs"]), spec, str(out)],
        env=_child_env(tmp, endpoint, offline), capture_output=True, text=True, timeout=120, cwd=tmp)


def _check_output(published: dict, tmp: Path, run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 0, run.stdout + run.stderr
    got = load_file(str(tmp / "out.safetensors"))["out"]
    assert torch.equal(got, published["expected"])  # bit-identical
    folder = Path(run.stdout.strip().splitlines()[-1])
    assert folder.name == published["commit"] and folder.is_relative_to(tmp / "hf" / "hub")


@pytest.fixture(params=["olah", "minihub"])
def server(request: pytest.FixtureRequest, published: dict, tmp_path: Path):
    """A Hub endpoint on 127.0.0.1 serving the git repo: olah in a subprocess, or the small in-test server."""
    if request.param == "olah":
        pytest.importorskip("olah", reason="olah (a Hub mirror) is a test extra")
        srv = OlahServer(published["root"], tmp_path / "olah")
    else:
        srv = MiniHub(published["root"])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_round_trip_by_name_then_offline_from_the_cache(published: dict, server, tmp_path: Path) -> None:
    run = _load_in_fresh_process(published, tmp_path, server.url)
    _check_output(published, tmp_path, run)
    # the server stopped: offline, the same load comes from the Hugging Face cache
    server.stop()
    run = _load_in_fresh_process(published, tmp_path, server.url, offline=True)
    _check_output(published, tmp_path, run)


def test_offline_with_an_empty_cache_in_a_fresh_process(published: dict, tmp_path: Path) -> None:
    run = _load_in_fresh_process(published, tmp_path, None, offline=True)
    assert run.returncode == 3, run.stdout + run.stderr
    assert run.stdout.startswith("WeightsNotCachedError")
    assert "HF_HUB_OFFLINE is set" in run.stdout and f"`mrizoo pull {NAME}` on a connected machine" in run.stdout


def test_olah_errors_reach_the_user(published: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through olah: an unknown repo is reported as such; a wrong sha256 pin loads nothing."""
    pytest.importorskip("olah", reason="olah (a Hub mirror) is a test extra")
    from huggingface_hub import constants

    from mrizoo.zoo import registry

    monkeypatch.setenv("MRIZOO_HOME", str(tmp_path / "mrizoo"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    fresh = registry.Registry()
    monkeypatch.setattr(registry, "REGISTRY", fresh)
    bad = json.loads(json.dumps(published["entry"]))
    bad["weights"]["sha256"] = "e" * 64
    mrizoo.register_model(bad)
    with OlahServer(published["root"], tmp_path / "server") as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.url + "/{repo_id}/resolve/{revision}/{filename}")
        with pytest.raises(HubRepoNotFoundError, match="mrizoo-test/nothing-here.*no token is set"):
            mrizoo.load("hf-hub:mrizoo-test/nothing-here@main")
        with pytest.raises(ChecksumMismatchError, match=published["sha256"]):
            mrizoo.load(NAME)
    assert not list((tmp_path / "hf" / "hub").rglob("snapshots/*/model.safetensors"))
