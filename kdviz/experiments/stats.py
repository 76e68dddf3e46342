"""Honest statistics over seeds: mean ± std, a within-noise test, and one formatter.

Every comparison in kdviz (scenarios, sweeps, the bench) goes through these helpers, so the
app never shows a single-seed difference as if it were a result.

Rule for "within noise": the difference of two means is smaller than twice the standard
error of that difference, ``|ma − mb| < 2·sqrt(sa²/na + sb²/nb)`` (std with ddof = 1).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class MeanStd:
    """Summary of repeated measurements; ``std`` is the sample std (ddof = 1), 0 when n == 1."""

    mean: float
    std: float
    n: int

    @property
    def sem(self) -> float:
        """Standard error of the mean, std / sqrt(n)."""
        return self.std / math.sqrt(self.n)

    def format(self, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        return format_mean_std(self.mean * scale, self.std * scale, digits, unit)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "n": self.n}


def _clean(values: Iterable[float], what: str) -> list[float]:
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError(f"{what}: need at least one value, got none")
    bad = [v for v in vals if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{what}: values must be finite numbers, got {bad[:3]}")
    return vals


def mean_std(values: Iterable[float]) -> MeanStd:
    """Mean and sample standard deviation (ddof = 1; 0.0 for a single value)."""
    vals = _clean(values, "mean_std")
    n = len(vals)
    mean = math.fsum(vals) / n
    var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1) if n > 1 else 0.0
    return MeanStd(mean, math.sqrt(var), n)


def diff_stderr(a: MeanStd, b: MeanStd) -> float:
    """Standard error of ``a.mean − b.mean``: sqrt(sa²/na + sb²/nb)."""
    return math.sqrt(a.std**2 / a.n + b.std**2 / b.n)


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b``: the difference of means, its standard error, and the verdict."""

    a: MeanStd
    b: MeanStd
    diff: float  # a.mean − b.mean
    stderr: float  # sqrt(sa²/na + sb²/nb)
    within_noise: bool  # |diff| < 2·stderr (always True when either side has a single run)

    def format(self, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        sign = "+" if self.diff >= 0 else "−"
        if self.a.n < 2 or self.b.n < 2:
            return f"{sign}{abs(self.diff) * scale:.{digits}f}{unit} (one seed: noise unknown, treat as within noise)"
        core = f"{sign}{abs(self.diff) * scale:.{digits}f}{unit} (2·SE {2 * self.stderr * scale:.{digits}f}{unit})"
        return core + (" — within noise" if self.within_noise else "")


def compare(a: Sequence[float] | MeanStd, b: Sequence[float] | MeanStd) -> Comparison:
    """Compare two sets of per-seed results (or their summaries) with the 2·SE rule.

    One seed per side gives no estimate of noise, so such a difference is always reported
    as within noise rather than as a finding; so is a difference of exactly zero.
    """
    sa = a if isinstance(a, MeanStd) else mean_std(a)
    sb = b if isinstance(b, MeanStd) else mean_std(b)
    diff = sa.mean - sb.mean
    se = diff_stderr(sa, sb)
    noisy = sa.n < 2 or sb.n < 2 or abs(diff) < 2.0 * se or diff == 0.0
    return Comparison(sa, sb, diff, se, noisy)


def within_noise(a: Sequence[float] | MeanStd, b: Sequence[float] | MeanStd) -> bool:
    """True when the difference of means is smaller than 2× its standard error (or n < 2)."""
    return compare(a, b).within_noise


def format_mean_std(mean: float, std: float, digits: int = 1, unit: str = "") -> str:
    """``"98.1 ± 0.2"`` (``unit`` is appended to both numbers, e.g. ``"%"``)."""
    if not (math.isfinite(mean) and math.isfinite(std)):
        return "n/a"
    return f"{mean:.{digits}f}{unit} ± {std:.{digits}f}{unit}"


def format_values(values: Iterable[float], scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """Shortcut: mean ± std of raw values, scaled (e.g. ``scale=100`` for accuracy in %)."""
    return mean_std(values).format(scale, digits, unit)
