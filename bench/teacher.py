"""Time to a strong teacher: a CNN teacher preset (default ``lean``, CNN 16-16-48) on real MNIST over 3 seeds.

Run: ``KDVIZ_DATA_DIR=/path/to/data python bench/teacher.py [--preset lean|fast] [--seeds 3] [--threads 2]``

Prints per seed: training wall time (evaluation excluded), the process CPU time of the same
span, and test accuracy on the 10,000 MNIST test images. Beside each seed, interleaved with
it, a fixed 1024² float32 matmul calibration shows how much of the shared CPU this run got
(a busy machine lowers its GFLOP/s and stretches wall time, not CPU time).
Targets (#12): every seed ≥ 99.0 %, training wall time ≤ 10 s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from _util import machine_line, mnist_or_exit, setup_threads, verdict

from kdviz.experiments.recipes import TEACHER_PRESETS, teacher_preset, train_teacher


def calibration_gflops(size: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return reps * 2 * size**3 / (time.perf_counter() - t0) / 1e9


def one_seed(bundle, preset, seed: int, device: str = "cpu") -> dict:
    before = calibration_gflops() if device == "cpu" else float("nan")  # the CPU's share: meaningless for a GPU run
    cpu0 = time.process_time()
    model, _, meta = train_teacher(bundle, preset, seed=seed, device=device)
    cpu_s = time.process_time() - cpu0  # includes the test evaluation (~1 s), unlike train_s
    gflops = (before + calibration_gflops()) / 2 if device == "cpu" else before
    return {"seed": seed, "wall": meta["train_s"], "cpu": cpu_s, "acc": meta["test_acc"], "gflops": gflops,
            "load": os.getloadavg()[0], "amp": meta["amp"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--preset", default="lean", choices=sorted(TEACHER_PRESETS), help="teacher preset (default: lean)")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2: both cores, as one user's teacher run gets)")
    args = ap.parse_args()
    setup_threads(args.threads)
    bundle = mnist_or_exit()
    preset = teacher_preset(args.preset)
    print(machine_line(args.threads))
    print(f"preset {preset.name}: {preset.description}")
    print(f"{'seed':>4}  {'train wall s':>12}  {'CPU s':>6}  {'test acc':>8}  {'matmul GFLOP/s':>14}  {'load':>5}")
    rows = []
    for seed in range(args.seeds):
        r = one_seed(bundle, preset, seed)
        rows.append(r)
        print(f"{seed:>4}  {r['wall']:>12.1f}  {r['cpu']:>6.1f}  {100 * r['acc']:>7.2f}%  {r['gflops']:>14.1f}  {r['load']:>5.1f}", flush=True)
    walls, accs = [r["wall"] for r in rows], [r["acc"] for r in rows]
    print(f"\nmedian train wall {statistics.median(walls):.1f} s (max {max(walls):.1f} s); median CPU {statistics.median(r['cpu'] for r in rows):.1f} s; "
          f"accuracy min {100 * min(accs):.2f}% mean {100 * statistics.mean(accs):.2f}%; bf16 autocast: {rows[0]['amp']}")
    print(verdict("lowest test accuracy over seeds", 100 * min(accs), 99.0, " %"))
    print(verdict("median training wall time", statistics.median(walls), 10.0, " s", higher_is_better=False))
    print(verdict("slowest seed's training wall time", max(walls), 10.0, " s", higher_is_better=False))


if __name__ == "__main__":
    main()
