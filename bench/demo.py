"""Time to the demo: the omitted-digit classroom demo end to end, as the Home page runs it, on real MNIST.

Run: ``KDVIZ_DATA_DIR=/path/to/data python bench/demo.py [--threads 1] [--variants shipped,fp32]``

The demo is ``kdviz.experiments.scenario_specs.classroom_demo()``: the "omitted-digit" scenario with Home's smaller student
(``--recipe paper``: the preset's paper-sized student) (Hinton et al. 2015, §3): every 3 is
removed from the transfer set; a distilled and a scratch student (same seed) are trained, and the
distilled one should still recognise 3s, nearly all after a bias correction. Each row runs the
scenario through its public ``run_scenario``, timed from "no teacher" to the result event:

- *teacher trained*: the scenario's own MLP 1200-1200 teacher recipe is trained first (what a
  server without the shipped weights does once, then caches);
- *shipped teacher*: the teacher is ``kdviz/assets/demo_teacher.pt``, found the way the Home page
  finds it (``obtain_teacher``).

Variants, one after the other in one process (same machine state, same imports):
- shipped: the recipes as they ship (bf16 autocast where the CPU runs it natively, see
  ``kdviz.devices.bf16_is_fast``; float32 elsewhere);
- fp32:    what-if — the same with autocast off everywhere (what a CPU without AVX512-BF16 gets).
Targets: teacher included ≤ 30 s, shipped teacher ≤ 15 s (wall time after imports).
"""
from __future__ import annotations

import argparse
import os
import time
from contextlib import contextmanager
from dataclasses import replace

import torch

from _util import machine_line, mnist_or_exit, setup_threads, verdict

import kdviz.experiments.recipes as rc
import kdviz.experiments.scenarios as sc
from kdviz.experiments.scenario_specs import classroom_demo
from kdviz.experiments.results import live_test_set
from kdviz.devices import bf16_is_fast


@contextmanager
def amp_off(enabled: bool):
    """What-if: every scenario recipe with ``amp=False`` (restored afterwards)."""
    if not enabled:
        yield
        return
    saved = sc.PRESETS["omitted-digit"], rc.DEMO_MLP_TEACHER
    cfg = saved[0]
    sc.PRESETS["omitted-digit"] = replace(cfg, student=replace(cfg.student, amp=False), teacher=replace(cfg.teacher, amp=False))
    rc.DEMO_MLP_TEACHER = replace(saved[1], amp=False)
    try:
        yield
    finally:
        sc.PRESETS["omitted-digit"], rc.DEMO_MLP_TEACHER = saved


def demo_config(recipe: str) -> sc.ScenarioConfig:
    """The Home page's classroom demo (``CLASSROOM_DEMO``: student 784-300-10, 1 epoch), or the paper-sized preset."""
    return classroom_demo() if recipe == "classroom" else sc.preset("omitted-digit")


def run_demo(bundle, train_teacher: bool, recipe: str, device: str = "cpu") -> dict:
    """One end-to-end demo on ``device``: obtain the teacher (train the recipe, or the shipped file), then the scenario."""
    cfg = demo_config(recipe)
    t0, cpu0 = time.perf_counter(), time.process_time()
    if train_teacher:  # what obtain_teacher does when no shipped or cached teacher fits
        teacher = _result(rc.train_network(cfg.teacher, bundle.train, 0, device, "teacher", test=live_test_set(bundle.test)))
        info = {"source": "trained", "path": "", "label": cfg.teacher.model.label()}
    else:
        teacher, info = _result(rc.obtain_teacher(cfg.teacher, bundle, device, allow_default=cfg.default_teacher))
    _sync(device)
    t_teacher = time.perf_counter() - t0
    result = sc.run_scenario(cfg, bundle, teacher=teacher, teacher_info=info, device=device)
    distilled, scratch = result["summary"]["distilled"], result["summary"]["scratch"]
    return {"source": info["source"], "wall": time.perf_counter() - t0, "cpu": time.process_time() - cpu0,
            "teacher_s": t_teacher, "teacher_acc": result["teacher"]["accuracy"], "distilled_acc": distilled["accuracy"]["mean"],
            "digit_acc": distilled["digit_acc"]["mean"], "digit_after": distilled["digit_acc_after"]["mean"],
            "scratch_digit": scratch["digit_acc"]["mean"], "load": os.getloadavg()[0], "included": train_teacher}


def _sync(device: str) -> None:
    """Wait for the GPU, so a phase's time includes its queued kernels."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _result(gen):
    """The return value of a generator that yields events (obtain_teacher)."""
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def print_row(name: str, r: dict) -> None:
    print(f"{name:<8} {r['source']:<21} {r['wall']:>7.1f} {r['cpu']:>7.1f} {r['teacher_s']:>8.1f}  {100 * r['teacher_acc']:>6.2f}% "
          f"{100 * r['distilled_acc']:>6.2f}% {100 * r['digit_acc']:>6.1f}% {100 * r['digit_after']:>6.1f}% "
          f"{100 * r['scratch_digit']:>6.1f}%  {r['load']:>4.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1: one training slot per core)")
    ap.add_argument("--variants", default="shipped,fp32", help="comma list of shipped, fp32")
    ap.add_argument("--recipe", default="classroom", choices=("classroom", "paper"),
                    help="classroom: what Home runs (student 784-300-10, 1 epoch); paper: the preset's 800-800, 3 epochs")
    args = ap.parse_args()
    setup_threads(args.threads)
    bundle = mnist_or_exit()
    cfg = demo_config(args.recipe)
    print(machine_line(args.threads) + f"; bf16 native here: {bf16_is_fast('cpu')}")
    print(f"omitted digit {cfg.omit}; student {cfg.student.model.label()}, {cfg.student.epochs:g} epochs each for distilled and scratch, "
          f"batch {cfg.student.batch_size}, T={cfg.T:g}, alpha={cfg.alpha:g}")
    print("columns: variant, teacher, wall s, CPU s, teacher s (train or load), teacher acc, distilled acc, distilled acc on the "
          "omitted digit (before / after bias correction), scratch acc on it, load avg")
    rows = []
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        with amp_off(name == "fp32"):
            for train_teacher in (True, False):
                rows.append((name, run_demo(bundle, train_teacher, args.recipe)))
                print_row(*rows[-1])
    print()
    for name, r in rows:
        target = 30.0 if r["included"] else 15.0
        how = "teacher included" if r["included"] else "shipped teacher"
        if name == "shipped":
            print(verdict(f"{name} demo, {how}, wall", r["wall"], target, " s", higher_is_better=False) + f"   (CPU {r['cpu']:.1f} s)")
        else:  # a what-if for CPUs without native bf16: reported, not judged
            print(f"info  {name} what-if, {how}, wall: {r['wall']:.2f} s (the shipped-target would be ≤ {target:g} s)")


if __name__ == "__main__":
    main()
