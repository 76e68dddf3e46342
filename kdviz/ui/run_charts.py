"""Figures for the Saved runs page: one metric of several saved runs, overlaid.

A thin adapter over ``kdviz.figures.accuracy_curves`` (which draws one line per named record list,
skips missing values and shows accuracies as percent); nested metrics such as ``losses.kd`` are
flattened by ``kdviz.runs.tables.curve_series`` first.
"""
from __future__ import annotations

import plotly.graph_objects as go

from kdviz.figures import accuracy_curves
from kdviz.runs.store import Run
from kdviz.runs.tables import curve_series


def overlay_figure(runs: list[Run], metric: str, x: str = "step", log_y: bool = False) -> go.Figure:
    """One line per run and sub-run (``"KD T=4 · distilled"``, ``"KD T=4 · scratch"``) of ``metric``."""
    named = {}
    for run in runs:
        for label, xs, ys in curve_series(run, metric, x):
            named[label] = [{x: a, metric: b} for a, b in zip(xs, ys)]
    fig = accuracy_curves(named, metric=metric, x=x, height=420)
    if log_y and not metric.endswith("acc"):
        fig.update_yaxes(type="log")
    fig.update_layout(showlegend=True, legend={"orientation": "h", "yanchor": "bottom", "y": 1.02}, hovermode="x unified")
    return fig
