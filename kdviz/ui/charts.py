"""Plotly figures for the live training pages (pure functions of record dicts; no Streamlit).

Records are job events (``StepRecord.to_dict()`` plus ``run``). Colours are the Okabe–Ito
palette (colour-blind safe) with thick lines and large fonts, so they read on a projector.
Show them with ``st.plotly_chart(fig, theme=None)`` so these fonts and colours are kept.

Figures are assembled as plain dicts and validated once by ``go.Figure`` (~30 ms each; the
live view rebuilds a chart only when new records arrived, see ``kdviz.ui.live.figure``).
Skipping validation (``_validate=False``) is 5× faster but, measured in Chromium with
Streamlit 1.67, a chart rebuilt that way on every fragment tick never mounts.
"""
from __future__ import annotations

import functools
import math

import plotly.graph_objects as go
import plotly.io as pio

RUN_COLORS = {"teacher": "#222222", "distilled": "#0072B2", "scratch": "#D55E00"}
TERM_COLORS = {"kd": "#0072B2", "ce": "#E69F00", "kl": "#0072B2"}
EXTRA_COLORS = ("#009E73", "#CC79A7", "#56B4E9", "#8C564B", "#7F7F7F")
TERM_LABELS = {"kd": "α·KD  (α·T²·KL)", "ce": "(1−α)·CE"}
RAW_LABELS = {"kl": "KL(teacher‖student) at T, no T²", "ce": "CE with true labels", "kd": "T²·KL"}
FONT_SIZE = 16
AXIS = {"showline": True, "linecolor": "#444444", "gridcolor": "#DDDDDD", "tickfont": {"size": FONT_SIZE - 2}}


@functools.lru_cache(maxsize=1)
def _template() -> dict:
    """The "plotly_white" template as data, looked up once."""
    return pio.templates["plotly_white"].to_plotly_json()


def _figure(traces: list[dict], title: str, x_title: str, y_title: str, height: int = 340, **layout) -> go.Figure:
    fig = {
        "data": traces,
        "layout": {
            "title": {"text": title, "font": {"size": FONT_SIZE + 2}},
            "template": _template(),
            "font": {"size": FONT_SIZE, "color": "#111111"},
            "height": height,
            "margin": {"l": 70, "r": 20, "t": 60, "b": 55},
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
            "hovermode": "x unified",
            "uirevision": "keep",  # keep the user's zoom while live updates arrive
            "xaxis": {**AXIS, "title": {"text": x_title}},
            "yaxis": {**AXIS, "title": {"text": y_title}},
            **layout,
        },
    }
    return go.Figure(fig)


def validate(fig: go.Figure) -> go.Figure:
    """The figure rebuilt through Plotly's full validation (raises ValueError on a bad attribute)."""
    return go.Figure(fig.to_dict())


def _color(name: str, i: int) -> str:
    return RUN_COLORS.get(name) or TERM_COLORS.get(name) or EXTRA_COLORS[i % len(EXTRA_COLORS)]


def _get(record: dict, key: str):
    """``"raw.ce"`` → ``record["raw"]["ce"]``; None when absent."""
    value = record
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _xy(records: list[dict], key: str) -> tuple[list, list]:
    pts = [(r["step"], v) for r in records if _finite(v := _get(r, key))]
    return [p[0] for p in pts], [p[1] for p in pts]


def _line(x: list, y: list, name: str, color: str, width: int = 3, **extra) -> dict:
    return {"type": "scatter", "x": x, "y": y, "mode": "lines", "name": name, "line": {"width": width, "color": color}, **extra}


def loss_curves(runs: dict[str, list[dict]], key: str = "total", title: str = "Training loss",
                y_title: str = "loss", scale: float = 1.0) -> go.Figure:
    """One line per run: the mean of ``key`` over each logged chunk of steps (``key`` may be
    dotted, e.g. ``"raw.ce"`` for the cross-entropy with the true labels), times ``scale``."""
    traces = []
    for i, (name, records) in enumerate(runs.items()):
        x, y = _xy(records, key)
        traces.append(_line(x, [scale * v for v in y], name, _color(name, i)))
    return _figure(traces, title, "step", y_title)


def accuracy_curves(evals: dict[str, list[dict]], teacher_acc: float | None = None, title: str = "Test accuracy") -> go.Figure:
    """Test accuracy per run (markers at each evaluation); the teacher as a dashed horizontal line."""
    traces = []
    for i, (name, records) in enumerate(evals.items()):
        x, y = _xy(records, "test_acc")
        traces.append(_line(x, [100 * v for v in y], name, _color(name, i), mode="lines+markers", marker={"size": 8}))
    extra = {}
    if _finite(teacher_acc):
        y = 100 * teacher_acc
        extra["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
                            "line": {"dash": "dash", "width": 3, "color": RUN_COLORS["teacher"]}}]
        extra["annotations"] = [{"xref": "paper", "x": 1, "yref": "y", "y": y, "text": f"teacher {y:.2f}%", "showarrow": False,
                                 "xanchor": "right", "yanchor": "top", "font": {"size": FONT_SIZE}}]
    return _figure(traces, title, "step", "accuracy (%)", **extra)


def loss_breakdown(records: list[dict], raw: bool = False, title: str | None = None) -> go.Figure:
    """Weighted terms as stacked areas with the total on top (they sum to it), or the raw
    unweighted values as lines (``raw=True``) so curves compare across T and alpha."""
    key = "raw" if raw else "losses"
    traces = []
    for i, term in enumerate(_term_names(records, key, skip=("kd",) if raw else ())):
        x = [r["step"] for r in records if term in r.get(key, {})]
        y = [r[key][term] for r in records if term in r.get(key, {})]
        label = (RAW_LABELS if raw else TERM_LABELS).get(term, term)
        if raw:
            traces.append(_line(x, y, label, _color(term, i)))
        else:
            traces.append(_line(x, y, label, _color(term, i), width=1, stackgroup="terms"))
    if not raw:
        x, y = _xy(records, "total")
        traces.append(_line(x, y, "total", "#111111"))
    default = "Raw loss terms (unscaled)" if raw else "Loss breakdown (stacked to the total)"
    # KD, CE, a method's term and the total wrap to several legend rows in a half-width column:
    # above the plot they covered the title (and the term's own name), so the legend goes below
    return _figure(traces, title or default, "step", "loss", height=440,
                   legend={"orientation": "h", "yanchor": "top", "y": -0.3, "xanchor": "left", "x": 0.0},
                   margin={"l": 70, "r": 20, "t": 60, "b": 150})


def _term_names(records: list[dict], key: str, skip: tuple[str, ...] = ()) -> list[str]:
    names: list[str] = []
    for r in records:
        for name in r.get(key, {}):
            if name not in names and name not in skip:
                names.append(name)
    return names


def confusion_heatmap(matrix: list[list[int]], title: str) -> go.Figure:
    """Counts ``[true][predicted]``; the diagonal (correct) dominates, so colour by log(1 + count)."""
    n = len(matrix)
    trace = {"type": "heatmap", "z": [[math.log10(1 + v) for v in row] for row in matrix], "text": matrix,
             "texttemplate": "%{text}", "x": list(range(n)), "y": list(range(n)), "colorscale": "Blues",
             "showscale": False, "hovertemplate": "true %{y}, predicted %{x}: %{text}<extra></extra>"}
    fig = _figure([trace], title, "predicted digit", "true digit", height=400, hovermode="closest")
    fig.layout.yaxis.update(autorange="reversed", dtick=1)
    fig.layout.xaxis.update(dtick=1)
    return fig


def per_class_bars(per_class: dict[str, list[float]], title: str = "Test accuracy per digit") -> go.Figure:
    traces = [{"type": "bar", "x": list(range(len(values))), "y": [100 * v if _finite(v) else None for v in values],
               "name": name, "marker": {"color": _color(name, i)}} for i, (name, values) in enumerate(per_class.items())]
    fig = _figure(traces, title, "digit", "accuracy (%)", barmode="group", hovermode="closest")
    fig.layout.xaxis.update(dtick=1)
    return fig
