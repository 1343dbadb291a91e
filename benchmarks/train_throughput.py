"""Training throughput (slices/s) of an E2E-VarNet on this CPU, data pipeline included, and its
scaling from one to two processes.

Synthetic fastMRI-convention volumes are written to disk once (``make_test_volume``); each
measurement then runs the trainer's own steps: ``build_datasets`` (SliceDataset reading the .h5
files, RSS targets), the sharded volume batches, the data loader, a fresh mask per slice, the
supervised SSIM task step (forward, backward, clipping, Adam) under ``accelerate``. After
``--warmup`` untimed steps, ``--steps`` steps are timed between barriers.

The same worker runs as one process and as two (``python -m accelerate.commands.launch
--multi_gpu --num_processes 2 --num_cpu_threads_per_process 1``, gloo on the CPU), each process
with ``--threads`` intra-op threads. Reported: slices/s of each, and the scaling efficiency
(2-process throughput) / (2 x 1-process throughput); 1.0 is perfect scaling (it also needs two
free cores per two processes).

    python benchmarks/train_throughput.py                                # 8 cascades, chans 12, 15 x 320 x 320
    python benchmarks/train_throughput.py --size 128 --coils 8 --steps 4  # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

RECIPE = """
training:
  model: varnet-pool-r4
  model_overrides: {{num_cascades: {cascades}, chans: {chans}}}
  data:
    train: {{folders: ["{folder}"]}}
    val: {{folders: ["{folder}"]}}
    target: rss
    slices_per_batch: {batch}
  masks: {{type: equispaced_fraction, accelerations: [4], center_fractions: [0.08], fresh_per_batch: true}}
  loss: {{name: ssim}}
  optimizer: {{name: adam, lr: 1.0e-3}}
  schedule: {{name: constant}}
  grad_clip: 1.0
  steps: 100000
  seed: 0
"""


def make_data(folder: Path, *, volumes: int, slices: int, size: int, coils: int) -> None:
    """fastMRI-convention volumes (k-space [slices, coils, H, W] complex64 + RSS target) on disk."""
    from mrizoo.data.synthetic import make_test_volume

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(volumes):
        make_test_volume(folder / f"vol_{i:02d}.h5", num_slices=slices, shape=(size, size), num_coils=coils,
                         seed=i, snr_db=30.0)


def worker(recipe: Path, result: Path, warmup: int, steps: int, threads: int) -> None:
    """Run ``warmup`` + ``steps`` trainer steps; rank 0 writes the timing of the last ``steps``."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from mrizoo.train.data import ShardedVolumeBatches, build_datasets, derive_seed, draw_masks, make_loader
    from mrizoo.train.loop import build_model
    from mrizoo.train.recipe import load_recipe
    from mrizoo.train.task_base import to_device as _to_device
    from mrizoo.train.tasks import make_task, needs_maps, task_family

    torch.set_num_threads(threads)
    spec, info = load_recipe(recipe)
    accelerator = Accelerator(cpu=True)
    world, rank = accelerator.num_processes, accelerator.process_index
    set_seed(spec.seed)
    model = build_model(spec, info.path)
    data = build_datasets(spec.data, spec.masks, cache_dir=recipe.parent / "cache",
                          with_maps=needs_maps(task_family(model)))
    sampler = ShardedVolumeBatches(data.train, spec.data.slices_per_batch, seed=spec.seed, num_replicas=world,
                                   rank=rank)
    task = make_task(model, spec, accelerator, total_steps=spec.steps, steps_per_epoch=len(sampler))
    for m in task.prepared:
        m.train()

    done, slices, start, epoch = 0, 0, 0.0, 0
    while done < warmup + steps:
        sampler.set_position(epoch, 0)
        loader = make_loader(data.train, sampler, spec.data.num_workers, seed=derive_seed(spec.seed, epoch, rank))
        for b, batch in enumerate(loader):
            if done == warmup:
                accelerator.wait_for_everyone()
                start, slices = time.perf_counter(), 0
            batch = _to_device(batch, accelerator.device)
            shape = (int(batch.kspace.shape[-2]), int(batch.kspace.shape[-1]))
            key = (spec.seed, epoch, b, rank)
            mask = draw_masks(spec.masks, shape, len(batch), derive_seed("mask", *key), batch.fname,
                              batch.slice_index.tolist())
            gen = torch.Generator().manual_seed(derive_seed("step", *key))
            with accelerator.accumulate(*task.prepared):
                task.train_step(batch, mask, epoch=epoch, generator=gen)
            task.after_optimizer_step()
            done += 1
            slices += len(batch)
            if done == warmup + steps:
                break
        epoch += 1
    accelerator.wait_for_everyone()
    elapsed = time.perf_counter() - start
    total = accelerator.reduce(torch.tensor([float(slices)]), reduction="sum")
    if accelerator.is_main_process:
        result.write_text(json.dumps({"processes": world, "threads": threads, "steps": steps,
                                      "slices": float(total), "seconds": elapsed,
                                      "slices_per_s": float(total) / elapsed}))
    accelerator.wait_for_everyone()
    accelerator.end_training()


def _measure(recipe: Path, processes: int, args: argparse.Namespace) -> dict:
    result = recipe.parent / f"result_{processes}.json"
    result.unlink(missing_ok=True)
    script = [str(Path(__file__).resolve()), "--worker", str(recipe), "--result", str(result),
              "--warmup", str(args.warmup), "--steps", str(args.steps), "--threads", str(args.threads)]
    if processes == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
               str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", str(args.threads), "--main_process_port", "0", *script]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(args.threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not result.is_file():
        sys.exit(f"{processes}-process run failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return json.loads(result.read_text())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cascades", type=int, default=8)
    p.add_argument("--chans", type=int, default=12)
    p.add_argument("--size", type=int, default=320, help="k-space H = W")
    p.add_argument("--coils", type=int, default=15)
    p.add_argument("--volumes", type=int, default=4)
    p.add_argument("--slices", type=int, default=4, help="slices per volume")
    p.add_argument("--batch", type=int, default=1, help="slices per batch (one volume)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=6, help="timed steps per process")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--worker", metavar="RECIPE", help=argparse.SUPPRESS)
    p.add_argument("--result", metavar="FILE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(Path(args.worker), Path(args.result), args.warmup, args.steps, args.threads)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            os._exit(0)  # torch may abort in interpreter shutdown after a distributed run
        return

    with tempfile.TemporaryDirectory(prefix="mrizoo-train-bench-") as tmp:
        folder = Path(tmp) / "volumes"
        t0 = time.perf_counter()
        make_data(folder, volumes=args.volumes, slices=args.slices, size=args.size, coils=args.coils)
        recipe = Path(tmp) / "bench.yaml"
        recipe.write_text(RECIPE.format(cascades=args.cascades, chans=args.chans, folder=folder, batch=args.batch))
        print(f"VarNet {args.cascades} cascades, chans {args.chans}; {args.volumes} volumes x {args.slices} slices, "
              f"{args.coils} coils, {args.size}x{args.size} (written in {time.perf_counter() - t0:.1f} s); "
              f"{args.batch} slice(s)/batch; {args.warmup} warm-up + {args.steps} timed steps per process; "
              f"{args.threads} thread(s)/process; {os.cpu_count()} CPU cores")
        one = _measure(recipe, 1, args)
        print(f"1 process : {one['slices_per_s']:.3f} slices/s ({one['slices']:.0f} slices in {one['seconds']:.1f} s)")
        two = _measure(recipe, 2, args)
        print(f"2 processes: {two['slices_per_s']:.3f} slices/s ({two['slices']:.0f} slices in {two['seconds']:.1f} s)")
        print(f"scaling efficiency (2-process / (2 x 1-process)): {two['slices_per_s'] / (2 * one['slices_per_s']):.2f}")


if __name__ == "__main__":
    main()
