"""The Distill page's presets, measured as the page runs them: its own job, over seeds.

Run: ``KDVIZ_DATA_DIR=/path/to/data python bench/distill_presets.py [--seeds 3]``

Each preset of ``app_pages/distill.py`` (``PRESETS``) is run through ``distill_job`` — the job the page
starts: a distilled and a scratch student, same initial weights and data order, the scratch one on
labels only — with the shipped CNN teacher, once per seed. Prints distilled vs scratch as mean ± std and
the 2·SE verdict the page gives (``kdviz.ui.seeds.verdict_text`` computes the same from the same numbers):
the figures the page's preset captions quote.
"""
from __future__ import annotations

import argparse
import ast
import tempfile
import time
from pathlib import Path

from _util import machine_line, mnist_or_exit, setup_threads

from kdviz.experiments.stats import compare, format_values
from kdviz.runtime.training_jobs import distill_job

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "kdviz" / "assets" / "default_teacher.pt"


def page_presets() -> dict:
    """``PRESETS`` of app_pages/distill.py, read from its source (the page itself imports Streamlit)."""
    tree = ast.parse((ROOT / "app_pages" / "distill.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PRESETS")
    return ast.literal_eval(node.value)


def run(values: dict, seed: int, cache_dir: str, out: str) -> tuple[float, float]:
    transfer = values["transfer"] + (f":{values['transfer_n']}" if values["transfer"] in ("subset", "labelled") else "")
    spec = {"teacher": str(TEACHER), "student": {"arch": values["arch"], "hidden": [int(h) for h in values["hidden"].split(",")]},
            "train": {"epochs": values["epochs"], "batch_size": 128, "lr": 1e-3, "seed": seed},
            "distill": {"T": values["T"], "alpha": values["alpha"]}, "transfer": transfer, "data": "auto",
            "cache_dir": cache_dir, "out_dir": out}
    events = list(distill_job(spec))
    if events[-1]["type"] != "result":
        raise SystemExit(f"the job failed: {events[-1]}")
    acc = events[-1]["test_acc"]
    return acc["distilled"], acc["scratch"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    setup_threads(args.threads)
    mnist_or_exit()
    print(machine_line(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        for name, (title, values, caption) in page_presets().items():
            t0, dist, scratch = time.perf_counter(), [], []
            for seed in range(args.seeds):
                d, s = run(values, seed, str(Path(tmp) / "cache"), str(Path(tmp) / f"{name}{seed}"))
                dist.append(d)
                scratch.append(s)
                print(f"  {name} seed {seed}: distilled {100 * d:.2f} %, scratch {100 * s:.2f} %", flush=True)
            c = compare(dist, scratch)
            print(f"{name} ({title}): distilled {format_values(dist, 100, 2, ' %')} vs scratch "
                  f"{format_values(scratch, 100, 2, ' %')}; distilled − scratch {100 * c.diff:+.2f} points (2·SE "
                  f"{200 * c.stderr:.2f}) — {'within' if c.within_noise else 'beyond'} noise   [{time.perf_counter() - t0:.0f} s]")
            print(f"  the page's caption says: {caption}")


if __name__ == "__main__":
    main()
