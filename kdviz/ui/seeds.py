"""The Distill page's verdict over seeds: each finished run is kept for the session under its settings
(everything but the seed), so running the same settings with more seeds turns "one seed: noise
unknown" into mean ± std and the 2·SE verdict of :mod:`kdviz.experiments.stats`.
"""
from __future__ import annotations

import json

import streamlit as st

from kdviz.experiments.stats import compare, format_values

LOG_KEY = "distill_seed_results"  # session state: settings key → {seed: (distilled acc, scratch acc)}


def settings_key(spec: dict) -> str:
    """What defines the experiment, without its seed and where its files go."""
    same = {k: v for k, v in spec.items() if k not in ("out_dir", "ui")}
    same["train"] = {k: v for k, v in dict(spec.get("train") or {}).items() if k not in ("seed", "log_every")}
    return json.dumps(same, sort_keys=True, default=str)


def record(spec: dict, result: dict) -> dict[int, tuple[float, float]]:
    """Keep this run's test accuracies under its settings (a redraw of the same run changes nothing)."""
    runs = st.session_state.setdefault(LOG_KEY, {}).setdefault(settings_key(spec), {})
    acc = result["test_acc"]
    runs[int((spec.get("train") or {}).get("seed", 0))] = (float(acc["distilled"]), float(acc["scratch"]))
    return runs


def next_seed(runs: dict[int, tuple[float, float]]) -> int:
    return max(runs, default=-1) + 1


def verdict_text(runs: dict[int, tuple[float, float]]) -> str:
    """Distilled vs scratch over the seeds run so far (at least 2), in percentage points."""
    seeds = sorted(runs)
    dist, scratch = [runs[s][0] for s in seeds], [runs[s][1] for s in seeds]
    c = compare(dist, scratch)
    verdict = "within noise" if c.within_noise else "beyond noise"
    return (f"Over **{len(seeds)} seeds** of these settings (seeds {', '.join(map(str, seeds))}): distilled "
            f"{format_values(dist, 100, 2, ' %')} vs scratch {format_values(scratch, 100, 2, ' %')}; "
            f"distilled − scratch {100 * c.diff:+.2f} points (2·SE {200 * c.stderr:.2f}) — **{verdict}**.")
