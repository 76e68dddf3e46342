"""Time to the demo: the omitted-digit classroom demo end to end, on real MNIST.

Run: ``KDVIZ_DATA_DIR=/path/to/data python bench/demo.py [--threads 1] [--variants shipped,amp,mlp]``

The demo is ``kdviz.scenarios``' "omitted-digit" scenario (Hinton et al. 2015, §3): every 3 is
removed from the transfer set; a distilled and a scratch student (same seed) are trained and the
distilled one should still recognise 3s, fully after a bias correction. It runs through the
scenario's public ``run_scenario`` with the teacher handed in, timed from "no teacher" to the
result event, two ways: teacher included (trained by ``kdviz.presets``) and default teacher
(``load_default_teacher``, the shipped weights).

Variants, run one after the other in one process (same machine state, same imports):
- shipped: the scenario preset exactly as it ships; teacher = FAST_TEACHER (CNN 16-32-64);
- amp:     what-if — the same with bf16 autocast in every ``train`` call (the scenario's Recipe
           has no amp switch yet; this run patches ``Recipe.train_config`` in-process);
- mlp:     what-if — amp, and the teacher is presets.MLP_TEACHER (the scenario's own MLP
           recipe): MLP teachers pass "3-ness" to the MLP student far better than the CNN.
           With ``--mlp-teacher PATH`` its "default teacher" row loads that checkpoint.
Targets: teacher included ≤ 30 s, default teacher ≤ 15 s (wall time after imports).
"""
from __future__ import annotations

import argparse
import os
import time
from contextlib import contextmanager
from dataclasses import replace

from _util import machine_line, mnist_or_exit, setup_threads, verdict

from kdviz.checkpoints import load_checkpoint
from kdviz.presets import FAST_TEACHER, MLP_TEACHER, load_default_teacher, train_teacher
from kdviz.scenarios import Recipe, preset, run_scenario


@contextmanager
def bf16_everywhere(enabled: bool):
    """What-if: every scenario training run with ``TrainConfig(amp=True)``."""
    if not enabled:
        yield
        return
    original = Recipe.train_config

    def with_amp(self, seed, log_every=20, **changes):
        return replace(original(self, seed, log_every, **changes), amp=True)

    Recipe.train_config = with_amp
    try:
        yield
    finally:
        Recipe.train_config = original


def run_demo(bundle, amp: bool, teacher_preset, default_path) -> dict:
    """One end-to-end demo: obtain the teacher (train ``teacher_preset`` or load), then the scenario."""
    cfg = preset("omitted-digit")
    t0, cpu0 = time.perf_counter(), time.process_time()
    if teacher_preset is not None:
        teacher, _, _ = train_teacher(bundle, teacher_preset, seed=0, device="cpu")
    else:
        teacher, _, _ = load_default_teacher() if default_path is None else load_checkpoint(default_path)
    t_teacher = time.perf_counter() - t0
    with bf16_everywhere(amp):
        result = run_scenario(cfg, bundle, teacher=teacher, teacher_info={"source": "bench"}, device="cpu")
    distilled, scratch = result["summary"]["distilled"], result["summary"]["scratch"]
    return {"included": teacher_preset is not None, "wall": time.perf_counter() - t0, "cpu": time.process_time() - cpu0,
            "teacher_s": t_teacher, "teacher_acc": result["teacher"]["accuracy"], "distilled_acc": distilled["accuracy"]["mean"],
            "digit_acc": distilled["digit_acc"]["mean"], "digit_after": distilled["digit_acc_after"]["mean"],
            "scratch_digit": scratch["digit_acc"]["mean"], "load": os.getloadavg()[0]}


def variants(args) -> list[tuple[str, bool, object, object]]:
    """``(name, amp, teacher preset to train, default-teacher path)`` per variant."""
    table = {
        "shipped": (False, FAST_TEACHER, None),
        "amp": (True, FAST_TEACHER, None),
        "mlp": (True, MLP_TEACHER, args.mlp_teacher),
    }
    out = []
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        amp, teacher, default = table[name]
        out.append((name, amp, teacher, default))
    return out


def print_row(name: str, r: dict) -> None:
    how = "teacher trained" if r["included"] else "default teacher"
    print(f"{name:<8} {how:<16} {r['wall']:>7.1f} {r['cpu']:>7.1f} {r['teacher_s']:>8.1f}  {100 * r['teacher_acc']:>6.2f}% "
          f"{100 * r['distilled_acc']:>6.2f}% {100 * r['digit_acc']:>6.1f}% {100 * r['digit_after']:>6.1f}% "
          f"{100 * r['scratch_digit']:>6.1f}%  {r['load']:>4.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1: the 2 cores are shared)")
    ap.add_argument("--variants", default="shipped,amp,mlp", help="comma list of shipped, amp, mlp")
    ap.add_argument("--mlp-teacher", help="checkpoint of an MLP teacher for the mlp variant's default-teacher row")
    args = ap.parse_args()
    setup_threads(args.threads)
    bundle = mnist_or_exit()
    cfg = preset("omitted-digit")
    print(machine_line(args.threads))
    print(f"omitted digit {cfg.omit}; student {cfg.student.model.label()}, {cfg.student.epochs:g} epochs each for distilled and scratch, "
          f"batch {cfg.student.batch_size}, T={cfg.T:g}, alpha={cfg.alpha:g}")
    print("columns: wall s, CPU s, teacher s (train or load), teacher acc, distilled acc, distilled acc on the omitted digit "
          "(before / after bias correction), scratch acc on it, load avg")
    rows = []
    for name, amp, teacher, default in variants(args):
        runs = [(teacher, None)] + ([] if name == "mlp" and default is None else [(None, default)])
        for teacher_preset, path in runs:
            rows.append((name, run_demo(bundle, amp, teacher_preset, path)))
            print_row(*rows[-1])
    print()
    for name, r in rows:
        target = 30.0 if r["included"] else 15.0
        how = "teacher included" if r["included"] else "default teacher"
        print(verdict(f"{name} demo, {how}, wall", r["wall"], target, " s", higher_is_better=False) + f"   (CPU {r['cpu']:.1f} s)")


if __name__ == "__main__":
    main()
