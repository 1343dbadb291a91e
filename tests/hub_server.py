"""Local servers for the download tests, all bound to 127.0.0.1 on a free port.

- :class:`OlahServer`: the ``olah`` Hub mirror in a subprocess, serving local git repos
  (its ``mirrors-path`` option; layout ``<root>/models/<org>/<repo>``) with its own
  ``offline`` switch on, so it never contacts anything else.
- :class:`MiniHub`: a small Hub-compatible server over the same git repos for the
  ``resolve`` endpoint that ``hf_hub_download`` uses (HEAD + GET with ``X-Repo-Commit``,
  ``ETag`` and the Hub's ``X-Error-Code`` answers). olah 0.5 answers an unknown revision of
  a local repo with HTTP 500, which the client retries for ~20 s; this server answers
  ``RevisionNotFound`` like the Hub does. It also records the requests it saw.
- :class:`FileServer`: plain files over HTTP with ``Range`` support (upstream downloads).
- :func:`git_commit_folder`: a local git repo (``git`` CLI) holding a checkpoint folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "mrizoo-test",
            "GIT_AUTHOR_EMAIL": "test@localhost", "GIT_COMMITTER_NAME": "mrizoo-test",
            "GIT_COMMITTER_EMAIL": "test@localhost", "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    out = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, timeout=30,
                         env={**os.environ, **_GIT_ENV})
    if out.returncode:
        raise subprocess.CalledProcessError(out.returncode, ["git", *args], out.stdout, out.stderr)
    return out.stdout


def git_commit_folder(root: Path, repo_id: str, folder: Path, message: str = "checkpoint") -> str:
    """Commit the files of ``folder`` to the repo ``<root>/models/<repo_id>`` (created on first use); return the sha."""
    repo = root / "models" / repo_id
    if not (repo / ".git").exists():
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
    for f in folder.iterdir():
        shutil.copy2(f, repo / f.name)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").decode().strip()


def _wait_until_up(url: str, deadline: float, proc: subprocess.Popen | None = None) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"no answer from {url}")


class OlahServer:
    """``olah-cli`` serving the git repos under ``mirrors`` (a context manager; stops at exit)."""

    def __init__(self, mirrors: Path, workdir: Path, *, startup_timeout: float = 30.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "olah.toml"
        self.config.write_text(
            "[basic]\n"
            'host = "127.0.0.1"\n'
            f"port = {self.port}\n"
            f'repos-path = "{(workdir / "repos").as_posix()}"\n'
            f'mirrors-path = ["{mirrors.as_posix()}"]\n'
            "[accessibility]\n"
            "offline = true\n"
        )
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None

    def start(self) -> "OlahServer":
        exe = shutil.which("olah-cli")
        cmd = [exe] if exe else [sys.executable, "-m", "olah.server"]
        self.log = open(self.workdir / "olah.out", "wb")
        self.proc = subprocess.Popen([*cmd, "-c", str(self.config), "--log-path", str(self.workdir / "logs")],
                                     cwd=self.workdir, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            _wait_until_up(f"{self.url}/api/models/none/none", time.monotonic() + self.startup_timeout, self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> "OlahServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    range: str | None = None


@dataclass
class _State:
    root: Path
    files: dict[str, bytes] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _ThreadedServer:
    handler: type[BaseHTTPRequestHandler]

    def __init__(self, state: _State) -> None:
        self.state = state
        handler = type("Handler", (self.handler,), {"state": state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def seen(self) -> list[Seen]:
        with self.state.lock:
            return list(self.state.seen)

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join(timeout=10)
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Quiet(BaseHTTPRequestHandler):
    state: _State

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _record(self) -> None:
        with self.state.lock:
            self.state.seen.append(Seen(self.command, self.path, self.headers.get("Authorization"),
                                        self.headers.get("Range")))

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)


class _HubHandler(_Quiet):
    def _resolve(self) -> None:
        self._record()
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._send(404, {"X-Error-Code": "EntryNotFound"})
        org, name, _, revision, *rest = parts
        repo = self.state.root / "models" / org / name
        if not (repo / ".git").exists():
            return self._send(401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
        try:
            commit = git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").decode().strip()
        except subprocess.CalledProcessError:
            return self._send(404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"})
        path = "/".join(rest)
        try:
            oid = git(repo, "rev-parse", f"{commit}:{path}").decode().strip()
            body = git(repo, "cat-file", "blob", oid)
        except subprocess.CalledProcessError:
            return self._send(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
        self._send(200, {"X-Repo-Commit": commit, "ETag": f'"{oid}"', "Content-Length": str(len(body))}, body)

    do_HEAD = _resolve
    do_GET = _resolve


class MiniHub(_ThreadedServer):
    """A Hub-compatible ``resolve`` endpoint over the git repos under ``root`` (``<root>/models/<org>/<repo>``)."""

    handler = _HubHandler

    def __init__(self, root: Path) -> None:
        super().__init__(_State(root))


class _FileHandler(_Quiet):
    def do_GET(self) -> None:
        self._record()
        body = self.state.files.get(self.path)
        if body is None:
            return self._send(404, {})
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes="):-1])
            if start >= len(body):
                return self._send(416, {"Content-Range": f"bytes */{len(body)}"})
            return self._send(206, {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}, body[start:])
        self._send(200, {}, body)


class FileServer(_ThreadedServer):
    """Serves ``files`` (URL path -> bytes) with single open-ended ``Range`` requests."""

    handler = _FileHandler

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(_State(Path("."), files=dict(files)))

    def set(self, path: str, body: bytes) -> None:
        with self.state.lock:
            self.state.files[path] = body


# --------------------------------------------------------------------------- tiny zoo entries

#: a VarNet small enough to save, serve and run in well under a second
TINY_VARNET = {"num_cascades": 2, "chans": 4, "sens_chans": 2, "sens_pools": 2, "pools": 2}


def tiny_entry(name: str, weights: dict | None = None, config: dict | None = None) -> dict:
    """The mapping of a zoo entry for a tiny VarNet at 4x (``register_model`` accepts it)."""
    return {
        "name": name,
        "description": "tiny test VarNet",
        "model": {"arch": "varnet", "config": dict(TINY_VARNET if config is None else config)},
        "task": {"anatomy": "knee", "accelerations": [4], "mask": "equispaced_fraction", "center_fractions": [0.08]},
        "weights": weights or {"kind": "none"},
        "recipe": None,
    }


def sample_input(seed: int = 0, coils: int = 4, h: int = 32, w: int = 24):
    """Fixed undersampled k-space [1, C, H, W] and its column mask [H, W]."""
    import torch

    g = torch.Generator().manual_seed(seed)
    k = torch.randn(1, coils, h, w, 2, generator=g)
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[:, ::4] = True
    mask[:, w // 2 - 2: w // 2 + 2] = True
    return torch.view_as_complex(k) * mask, mask
