"""Plotly figures for "Run both" (plain record dicts in, no Streamlit): the buggy and the fixed run side by side.

Records are the job's events (``kdviz.interview.runner``): ``step``, ``total``, ``grad_norm``,
``test_acc``, ``finite``. A non-finite step is marked with a red ✕ at the top of the chart, since
a NaN cannot be drawn as a point.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

from kdviz.figures.style import RUN_COLORS

COLORS = {"buggy": RUN_COLORS["scratch"], "fixed": RUN_COLORS["distilled"]}  # the one palette (kdviz.figures.style)
METRICS = {"total": ("Loss", "loss (as the step computes it)"), "grad_norm": ("Gradient norm", "‖∇ student weights‖"),
           "test_acc": ("Test accuracy", "accuracy on a fixed test sample")}


def _trace(name: str, points: list[tuple[int, float]], **extra) -> dict:
    return {"type": "scatter", "mode": "lines+markers", "name": name, "x": [p[0] for p in points],
            "y": [p[1] for p in points], "line": {"color": COLORS.get(name, "#444444"), "width": 3}, **extra}


def run_both_figure(runs: dict[str, list[dict]], metric: str) -> go.Figure:
    """One metric of each run over the steps; ``metric`` is one of ``METRICS``. A log y-axis for
    the loss and the gradient norm, whose scales differ by 10–100× between the runs of some bugs."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    title, y_title = METRICS[metric]
    traces, bad = [], []
    for name, records in runs.items():
        points = [(r["step"], r[metric]) for r in records
                  if r.get(metric) is not None and math.isfinite(r[metric]) and r.get("finite", True)]
        traces.append(_trace(name, points))
        bad += [(name, r["step"]) for r in records if not r.get("finite", True)]
    for name, step in bad:
        traces.append({"type": "scatter", "mode": "markers+text", "name": f"{name}: NaN/inf", "x": [step], "y": [1.0],
                       "yaxis": "y2", "text": [f"NaN/inf at step {step}"], "textposition": "bottom center",
                       "marker": {"symbol": "x", "size": 16, "color": "#CC0000"}, "showlegend": False})
    log = metric != "test_acc"
    layout = {"title": {"text": title}, "height": 300, "margin": {"l": 60, "r": 20, "t": 50, "b": 45},
              "template": "plotly_white", "font": {"size": 14},
              "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1.0, "xanchor": "right"},
              "xaxis": {"title": {"text": "step"}}, "yaxis": {"title": {"text": y_title}, "type": "log" if log else "linear"},
              "yaxis2": {"overlaying": "y", "range": [0, 1.05], "visible": False}, "uirevision": "keep"}
    return go.Figure({"data": traces, "layout": layout})
