"""Bounded per-run records of a job, as the app keeps them (no Streamlit; protocol: ``kdviz/runtime/protocol.py``).

Records per run are downsampled to at most ``cap`` points (when full, every other point is
dropped and only every 2nd, 4th, ... new record is kept), so memory stays bounded however
long a run is; the latest record is always kept. Test evaluations are a separate series.
"""
from __future__ import annotations

DEFAULT_CAP = 1500  # points kept per run and series


class Series:
    """A list that keeps at most ``cap`` items by halving its resolution when full."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        if cap < 2:
            raise ValueError(f"cap must be >= 2, got {cap}")
        self.cap, self.stride, self.seen = cap, 1, 0
        self.items: list[dict] = []

    def add(self, item: dict) -> None:
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return  # between kept points at the current resolution
        self.items.append(item)
        if len(self.items) > self.cap:
            # kept indices stay multiples of the (doubled) stride: spacing remains uniform
            self.items = self.items[::2]
            self.stride *= 2


class RunLog:
    """Records of one run ("teacher", "distilled", "scratch"): all training points and test evaluations."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.train, self.evals = Series(cap), Series(cap)
        self.last: dict | None = None

    def add(self, rec: dict) -> None:
        self.train.add(rec)
        if rec.get("test_acc") is not None:
            self.evals.add(rec)
        self.last = rec

    def records(self) -> list[dict]:
        """Downsampled training records, always ending with the latest one."""
        items = self.train.items
        return items + [self.last] if self.last is not None and (not items or items[-1] is not self.last) else list(items)

    def eval_records(self) -> list[dict]:
        return list(self.evals.items)
