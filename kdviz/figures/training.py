"""Training curves: metrics and loss terms over steps (live pages, saved runs, attention transfer).

Records are job events (``StepRecord.to_dict()`` dicts: ``{"step", "total", "losses": {term:
weighted}, "raw": {term: unweighted}, "train_acc", "test_acc", ...}``). Missing or non-finite
values are skipped, so a diverged step or an evaluation-free record leaves no point.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import plotly.graph_objects as go

from kdviz.figures.style import (
    FONT_SIZE, INK, LEGEND_BELOW, PERCENT_AXIS, RAW_LABELS, RUN_COLORS, TERM_LABELS, colors, figure, finite, floats,
    line, points, ref_line,
)
from kdviz.runtime.protocol import SEED_SEP


def metric_curves(runs: Mapping[str, Sequence[Mapping]], key: str = "total", title: str = "Training loss",
                  y_title: str = "loss", percent: bool = False) -> go.Figure:
    """One line per run of ``key`` (dotted keys reach nested values, e.g. ``"raw.ce"``, the
    cross-entropy with the true labels). ``percent=True`` shows fractions as percent."""
    palette = colors(runs)
    traces = [line(*points(records, key), name, palette[name]) for name, records in runs.items()]
    return figure(traces, title, "step", y_title, yaxis=PERCENT_AXIS if percent else {})


DASHES = ("solid", "dash", "dot", "dashdot", "longdash")


def accuracy_curves(evals: Mapping[str, Sequence[Mapping]], teacher_acc: float | None = None,
                    title: str = "Test accuracy") -> go.Figure:
    """Test accuracy per run (markers at each evaluation); the teacher as a dashed horizontal line.

    Runs named ``"<run> · s<seed>"`` (the catalogue's, one per seed) share their run's colour and
    differ by dash, so gen0 of every seed reads as one colour."""
    groups = {name: name.rsplit(SEED_SEP, 1)[0] for name in evals}
    palette, seeds = colors(dict.fromkeys(groups.values())), {}
    traces = []
    for name, records in evals.items():
        dash = DASHES[seeds.setdefault(groups[name], {}).setdefault(name, len(seeds[groups[name]])) % len(DASHES)]
        traces.append(line(*points(records, "test_acc"), name, palette[groups[name]], dash=dash, mode="lines+markers",
                           marker={"size": 8}))
    extra = {}
    if finite(teacher_acc):
        extra["shapes"] = [ref_line("y", teacher_acc, RUN_COLORS["teacher"])]
        extra["annotations"] = [{"xref": "paper", "x": 1, "yref": "y", "y": teacher_acc, "showarrow": False,
                                 "text": f"teacher {100 * teacher_acc:.2f}%", "xanchor": "right", "yanchor": "top",
                                 "font": {"size": FONT_SIZE}}]
    if len(traces) > 2:  # more entries than fit beside the title on one line: below the axes
        extra.update(legend={**LEGEND_BELOW, "y": -0.3}, margin={"l": 70, "r": 20, "t": 60, "b": 120}, height=420)
    return figure(traces, title, "step", "accuracy", yaxis=PERCENT_AXIS, **extra)


def loss_breakdown(records: Sequence[Mapping], raw: bool = False, title: str | None = None) -> go.Figure:
    """Weighted terms as stacked areas with the total on top (they sum to it), or the raw
    unweighted values as lines (``raw=True``) so curves compare across T and alpha."""
    key = "raw" if raw else "losses"
    traces = []
    terms = _term_names(records, key, skip=("kd",) if raw else ())
    palette = colors(terms)
    for term in terms:
        label = (RAW_LABELS if raw else TERM_LABELS).get(term, term)
        extra = {} if raw else {"stackgroup": "terms"}
        traces.append(line(*points(records, (key, term)), label, palette[term], width=3 if raw else 1, **extra))
    if not raw:
        traces.append(line(*points(records, "total"), "total", INK))
    default = "Raw loss terms (unscaled)" if raw else "Loss breakdown (stacked to the total)"
    # KD, CE, a method's term and the total wrap to several legend rows in a half-width column:
    # above the plot they covered the title (and the term's own name), so the legend goes below
    return figure(traces, title or default, "step", "loss", height=440, legend={**LEGEND_BELOW, "y": -0.3},
                  margin={"l": 70, "r": 20, "t": 60, "b": 150})


def _term_names(records: Sequence[Mapping], key: str, skip: tuple[str, ...] = ()) -> list[str]:
    names: list[str] = []
    for r in records:
        for name in r.get(key) or {}:
            if name not in names and name not in skip:
                names.append(name)
    return names


def series_lines(series: Mapping[str, tuple[Sequence, Sequence]], *, x_title: str = "step", y_title: str = "",
                 log_y: bool = False, percent: bool = False, title: str = "", height: int = 300) -> go.Figure:
    """Named series ``name → (xs, ys)`` as lines with markers; non-finite values leave no point.
    ``percent`` shows fractions as percent; ``log_y`` a log axis (for losses and distances)."""
    traces, palette = [], colors(series)
    for name, (xs, ys) in series.items():
        xs, ys = floats(xs), floats(ys)
        if len(ys) != len(xs):
            raise ValueError(f"series {name!r} has {len(ys)} values for {len(xs)} x values")
        kept = [(a, b) for a, b in zip(xs, ys) if finite(a) and finite(b)]
        traces.append(line([a for a, _ in kept], [b for _, b in kept], name, palette[name], mode="lines+markers"))
    yaxis = {**(PERCENT_AXIS if percent else {}), **({"type": "log", "exponentformat": "power"} if log_y else {})}
    return figure(traces, title, x_title, y_title, height=height, yaxis=yaxis)


def run_overlay(series: Iterable[tuple[str, Sequence, Sequence]], metric: str, x: str = "step",
                log_y: bool = False) -> go.Figure:
    """One metric of several saved runs, overlaid: ``series`` are ``(label, xs, ys)`` per sub-run
    (``kdviz.runs.store.curve_series``). Accuracies (``…acc``) show as percent and never log."""
    percent = metric.endswith("acc")
    return series_lines({label: (xs, ys) for label, xs, ys in series}, x_title=x, y_title=metric,
                        log_y=log_y and not percent, percent=percent, height=420)
