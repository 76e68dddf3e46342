"""Schedules of a scalar over training: constant, linear, cosine (for T, alpha, progressive KD)."""
from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine")


def check_schedule(kind: str, what: str = "schedule") -> str:
    if kind not in SCHEDULES:
        raise ValueError(f"{what} must be one of {SCHEDULES}, got {kind!r}")
    return kind


def check_schedule_end(name: str, kind: str, end: float | None) -> None:
    """A linear or cosine schedule of ``name`` (T or alpha) needs its end value."""
    check_schedule(kind, f"{name}_schedule")
    if kind != "constant" and end is None:
        raise ValueError(f"{name}_schedule={kind!r} goes from {name} to {name}_end over training: give {name}_end")


def schedule_value(kind: str, start: float, end: float | None, progress: float) -> float:
    """Value at ``progress`` ∈ [0, 1]: constant → start; linear and cosine go from start to end."""
    check_schedule(kind)
    if kind == "constant" or end is None:
        return float(start)
    p = min(max(float(progress), 0.0), 1.0)
    if kind == "linear":
        return start + (end - start) * p
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * p))


def schedule_curve(kind: str, start: float, end: float | None, n: int = 51) -> tuple[list[float], list[float]]:
    """``(progress, values)`` at ``n`` evenly spaced points of training, for previews."""
    progress = [i / (n - 1) for i in range(n)]
    return progress, [schedule_value(kind, start, end, p) for p in progress]
