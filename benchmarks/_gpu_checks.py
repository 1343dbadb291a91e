"""Part 5 of the GPU suite: the CUDA-dependent tests, ``mrizoo reconstruct`` on the device (default
device selection, the out-of-memory fallback under a real memory cap) and ESPIRiT device vs CPU.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _gpu_measure import ROOT, Part, knee_slice, time_once

def cuda_test_ids() -> list[str]:
    """Tests that need CUDA: marked ``cuda`` or skipped by a condition on CUDA (whole files by ``pytestmark``)."""
    import ast

    ids = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_marks = [n.value for n in tree.body if isinstance(n, ast.Assign)
                        and any(getattr(t, "id", None) == "pytestmark" for t in n.targets)]
        marks = [m for v in module_marks for m in (v.elts if isinstance(v, (ast.List, ast.Tuple)) else [v])]
        if any(_needs_cuda(m) for m in marks):
            ids.append(f"tests/{path.name}")
            continue
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.name.startswith("test"):
                continue
            if any(_needs_cuda(d) for d in node.decorator_list):
                ids.append(f"tests/{path.name}::{node.name}")
    return ids


def _needs_cuda(decorator: Any) -> bool:
    """``@pytest.mark.cuda``, or ``@pytest.mark.skipif(<no CUDA>)``: ``not ...cuda...`` or ``...cuda... == 0``."""
    import ast

    text = ast.unparse(decorator)
    if text.endswith("mark.cuda"):
        return True
    if not (isinstance(decorator, ast.Call) and text.split("(")[0].endswith("skipif") and decorator.args):
        return False
    cond = ast.unparse(decorator.args[0]).replace(" ", "")
    return "cuda" in cond and (cond.startswith("not") or cond.endswith(("==0", "<1")))


def _run_pytest(p: Part, out: Path) -> None:
    import xml.etree.ElementTree as ET

    ids = cuda_test_ids()
    if not ids:
        raise RuntimeError("no CUDA-dependent tests found under tests/")
    junit = out / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", *ids, "-q", "-rA", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(5.0, p.left() * 0.6))
    tests: dict[str, str] = {}
    if junit.is_file():
        for case in ET.parse(junit).getroot().iter("testcase"):
            fail = next((e for e in (case.find("failure"), case.find("error")) if e is not None), None)
            skip = case.find("skipped")
            outcome = ("failed: " + (fail.get("message") or "")[:300]) if fail is not None else \
                ("skipped: " + (skip.get("message") or "")[:300]) if skip is not None else "passed"
            tests[f"{case.get('classname')}::{case.get('name')}"] = outcome
    counts = {o: sum(v.split(":")[0] == o for v in tests.values()) for o in ("passed", "failed", "skipped")}
    p.doc["data"]["cuda_tests"] = {"command": " ".join(cmd[1:]), "returncode": proc.returncode, "tests": tests,
                                   **counts, "output_tail": (proc.stdout + proc.stderr)[-3000:]}
    p.row("CUDA-dependent tests passed", counts["passed"], "tests", float(len(tests)), "tests run",
          "all pass", counts["passed"] == len(tests) > 0 if p.dev.type == "cuda" else None,
          note=f"{counts['failed']} failed, {counts['skipped']} skipped (pytest exit {proc.returncode})"
               + ("" if p.dev.type == "cuda" else "; without CUDA they skip"))


_CLI = ("import json, sys, torch\n"
        "cap = float(sys.argv[1])\n"
        "if cap > 0: torch.cuda.set_per_process_memory_fraction(cap)\n"
        "from mrizoo.cli import main\n"
        "rc = main(sys.argv[2:])\n"
        "used = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0\n"
        "print('GPU_SUITE ' + json.dumps({'rc': rc, 'cuda_max_allocated': used}))\n"
        "sys.exit(rc)\n")


def _cli(p: Part, args: list[str], cap: float = 0.0) -> dict[str, Any]:
    """``mrizoo`` in a fresh process (optionally under a CUDA memory cap, a fraction of the GPU)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CLI, str(cap), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=max(5.0, p.left()))
    report = next((json.loads(line[10:]) for line in proc.stdout.splitlines() if line.startswith("GPU_SUITE ")), {})
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-1500:]
        raise RuntimeError(f"mrizoo {' '.join(args[:2])} exited {proc.returncode}: {tail}")
    return {**report, "seconds": time.perf_counter() - t0, "stderr_tail": proc.stderr[-800:]}


def _reconstruct(p: Part, out: Path) -> None:
    import h5py
    import numpy as np

    from mrizoo.data import FastMRIVolume, write_volume
    from mrizoo.demo import demo_scan_path

    n = p.sizes["recon_slices"]
    with FastMRIVolume(demo_scan_path()) as vol:
        k, lines, target = vol.kspace(0), vol.mask(), vol.target(0)
    src = write_volume(out / "scan.h5", kspace=k[None].repeat(n, 1, 1, 1).numpy(), mask=lines.numpy().astype("uint8"),
                       targets={"reconstruction_rss": target[None].repeat(n, 1, 1).numpy()})
    common = ["reconstruct", "varnet-mini-r4", str(src), "--no-progress", "--overwrite"]
    auto = _cli(p, [*common[:3], str(out / "auto.h5"), *common[3:], "--batch-size", "4"])
    cpu = _cli(p, [*common[:3], str(out / "cpu.h5"), *common[3:], "--batch-size", "4", "--device", "cpu"])
    with h5py.File(out / "auto.h5") as a, h5py.File(out / "cpu.h5") as c:
        ra, rc_ = a["reconstruction"][()], c["reconstruction"][()]
    diff = float(np.abs(ra - rc_).max() / np.abs(rc_).max())
    on_gpu = auto["cuda_max_allocated"] > 0
    p.doc["data"]["reconstruct"] = {"slices": n, "default_device": auto, "cpu": cpu,
                                    "max_rel_diff_default_vs_cpu": diff}
    p.row("mrizoo reconstruct, no --device: volume time", auto["seconds"], "s", cpu["seconds"], "--device cpu",
          note=f"{'ran on the GPU' if on_gpu else 'ran on the CPU'}; max rel diff to CPU output {diff:.1e}")
    p.row("mrizoo reconstruct: default device is the GPU when there is one", float(on_gpu), "bool",
          target="1 on a GPU machine", met=on_gpu if p.dev.type == "cuda" else None)
    if p.dev.type != "cuda":
        p.doc["skipped"].append("reconstruct out-of-memory fallback: needs a CUDA device (memory cap)")
        return
    # a real out-of-memory error: cap this process's GPU memory near what batch 4 needed, ask for 4x that batch
    total = torch.cuda.get_device_properties(p.dev).total_memory
    cap = min(0.9, (1.3 * auto["cuda_max_allocated"] + 64 * 2**20) / total)
    oom = _cli(p, [*common[:3], str(out / "oom.h5"), *common[3:], "--batch-size", str(n)], cap=cap)
    with h5py.File(out / "oom.h5") as f:
        ro, halvings, bs = f["reconstruction"][()], int(f.attrs["oom_batch_halvings"]), int(f.attrs["batch_size"])
    same = float(np.abs(ro - ra).max() / np.abs(ra).max())
    p.doc["data"]["reconstruct_oom"] = {"memory_cap_fraction": cap, "batch_requested": n, "batch_used": bs,
                                        "halvings": halvings, "max_rel_diff_vs_batch4": same, **oom}
    p.row("mrizoo reconstruct under a GPU memory cap: batch halvings after real OOM errors", float(halvings),
          "halvings",
          target=">= 1, output as without the cap", met=halvings >= 1 and same < 1e-4,
          note=f"batch {n} -> {bs}; max rel diff to the uncapped run {same:.1e}")


def _espirit(p: Part) -> None:
    from mrizoo.data import FastMRIVolume
    from mrizoo.demo import demo_scan_path
    from mrizoo.physics.espirit import espirit_maps

    with FastMRIVolume(demo_scan_path()) as vol:
        demo = vol.kspace(0)
    c, h, w = p.sizes["espirit_big"]
    big, _ = knee_slice(c, (h, w), torch.device("cpu"))
    last_cpu_s = 0.0
    for name, k in (("demo scan 8 x 230 x 180", demo), (f"knee-sized {c} x {h} x {w}", big[0])):
        for solver in ("eigh", "power"):
            if p.left() < 3 * last_cpu_s:
                p.doc["skipped"].append(f"ESPIRiT ({solver}) on {name}: time budget spent")
                continue
            t_cpu, m_cpu = time_once(lambda: espirit_maps(k, solver=solver), torch.device("cpu"))
            kd = k.to(p.dev)
            espirit_maps(kd, solver=solver)  # warm-up
            t_dev, m_dev = time_once(lambda: espirit_maps(kd, solver=solver), p.dev)
            m_dev = m_dev.cpu()
            s_cpu, s_dev = m_cpu.abs().sum(0) > 0, m_dev.abs().sum(0) > 0
            keep = s_cpu & s_dev
            coherence = float((m_cpu.conj() * m_dev).sum(0).abs()[keep].min()) if bool(keep.any()) else float("nan")
            mismatch = float((s_cpu ^ s_dev).float().mean())
            last_cpu_s = t_cpu
            p.doc["data"][f"espirit {name} {solver}"] = {"cpu_s": t_cpu, "device_s": t_dev, "min_coherence": coherence,
                                                         "support_mismatch": mismatch}
            p.row(f"ESPIRiT ({solver}) on {name}: time on {p.dev.type}", t_dev * 1e3, "ms", t_cpu * 1e3, "CPU",
                  target="same maps", met=coherence > 0.9999 and mismatch < 1e-3,
                  note=f"min |<cpu, device>| {coherence:.6f}; support mismatch {mismatch:.1e}")
            p.save()


def part_checks(p: Part) -> None:
    out = Path(tempfile.mkdtemp(prefix="mrizoo-gpu-suite-"))
    try:
        p.step("cuda tests (pytest)", lambda: _run_pytest(p, out), need_s=5.0)
        p.step("mrizoo reconstruct", lambda: _reconstruct(p, out), need_s=5.0)
        p.step("espirit device vs cpu", lambda: _espirit(p), need_s=2.0)
    finally:
        shutil.rmtree(out, ignore_errors=True)
