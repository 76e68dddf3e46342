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
    best: dict[str, list[float]] = {m: [] for m in methods}  # the best evaluation: early stopping, fair to an overfitting run
    t0 = time.perf_counter()
    for seed in seeds:
        for method in methods:
            yield {"type": "status", "text": f"seed {seed}: training {method} ({time.perf_counter() - t0:.0f} s so far)"}
            model, run = student_run(method, teacher, ckpt, words, val, replace(cfg, seed=seed), seqkd_n=seqkd_n)
            evals = [rec.val_bpc for rec in run if rec.val_bpc is not None]
            bpc[method].append(evaluate_bpc(model, val))
            best[method].append(min(evals + bpc[method][-1:]))
            yield {"type": "record", "run": method, "step": len(bpc[method]), "seed": seed, "val_bpc": bpc[method][-1]}
    yield {"type": "result", "bpc": bpc, "best_bpc": best, "teacher_bpc": evaluate_bpc(ckpt.model, val), "seeds": list(seeds),
           "train_n": len(words), "steps": cfg.steps, "train_s": time.perf_counter() - t0}


def _versus(values: list[float], base: list[float] | None) -> str:
    if not base or values is base:
        return ""
    c = compare(values, base)
    return c.format(digits=3) + ("" if c.within_noise else (" — better" if c.diff < 0 else " — worse"))


def bpc_table(result: dict) -> pd.DataFrame:
    """One row per model: validation bits per character at the end and at the best evaluation (early
    stopping), mean ± std over seeds, each against scratch with the 2·SE verdict."""
    teacher = f"{result['teacher_bpc']:.3f}"
    rows = [{"model": "teacher", "final val bpc": teacher, "vs scratch": "", "best val bpc": teacher, "best vs scratch": "", "n": 1}]
    best = result.get("best_bpc", result["bpc"])
    for method, values in result["bpc"].items():
        rows.append({"model": method, "final val bpc": mean_std(values).format(digits=3),
                     "vs scratch": _versus(values, result["bpc"].get(BASELINE)),
                     "best val bpc": mean_std(best[method]).format(digits=3),
                     "best vs scratch": _versus(best[method], best.get(BASELINE)), "n": len(values)})
    return pd.DataFrame(rows).set_index("model")
