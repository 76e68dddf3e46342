"""Shared helpers for the benchmarks: thread setup, MNIST, interleaved timing, verdict lines.

Machines are shared and noisy, so every benchmark interleaves kdviz and its comparison in one
run: each contender is a generator doing one fixed chunk of work per ``next()``; rounds visit
every contender in turn and the figures are medians over rounds (ratios are medians of the
per-round ratios, so a noisy round hits both sides alike).
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/x.py` from a checkout

from kdviz.data import DataBundle, DataUnavailable, data_root, load_mnist  # noqa: E402


def setup_threads(threads: int) -> None:
    """The same intra-op thread count for every contender (both sides of every ratio)."""
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


def warm_imports() -> float:
    """Import what the first ``torch.optim`` optimizer imports lazily (``torch._dynamo``, seconds
    on a busy machine) so it is not billed to whichever contender trains first; returns seconds."""
    t0 = time.perf_counter()
    import torch._dynamo  # noqa: F401

    return time.perf_counter() - t0


def machine_line(threads: int) -> str:
    warm = warm_imports()
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"{threads} thread(s); load avg {os.getloadavg()[0]:.1f}; one-off torch._dynamo import {warm:.1f} s (before timing)")


def mnist_or_exit() -> DataBundle:
    """Real MNIST (KDVIZ_DATA_DIR or the cache folder), or exit with a message saying where to put it."""
    try:
        return load_mnist(download=False)
    except DataUnavailable as err:
        sys.exit(f"benchmark needs real MNIST: {err} (looked in {data_root()})")


@dataclass
class Contender:
    """One side of a comparison: ``chunks`` yields once per chunk of ``samples_per_chunk`` samples."""

    name: str
    chunks: Iterator
    samples_per_chunk: int
    times: list[float] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [self.samples_per_chunk / t for t in self.times]

    def median_rate(self) -> float:
        return statistics.median(self.rates())


def interleave(contenders: list[Contender], rounds: int, warmup: int = 1, on_round: Callable[[int], None] | None = None,
               alternate: bool = False) -> None:
    """Visit every contender ``warmup + rounds`` times in turn, timing each chunk (warm-up untimed).

    ``alternate``: odd rounds visit the first contender, then the others in reverse order, so over an
    even number of rounds each of the others runs right after the first equally often. For chunks of
    seconds that position matters: a 3-epoch run timed right after the tutorial loop's chunk tends to be
    a few % slower than one timed after another 3-epoch run (bench/throughput.py's end-to-end row on
    2026-11-30: kdviz / bare read 88.4, 93.8 and 96.4 % in three runs in the fixed order tutorial, kdviz,
    bare, and 105.8 % in one run in the order tutorial, bare, kdviz; in one alternating run, the rounds
    with kdviz right after the tutorial read 90.1-103.3 %, those with bare there 95.4-112.0 %).
    """
    for r in range(warmup + rounds):
        order = contenders[:1] + contenders[:0:-1] if alternate and r % 2 else contenders
        for c in order:
            t0 = time.perf_counter()
            next(c.chunks)
            dt = time.perf_counter() - t0
            if r >= warmup:
                c.times.append(dt)
        if on_round is not None:
            on_round(r)


def paired_ratio(a: Contender, b: Contender) -> float:
    """Median over rounds of rate(a) / rate(b), each pair timed within the same round."""
    return statistics.median(ra / rb for ra, rb in zip(a.rates(), b.rates()))


def spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4) if len(values) >= 4 else (min(values), 0, max(values))
    return f"[IQR {q[0]:,.0f}–{q[-1]:,.0f}]"


def verdict(label: str, value: float, target: float, unit: str = "", higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    op = "≥" if higher_is_better else "≤"
    return f"{'PASS' if ok else 'FAIL'}  {label}: {value:.2f}{unit} (target {op} {target:g}{unit})"
