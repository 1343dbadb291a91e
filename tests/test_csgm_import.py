"""The official CSGM-Langevin prior as an upstream zoo entry: the authors' checkpoint format, its release
archive, Google Drive's confirmation page, resumed downloads, conversion once and offline loads.

Oracle: the reference NCSNv2 code of the authors (``../shared/oracles/csgm_ncsnv2``, MIT), with
random weights and a small width; checkpoints are written in the authors' format (a list holding
the ``DataParallel`` state dict, the Adam state, epoch, step and the EMA shadow). Downloads come from
a server on 127.0.0.1 that answers like Google Drive: a confirmation page for large files, then
the file with ``Range`` support.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import sys
import tarfile
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import torch

import mrizoo
from mrizoo.errors import InputError, WeightsUnavailableError
from mrizoo.hub.download import WeightsNotCachedError
from mrizoo.hub.gdrive import confirmation_url, google_drive_url
from mrizoo.zoo import registry as registry_module
from mrizoo.zoo.import_checkpoint import import_checkpoint
from mrizoo.zoo.registry import Registry
from mrizoo.zoo.upstream import ARCHIVE_MEMBERS, upstream_cache_dir

ORACLES = Path(__file__).resolve().parents[2] / "shared" / "oracles"
pytestmark = pytest.mark.skipif(not (ORACLES / "csgm_ncsnv2").is_dir(),
                                reason=f"the reference NCSNv2 code is not in {ORACLES}")
NAME = "ncsnv2-fastmri-brain"
MEMBER = ARCHIVE_MEMBERS["csgm-ncsnv2"]
NGF = 8


def _oracle_net(ngf: int = NGF):
    if str(ORACLES) not in sys.path:
        sys.path.insert(0, str(ORACLES))
    from csgm_ncsnv2.ncsnv2 import NCSNv2Deepest

    ns = types.SimpleNamespace
    cfg = ns(device="cpu", data=ns(channels=2, logit_transform=False, rescaled=False, image_size=32),
             model=ns(sigma_begin=232, sigma_end=0.0066, num_classes=2311, sigma_dist="geometric",
                      normalization="InstanceNorm++", nonlinearity="elu", ngf=ngf, spec_norm=False))
    return NCSNv2Deepest(cfg)


@pytest.fixture(scope="module")
def authors_checkpoint() -> dict:
    """The oracle with random weights, saved as the authors' trainer saves it; EMA differs from the weights."""
    torch.manual_seed(11)
    net = _oracle_net()
    from csgm_ncsnv2.ema import EMAHelper  # on the path once _oracle_net ran

    dp = torch.nn.DataParallel(net)
    ema = EMAHelper(mu=0.999)
    ema.register(dp)
    opt = torch.optim.Adam(dp.parameters(), lr=1e-4)
    dp(torch.rand(2, 2, 32, 32), torch.tensor([0, 7])).square().mean().backward()
    opt.step()
    g = torch.Generator().manual_seed(12)
    shadow = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in ema.state_dict().items()}
    buf = io.BytesIO()
    torch.save([dp.state_dict(), opt.state_dict(), 1, 100, shadow], buf)
    return {"net": net, "shadow": shadow, "pth": buf.getvalue()}


def _tarball(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def _ema_oracle(ckpt: dict) -> torch.nn.Module:
    """The oracle network loaded as the authors' sampler loads it: strict state dict, then the EMA shadow."""
    net = _oracle_net()
    net.load_state_dict(ckpt["net"].state_dict(), strict=True)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(ckpt["shadow"][name])
    return net


def _assert_matches_oracle(model: torch.nn.Module, ckpt: dict) -> None:
    ref = _ema_oracle(ckpt).double().eval()
    ours = model.net.double().eval()
    x = torch.rand(2, 2, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([5, 1700])
    plain = _oracle_net().double()
    plain.load_state_dict(ckpt["net"].state_dict())
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the oracle allocates its fusion sums in the default dtype
    try:
        with torch.no_grad():
            want, got, without_ema = ref(x, labels), ours(x, labels), plain(x, labels)
    finally:
        torch.set_default_dtype(dtype)
    assert float((got - want).abs().max() / want.abs().max()) <= 1e-10
    assert float((without_ema - want).abs().max() / want.abs().max()) > 1e-3  # the EMA weights made a difference
    model.float()


# --------------------------------------------------------------------------- conversion


def test_authors_checkpoint_converts_with_ema_and_matches_the_oracle(authors_checkpoint: dict,
                                                                     tmp_path: Path) -> None:
    src = tmp_path / "checkpoint_100000.pth"
    src.write_bytes(authors_checkpoint["pth"])
    out = import_checkpoint("csgm-ncsnv2", src, tmp_path / "prior")
    model = mrizoo.load(str(out))
    _assert_matches_oracle(model, authors_checkpoint)
    doc = json.loads((out / "config.json").read_text())
    assert doc["imported"] == {"format": "csgm-ncsnv2", "file": src.name,
                               "sha256": hashlib.sha256(authors_checkpoint["pth"]).hexdigest()}
    assert doc["config"]["ngf"] == NGF and doc["config"]["sampler"]["data_grad_ratio"] == 5.0
    assert hashlib.sha256(authors_checkpoint["pth"]).hexdigest() in (out / "README.md").read_text()


def test_release_archive_member_is_the_only_thing_extracted(authors_checkpoint: dict, tmp_path: Path) -> None:
    src = tmp_path / "ncsnv2-mri-mvue.tar.gz"
    src.write_bytes(_tarball({"ncsnv2-mri-mvue/logs/mri-mvue/config.yml": b"x: 1\n",
                              MEMBER: authors_checkpoint["pth"]}))
    out = import_checkpoint("csgm-ncsnv2", src, tmp_path / "prior")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ncsnv2-mri-mvue.tar.gz", "prior"]
    _assert_matches_oracle(mrizoo.load(str(out)), authors_checkpoint)


@pytest.mark.parametrize("bad, why", [
    ({"evil.txt": b"x"}, "outside the folder ncsnv2-mri-mvue/"),
    ({"ncsnv2-mri-mvue/../../evil.txt": b"x"}, "a '..' part"),
    ({"/tmp/evil.txt": b"x"}, "an absolute path"),
])
def test_archive_with_a_member_outside_its_folder_is_refused(authors_checkpoint: dict, tmp_path: Path,
                                                            bad: dict, why: str) -> None:
    src = tmp_path / "release.tar.gz"
    src.write_bytes(_tarball({MEMBER: authors_checkpoint["pth"], **bad}))
    with pytest.raises(InputError, match=f"refusing the archive: member .* is {why}"):
        import_checkpoint("csgm-ncsnv2", src, tmp_path / "prior")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.tar.gz"]  # nothing extracted or written


def test_archive_with_a_link_or_without_the_checkpoint_is_refused(authors_checkpoint: dict, tmp_path: Path) -> None:
    src = tmp_path / "release.tar.gz"
    src.write_bytes(_tarball({MEMBER: authors_checkpoint["pth"]}, links={"ncsnv2-mri-mvue/x": "/etc/passwd"}))
    with pytest.raises(InputError, match="is a link or special file"):
        import_checkpoint("csgm-ncsnv2", src, tmp_path / "prior")
    src.write_bytes(_tarball({"ncsnv2-mri-mvue/other.pth": authors_checkpoint["pth"]}))
    with pytest.raises(InputError, match=f"does not hold the checkpoint.*{MEMBER}"):
        import_checkpoint("csgm-ncsnv2", src, tmp_path / "prior")
    assert not (tmp_path / "prior").exists()


def test_not_the_authors_format_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "c.pth"
    torch.save({"a": torch.zeros(1)}, src)
    with pytest.raises(InputError, match="not an NCSNv2 training checkpoint"):
        import_checkpoint("csgm-ncsnv2", src, tmp_path / "out")
    torch.save([{"module.a": torch.zeros(1)}, {"b": torch.zeros(1)}], src)
    with pytest.raises(InputError, match="EMA entries without a network tensor: b"):
        import_checkpoint("csgm-ncsnv2", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- Google Drive


def test_confirmation_page_variants() -> None:
    url = google_drive_url("ID")
    form = (b'<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">'
            b'<input type="submit" value="Download anyway"/><input type="hidden" name="id" value="ID">'
            b'<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t">'
            b'<input type="hidden" name="uuid" value="u-1"></form>')
    assert confirmation_url(form, url) == ("https://drive.usercontent.google.com/download"
                                           "?id=ID&export=download&confirm=t&uuid=u-1")
    link = b'<a id="uc-download-link" href="/uc?export=download&amp;confirm=AbC1&amp;id=ID">Download</a>'
    assert confirmation_url(link, url) == "https://drive.google.com/uc?export=download&confirm=AbC1&id=ID"
    assert confirmation_url(b"<html>quota</html>", url, ["download_warning_1=tok9; Path=/"]) == (
        "https://drive.google.com/uc?export=download&id=ID&confirm=tok9")
    assert confirmation_url(b"<html>Too many users have viewed or downloaded this file</html>", url) is None


class _Drive:
    """Google Drive on 127.0.0.1: ``/uc`` answers a confirmation page, ``/download`` the file (with Range).

    ``cut_first`` bytes: the first download is cut off after that many bytes (an interrupted download).
    """

    def __init__(self, body: bytes, cut_first: int | None = None) -> None:
        self.body, self.cut, self.seen = body, cut_first, []
        drive = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                drive.seen.append((parts.path, query, self.headers.get("Range")))
                if parts.path == "/uc" and query.get("id") == "QUOTA":
                    return self._send(200, {"Content-Type": "text/html"}, b"<html>Quota exceeded</html>")
                if parts.path == "/uc" and query.get("id") == "FILE":
                    page = (f'<html><form id="download-form" action="/download" method="get">'
                            f'<input type="hidden" name="id" value="FILE"><input type="hidden" name="export" '
                            f'value="download"><input type="hidden" name="confirm" value="t">'
                            f'<input type="hidden" name="uuid" value="u-{len(drive.seen)}"></form></html>').encode()
                    return self._send(200, {"Content-Type": "text/html; charset=utf-8"}, page)
                if parts.path != "/download" or query.get("confirm") != "t" or not query.get("uuid"):
                    return self._send(404, {"Content-Type": "text/html"}, b"<html>not found</html>")
                body, status, headers = drive.body, 200, {"Content-Type": "application/x-gzip"}
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng[len("bytes="):-1])
                    headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
                    body, status = body[start:], 206
                if drive.cut is not None:
                    cut, drive.cut = drive.cut, None
                    self.send_response(status)
                    for k, v in {**headers, "Content-Length": str(len(body))}.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._send(status, headers, body)

            def _send(self, status: int, headers: dict, body: bytes) -> None:
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Drive:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setenv("MRIZOO_HOME", str(tmp_path / "mrizoo"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return tmp_path


def _small_entry(url: str):
    """The shipped entry with its URL on the local server and a small network (same format, sampler, task)."""
    from mrizoo.zoo.entry import ModelSpec

    entry = mrizoo.info(NAME)
    return dataclasses.replace(entry, model=ModelSpec(entry.model.arch, entry.model.preset,
                                                      {**entry.model.config, "ngf": NGF}),
                               weights=dataclasses.replace(entry.weights, url=url))


def test_shipped_entry_states_source_licence_and_sampler() -> None:
    entry = mrizoo.info(NAME)
    assert entry.weights.kind == "upstream" and entry.weights.converter == "csgm-ncsnv2" and entry.license == "mit"
    assert entry.weights.url == google_drive_url("1vAIXf8n67yEAPmH2I9qiDWzmq9fGKPYL")
    s = mrizoo.create(NAME).zoo_config.sampler
    assert (s.start_level, s.steps_per_level, s.late_from_level, s.late_steps_per_level, s.step_lr,
            s.data_grad_ratio, s.percentile) == (1156, 3, 1801, 4, 5e-5, 5.0, 0.99)
    card = (Path(__file__).resolve().parents[1] / "model_cards" / f"{NAME}.md").read_text()
    assert "license: mit" in card and "under the MIT licence" in card and entry.weights.url in card


def test_load_by_name_through_the_confirmation_page_resumes_verifies_converts_samples(
        authors_checkpoint: dict, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = _tarball({MEMBER: authors_checkpoint["pth"]})
    sha = hashlib.sha256(blob).hexdigest()
    with _Drive(blob, cut_first=len(blob) // 3) as drive:
        url = f"{drive.url}/uc?export=download&id=FILE"
        zoo = Registry(package=None)
        zoo.register(_small_entry(url))
        monkeypatch.setattr(registry_module, "REGISTRY", zoo)
        with pytest.raises(WeightsNotCachedError, match="(stopped at|broke off).*run the command again to resume it"):
            mrizoo.load(NAME)
        folder = upstream_cache_dir(NAME, url, None, "csgm-ncsnv2")
        assert not folder.exists()
        model = mrizoo.load(NAME)
        downloads = [(q.get("uuid"), rng) for path, q, rng in drive.seen if path == "/download"]
        assert [path for path, _, _ in drive.seen] == ["/uc", "/download", "/uc", "/download"]
        assert downloads[1][1] == f"bytes={len(blob) // 3}-"  # resumed where the first download stopped
        requests = len(drive.seen)
        again = mrizoo.load(NAME)  # converted once: no request
        assert len(drive.seen) == requests
    _assert_matches_oracle(model, authors_checkpoint)
    source = json.loads((folder / "source.json").read_text())
    assert source["sha256"] == sha and source["sha256_pinned"] is False and source["converter"] == "csgm-ncsnv2"
    assert model.weights_source["kind"] == "upstream" and again.weights_source == model.weights_source
    assert not any((home / "mrizoo" / "downloads").rglob("*.*"))  # raw download and extracted member gone
    # a few Langevin steps of the entry's sampler (the last levels: 4 steps each, rescaled data gradient)
    model.langevin = dataclasses.replace(model.langevin, start_level=2307, seed=0)
    k = torch.view_as_complex(torch.randn(1, 3, 32, 32, 2, generator=torch.Generator().manual_seed(1)))
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[:, ::4] = True
    mask[:, 13:19] = True
    maps = torch.ones(1, 3, 32, 32, dtype=torch.complex64) / 3 ** 0.5
    post = model.sample(k * mask, mask, maps, n=2)
    assert post.samples.shape == (2, 1, 32, 32) and bool(torch.isfinite(post.samples).all())

    # offline (HF_HUB_OFFLINE=1), from the cache alone: the server is gone
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = mrizoo.load(NAME)
    assert offline.weights_source == model.weights_source
    assert all(torch.equal(a, b) for a, b in zip(offline.state_dict().values(), again.state_dict().values()))


def test_offline_without_cache_and_a_page_instead_of_the_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants


    with _Drive(b"") as drive:
        zoo = Registry(package=None)
        zoo.register(_small_entry(f"{drive.url}/uc?export=download&id=GONE"))
        monkeypatch.setattr(registry_module, "REGISTRY", zoo)
        with pytest.raises(WeightsUnavailableError, match="answered HTTP 404"):
            mrizoo.load(NAME)
        zoo.register(dataclasses.replace(_small_entry(f"{drive.url}/uc?export=download&id=QUOTA"),
                                         name="ncsnv2-fastmri-brain-quota"))
        with pytest.raises(WeightsUnavailableError, match="answered with a web page instead of the file"):
            mrizoo.load("ncsnv2-fastmri-brain-quota")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        with pytest.raises(WeightsNotCachedError, match=f"HF_HUB_OFFLINE is set; run `mrizoo pull {NAME}`"):
            mrizoo.load(NAME)


# --------------------------------------------------------------------------- the authors' sampler settings


def test_late_steps_and_rescaled_data_gradient_follow_the_authors_update() -> None:
    """Levels run, steps per level and each update, against the authors' loop written out here."""
    from mrizoo.models.langevin import LangevinConfig, annealed_langevin
    from mrizoo.physics.coils import sense_combine
    from mrizoo.physics.fft import fft2c, ifft2c

    g = torch.Generator().manual_seed(5)
    h = w = 8
    maps = torch.view_as_complex(torch.randn(1, 2, h, w, 2, generator=g))
    maps = maps / (maps.abs() ** 2).sum(1, keepdim=True).sqrt()
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[:, ::2] = True
    y = fft2c(maps * torch.view_as_complex(torch.randn(1, 1, h, w, 2, generator=g))) * mask
    sig = torch.tensor([4.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    weights = torch.randn(h, w, generator=g)
    calls: list[float] = []

    def score(x: torch.Tensor, sigma: float) -> torch.Tensor:
        calls.append(sigma)
        return -(x * weights) / sigma**2

    cfg = LangevinConfig(step_lr=1e-3, steps_per_level=1, start_level=1, late_from_level=3,
                         late_steps_per_level=2, data_grad_ratio=5.0, seed=0)
    got = annealed_langevin(score, y, mask, maps, sig, cfg, n=1)
    assert calls == [2.0, 1.0, 0.5, 0.5]

    # the authors' loop: per level c after start_iter, n_steps_each steps of
    # x += a (s(x) - mse * |s(x)| / |g| * g) + sqrt(2a) z with g = A^H (A x - y) on normalised images
    gen = torch.Generator().manual_seed(0)
    scale = torch.quantile(sense_combine(ifft2c(y), maps).abs().flatten(), 0.99)
    yn = y / scale
    x = torch.view_as_complex(torch.rand(1, 1, h, w, 2, generator=gen))
    for level, steps in ((1, 1), (2, 1), (3, 2)):
        sigma = float(sig[level])
        a = 1e-3 * (sigma / 0.5) ** 2
        for _ in range(steps):
            grad = sense_combine(ifft2c(fft2c(maps * x) * mask - yn), maps)
            prior = -(x * weights) / sigma**2
            grad = grad / grad.norm() * prior.norm() * 5.0
            x = x + a * (prior - grad) + a ** 0.5 * 2 ** 0.5 * torch.view_as_complex(
                torch.randn(1, 1, h, w, 2, generator=gen))
    want = x * scale
    assert float((got - want).abs().max() / want.abs().max()) <= 1e-5
