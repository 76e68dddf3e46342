"""Sweeps: one distillation setting varied over a grid, every point over several seeds.

A sweep starts from a scenario preset (default: Few labels, where distillation makes a
measurable difference within seconds) and varies one thing:

- ``T``            temperature of the soft targets
- ``alpha``        weight of the distillation term (``alpha·KD + (1 − alpha)·CE``)
- ``width``        student hidden width (an MLP ``w-w``); distilled *and* scratch at each width
- ``generations``  born-again networks (Furlanello et al. 2018): generation 1 is taught by the
                   teacher, generation k by generation k − 1 (same student architecture)
- ``methods``      "logit" (soft targets), "feature" (FitNets hint + CE) and "logit+feature"

Each point reports mean ± std over seeds (``kdviz.experiments.stats``), the gain over the scratch student and
whether it is within noise, and whether the point is within noise of the best point.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterator

from torch import nn

from kdviz import data as kdata
from kdviz.devices import resolve_device
from kdviz.evaluation import expected_calibration_error, eval_from_logits, predict_logits
from kdviz.methods.objective import DistillConfig, Term
from kdviz.experiments.recipes import obtain_teacher, train_network
from kdviz.experiments.results import live_test_set, summarise_values
from kdviz.experiments.scenarios import ScenarioConfig, build_transfer, check_seeds, drain, preset, with_overrides
from kdviz.experiments.stats import compare
from kdviz.runtime.executors import executor_kind, map_points

SWEEP_PARAMS = ("T", "alpha", "width", "generations", "methods")
SWEEP_SCENARIOS = ("few-labels", "omitted-digit", "unlabelled")
METHOD_VARIANTS = ("logit", "feature", "logit+feature")
FEATURE_TERM = Term("fitnet", 1.0)  # FitNets hint on the last hidden layer (a learned regressor pairs the widths)
MAX_POINTS = 12
LOG_EVERY = 50


@dataclass(frozen=True)
class SweepConfig:
    """What to vary (``param`` over ``values``), over which seeds, from which scenario."""

    param: str
    values: tuple
    seeds: tuple[int, ...] = (0, 1, 2)
    scenario: str = "few-labels"
    overrides: tuple[tuple[str, object], ...] = ()  # flat scenario overrides (see scenarios.OVERRIDES)

    def __post_init__(self) -> None:
        if self.param not in SWEEP_PARAMS:
            raise ValueError(f"sweep parameter must be one of {SWEEP_PARAMS}, got {self.param!r}")
        if self.scenario not in SWEEP_SCENARIOS:
            raise ValueError(f"a sweep runs on one of the scenarios {SWEEP_SCENARIOS}, got {self.scenario!r}")
        object.__setattr__(self, "values", check_values(self.param, self.values))
        object.__setattr__(self, "seeds", check_seeds(self.seeds))
        object.__setattr__(self, "overrides", tuple(sorted(dict(self.overrides).items())))
        self.base()  # validates the overrides now, not halfway through the sweep

    def base(self) -> ScenarioConfig:
        return with_overrides(preset(self.scenario), dict(self.overrides))


def check_values(param: str, values) -> tuple:
    """The grid of one parameter, validated: a ValueError names the bad value."""
    values = tuple(values)
    if not 1 <= len(values) <= MAX_POINTS:
        raise ValueError(f"a sweep needs 1 to {MAX_POINTS} values, got {len(values)}")
    if param == "methods":
        bad = [v for v in values if v not in METHOD_VARIANTS]
        if bad:
            raise ValueError(f"method variants must be among {METHOD_VARIANTS}, got {bad}")
        return values
    if param in ("width", "generations"):
        ints = tuple(int(v) for v in values)
        if any(v != float(w) for v, w in zip(ints, values)) or min(ints) < 1:
            raise ValueError(f"{param} values must be positive integers, got {values}")
        if param == "generations" and ints != tuple(range(1, len(ints) + 1)):
            raise ValueError(f"generations must be 1, 2, ..., G (each teaches the next), got {ints}")
        return ints
    floats = tuple(float(v) for v in values)
    for v in floats:
        DistillConfig(T=v) if param == "T" else DistillConfig(alpha=v)  # ValueError names the value
    return floats


def value_label(param: str, value) -> str:
    if param == "generations":
        return f"gen {value}"
    if param == "width":
        return f"{value}-{value}"
    return f"{param}={value:g}" if isinstance(value, float) else str(value)


EXERCISES: dict[str, tuple[str, SweepConfig]] = {
    "accuracy-vs-temperature": ("Plot accuracy vs temperature", SweepConfig("T", (1, 2, 4, 8, 16, 32))),
    "feature-vs-logit": ("Feature + logit vs each alone", SweepConfig("methods", METHOD_VARIANTS)),
    "born-again": ("Three born-again generations", SweepConfig("generations", (1, 2, 3))),
}
DEFAULT_GRIDS = {"T": (1, 2, 4, 8, 16, 32), "alpha": (0.0, 0.25, 0.5, 0.75, 0.9, 1.0), "width": (25, 50, 100, 200, 400, 800),
                 "generations": (1, 2, 3), "methods": METHOD_VARIANTS}


def exercise(name: str) -> SweepConfig:
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; choose one of {sorted(EXERCISES)}")
    return EXERCISES[name][1]


# ----------------------------------------------------------------------------- one point
@dataclass(frozen=True)
class PointPlan:
    """One training run of a sweep: its row value (None = the shared scratch baseline) and settings."""

    value: object
    role: str  # "distilled" | "scratch"
    distill: DistillConfig | None
    scenario: ScenarioConfig


def plan_seed(cfg: SweepConfig) -> list[PointPlan]:
    """The runs of one seed, in order (generations must run in order: each teaches the next)."""
    base = cfg.base()
    if cfg.param == "width":
        plans = []
        for w in cfg.values:
            sc = with_overrides(base, {"student_hidden": (w, w)})
            plans += [PointPlan(w, "scratch", None, sc), PointPlan(w, "distilled", sc.distill, sc)]
        return plans
    plans = [PointPlan(None, "scratch", None, base)]
    for v in cfg.values:
        plans.append(PointPlan(v, "distilled", _distill_for(cfg.param, v, base), base))
    return plans


def _distill_for(param: str, value, base: ScenarioConfig) -> DistillConfig:
    if param == "T":
        return DistillConfig(T=value, alpha=base.alpha)
    if param == "alpha":
        return DistillConfig(T=base.T, alpha=value)
    if param == "methods":
        if value == "feature":  # CE + hint: the soft-target term gets weight 0
            return DistillConfig(T=base.T, alpha=0.0, terms=(FEATURE_TERM,))
        terms = (FEATURE_TERM,) if value == "logit+feature" else ()
        return DistillConfig(T=base.T, alpha=base.alpha, terms=terms)
    return base.distill  # generations: plain soft targets from the previous generation


def point_metrics(model: nn.Module, test: kdata.TensorData, omit: int | None) -> dict:
    logits, labels = predict_logits(model, test).cpu(), test.y.cpu()
    ev = eval_from_logits(logits, labels)
    out = {"accuracy": ev.accuracy, "errors": ev.errors, "ece": expected_calibration_error(logits, labels)}
    if omit is not None:
        out["digit_acc"] = ev.per_class[omit]
    return out


# ----------------------------------------------------------------------------- the sweep
def sweep_events(cfg: SweepConfig, bundle: kdata.DataBundle, *, device=None, teacher: nn.Module | None = None,
                 teacher_ckpt: str = "", cache_dir: str = "") -> Iterator[dict]:
    """Run every point × seed; yields status/record events and one result event with rows of mean ± std."""
    device = resolve_device(device)
    bundle = bundle.to(device)
    base = cfg.base()
    t0 = time.perf_counter()
    info = {"source": "given"}
    if teacher is None:
        yield {"type": "status", "text": "preparing the teacher"}
        teacher, info = yield from obtain_teacher(base.teacher, bundle, device, ckpt=teacher_ckpt, cache_dir=cache_dir,
                                                  allow_default=base.default_teacher)
    teacher = teacher.to(device).eval()
    live_test = live_test_set(bundle.test)
    omit = base.omit if base.kind == "omitted-digit" else None
    job = SeedJob(cfg, bundle, device, teacher, live_test, omit)
    if executor_kind() == "ray" and len(cfg.seeds) > 1:  # the seeds are independent: one Ray task each
        yield {"type": "status", "text": f"running {len(cfg.seeds)} seeds in parallel on Ray", "progress": 0.0}
        points = [p for seed_points in map_points(job.points, cfg.seeds) for p in seed_points]
    else:
        points = []
        for i, seed in enumerate(cfg.seeds):
            points += yield from job.events(seed, i)
    yield {"type": "status", "text": "done", "progress": 1.0}
    yield {"type": "result", "kind": "sweep", "param": cfg.param, "scenario": cfg.scenario, "values": list(cfg.values),
           "seeds": list(cfg.seeds), "config": asdict(cfg), "points": points, "rows": aggregate(points, cfg.param, list(cfg.values)),
           "rows_ece": aggregate(points, cfg.param, list(cfg.values), "ece", lower_is_better=True),
           "rows_digit": aggregate(points, cfg.param, list(cfg.values), "digit_acc") if omit is not None else None,
           "teacher": info, "data": {"source": bundle.source, "name": bundle.name}, "device": str(device),
           "elapsed_s": time.perf_counter() - t0}


@dataclass(frozen=True)
class SeedJob:
    """Every point of one seed (generations in order); picklable, so a seed can run as a Ray task."""

    cfg: SweepConfig
    bundle: kdata.DataBundle
    device: object
    teacher: nn.Module
    live_test: kdata.TensorData
    omit: int | None

    def events(self, seed: int, index: int = 0):
        """Yield the status/record events of seed ``seed`` (the ``index``-th); returns its points."""
        plans, base, points = plan_seed(self.cfg), self.cfg.base(), []
        total = len(plans) * len(self.cfg.seeds)
        sets = build_transfer(base, self.bundle.train, seed)
        previous = self.teacher  # born-again: each generation teaches the next
        for j, plan in enumerate(plans):
            label = "scratch" if plan.value is None else value_label(self.cfg.param, plan.value) + (" scratch" if plan.role == "scratch" else "")
            yield {"type": "status", "text": f"run {index * len(plans) + j + 1}/{total}: {label}, seed {seed}",
                   "progress": (index * len(plans) + j) / total}
            teacher = previous if self.cfg.param == "generations" else self.teacher
            model = yield from _run_point(plan, sets, seed, self.device, teacher, self.live_test, f"{label} s{seed}")
            if self.cfg.param == "generations" and plan.role == "distilled":
                previous = model.eval()
            points.append({"value": plan.value, "role": plan.role, "seed": seed, **point_metrics(model, self.bundle.test, self.omit)})
        return points

    def points(self, seed: int) -> list[dict]:
        """The points of seed ``seed``, without the live events (a fanned-out task)."""
        gen = self.events(seed)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            return stop.value


def _run_point(plan: PointPlan, sets, seed: int, device, teacher, test, run: str):
    sc = plan.scenario
    distilled = plan.role == "distilled"
    recipe = sc.student if distilled else sc.scratch_recipe
    return (yield from train_network(recipe, sets.distilled if distilled else sets.scratch, seed, device, run,
                                     teacher=teacher if distilled else None, distill=plan.distill, test=test,
                                     log_every=LOG_EVERY))


# ----------------------------------------------------------------------------- aggregation
def aggregate(points: list[dict], param: str, values: list, metric: str = "accuracy", lower_is_better: bool = False) -> list[dict]:
    """Rows of mean ± std per value, in the order of ``values``.

    Scratch results are matched by value (width sweeps) or else taken from the shared baseline
    (``value`` None). Each row: ``distilled`` / ``scratch`` summaries, ``gain`` (distilled − scratch,
    2·SE rule) and ``vs_best`` (within noise of the best row's distilled mean).
    """
    rows = []
    for v in values:
        dist = [p[metric] for p in points if p["role"] == "distilled" and p["value"] == v]
        scr = [p[metric] for p in points if p["role"] == "scratch" and p["value"] == v] or \
              [p[metric] for p in points if p["role"] == "scratch" and p["value"] is None]
        if not dist:
            raise ValueError(f"no distilled result for {param}={v!r}")
        rows.append({"value": v, "label": value_label(param, v), "distilled": summarise_values(dist), "scratch": summarise_values(scr) if scr else None,
                     "gain": _gain(dist, scr), "values": dist})
    best = (min if lower_is_better else max)(rows, key=lambda r: r["distilled"]["mean"])
    for r in rows:
        r["best"] = r is best
        r["vs_best"] = r is best or compare(r["values"], best["values"]).within_noise
    return rows


def _gain(dist: list[float], scr: list[float]) -> dict | None:
    if not scr or any(not math.isfinite(v) for v in dist + scr):
        return None
    c = compare(dist, scr)
    return {"diff": c.diff, "stderr": c.stderr, "within_noise": c.within_noise, "text": c.format(scale=100)}


def format_rows(result: dict, metric_rows: str = "rows") -> list[str]:
    """A plain-text table of a sweep result (accuracy; then the calibration error when the result has it)."""
    def pct(d):
        return "n/a" if d is None or not math.isfinite(d["mean"]) else f"{100 * d['mean']:.2f} ± {100 * d['std']:.2f}"

    ece = metric_rows == "rows_ece"
    what = "expected calibration error (15 bins; lower is better)" if ece else "test accuracy"
    lines = [f"sweep of {result['param']} on {result['scenario']} ({result['data']['name']}, {len(result['seeds'])} seeds): {what}",
             f"  {'point':<16} {'distilled %':<16} {'scratch %':<16} distilled − scratch"]
    for r in result[metric_rows]:
        mark = "  ← best" if r["best"] else ("  (≈ best, within noise)" if r["vs_best"] else "")
        gain = r["gain"]["text"] if r["gain"] else "n/a"
        lines.append(f"  {r['label']:<16} {pct(r['distilled']):<16} {pct(r['scratch']):<16} {gain}{mark}")
    if metric_rows == "rows" and result.get("rows_ece"):
        lines += format_rows(result, "rows_ece")
    return lines


def run_sweep(cfg: SweepConfig, bundle: kdata.DataBundle, on_event: Callable[[dict], None] | None = None, **kwargs) -> dict:
    """Drain :func:`sweep_events`; returns the result event."""
    return drain(sweep_events(cfg, bundle, **kwargs), on_event)


# ----------------------------------------------------------------------------- app job and CLI
def config_from_spec(spec: dict) -> SweepConfig:
    """``{"exercise": name}`` or ``{"sweep": {"param", "values", "seeds", "scenario", "overrides"}}``."""
    raw = dict(spec.get("sweep") or {})
    if isinstance(raw.get("seeds"), int):
        raw["seeds"] = tuple(range(raw["seeds"]))
    if isinstance(raw.get("overrides"), dict):
        raw["overrides"] = tuple(raw["overrides"].items())
    if spec.get("exercise"):
        extra = {k: v for k, v in raw.items() if k in ("seeds", "scenario", "overrides")}
        return replace(exercise(spec["exercise"]), **extra)
    unknown = sorted(set(raw) - {"param", "values", "seeds", "scenario", "overrides"})
    if unknown or "param" not in raw:
        raise ValueError(f"a sweep spec needs 'param' (one of {SWEEP_PARAMS}) and allows values, seeds, scenario, overrides; got {sorted(raw)}")
    raw.setdefault("values", DEFAULT_GRIDS.get(raw["param"], ()))
    return SweepConfig(**raw)


def sweep_job(spec: dict) -> Iterator[dict]:
    """App job: spec keys ``exercise`` or ``sweep``, plus ``data``, ``device``, ``teacher_ckpt``, ``cache_dir``."""
    from kdviz.data import load_bundle

    try:
        cfg = config_from_spec(spec)
        yield {"type": "status", "text": "loading data"}
        bundle = load_bundle(spec.get("data", "auto"))
        yield from sweep_events(cfg, bundle, device=spec.get("device"), teacher_ckpt=spec.get("teacher_ckpt") or "",
                                cache_dir=spec.get("cache_dir") or "")
    except ValueError as err:
        yield {"type": "error", "text": str(err), "kind": type(err).__name__}
