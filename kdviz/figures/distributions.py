"""Distributions and maps: class probabilities, confusion matrices, per-class accuracy, 2-D maps.

Inputs are plain lists or dicts (tensors and numpy arrays are accepted where noted).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kdviz.figures.style import FONT_SIZE, PALETTE, PERCENT_AXIS, array2d, base_layout, colors, figure, floats

LOG_FLOOR = 1e-12  # probabilities below this are drawn at the floor on a log axis (0 has no logarithm)
HIGHLIGHT = PALETTE[3]  # the shaded digit of per_class_bars: a colour no role uses


def probability_bars(dists: Mapping[str, Sequence[float]], *, log: bool = False,
                     class_names: Sequence[str] | None = None, title: str = "", height: int = 340) -> go.Figure:
    """Grouped bars, one group per class and one bar colour per distribution.

    ``dists`` maps a legend name (e.g. ``"T = 1"``) to C probabilities (list, array or tensor).
    ``log=True`` uses a log y axis so tiny probabilities (dark knowledge) become visible; zeros
    are drawn at ``LOG_FLOOR`` (the hover keeps the true value).
    """
    if not dists:
        raise ValueError("probability_bars needs at least one distribution")
    values = {name: floats(p) for name, p in dists.items()}
    sizes = {name: len(v) for name, v in values.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"distributions must have the same number of classes, got {sizes}")
    n = next(iter(sizes.values()))
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for {n} classes")
    traces = [{"type": "bar", "x": names, "y": [max(v, LOG_FLOOR) for v in y] if log else y, "name": label,
               "marker": {"color": PALETTE[i % len(PALETTE)]}, "customdata": y,
               "hovertemplate": "class %{x}: %{customdata:.3g}<extra>" + label + "</extra>"}
              for i, (label, y) in enumerate(values.items())]
    yaxis = ({"type": "log", "exponentformat": "power"} if log else {"range": [0, 1]})
    return figure(traces, title, "class", "probability (log scale)" if log else "probability", height=height,
                  barmode="group", hovermode="closest", xaxis={"type": "category"}, yaxis=yaxis)


def confusion_heatmap(matrix: Sequence[Sequence[int]], title: str = "Confusion matrix") -> go.Figure:
    """Counts ``[true][predicted]`` (row 0 at the top); the diagonal (correct) dominates, so the
    colour is log10(1 + count) while the cells show the counts."""
    counts = array2d(matrix)
    if counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {counts.shape}")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("a confusion matrix holds counts ≥ 0, got a negative or non-finite entry")
    n = counts.shape[0]
    trace = {"type": "heatmap", "z": np.log10(1 + counts).tolist(), "text": counts.astype(int).tolist(),
             "texttemplate": "%{text}", "x": list(range(n)), "y": list(range(n)), "colorscale": "Blues",
             "showscale": False, "hovertemplate": "true %{y}, predicted %{x}: %{text}<extra></extra>"}
    return figure([trace], title, "predicted digit", "true digit", height=400, hovermode="closest",
                  xaxis={"dtick": 1}, yaxis={"dtick": 1, "autorange": "reversed"})


def _cell(value, name: str) -> tuple[float | None, float]:
    """A per-class value → ``(mean, std)``: a number has std 0; a non-finite mean → None (no bar)."""
    mean, std = (value.get("mean"), value.get("std", 0.0)) if isinstance(value, Mapping) else (value, 0.0)
    for v in (mean, std):
        if v is not None and (not isinstance(v, numbers.Real) or isinstance(v, bool)):
            raise ValueError(f"per-class accuracy of {name!r} must be a number or a {{'mean', 'std'}} cell, got {value!r}")
    mean = float(mean) if mean is not None and math.isfinite(mean) else None
    return mean, (float(std) if std is not None and math.isfinite(std) else 0.0)


def per_class_bars(per_class: Mapping[str, Sequence], highlight: int | None = None,
                   title: str = "Test accuracy per digit") -> go.Figure:
    """Per-class accuracy (fractions) of several models as grouped bars, one colour per model.

    A value is a number or a ``{"mean", "std"}`` cell (several seeds; the std becomes an error
    bar). NaN (a digit absent from the test set) leaves no bar. ``highlight`` shades one digit
    (the one the students never saw).
    """
    traces, palette = [], colors(per_class)
    for name, values in per_class.items():
        cells = [_cell(v, name) for v in values]
        stds = [s for _, s in cells]
        traces.append({"type": "bar", "x": list(range(len(cells))), "y": [m for m, _ in cells], "name": name,
                       "marker": {"color": palette[name]},
                       "error_y": {"type": "data", "array": stds, "visible": any(s > 0 for s in stds)}})
    extra = {}
    if highlight is not None:
        extra["shapes"] = [{"type": "rect", "xref": "x", "x0": highlight - 0.5, "x1": highlight + 0.5, "yref": "paper",
                            "y0": 0, "y1": 1, "fillcolor": HIGHLIGHT, "opacity": 0.2, "line": {"width": 0}, "layer": "below"}]
        extra["annotations"] = [{"x": highlight, "y": 1.1, "text": "never seen by the students", "showarrow": False,
                                 "font": {"color": HIGHLIGHT}}]
    top = 1.15 if highlight is not None else 1.02
    return figure(traces, title, "digit", "test accuracy", height=360, barmode="group", hovermode="closest",
                  xaxis={"dtick": 1}, yaxis={**PERCENT_AXIS, "range": [0, top]}, **extra)


# ----------------------------------------------------------------------------- 2-D maps
def _map_trace(name: str, arr: np.ndarray, diverging: bool, top: float) -> go.Heatmap:
    hover = "row %{y}, col %{x}: %{z:.4f}<extra>" + name + "</extra>"
    if diverging:
        bound = max(float(np.abs(arr).max()), 1e-12)
        return go.Heatmap(z=arr.tolist(), colorscale="RdBu_r", zmid=0, zmin=-bound, zmax=bound, showscale=False, hovertemplate=hover)
    return go.Heatmap(z=arr.tolist(), colorscale="Viridis", zmin=0, zmax=top, showscale=False, hovertemplate=hover)


def heatmap_row(maps: Mapping[str, object], *, diverging: Collection[str] = (), shared_scale: bool = False,
                title: str = "", height: int = 300) -> go.Figure:
    """Maps ``[H, W]`` (lists, arrays or tensors) side by side, image orientation (row 0 at the top), square pixels.

    Maps named in ``diverging`` use a red-blue scale centred on 0 (for differences); the others a
    sequential scale from 0. ``shared_scale=True`` gives the sequential maps one common maximum.
    Sizes may differ between maps.
    """
    if not maps:
        raise ValueError("heatmap_row needs at least one map")
    arrays = {name: array2d(m) for name, m in maps.items()}
    seq_max = max((float(a.max()) for n, a in arrays.items() if n not in diverging), default=1.0)
    fig = make_subplots(rows=1, cols=len(arrays), subplot_titles=list(arrays), horizontal_spacing=0.04)
    for col, (name, arr) in enumerate(arrays.items(), start=1):
        top = seq_max if shared_scale else max(float(arr.max()), 1e-12)
        fig.add_trace(_map_trace(name, arr, name in diverging, top), row=1, col=col)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{col if col > 1 else ''}", showticklabels=False, row=1, col=col)
        fig.update_xaxes(showticklabels=False, constrain="domain", row=1, col=col)
    fig.update_annotations(font_size=FONT_SIZE - 2)  # the subplot titles
    two_line = any("<br>" in name for name in arrays)
    layout = base_layout(title, height)
    layout["margin"] = {**layout["margin"], "l": 10, "r": 10, "b": 10,
                        "t": (50 if two_line else 30) + (40 if title else 0)}  # room for both title rows
    return fig.update_layout(layout)


def attention_comparison(teacher_map, student_map, difference=None, *, teacher_label: str = "teacher",
                         student_label: str = "student", title: str = "", height: int = 300) -> go.Figure:
    """Teacher and student attention maps ``[H, W]`` side by side (one shared scale) and, when
    given, their difference (student − teacher, red = the student attends more)."""
    maps = {teacher_label: teacher_map, student_label: student_map}
    diff_name = f"{student_label} − {teacher_label}"
    if difference is not None:
        maps[diff_name] = difference
    return heatmap_row(maps, diverging={diff_name}, shared_scale=True, title=title, height=height)
