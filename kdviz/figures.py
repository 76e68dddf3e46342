"""Plotly figure builders shared by the app's pages (core side: no Streamlit, plain data in).

Every builder takes plain Python data (lists, dicts, numbers; tensors and numpy arrays are
accepted where noted) and returns a ``plotly.graph_objects.Figure``; pages only call
``st.plotly_chart(fig)``. Record lists are ``StepRecord.to_dict()`` dicts (or the records
themselves): ``{"step", "total", "losses": {term: weighted}, "raw": {term: unweighted}, ...}``.

Builders
--------
- ``probability_bars``    grouped bars of class probabilities (e.g. T = 1 vs T), linear or log y
- ``loss_breakdown``      weighted loss terms stacked as areas + the total as a line
- ``accuracy_curves``     one curve per run; several seeds → mean line with a ±std band
- ``confusion_heatmap``   confusion matrix (rows true, columns predicted), counts or row-normalised
- ``per_class_bars``      per-class accuracy of several models, grouped
- ``heatmap_row``         2-D maps side by side (shared colour scale optional; diverging maps centred on 0)
- ``attention_comparison``teacher map | student map | difference, for attention transfer
- ``series_lines``        a few named series over a shared x (e.g. AT distance per step)
"""
from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
LOG_FLOOR = 1e-12  # probabilities below this are drawn at the floor on a log axis (0 has no logarithm)


def _floats(values) -> list[float]:
    """Tensor / array / sequence → list of Python floats (NaN stays NaN)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _array2d(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"a heatmap needs a 2-D array [H, W], got shape {arr.shape}")
    return arr


def _record(rec) -> Mapping:
    return rec.to_dict() if hasattr(rec, "to_dict") else rec


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=title or None, height=height, margin=dict(l=10, r=10, t=40 if title else 20, b=10))
    return fig


# ----------------------------------------------------------------------------- probabilities
def probability_bars(
    dists: Mapping[str, Sequence[float]],
    *,
    log: bool = False,
    class_names: Sequence[str] | None = None,
    title: str = "",
    height: int = 340,
) -> go.Figure:
    """Grouped bars, one group per class and one bar colour per distribution.

    ``dists`` maps a legend name (e.g. ``"T = 1"``) to C probabilities. ``log=True`` uses a log y
    axis so tiny probabilities (dark knowledge) become visible; zeros are drawn at ``LOG_FLOOR``.
    """
    if not dists:
        raise ValueError("probability_bars needs at least one distribution")
    sizes = {name: len(_floats(p)) for name, p in dists.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"distributions must have the same number of classes, got {sizes}")
    n = next(iter(sizes.values()))
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for {n} classes")
    fig = go.Figure()
    for i, (label, p) in enumerate(dists.items()):
        y = _floats(p)
        shown = [max(v, LOG_FLOOR) for v in y] if log else y
        fig.add_bar(x=names, y=shown, name=label, marker_color=PALETTE[i % len(PALETTE)],
                    customdata=y, hovertemplate="class %{x}: %{customdata:.3g}<extra>" + label + "</extra>")
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.12))
    fig.update_xaxes(title="class", type="category")
    if log:
        fig.update_yaxes(type="log", title="probability (log scale)", exponentformat="power")
    else:
        fig.update_yaxes(title="probability", range=[0, 1])
    return _layout(fig, title, height)


# ----------------------------------------------------------------------------- training curves
def loss_breakdown(records: Sequence, *, raw: bool = False, title: str = "", height: int = 340) -> go.Figure:
    """Loss terms over training steps.

    ``raw=False``: the weighted terms (``rec["losses"]``, which sum to the total) as stacked areas,
    plus ``rec["total"]`` as a black line on top. ``raw=True``: the unweighted terms (``rec["raw"]``)
    as separate lines, not stacked (they do not add up to anything).
    A term missing from some records leaves a gap there.
    """
    recs = [_record(r) for r in records]
    key = "raw" if raw else "losses"
    steps = [r["step"] for r in recs]
    terms = list(dict.fromkeys(k for r in recs for k in (r.get(key) or {})))
    fig = go.Figure()
    for i, term in enumerate(terms):
        y = [(r.get(key) or {}).get(term) for r in recs]
        colour = PALETTE[i % len(PALETTE)]
        if raw:
            fig.add_scatter(x=steps, y=y, name=term, mode="lines", line=dict(color=colour))
        else:
            fig.add_scatter(x=steps, y=y, name=term, mode="lines", stackgroup="terms",
                            line=dict(width=0.5, color=colour), fillcolor=_rgba(colour, 0.55))
    if not raw:
        fig.add_scatter(x=steps, y=[r.get("total") for r in recs], name="total", mode="lines",
                        line=dict(color="black", width=2))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="unweighted loss" if raw else "loss (weighted terms, stacked)")
    return _layout(fig, title, height)


def _seed_lists(runs) -> list[list[Mapping]]:
    """A run given as one record list, or as a list of record lists (one per seed)."""
    runs = list(runs)
    if runs and isinstance(_record(runs[0]), Mapping):
        return [[_record(r) for r in runs]]
    return [[_record(r) for r in seed] for seed in runs]


def _points(records: Sequence[Mapping], x: str, metric: str) -> dict[float, float]:
    out = {}
    for r in records:
        value = r.get(metric)
        if value is not None and r.get(x) is not None and math.isfinite(float(value)):
            out[float(r[x])] = float(value)
    return out


def _add_band(fig: go.Figure, name: str, xs, mean, std, colour: str) -> None:
    upper = [m + s for m, s in zip(mean, std)]
    lower = [m - s for m, s in zip(mean, std)]
    fig.add_scatter(x=xs, y=upper, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip", legendgroup=name)
    fig.add_scatter(x=xs, y=lower, mode="lines", line=dict(width=0), fill="tonexty", fillcolor=_rgba(colour, 0.2),
                    showlegend=False, hoverinfo="skip", legendgroup=name)


def accuracy_curves(
    runs: Mapping[str, Sequence],
    *,
    metric: str = "test_acc",
    x: str = "step",
    band: bool = True,
    title: str = "",
    height: int = 340,
) -> go.Figure:
    """One curve per named run; records whose ``metric`` is None are skipped.

    ``runs[name]`` is one record list, or a list of record lists (one per seed). With two or more
    seeds and ``band=True`` the curve is the mean over seeds at the x values all seeds share, with a
    shaded mean ± std band (population std); otherwise every seed gets its own line.
    Accuracy metrics (names ending in ``acc``) are shown as percentages.
    """
    fig = go.Figure()
    for i, (name, run) in enumerate(runs.items()):
        colour = PALETTE[i % len(PALETTE)]
        seeds = [_points(s, x, metric) for s in _seed_lists(run)]
        if len(seeds) >= 2 and band:
            xs = sorted(set.intersection(*(set(s) for s in seeds)))
            values = np.array([[s[v] for v in xs] for s in seeds])  # [seeds, points]
            mean, std = values.mean(axis=0).tolist(), values.std(axis=0).tolist()
            _add_band(fig, name, xs, mean, std, colour)
            fig.add_scatter(x=xs, y=mean, name=f"{name} (mean of {len(seeds)})", mode="lines+markers",
                            line=dict(color=colour), legendgroup=name)
            continue
        for j, pts in enumerate(seeds):
            label = name if len(seeds) == 1 else f"{name} (seed {j})"
            xs = sorted(pts)
            fig.add_scatter(x=xs, y=[pts[v] for v in xs], name=label, mode="lines+markers",
                            line=dict(color=colour, dash="solid" if j == 0 else "dot"), legendgroup=name)
    fig.update_xaxes(title=x)
    fig.update_yaxes(title=metric, tickformat=".1%" if metric.endswith("acc") else None)
    return _layout(fig, title, height)


def series_lines(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    x_title: str = "step",
    y_title: str = "",
    log_y: bool = False,
    title: str = "",
    height: int = 300,
) -> go.Figure:
    """A few named series sharing one x axis (each as long as ``x``)."""
    xs = _floats(x)
    fig = go.Figure()
    for i, (name, ys) in enumerate(series.items()):
        ys = _floats(ys)
        if len(ys) != len(xs):
            raise ValueError(f"series {name!r} has {len(ys)} values for {len(xs)} x values")
        fig.add_scatter(x=xs, y=ys, name=name, mode="lines+markers", line=dict(color=PALETTE[i % len(PALETTE)]))
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title, type="log" if log_y else None)
    return _layout(fig, title, height)


# ----------------------------------------------------------------------------- evaluation
def confusion_heatmap(
    confusion,
    *,
    class_names: Sequence[str] | None = None,
    normalise: bool = False,
    title: str = "",
    height: int = 420,
) -> go.Figure:
    """Confusion matrix ``[C, C]`` (rows = true class, columns = predicted), row 0 at the top.

    ``normalise=True`` divides each row by its count (rows without samples stay 0).
    """
    counts = _array2d(confusion)
    if counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {counts.shape}")
    n = counts.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    z = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalise else counts
    text = [[f"{v:.0%}" if normalise else f"{int(v)}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z.tolist(), x=names, y=names, colorscale="Blues", text=text, texttemplate="%{text}",
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
        zmin=0, zmax=1 if normalise else None,
    ))
    fig.update_xaxes(title="predicted", type="category", side="top")
    fig.update_yaxes(title="true", type="category", autorange="reversed")
    return _layout(fig, title, height)


def per_class_bars(
    per_class: Mapping[str, Sequence[float]],
    *,
    class_names: Sequence[str] | None = None,
    title: str = "",
    height: int = 320,
) -> go.Figure:
    """Per-class accuracy (fractions) of several models as grouped bars; NaN (absent class) → no bar."""
    fig = go.Figure()
    for i, (name, acc) in enumerate(per_class.items()):
        values = _floats(acc)
        names = list(class_names) if class_names is not None else [str(c) for c in range(len(values))]
        y = [None if math.isnan(v) else v for v in values]
        fig.add_bar(x=names, y=y, name=name, marker_color=PALETTE[i % len(PALETTE)])
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.12))
    fig.update_xaxes(title="class", type="category")
    fig.update_yaxes(title="accuracy", tickformat=".0%", range=[0, 1.02])
    return _layout(fig, title, height)


# ----------------------------------------------------------------------------- 2-D maps
def heatmap_row(
    maps: Mapping[str, object],
    *,
    diverging: Collection[str] = (),
    shared_scale: bool = False,
    title: str = "",
    height: int = 300,
) -> go.Figure:
    """Maps ``[H, W]`` side by side, image orientation (row 0 at the top), square pixels.

    Maps named in ``diverging`` use a red-blue scale centred on 0 (for differences); the others a
    sequential scale from 0. ``shared_scale=True`` gives the sequential maps one common maximum.
    Sizes may differ between maps.
    """
    if not maps:
        raise ValueError("heatmap_row needs at least one map")
    arrays = {name: _array2d(m) for name, m in maps.items()}
    seq_max = max((float(a.max()) for n, a in arrays.items() if n not in diverging), default=1.0)
    fig = make_subplots(rows=1, cols=len(arrays), subplot_titles=list(arrays), horizontal_spacing=0.04)
    for col, (name, arr) in enumerate(arrays.items(), start=1):
        if name in diverging:
            bound = max(float(np.abs(arr).max()), 1e-12)
            trace = go.Heatmap(z=arr.tolist(), colorscale="RdBu_r", zmid=0, zmin=-bound, zmax=bound, showscale=False,
                               hovertemplate="row %{y}, col %{x}: %{z:.4f}<extra>" + name + "</extra>")
        else:
            top = seq_max if shared_scale else max(float(arr.max()), 1e-12)
            trace = go.Heatmap(z=arr.tolist(), colorscale="Viridis", zmin=0, zmax=top, showscale=False,
                               hovertemplate="row %{y}, col %{x}: %{z:.4f}<extra>" + name + "</extra>")
        fig.add_trace(trace, row=1, col=col)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{col if col > 1 else ''}", showticklabels=False, row=1, col=col)
        fig.update_xaxes(showticklabels=False, constrain="domain", row=1, col=col)
    fig.update_annotations(font_size=12)  # the subplot titles
    two_line = any("<br>" in name for name in arrays)
    _layout(fig, title, height)
    fig.update_layout(margin=dict(t=(50 if two_line else 30) + (30 if title else 0)))  # room for both title rows
    return fig


def attention_comparison(
    teacher_map,
    student_map,
    difference=None,
    *,
    teacher_label: str = "teacher",
    student_label: str = "student",
    title: str = "",
    height: int = 300,
) -> go.Figure:
    """Teacher and student attention maps ``[H, W]`` side by side (one shared scale) and, when
    given, their difference (student − teacher, red = the student attends more)."""
    maps = {teacher_label: teacher_map, student_label: student_map}
    if difference is not None:
        maps[f"{student_label} − {teacher_label}"] = difference
    return heatmap_row(maps, diverging={f"{student_label} − {teacher_label}"}, shared_scale=True, title=title, height=height)
