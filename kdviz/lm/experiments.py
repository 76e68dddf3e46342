"""Student methods over seeds, with mean ± std and the 2·SE within-noise verdict (``kdviz.experiments.stats``).

``run_seeds`` is a generator of job events (status lines, then one result) so the page can run it
as a job and the CLI can print its table; ``bpc_table`` turns the result into a pandas DataFrame.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterator

import pandas as pd

from kdviz.experiments.stats import compare, mean_std
from kdviz.lm.corpus import NAMES_VOCAB
from kdviz.lm.model import LMCheckpoint
from kdviz.lm.runs import SEQKD_N, real_names, student_run, teacher_for
from kdviz.lm.train import LMTrainConfig, evaluate_bpc

BASELINE = "scratch"


def run_seeds(ckpt: LMCheckpoint, methods: tuple[str, ...], seeds: list[int], cfg: LMTrainConfig,
              train_n: int | None, seqkd_n: int = SEQKD_N) -> Iterator[dict]:
    """Train each method once per seed to the end; yield status events, then ``{"type": "result", "bpc": ...}``."""
    if not seeds:
        raise ValueError("seeds: need at least one seed")
    words, val = real_names(train_n)
    teacher = teacher_for(ckpt, NAMES_VOCAB, align=False)
    bpc: dict[str, list[float]] = {m: [] for m in methods}
    t0 = time.perf_counter()
    for seed in seeds:
        for method in methods:
            yield {"type": "status", "text": f"seed {seed}: training {method} ({time.perf_counter() - t0:.0f} s so far)"}
            model, run = student_run(method, teacher, ckpt, words, val, replace(cfg, seed=seed), seqkd_n=seqkd_n)
            for rec in run:
                pass  # run to the end; only the final validation bpc is kept
            bpc[method].append(evaluate_bpc(model, val))
            yield {"type": "record", "run": method, "step": len(bpc[method]), "seed": seed, "val_bpc": bpc[method][-1]}
    yield {"type": "result", "bpc": bpc, "teacher_bpc": evaluate_bpc(ckpt.model, val), "seeds": list(seeds),
           "train_n": len(words), "steps": cfg.steps, "train_s": time.perf_counter() - t0}


def bpc_table(result: dict) -> pd.DataFrame:
    """One row per model: validation bits per character (mean ± std over seeds) and the gain over scratch."""
    rows = [{"model": "teacher", "val bpc": f"{result['teacher_bpc']:.3f}", "n": 1, "vs scratch": ""}]
    base = result["bpc"].get(BASELINE)
    for method, values in result["bpc"].items():
        summary = mean_std(values)
        versus = ""
        if base and method != BASELINE:
            c = compare(values, base)
            versus = c.format(digits=3) + ("" if c.within_noise else (" — better" if c.diff < 0 else " — worse"))
        rows.append({"model": method, "val bpc": summary.format(digits=3), "n": summary.n, "vs scratch": versus})
    return pd.DataFrame(rows).set_index("model")
