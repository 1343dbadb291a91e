"""The web app: its pipeline, its API endpoint (gradio_client) and the page in a real headless browser.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` and Selenium; the app tests
need ``mrizoo[app]`` (gradio). Each skips, with the reason, where they are absent (``-ra`` lists it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mrizoo.app.pipeline import prepare_input, run_models
from mrizoo.demo.scan import demo_scan_path
from mrizoo.errors import InputError

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


# --------------------------------------------------------------------------- pipeline (no web)
def test_bad_uploads_are_refused_with_a_message(tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(InputError, match="unsupported file type"):
        prepare_input([png], tmp_path / "w")
    fake = tmp_path / "scan.h5"
    fake.write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="scan.h5: not a readable HDF5 file"):
        prepare_input([fake], tmp_path / "w")
    with pytest.raises(InputError, match="upload too large"):
        prepare_input([demo_scan_path()], tmp_path / "w", limit_mb=0.1)
    cfl = tmp_path / "k.cfl"
    cfl.write_bytes(b"\0" * 8)
    with pytest.raises(InputError, match="needs its .cfl and .hdr together"):
        prepare_input([cfl], tmp_path / "w")
    z = tmp_path / "k.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "no data")
    with pytest.raises(InputError, match="the zip holds no BART array"):
        prepare_input([z], tmp_path / "w")
    real = tmp_path / "image.npy"
    np.save(real, np.ones((8, 16, 16), np.float32))
    with pytest.raises(InputError, match="must be complex multi-coil k-space"):
        prepare_input([real], tmp_path / "w")
    with pytest.raises(InputError, match="choose at least one model"):
        run_models(prepare_input(None, tmp_path / "w"), [], tmp_path / "w")


def test_zip_of_a_bart_pair_matches_the_h5_scan(tmp_path: Path) -> None:
    """The shipped scan as a BART pair in a zip reconstructs to the same image as the .h5 (zero-filled)."""
    import h5py

    from mrizoo.data.bart import write_cfl

    with h5py.File(demo_scan_path()) as f:
        k = f["kspace"][0]  # [C, H, W], zeros where not measured
    write_cfl(tmp_path / "brain", np.transpose(k, (1, 2, 0))[:, :, None, :])  # BART order: x, y, z, coils
    z = tmp_path / "brain.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for suffix in (".cfl", ".hdr"):
            zf.write(tmp_path / f"brain{suffix}", f"folder/brain{suffix}")
    prepared = prepare_input([z], tmp_path / "w")
    assert prepared.commands == ["mrizoo convert bart brain.cfl brain.h5"]
    res = run_models(prepared, ["zerofilled"], tmp_path / "w")
    ref = run_models(prepare_input(None, tmp_path / "v"), ["zerofilled"], tmp_path / "v")
    with h5py.File(tmp_path / "w" / "zerofilled.h5") as a, h5py.File(tmp_path / "v" / "zerofilled.h5") as b:
        assert np.allclose(a["reconstruction"][()], b["reconstruction"][()], rtol=1e-4, atol=1e-6)
    assert res.rows[0][1] is None and ref.rows[0][1] is not None  # a .cfl holds no reference: no metrics


def test_real_uploads_of_every_kind(realdata: Path, tmp_path: Path) -> None:
    """Fully sampled BART pair: undersampled here and scored; Poisson .npy: as measured, no metrics; twix."""
    full = prepare_input([realdata / "brain_t1_8ch_full.cfl", realdata / "brain_t1_8ch_full.hdr"], tmp_path / "a")
    res = run_models(full, ["zerofilled"], tmp_path / "a", acceleration=4.0)
    assert 0.5 < res.rows[0][1] < 0.8  # SSIM of zero-filling at 4x
    assert "mrizoo reconstruct zerofilled brain_t1_8ch_full.h5 zerofilled.h5 --mask equispaced_fraction " \
           "--acceleration 4" in res.command_text
    poisson = prepare_input([realdata / "brain_t1_8ch_poisson_r8.npy"], tmp_path / "b")
    res = run_models(poisson, ["zerofilled"], tmp_path / "b")
    assert res.rows[0][1:4] == [None, None, None]
    assert res.notes and "no fully sampled reference" in res.notes[0] and str(tmp_path) not in res.notes[0]
    twix = prepare_input([realdata / "siemens_7t_gre_1ch.dat"], tmp_path / "c")
    assert twix.commands == ["mrizoo convert twix siemens_7t_gre_1ch.dat siemens_7t_gre_1ch.h5"]
    assert twix.path.is_file() and twix.path.parent == tmp_path / "c"


# --------------------------------------------------------------------------- the served app
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """The app served on a free loopback port, in its own process."""
    pytest.importorskip("gradio", reason="SKIPPED LOUDLY: gradio is absent; pip install 'mrizoo[app]'")
    port = _free_port()
    work = tmp_path_factory.mktemp("app")
    env = dict(os.environ, MRIZOO_APP_DIR=str(work / "sessions"), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    log = open(work / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mrizoo", "app", "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the app did not start in 120 s: " + (work / "server.log").read_text()[-2000:])
    if proc.poll() is not None:
        pytest.fail("the app exited: " + (work / "server.log").read_text()[-2000:])
    yield url, work
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.mark.slow  # starts a server (gradio's import alone takes seconds)
def test_api_endpoint_with_gradio_client(served, tmp_path: Path) -> None:
    client_mod = pytest.importorskip("gradio_client", reason="SKIPPED LOUDLY: gradio_client is absent")
    import nibabel as nib

    url, _ = served
    client = client_mod.Client(url, verbose=False)
    figure, table, commands, files, status = client.predict(
        [client_mod.handle_file(str(demo_scan_path()))], ["varnet-mini-r4", "zerofilled"], "equispaced_fraction",
        4, 8, 0, 0, api_name="/reconstruct")
    rows = {r[0]: r for r in table["data"]}
    assert set(rows) == {"varnet-mini-r4", "zerofilled"}
    assert rows["varnet-mini-r4"][1] > rows["zerofilled"][1] > 0.5  # SSIM: the learned model beats zero-filling
    assert Path(figure).stat().st_size > 10_000
    assert "mrizoo reconstruct varnet-mini-r4 brain_t1_8ch_r4.h5 varnet-mini-r4.h5" in commands
    names = sorted(Path(f).name for f in files)
    assert names == ["varnet-mini-r4.h5", "varnet-mini-r4.nii.gz", "zerofilled.h5", "zerofilled.nii.gz"]
    nii = next(f for f in files if f.endswith("varnet-mini-r4.nii.gz"))
    assert nib.load(nii).shape == (180, 230, 1)
    assert "Reconstructed" in status

    bad = tmp_path / "notes.txt"
    bad.write_text("not MRI data")
    figure, table, commands, files, status = client.predict(
        [client_mod.handle_file(str(bad))], ["zerofilled"], "equispaced_fraction", 4, 8, 0, 0, api_name="/reconstruct")
    assert figure is None and "unsupported file type" in status and "notes.txt" in status
    urllib.request.urlopen(url, timeout=5)  # the server is still up


@pytest.mark.slow  # starts a server (gradio's import alone takes seconds)
def test_page_in_a_headless_browser(served, tmp_path: Path) -> None:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("SKIPPED LOUDLY: no browser: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="SKIPPED LOUDLY: selenium is absent")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, work = served
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1400,1800", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
        boxes = {e.find_element(By.XPATH, "..").text.strip(): e
                 for e in driver.find_elements(By.CSS_SELECTOR, "#models input[type=checkbox]")}
        assert {"varnet-mini-r4", "rcgan-mini-r4", "zerofilled", "cgsense", "l1wavelet"} <= set(boxes), list(boxes)
        assert [k for k, e in boxes.items() if e.is_selected()] == ["varnet-mini-r4", "zerofilled"]
        for name in ("zerofilled", "rcgan-mini-r4"):  # two models: the E2E-VarNet and the rcGAN posterior sampler
            boxes[name].find_element(By.XPATH, "..").click()
        assert sorted(k for k, e in boxes.items() if e.is_selected()) == ["rcgan-mini-r4", "varnet-mini-r4"]
        started = time.perf_counter()
        driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(demo_scan_path()))
        wait.until(lambda d: "brain_t1_8ch_r4" in d.find_element(By.ID, "upload").text)
        driver.find_element(By.ID, "run").click()
        WebDriverWait(driver, 180).until(lambda d: "Reconstructed" in d.find_element(By.ID, "status").text
                                         or "Error" in d.find_element(By.ID, "status").text)
        seconds = time.perf_counter() - started
        status = driver.find_element(By.ID, "status").text
        assert "Reconstructed brain_t1_8ch_r4.h5 with 2 method(s)" in status, status
        table = driver.find_element(By.ID, "metrics").text
        assert "varnet-mini-r4" in table and "rcgan-mini-r4" in table and "SSIM" in table, table
        cells = table.splitlines()
        for name in ("varnet-mini-r4", "rcgan-mini-r4"):
            assert 0.3 < float(cells[cells.index(name) + 1]) < 1, table  # its SSIM
        img = WebDriverWait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "#figure img"))
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", img))
        assert driver.execute_script("return arguments[0].naturalWidth", img) > 500
        assert "mrizoo reconstruct varnet-mini-r4" in driver.find_element(By.ID, "commands").text
        assert "rcgan-mini-r4.nii" in driver.find_element(By.ID, "downloads").text
        shot = tmp_path / "mrizoo-app.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000
        print(f"\nscreenshot: {shot}\nupload to result: {seconds:.1f} s")
    finally:
        driver.quit()
