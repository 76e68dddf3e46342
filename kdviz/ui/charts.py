"""Plotly figures for the live training pages (pure functions of record dicts; no Streamlit).

Records are job events (``StepRecord.to_dict()`` plus ``run``). Colours are the Okabe–Ito
palette (colour-blind safe) with thick lines and large fonts, so they read on a projector.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

RUN_COLORS = {"teacher": "#222222", "distilled": "#0072B2", "scratch": "#D55E00"}
TERM_COLORS = {"kd": "#0072B2", "ce": "#E69F00", "kl": "#0072B2"}
EXTRA_COLORS = ("#009E73", "#CC79A7", "#56B4E9", "#8C564B", "#7F7F7F")
TERM_LABELS = {"kd": "α·KD  (α·T²·KL)", "ce": "(1−α)·CE"}
RAW_LABELS = {"kl": "KL(teacher‖student) at T, no T²", "ce": "CE with true labels", "kd": "T²·KL"}
FONT_SIZE = 16


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 340) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": FONT_SIZE + 2}},
        template="plotly_white",
        font={"size": FONT_SIZE, "color": "#111111"},
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hovermode="x unified",
        uirevision="keep",  # keep the user's zoom while live updates arrive
    )
    fig.update_xaxes(title=x_title, showline=True, linecolor="#444444", gridcolor="#DDDDDD")
    fig.update_yaxes(title=y_title, showline=True, linecolor="#444444", gridcolor="#DDDDDD")
    return fig


def _color(name: str, i: int) -> str:
    return RUN_COLORS.get(name) or TERM_COLORS.get(name) or EXTRA_COLORS[i % len(EXTRA_COLORS)]


def _get(record: dict, key: str):
    """``"raw.ce"`` → ``record["raw"]["ce"]``; None when absent."""
    value = record
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _xy(records: list[dict], key: str) -> tuple[list, list]:
    pts = [(r["step"], v) for r in records if _finite(v := _get(r, key))]
    return [p[0] for p in pts], [p[1] for p in pts]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def loss_curves(runs: dict[str, list[dict]], key: str = "total", title: str = "Training loss") -> go.Figure:
    """One line per run: the mean training loss over each logged chunk of steps (``key`` may be
    dotted, e.g. ``"raw.ce"`` for the cross-entropy with the true labels)."""
    fig = go.Figure()
    for i, (name, records) in enumerate(runs.items()):
        x, y = _xy(records, key)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line={"width": 3, "color": _color(name, i)}))
    return _layout(fig, title, "step", "loss")


def accuracy_curves(evals: dict[str, list[dict]], teacher_acc: float | None = None, title: str = "Test accuracy") -> go.Figure:
    """Test accuracy per run (markers at each evaluation); the teacher as a dashed horizontal line."""
    fig = go.Figure()
    for i, (name, records) in enumerate(evals.items()):
        x, y = _xy(records, "test_acc")
        fig.add_trace(go.Scatter(x=x, y=[100 * v for v in y], mode="lines+markers", name=name,
                                 line={"width": 3, "color": _color(name, i)}, marker={"size": 8}))
    if teacher_acc is not None and _finite(teacher_acc):
        fig.add_hline(y=100 * teacher_acc, line={"dash": "dash", "width": 3, "color": RUN_COLORS["teacher"]},
                      annotation_text=f"teacher {100 * teacher_acc:.2f}%", annotation_position="bottom right")
    return _layout(fig, title, "step", "accuracy (%)")


def loss_breakdown(records: list[dict], raw: bool = False, title: str | None = None) -> go.Figure:
    """Weighted terms as stacked areas with the total on top (they sum to it), or the raw
    unweighted values as lines (``raw=True``) so curves compare across T and alpha."""
    fig = go.Figure()
    key = "raw" if raw else "losses"
    names = _term_names(records, key, skip=("kd",) if raw else ())
    for i, term in enumerate(names):
        x = [r["step"] for r in records if term in r.get(key, {})]
        y = [r[key][term] for r in records if term in r.get(key, {})]
        label = (RAW_LABELS if raw else TERM_LABELS).get(term, term)
        style = {"width": 3 if raw else 1, "color": _color(term, i)}
        if raw:
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=label, line=style))
        else:
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=label, line=style, stackgroup="terms"))
    if not raw:
        x, y = _xy(records, "total")
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="total", line={"width": 3, "color": "#111111"}))
    default = "Raw loss terms (unscaled)" if raw else "Loss breakdown: weighted terms sum to the total"
    return _layout(fig, title or default, "step", "loss")


def _term_names(records: list[dict], key: str, skip: tuple[str, ...] = ()) -> list[str]:
    names: list[str] = []
    for r in records:
        for name in r.get(key, {}):
            if name not in names and name not in skip:
                names.append(name)
    return names


def confusion_heatmap(matrix: list[list[int]], title: str) -> go.Figure:
    """Counts ``[true][predicted]``; the diagonal (correct) dominates, so use a log-ish colour scale."""
    z = [[math.log10(1 + v) for v in row] for row in matrix]
    fig = go.Figure(go.Heatmap(
        z=z, text=matrix, texttemplate="%{text}", x=list(range(len(matrix))), y=list(range(len(matrix))),
        colorscale="Blues", showscale=False, hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
    ))
    fig = _layout(fig, title, "predicted digit", "true digit", height=380)
    fig.update_yaxes(autorange="reversed", dtick=1)
    fig.update_xaxes(dtick=1)
    fig.update_layout(hovermode="closest")
    return fig


def per_class_bars(per_class: dict[str, list[float]], title: str = "Test accuracy per digit") -> go.Figure:
    fig = go.Figure()
    for i, (name, values) in enumerate(per_class.items()):
        fig.add_trace(go.Bar(x=list(range(len(values))), y=[100 * v if _finite(v) else None for v in values],
                             name=name, marker={"color": _color(name, i)}))
    fig = _layout(fig, title, "digit", "accuracy (%)")
    fig.update_layout(barmode="group", hovermode="closest")
    fig.update_xaxes(dtick=1)
    return fig
