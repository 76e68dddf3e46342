"""The GPU checks of #12 in one run: a CNN teacher, the classroom demo (in process and through the
app's job runtime) and Hinton's MNIST preset to its end, on CUDA.

Run: ``KDVIZ_DATA_DIR=/path/to/data python bench/gpu.py [--parts teacher,demo,jobs,hinton] [--hinton-seeds 1]``

- *teacher*: ``bench/teacher.py``'s lean CNN preset on the GPU, 3 seeds (target: every seed ≥ 99.0 %, ≤ 3 s);
- *demo*: ``bench/demo.py``'s classroom demo in this process, teacher trained and shipped (target ≤ 5 s);
- *jobs*: the same demo as the Home page starts it (``scenario_spec`` through the app's executor: a worker
  forked from the fork server, data loaded there, CUDA initialised there), from submit to result, 3 runs,
  with the worker's own ``timings_s`` beside the wall time;
- *hinton*: ``python -m kdviz scenario hinton`` on the GPU (teacher 1200-1200 with dropout and jitter, 60
  epochs; students 800-800, 60 epochs), test errors beside the paper's (67 / 146 / 74).

Needs a CUDA GPU (exits with a message otherwise). Figures go to stdout; ``--json`` keeps them.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from _util import machine_line, mnist_or_exit, setup_threads, verdict
from demo import run_demo
from teacher import one_seed

from kdviz.experiments.recipes import teacher_preset
from kdviz.experiments.results import report_lines
from kdviz.experiments.scenario_specs import CLASSROOM_DEMO, scenario_spec
from kdviz.experiments.scenarios import preset, run_scenario, with_overrides

PARTS = ("teacher", "demo", "jobs", "hinton")
TEACHER_TARGET_S, DEMO_TARGET_S = 3.0, 5.0


def teacher_part(bundle, seeds: int, device: str) -> dict:
    rows = [one_seed(bundle, teacher_preset("lean"), seed, device) for seed in range(seeds)]
    for r in rows:
        print(f"  seed {r['seed']}: train {r['wall']:.2f} s, test {100 * r['acc']:.2f}%, bf16 autocast {r['amp']}", flush=True)
    walls, accs = [r["wall"] for r in rows], [r["acc"] for r in rows]
    print(verdict("lean CNN teacher, lowest accuracy over seeds", 100 * min(accs), 99.0, " %"))
    print(verdict("lean CNN teacher, slowest seed's training time", max(walls), TEACHER_TARGET_S, " s", higher_is_better=False))
    return {"rows": rows}


def demo_part(bundle, repeats: int, device: str) -> dict:
    rows = [run_demo(bundle, True, "classroom", device)] + [run_demo(bundle, False, "classroom", device) for _ in range(repeats)]
    for r in rows:
        print(f"  teacher {r['source']:<8} wall {r['wall']:.2f} s (teacher {r['teacher_s']:.2f} s); distilled {100 * r['distilled_acc']:.2f}%, "
              f"on the omitted digit {100 * r['digit_acc']:.1f}% → {100 * r['digit_after']:.1f}% after the bias; scratch on it "
              f"{100 * r['scratch_digit']:.1f}%", flush=True)
    shipped = statistics.median(r["wall"] for r in rows[1:])
    print(verdict(f"classroom demo in process, shipped teacher, median of {repeats}", shipped, DEMO_TARGET_S, " s", higher_is_better=False))
    return {"rows": rows}


def jobs_part(runs: int, device: str) -> dict:
    """The Home page's job, submitted to the app's executor as the page does (``home.start``)."""
    from kdviz.runtime.executors import make_executor
    from kdviz.runtime.manager import jobs_root

    t0 = time.perf_counter()
    executor = make_executor()
    print(f"  executor made in {time.perf_counter() - t0:.1f} s; its fork server imports torch in the background, so run 1 "
          "waits for what is left of that (in the app it starts with the server, long before a click)", flush=True)
    rows = []
    for i in range(runs):
        spec = scenario_spec("omitted-digit", {**CLASSROOM_DEMO, "omit": 3, "seeds": 1}, "auto", device, None, jobs_root())
        t0 = time.perf_counter()
        handle = executor.submit(spec, owner="bench", name="home_demo")
        while handle.active:
            handle.poll()
            time.sleep(0.02)
        handle.poll()
        wall = time.perf_counter() - t0
        if not handle.result:
            print(f"  run {i + 1}: no result ({handle.error})", flush=True)
            continue
        parts = handle.result.get("timings_s", {})
        rows.append({"wall": wall, **parts})
        print(f"  run {i + 1}: submit → result {wall:.2f} s; worker: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()), flush=True)
    executor.stop_all()
    if rows:
        print(verdict(f"classroom demo through the job runtime, median of {len(rows)}", statistics.median(r["wall"] for r in rows),
                      DEMO_TARGET_S, " s", higher_is_better=False))
    return {"rows": rows}


def hinton_part(bundle, seeds: int, epochs: int | None, device: str) -> dict:
    overrides = {"seeds": seeds} if epochs is None else {"seeds": seeds, "epochs": epochs, "teacher_epochs": epochs}
    cfg = with_overrides(preset("hinton"), overrides)
    t0 = last = time.perf_counter()

    def show(event: dict) -> None:  # status lines, and a live test accuracy at most every 15 s
        nonlocal last
        now = time.perf_counter()
        if event["type"] == "status":
            print(f"  [{now - t0:6.1f} s] {event['text']}", flush=True)
        elif event["type"] == "record" and event.get("test_acc") is not None and now - last > 15:
            last = now
            print(f"  [{now - t0:6.1f} s] {event['run']}: epoch {event['epoch']:.0f}, live test {100 * event['test_acc']:.2f}%", flush=True)

    with tempfile.TemporaryDirectory() as run_dir:
        result = run_scenario(cfg, bundle, on_event=show, device=device, run_dir=run_dir, keep_logits=False)
    print(f"  wall {time.perf_counter() - t0:.1f} s")
    print("\n".join(report_lines(result)))
    return {"wall_s": time.perf_counter() - t0, "summary": result["summary"], "teacher": result["teacher"],
            "paper_errors": result.get("paper_errors"), "timings_s": result.get("timings_s")}


def run_part(part: str, bundle, args) -> dict:
    if part == "teacher":
        return teacher_part(bundle, args.teacher_seeds, args.device)
    if part == "demo":
        return demo_part(bundle, args.demo_repeats, args.device)
    if part == "jobs":
        return jobs_part(args.demo_repeats, args.device)
    return hinton_part(bundle, args.hinton_seeds, args.hinton_epochs, args.device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    ap.add_argument("--teacher-seeds", type=int, default=3)
    ap.add_argument("--demo-repeats", type=int, default=3)
    ap.add_argument("--hinton-seeds", type=int, default=1)
    ap.add_argument("--hinton-epochs", type=int, default=None, help="teacher and student epochs (default: the preset's 60)")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to try this script out on a small scale")
    ap.add_argument("--threads", type=int, default=4, help="intra-op CPU threads (the GPU does the arithmetic)")
    ap.add_argument("--json", default="", help="write every part's figures here")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py needs a CUDA GPU; none is visible to torch here")
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := sorted(set(parts) - set(PARTS)):
        raise SystemExit(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    setup_threads(args.threads)
    print(machine_line(args.threads) + (f"; GPU {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}" if args.device == "cuda" else "; no GPU"))
    bundle = mnist_or_exit()
    out = {}
    for part in parts:
        print(f"\n== {part}", flush=True)
        t0 = time.perf_counter()
        try:
            out[part] = run_part(part, bundle, args)
        except Exception as err:  # one broken part must not cost the others' figures (device time is scarce)
            print(f"  {part} failed: {type(err).__name__}: {err}", flush=True)
            out[part] = {"error": f"{type(err).__name__}: {err}"}
        print(f"  ({part}: {time.perf_counter() - t0:.1f} s)", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
