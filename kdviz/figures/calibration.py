"""Calibration, divergences and schedules: reliability diagrams, per-class divergence terms, T/α over training."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from kdviz.figures.style import AXIS, FONT_SIZE, LEGEND_BELOW, PALETTE, base_layout, colors, figure, floats, line

DIVERGENCE_LABELS = {"forward_kl": "forward KL (KD)", "reverse_kl": "reverse KL", "js": "Jensen–Shannon",
                     "mse_logits": "MSE on logits"}


def reliability_diagram(bins: Mapping[str, Mapping], title: str = "Reliability diagram") -> go.Figure:
    """Accuracy against mean confidence per bin, one line per network (``kdviz.evaluation.reliability``
    dicts); the diagonal is perfect calibration; the legend gives each network's ECE."""
    palette = colors(bins)
    traces = [line([0, 1], [0, 1], "perfect calibration", "#888888", width=2, dash="dash", hoverinfo="skip")]
    for name, rel in bins.items():
        pts = [(c, a, n) for c, a, n in zip(rel["confidence"], rel["accuracy"], rel["count"]) if n and math.isfinite(a)]
        traces.append(line([p[0] for p in pts], [p[1] for p in pts], f"{name} (ECE {100 * rel['ece']:.2f}%)", palette[name],
                           mode="lines+markers", marker={"size": 9}, customdata=[p[2] for p in pts],
                           hovertemplate="confidence %{x:.3f}<br>accuracy %{y:.3f}<br>%{customdata} images"))
    # four long legend entries wrap to two lines: below the axes they cannot cover the title
    return figure(traces, title, "mean confidence in bin (top softmax probability)", "accuracy in bin", height=480,
                  hovermode="closest", xaxis={"range": [0, 1.02]}, yaxis={"range": [0, 1.02]},
                  legend={**LEGEND_BELOW, "y": -0.22}, margin={"l": 70, "r": 20, "t": 60, "b": 130})


def divergence_contributions(parts: Mapping[str, Sequence[float]], title: str = "Per-class contributions") -> go.Figure:
    """One bar group per class, one bar per divergence; each divergence's bars sum to its value."""
    traces = []
    for i, (name, values) in enumerate(parts.items()):
        v = floats(values)
        label = f"{DIVERGENCE_LABELS.get(name, name)} = {sum(v):.4g}"
        traces.append({"type": "bar", "x": list(range(len(v))), "y": v, "name": label, "marker": {"color": PALETTE[i % len(PALETTE)]}})
    return figure(traces, title, "class", "contribution", height=380, barmode="group", hovermode="closest",
                  xaxis={"dtick": 1})


def schedule_preview(progress: Sequence[float], T: Sequence[float], alpha: Sequence[float],
                     title: str = "T and α over training") -> go.Figure:
    """T (left axis) and α (right axis, 0–1) against the fraction of training done."""
    x = floats(progress)
    traces = [line(x, floats(T), "T", PALETTE[0]), {**line(x, floats(alpha), "α", PALETTE[1], dash="dot"), "yaxis": "y2"}]
    layout = base_layout(title, 260)
    layout.update(xaxis={**AXIS, "title": {"text": "fraction of training"}, "tickformat": ".0%"},
                  yaxis={**AXIS, "title": {"text": "T"}, "rangemode": "tozero"},
                  yaxis2={**AXIS, "title": {"text": "α"}, "overlaying": "y", "side": "right", "range": [0, 1.05], "showgrid": False},
                  margin={"l": 60, "r": 60, "t": 50, "b": 50}, hovermode="x unified")
    layout["legend"] = {**layout["legend"], "font": {"size": FONT_SIZE - 2}}
    return go.Figure({"data": traces, "layout": layout})
