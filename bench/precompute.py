"""Compute sweeps ahead for hosted mode, where live sweeps are switched off.

    KDVIZ_DATA_DIR=... python bench/precompute.py [--values 1 2 4 8] [--seeds 3] [--threads 1]

Writes ``kdviz/assets/precomputed/sweep-T-few-labels.json`` (loaded by
``kdviz.experiments.precomputed``): the sweep result (per-seed points and mean ± std rows) plus
its provenance — the command, seeds, date, kdviz git commit, device, data and elapsed time.
Refuses to write synthetic-data results (the app shows them as real MNIST numbers).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from kdviz.data import load_bundle  # noqa: E402
from kdviz.experiments import precomputed, sweeps  # noqa: E402


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "kdviz"], cwd=ROOT, capture_output=True, text=True).stdout
        return out.stdout.strip() + ("+uncommitted" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--values", nargs="+", type=float, default=[1, 2, 4, 8])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(precomputed.path_of(precomputed.EXERCISE_FILES["accuracy-vs-temperature"])))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    bundle = load_bundle("auto")
    if bundle.source == "synthetic":
        raise SystemExit("MNIST is not available (set KDVIZ_DATA_DIR): refusing to ship synthetic-data results")
    cfg = sweeps.SweepConfig("T", tuple(args.values), seeds=tuple(range(args.seeds)))
    result = sweeps.run_sweep(cfg, bundle, on_event=lambda e: e.get("type") == "status" and print(e["text"], flush=True),
                              device=args.device, cache_dir=str(ROOT / "runs" / "teachers"))
    values = " ".join(f"{v:g}" for v in args.values)
    prov = {"command": f"python bench/precompute.py --values {values} --seeds {args.seeds} --threads {args.threads} --device {args.device}",
            "equivalent_cli": f"python -m kdviz sweep T --values {values} --seeds {args.seeds}",
            "seeds": list(cfg.seeds), "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_commit(), "device": result["device"], "data": f"{bundle.name} ({bundle.source})",
            "torch": torch.__version__, "elapsed_s": round(result["elapsed_s"], 1)}
    data = precomputed.check({"provenance": prov, "result": result}, "new")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    print("\n".join(sweeps.format_rows(result)))
    print(f"wrote {args.out} ({Path(args.out).stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
