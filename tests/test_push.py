"""``mrizoo push``: checks before upload, one commit with config/weights/card, card rules, no token leaks.

The Hub is a small in-memory HTTP server on 127.0.0.1 that implements the endpoints
``HfApi.create_repo``, ``create_branch``, ``file_exists`` and ``upload_folder`` use (repo
creation, branches, HEAD on files, YAML validation, preupload, NDJSON commit). The real
``huggingface_hub`` client talks to it through ``HF_ENDPOINT``-style configuration.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

import mrizoo
from mrizoo.cards.publish import push_checkpoint
from mrizoo.errors import InputError
from mrizoo.hub.upload import PushError
from mrizoo.models.base import ReconModel
from mrizoo.models.checkpoint import save_pretrained
from mrizoo.results import DatasetResult, EvaluationResults, save_results
from mrizoo.zoo.pretrained import from_pretrained

TOKEN = "hf_SENTINELtoken0123456789abcdefXYZ"


class FakeHub:
    """In-memory Hub: repos with branches of files, every request recorded, commits kept."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, dict] = {}
        self.commits: list[dict] = []
        self.requests: list[tuple[str, str, str | None]] = []
        self.fail: dict[str, tuple[int, str]] = {}  # endpoint kind -> (status, message)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_repo(self, repo_id: str, files: dict[str, bytes] | None = None) -> None:
        self.repos[repo_id] = {"private": False, "branches": {"main": dict(files or {})}}

    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        return self.repos[repo_id]["branches"][branch]

    def _handler(self) -> type:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: object = b"", headers: dict | None = None) -> None:
                data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _path(self) -> str:
                path = unquote(urlsplit(self.path).path)
                with hub._lock:
                    hub.requests.append((self.command, path, self.headers.get("Authorization")))
                return path

            def do_HEAD(self) -> None:  # file_exists
                m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self._path())
                repo = hub.repos.get(m.group(1)) if m else None
                if repo is None:
                    return self._send(404, headers={"X-Error-Code": "RepoNotFound"})
                files = repo["branches"].get(m.group(2))
                if files is None or m.group(3) not in files:
                    code = "RevisionNotFound" if files is None else "EntryNotFound"
                    return self._send(404, headers={"X-Error-Code": code})
                data = files[m.group(3)]
                self._send(200, headers={"ETag": f'"{hashlib.sha1(data).hexdigest()}"', "X-Repo-Commit": "0" * 40})

            def do_POST(self) -> None:
                path = self._path()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization") != f"Bearer {hub.token}":
                    return self._send(401, {"error": "Invalid credentials in Authorization header"})
                if path == "/api/repos/create":
                    p = json.loads(body)
                    repo_id = f"{p['organization']}/{p['name']}"
                    url = {"url": f"{hub.url}/{repo_id}"}
                    if repo_id in hub.repos:
                        return self._send(409, {"error": "You already created this model repo", **url})
                    hub.add_repo(repo_id)
                    hub.repos[repo_id]["private"] = p.get("visibility") == "private"
                    return self._send(200, url)
                if path == "/api/validate-yaml":
                    m = re.match(r"^---\n(.*?)\n---\n", json.loads(body)["content"], re.S)
                    meta = yaml.safe_load(m.group(1)) if m else None
                    if not isinstance(meta, dict) or not isinstance(meta.get("license"), str):
                        return self._send(400, {"errors": [{"message": "invalid metadata"}]})
                    return self._send(200, {"errors": [], "warnings": []})
                m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit|branch)/(.+)", path)
                if not m:
                    return self._send(404, {"error": "no such endpoint"})
                repo_id, kind, rev = m.groups()
                if kind in hub.fail:
                    status, message = hub.fail[kind]
                    return self._send(status, {"error": message})
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                if kind == "branch":
                    if rev in repo["branches"]:
                        return self._send(409, {"error": "Branch already exists"})
                    repo["branches"][rev] = dict(repo["branches"]["main"])
                    return self._send(200, {})
                if rev not in repo["branches"]:
                    return self._send(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
                if kind == "preupload":
                    return self._send(200, {"files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                        for f in json.loads(body)["files"]]})
                lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                assert lines[0]["key"] == "header" and all(x["key"] == "file" for x in lines[1:])
                files = {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines[1:]}
                repo["branches"][rev].update(files)
                oid = hashlib.sha1(f"{repo_id}{rev}{len(hub.commits)}".encode()).hexdigest()
                hub.commits.append({"repo": repo_id, "revision": rev, "summary": lines[0]["value"]["summary"],
                                    "files": files})
                self._send(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                                 "pullRequestUrl": None})

        return Handler


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from huggingface_hub import constants

    server = FakeHub(TOKEN)
    thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    # what HF_ENDPOINT sets when huggingface_hub is imported
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        server.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return mrizoo.create("unet-knee-r4", chans=4)


@pytest.fixture
def run_dir(tmp_path: Path, model: torch.nn.Module) -> Path:
    return save_pretrained(model, tmp_path / "run")


def _writes(hub: FakeHub) -> list[tuple[str, str, str | None]]:
    return [r for r in hub.requests if r[0] == "POST" and r[1] != "/api/validate-yaml"]


# ----------------------------------------------------------------------------- uploads


def test_push_uploads_config_weights_and_card_in_one_commit(hub: FakeHub, run_dir: Path, model: torch.nn.Module,
                                                            tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    result = push_checkpoint(run_dir, "mri-org/unet-knee-r4")
    assert len(hub.commits) == 1
    commit = hub.commits[0]
    assert (commit["repo"], commit["revision"]) == ("mri-org/unet-knee-r4", "main")
    assert sorted(commit["files"]) == ["README.md", "config.json", "model.safetensors"]
    for name in ("config.json", "model.safetensors"):
        assert commit["files"][name] == (run_dir / name).read_bytes()
    card = commit["files"]["README.md"].decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "mrizoo" and meta["license"] == "mit"
    assert hashlib.sha256((run_dir / "model.safetensors").read_bytes()).hexdigest() in card
    n_params = sum(p.numel() for p in model.state_dict().values())
    assert f"{n_params:,} in {len(model.state_dict())} tensors" in card
    assert "chans: 4" in card  # the checkpoint's own config, not the zoo preset
    assert result.commit_url.startswith(f"{hub.url}/mri-org/unet-knee-r4/commit/")
    assert result.commit_url in capsys.readouterr().out
    assert result.card_uploaded and not result.dry_run and result.staging_dir is None
    assert hub.repos["mri-org/unet-knee-r4"]["private"] is False
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in _writes(hub))
    # what landed on the Hub loads back into the same model
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    for name, data in hub.files("mri-org/unet-knee-r4").items():
        (pulled / name).write_bytes(data)
    loaded = from_pretrained(pulled)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_model_push_to_hub_round_trips_with_a_card_that_claims_nothing(hub: FakeHub, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """``ReconModel.push_to_hub``: one commit, the token given for this upload, a card without claims."""
    from mrizoo.models.unet import UnetConfig, UnetRecon

    torch.manual_seed(1)
    mine = UnetRecon(UnetConfig(chans=4, num_pool_layers=2))  # built by hand: no zoo entry
    monkeypatch.delenv("HF_TOKEN")  # only the token passed to push_to_hub is there
    other = TOKEN
    up = mine.push_to_hub("lab/my-unet", revision="v1", token=other)
    assert len(hub.commits) == 1 and hub.commits[0]["revision"] == "v1"
    assert sorted(hub.commits[0]["files"]) == ["README.md", "config.json", "model.safetensors"]
    assert up.commit_url.startswith(f"{hub.url}/lab/my-unet/commit/")
    assert {auth for _, _, auth in _writes(hub)} == {f"Bearer {other}"}
    card = hub.commits[0]["files"]["README.md"].decode()
    assert "No evaluation is recorded" in card and "SSIM" not in card and other not in card
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    for name, data in hub.commits[0]["files"].items():
        (pulled / name).write_bytes(data)
    loaded = ReconModel.from_pretrained(pulled)
    assert type(loaded) is UnetRecon and loaded.config == mine.config
    for k, v in mine.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_existing_card_is_kept_unless_overwrite(hub: FakeHub, run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    hub.add_repo("org/model", {"README.md": b"---\nlicense: mit\n---\nhand-written card\n"})
    result = push_checkpoint(run_dir, "org/model")
    assert sorted(hub.commits[0]["files"]) == ["config.json", "model.safetensors"]
    assert hub.files("org/model")["README.md"].endswith(b"hand-written card\n")
    assert not result.card_uploaded and result.files == ("config.json", "model.safetensors")
    assert "README.md exists on org/model@main: kept it" in capsys.readouterr().out
    push_checkpoint(run_dir, "org/model", overwrite_card=True)
    assert len(hub.commits) == 2 and sorted(hub.commits[1]["files"]) == ["README.md", "config.json",
                                                                          "model.safetensors"]
    assert b"# unet-knee-r4" in hub.files("org/model")["README.md"]


def test_private_repo_on_a_new_branch(hub: FakeHub, run_dir: Path) -> None:
    push_checkpoint(run_dir, "org/priv", private=True, revision="dev", commit_message="first weights")
    assert hub.repos["org/priv"]["private"] is True
    assert [(c["revision"], c["summary"]) for c in hub.commits] == [("dev", "first weights")]
    assert hub.files("org/priv", "main") == {} and "model.safetensors" in hub.files("org/priv", "dev")
    # pushing again to the same branch: repo and branch exist already, which is fine
    push_checkpoint(run_dir, "org/priv", revision="dev")
    assert len(hub.commits) == 2 and "README.md" not in hub.commits[1]["files"]


def test_dry_run_stages_and_uploads_nothing(hub: FakeHub, run_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the printed temporary folder lands here
    out = tmp_path / "staged"
    result = push_checkpoint(run_dir, "org/model", dry_run=True, out=out)
    assert hub.requests == []
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == (run_dir / "model.safetensors").read_bytes()
    assert result.dry_run and result.commit_url is None and result.staging_dir == out
    assert str(out) in capsys.readouterr().out
    result = push_checkpoint(run_dir, "org/model", dry_run=True)  # temporary folder, printed
    printed = capsys.readouterr().out
    assert str(result.staging_dir) in printed and (result.staging_dir / "README.md").is_file()
    assert result.staging_dir.parent == tmp_path
    with pytest.raises(InputError, match="new or empty"):
        push_checkpoint(run_dir, "org/model", dry_run=True, out=out)  # never mixes with old files


def test_results_and_training_summary_of_the_run_go_into_the_card(hub: FakeHub, run_dir: Path,
                                                                  tmp_path: Path) -> None:
    results = EvaluationResults("unet-knee-r4", (DatasetResult("fastMRI knee", "in", 4, "equispaced_fraction", 20,
                                                               700, {"ssim": 0.9, "psnr": 35.0, "nmse": 0.01}),))
    save_results(results, run_dir / "evaluation.json")
    (run_dir / "training_summary.json").write_text(json.dumps(
        {"recipe": "unet-knee-r4", "epochs_trained": 30, "max_epochs": 40, "checkpoint_epoch": 24,
         "early_stopping": "validation SSIM stopped improving"}))
    out = push_checkpoint(run_dir, "org/model", dry_run=True, out=tmp_path / "s").staging_dir
    card = (out / "README.md").read_text()
    assert "model-index" in card and "30 epochs of 40 planned" in card and "epoch 24" in card
    other = EvaluationResults("unet-pool-r4", results.datasets)
    save_results(other, run_dir / "evaluation.json")
    with pytest.raises(InputError, match="another model"):
        push_checkpoint(run_dir, "org/model")
    assert hub.requests == []


def test_checkpoint_of_a_name_outside_the_zoo(hub: FakeHub, run_dir: Path, tmp_path: Path) -> None:
    doc = json.loads((run_dir / "config.json").read_text())
    doc["name"] = "unet-custom-r4"
    (run_dir / "config.json").write_text(json.dumps(doc))
    out = push_checkpoint(run_dir, "org/custom", dry_run=True, out=tmp_path / "s").staging_dir
    card = (out / "README.md").read_text()
    assert card.split("\n---\n", 1)[1].lstrip().startswith("# unet-custom-r4")
    assert "| Anatomy | knee; contrasts PD, PDFS |" in card  # the task recorded in config.json


# ----------------------------------------------------------------------------- checks before upload


def _drop_config(run: Path) -> None:
    (run / "config.json").unlink()


def _garbage_weights(run: Path) -> None:
    (run / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file" * 10)


def _truncated_weights(run: Path) -> None:
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])


def _config_mismatch(run: Path) -> None:
    doc = json.loads((run / "config.json").read_text())
    doc["config"]["chans"] = 8
    (run / "config.json").write_text(json.dumps(doc))


def _nan_weight(run: Path) -> None:
    state = load_file(str(run / "model.safetensors"))
    key = sorted(state)[0]
    state[key] = state[key].clone()
    state[key].view(-1)[0] = float("nan")
    save_file(state, str(run / "model.safetensors"))


def _missing_tensor(run: Path) -> None:
    state = load_file(str(run / "model.safetensors"))
    state.pop(sorted(state)[-1])
    save_file(state, str(run / "model.safetensors"))


def _bad_arch(run: Path) -> None:
    doc = json.loads((run / "config.json").read_text())
    doc["arch"] = "resnet"
    (run / "config.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("damage, message", [
    (_drop_config, "config.json is missing"),
    (_garbage_weights, "not a readable safetensors file"),
    (_truncated_weights, "not a readable safetensors file"),
    (_config_mismatch, "weights do not match the config"),
    (_nan_weight, "NaN"),
    (_missing_tensor, "missing"),
    (_bad_arch, "unknown architecture"),
    (lambda run: (run / "model.safetensors").unlink(), "weights file missing"),
])
def test_bad_run_dir_fails_before_any_upload(hub: FakeHub, run_dir: Path, tmp_path: Path, damage,
                                             message: str) -> None:
    damage(run_dir)
    out = tmp_path / "staging"
    with pytest.raises(InputError, match=message):
        push_checkpoint(run_dir, "org/model", out=out)
    assert hub.requests == []
    assert not out.exists()  # no half-staged folder left behind


@pytest.mark.parametrize("repo_id", ["noslash", "a/b/c", "org/na me", "org/", "/name", "org/x..y"])
def test_bad_repo_id(hub: FakeHub, run_dir: Path, repo_id: str) -> None:
    with pytest.raises(InputError, match="repository id"):
        push_checkpoint(run_dir, repo_id)
    assert hub.requests == []


def test_offline_mode_refuses_before_any_request(hub: FakeHub, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PushError, match="HF_HUB_OFFLINE"):
        push_checkpoint(run_dir, "org/model")
    assert hub.requests == []


# ----------------------------------------------------------------------------- tokens


def _no_token_anywhere(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text
        assert TOKEN[3:] not in text  # not even without the prefix


def test_token_is_never_printed_or_put_in_errors(hub: FakeHub, run_dir: Path, tmp_path: Path,
                                                  capfd: pytest.CaptureFixture,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from huggingface_hub.utils import logging as hf_logging

    caplog.set_level(logging.DEBUG)
    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_debug()
    errors = []
    try:
        push_checkpoint(run_dir, "org/ok", out=tmp_path / "kept")
        # a server that echoes the credentials back in its error message
        hub.fail["commit"] = (400, f"token {TOKEN} has no write access")
        with pytest.raises(PushError) as err:
            push_checkpoint(run_dir, "org/ok")
        errors.append(err.value)
        hub.fail.clear()
        hub.token = "hf_someoneelse"  # the server rejects our token
        with pytest.raises(PushError) as err:
            push_checkpoint(run_dir, "org/other")
        errors.append(err.value)
    finally:
        hf_logging.set_verbosity(old)
    assert "***" in str(errors[0]) and "401" in str(errors[1])
    assert any(auth == f"Bearer {TOKEN}" for _, _, auth in hub.requests)  # it was in play
    out, err_text = capfd.readouterr()
    staged = "".join(p.read_text(errors="replace") for p in (tmp_path / "kept").iterdir())
    _no_token_anywhere(out, err_text, caplog.text, staged,
                       *(str(e) for e in errors), *(repr(e) for e in errors),
                       *("".join(traceback.format_exception(e)) for e in errors))


# ----------------------------------------------------------------------------- command line


def test_push_command(hub: FakeHub, run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    import mrizoo.cli as cli

    assert cli.main(["push", str(run_dir), "--repo-id", "org/cli", "--private", "--revision", "exp",
                     "--commit-message", "hello"]) == 0
    assert [(c["repo"], c["revision"], c["summary"]) for c in hub.commits] == [("org/cli", "exp", "hello")]
    assert hub.repos["org/cli"]["private"] is True
    assert f"{hub.url}/org/cli/commit/" in capsys.readouterr().out
    (run_dir / "config.json").unlink()
    assert cli.main(["push", str(run_dir), "--repo-id", "org/cli"]) == 2
    assert "config.json is missing" in capsys.readouterr().err
    assert len(hub.commits) == 1


def test_push_the_shipped_demo_weights(hub: FakeHub, tmp_path: Path) -> None:
    """The checkpoint that ships with the package publishes as is: same bytes, its training summary, a demo card."""
    from mrizoo.zoo.resolve import resolve_checkpoint

    folder = resolve_checkpoint("varnet-mini-r4", prefer_local=False).folder
    push_checkpoint(folder, "mri-org/varnet-mini-r4")
    files = hub.files("mri-org/varnet-mini-r4")
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    for name in ("config.json", "model.safetensors"):
        assert files[name] == (folder / name).read_bytes()
    card = files["README.md"].decode()
    assert "Demo quality" in card and mrizoo.info("varnet-mini-r4").weights.sha256 in card
    assert "Trained with the recipe `varnet-mini-r4`" in card


def _smoke_run_folder(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A run folder as ``mrizoo train varnet-mini-r4 --smoke`` leaves it: run.json, recipe.yaml and model/."""
    torch.manual_seed(1)
    small = mrizoo.create("varnet-mini-r4", num_cascades=2, chans=4, sens_chans=2, pools=2, sens_pools=2)
    run = tmp_path / "smoke-run"
    save_pretrained(small, run / "model", extra={"training_recipe": "varnet-mini-r4", "training_step": 3})
    summary = {"recipe": "varnet-mini-r4", "epochs_trained": 1, "max_epochs": 1, "checkpoint_epoch": 1,
               "early_stopping": "not triggered", "steps": 3, "validation": {"ssim": 0.2562, "psnr": 17.75},
               "hardware": "1 x CPU", "notes": "selected step 3 (epoch 1) of 3; smoke run"}
    (run / "model" / "training_summary.json").write_text(json.dumps(summary))
    (run / "run.json").write_text(json.dumps({"recipe": "varnet-mini-r4", "smoke": True}))
    shipped = Path(mrizoo.__file__).parent / "recipes" / "varnet-mini-r4.yaml"
    (run / "recipe.yaml").write_text(shipped.read_text() if shipped.is_file() else "training: {}\n")
    return run, small


@pytest.mark.parametrize("which", ["run", "model"])
def test_push_of_a_smoke_run_describes_that_run(hub: FakeHub, tmp_path: Path, which: str) -> None:
    """RUN_DIR and RUN_DIR/model both push the run's model; its card is the run's, not the shipped model's."""
    run, small = _smoke_run_folder(tmp_path)
    push_checkpoint(run if which == "run" else run / "model", "me/smoke")
    files = hub.files("me/smoke")
    assert files["model.safetensors"] == (run / "model" / "model.safetensors").read_bytes()
    card = files["README.md"].decode()
    n_params = sum(t.numel() for t in small.state_dict().values())
    assert f"({n_params:,} parameters)" in card and f"{n_params:,} in {len(small.state_dict())} tensors" in card
    assert "smoke run" in card and "not a usable reconstruction model" in card
    assert "SSIM 0.2562" in card  # the run's own validation
    shipped = mrizoo.info("varnet-mini-r4")
    for claim in ("0.761", "~1M parameters", "Demo quality", shipped.weights.sha256, "ships inside"):
        assert claim not in card, claim  # nothing borrowed from the shipped weights
    assert 'mrizoo.load("hf-hub:me/smoke")' in card


def test_push_of_an_unfinished_run_folder(hub: FakeHub, tmp_path: Path) -> None:
    run = tmp_path / "cut"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(InputError, match="no published model yet"):
        push_checkpoint(run, "me/cut")
    assert hub.requests == []


def test_upload_is_transport_only() -> None:
    """mrizoo.hub.upload knows files and repositories, never models: importing it loads no model, zoo or card code."""
    import subprocess
    import sys

    code = ("import sys, mrizoo.hub.upload; print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['mrizoo', 'models'], ['mrizoo', 'zoo'], ['mrizoo', 'cards'], ['mrizoo', 'train'])))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


class _HfApiStandIn:
    """Records the calls a push makes (the HfApi methods it uses); ``file_exists`` answers from ``present``."""

    def __init__(self, present: set[str], fail: str | None = None) -> None:
        self.present, self.fail, self.calls, self.token = present, fail, [], TOKEN

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw.get("private")))

    def create_branch(self, repo_id, **kw):
        self.calls.append(("create_branch", repo_id, kw["branch"]))

    def file_exists(self, repo_id, filename, **kw):
        return filename in self.present

    def upload_folder(self, **kw):
        if self.fail:
            raise RuntimeError(self.fail)
        self.calls.append(("upload_folder", kw["repo_id"], tuple(kw["allow_patterns"]), kw["commit_message"]))
        return type("Info", (), {"commit_url": f"https://hub/{kw['repo_id']}/commit/1"})()


def test_upload_folder_keeps_an_existing_file_and_scrubs_tokens(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from mrizoo.hub.upload import upload_folder

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    lines: list[str] = []
    api = _HfApiStandIn({"README.md"})
    done = upload_folder(tmp_path, "org/m", ("config.json", "README.md"), what="m", revision="dev",
                         keep_existing="README.md", api=api, echo=lines.append)
    assert done.files == ("config.json",) and done.branch == "dev" and done.commit_url.endswith("/commit/1")
    assert api.calls[:2] == [("create_repo", "org/m", None), ("create_branch", "org/m", "dev")]
    assert api.calls[2][2] == ("config.json",) and "Upload m (config.json) with mrizoo" in api.calls[2][3]
    assert "README.md exists on org/m@dev: kept it" in lines[0]
    api = _HfApiStandIn(set(), fail=f"401 for token {TOKEN}")
    with pytest.raises(PushError) as err:
        upload_folder(tmp_path, "org/m", ("config.json",), what="m", api=api, echo=lines.append)
    assert TOKEN not in str(err.value) and "***" in str(err.value) and "401" in str(err.value)
