"""Time to the demo: the omitted-digit classroom demo end to end, on real MNIST.

Run: ``KDVIZ_DATA_DIR=/path/to/data python bench/demo.py [--threads 1] [--variants shipped,fast]``

The demo is ``kdviz.scenarios``' "omitted-digit" scenario (Hinton et al. 2015, §3): every 3 is
removed from the transfer set; a distilled and a scratch student (same seed) are trained and the
distilled one still recognises 3s, fully after a bias correction. It runs through the
scenario's public ``run_scenario`` with the teacher handed in, timed two ways:
- teacher included: ``kdviz.presets.train_fast_teacher`` (CNN 16-32-64) + the scenario;
- default teacher:  ``kdviz.presets.load_default_teacher`` (shipped weights) + the scenario.
Variants: "shipped" = the scenario preset as it ships; "fast" = the same preset with overrides
(1 epoch per student, see FAST_OVERRIDES) to show what the time targets cost in demo quality.
Both variants run in one process, one after the other, so they see the same machine.
Targets: teacher included ≤ 30 s, default teacher ≤ 15 s (wall time after imports).
"""
from __future__ import annotations

import argparse
import os
import time

from _util import machine_line, mnist_or_exit, setup_threads, verdict

from kdviz.presets import load_default_teacher, train_fast_teacher
from kdviz.scenarios import preset, run_scenario, with_overrides

FAST_OVERRIDES = {"epochs": 1.0, "scratch_epochs": 1.0}


def scenario_config(variant: str):
    cfg = preset("omitted-digit")
    return cfg if variant == "shipped" else with_overrides(cfg, FAST_OVERRIDES)


def run_demo(bundle, variant: str, teacher_included: bool) -> dict:
    """One end-to-end demo: obtain the teacher, then the scenario (both students, results)."""
    cfg = scenario_config(variant)
    t0, cpu0 = time.perf_counter(), time.process_time()
    if teacher_included:
        teacher, _, meta = train_fast_teacher(bundle, seed=0, device="cpu")
        info = {"source": "trained (FAST_TEACHER)"}
    else:
        teacher, _, meta = load_default_teacher()
        info = {"source": "shipped default"}
    t_teacher = time.perf_counter() - t0
    result = run_scenario(cfg, bundle, teacher=teacher, teacher_info=info, device="cpu")
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    distilled, scratch = result["summary"]["distilled"], result["summary"]["scratch"]
    return {"variant": variant, "teacher_included": teacher_included, "wall": wall, "cpu": cpu, "teacher_s": t_teacher,
            "teacher_acc": result["teacher"]["accuracy"], "distilled_acc": distilled["accuracy"]["mean"],
            "digit_acc": distilled["digit_acc"]["mean"], "digit_after": distilled["digit_acc_after"]["mean"],
            "scratch_digit": scratch["digit_acc"]["mean"], "student": cfg.student.model.label(),
            "epochs": cfg.student.epochs, "load": os.getloadavg()[0]}


def print_row(r: dict) -> None:
    how = "teacher trained" if r["teacher_included"] else "default teacher"
    print(f"{r['variant']:<8} {how:<16} {r['wall']:>7.1f} {r['cpu']:>7.1f} {r['teacher_s']:>8.1f}  "
          f"{100 * r['teacher_acc']:>6.2f}% {100 * r['distilled_acc']:>6.2f}% {100 * r['digit_acc']:>6.1f}% "
          f"{100 * r['digit_after']:>6.1f}% {100 * r['scratch_digit']:>6.1f}%  {r['load']:>4.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1: the 2 cores are shared)")
    ap.add_argument("--variants", default="shipped,fast", help="comma list of shipped, fast")
    args = ap.parse_args()
    setup_threads(args.threads)
    bundle = mnist_or_exit()
    print(machine_line(args.threads))
    print("omitted digit 3; columns: wall s, CPU s, teacher s (train or load), teacher acc, distilled acc, distilled acc on 3s "
          "(before / after bias correction), scratch acc on 3s, load avg")
    rows = []
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        cfg = scenario_config(variant)
        print(f"-- {variant}: student {cfg.student.model.label()}, {cfg.student.epochs:g} epoch(s) each for distilled and scratch, "
              f"batch {cfg.student.batch_size}, T={cfg.T:g}")
        for included in (True, False):
            rows.append(run_demo(bundle, variant, included))
            print_row(rows[-1])
    print()
    for r in rows:
        target = 30.0 if r["teacher_included"] else 15.0
        how = "teacher included" if r["teacher_included"] else "default teacher"
        print(verdict(f"{r['variant']} demo, {how}, wall", r["wall"], target, " s", higher_is_better=False)
              + f"   (CPU {r['cpu']:.1f} s)")


if __name__ == "__main__":
    main()
