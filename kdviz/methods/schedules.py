"""Schedules of a scalar over training: constant, linear, cosine (for T, alpha, progressive KD)."""
from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine")


def check_schedule(kind: str) -> str:
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
    return kind


def schedule_value(kind: str, start: float, end: float | None, progress: float) -> float:
    """Value at ``progress`` ∈ [0, 1]: constant → start; linear and cosine go from start to end."""
    check_schedule(kind)
    if kind == "constant" or end is None:
        return float(start)
    p = min(max(float(progress), 0.0), 1.0)
    if kind == "linear":
        return start + (end - start) * p
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * p))
