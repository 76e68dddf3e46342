"""The one look of every kdviz figure: palette, role and term colours, fonts, base layout.

Colours are the Okabe–Ito set (colour-blind safe) with thick lines and large fonts, so charts
read on a projector. Pages show figures with ``st.plotly_chart(fig, theme=None)`` so Streamlit's
theme does not replace these fonts and colours.

Figures are assembled as plain dicts and validated once by ``go.Figure`` (~30 ms each; the live
view rebuilds a chart only when new records arrived, see ``kdviz.ui.live.figure``). Skipping
validation (``_validate=False``) is 5× faster but, measured in Chromium with Streamlit 1.67, a
chart rebuilt that way on every fragment tick never mounts.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

# Okabe–Ito without its yellow (too faint on white) and black (kept for the teacher and totals)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
INK = "#111111"  # text, totals
TEACHER = "#222222"
RUN_COLORS = {"teacher": TEACHER, "distilled": PALETTE[0], "scratch": PALETTE[5]}
TERM_COLORS = {"kd": PALETTE[0], "ce": PALETTE[1], "kl": PALETTE[0]}
# any other series (a method's own term, a fourth run) takes a colour no role or term claims
EXTRA_COLORS = tuple(c for c in PALETTE if c not in {*RUN_COLORS.values(), *TERM_COLORS.values()}) + ("#8C564B", "#7F7F7F")
TERM_LABELS = {"kd": "α·KD  (α·T²·KL)", "ce": "(1−α)·CE"}
RAW_LABELS = {"kl": "KL(teacher‖student) at T, no T²", "ce": "CE with true labels", "kd": "T²·KL"}
FONT_SIZE = 16
AXIS = {"showline": True, "linecolor": "#444444", "gridcolor": "#DDDDDD", "tickfont": {"size": FONT_SIZE - 2}}
PERCENT_AXIS = {"tickformat": ".1~%", "hoverformat": ".2%"}  # accuracies are fractions, shown as percent (97.5%, 98%)
LEGEND_TOP = {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0}
LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.25, "xanchor": "left", "x": 0.0}


@functools.lru_cache(maxsize=1)
def _template() -> dict:
    """The "plotly_white" template as data, looked up once."""
    return pio.templates["plotly_white"].to_plotly_json()


def base_layout(title: str, height: int) -> dict:
    """Template, fonts, size and margins shared by every figure (no axes: subplots set their own)."""
    return {
        "title": {"text": title, "font": {"size": FONT_SIZE + 2}},
        "template": _template(),
        "font": {"size": FONT_SIZE, "color": INK},
        "height": height,
        "margin": {"l": 70, "r": 20, "t": 60 if title else 30, "b": 55},
        "legend": LEGEND_TOP,
        "uirevision": "keep",  # keep the user's zoom while live updates arrive
    }


def figure(traces: list[dict], title: str, x_title: str, y_title: str, height: int = 340, **layout) -> go.Figure:
    """A validated figure from trace dicts; ``layout`` entries replace the defaults (``xaxis``/``yaxis``
    dicts are merged into the shared axis style)."""
    xaxis = {**AXIS, "title": {"text": x_title}, **layout.pop("xaxis", {})}
    yaxis = {**AXIS, "title": {"text": y_title}, **layout.pop("yaxis", {})}
    return go.Figure({"data": traces, "layout": {**base_layout(title, height), "hovermode": "x unified",
                                                  "xaxis": xaxis, "yaxis": yaxis, **layout}})


def validate(fig: go.Figure) -> go.Figure:
    """The figure rebuilt through Plotly's full validation (raises ValueError on a bad attribute)."""
    return go.Figure(fig.to_dict())


def colors(names: Iterable[str]) -> dict[str, str]:
    """A colour per name: its role or term colour, else the next colour no role or term claims
    (so a method's own term stays apart from the KD and CE colours it is drawn beside)."""
    out: dict[str, str] = {}
    extra = 0
    for name in names:
        known = RUN_COLORS.get(name) or TERM_COLORS.get(name)
        if known is None:
            known, extra = EXTRA_COLORS[extra % len(EXTRA_COLORS)], extra + 1
        out[name] = known
    return out


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def lookup(record: Mapping, key: str | tuple[str, ...]):
    """``"raw.ce"`` (or ``("raw", "ce")``, for names that hold a dot) → ``record["raw"]["ce"]``; None when absent."""
    value = record
    for part in key.split(".") if isinstance(key, str) else key:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def points(records: Sequence[Mapping], key: str | tuple[str, ...], x: str = "step") -> tuple[list, list]:
    """``(xs, ys)`` of ``key`` against ``x``; records where either is missing or not finite are skipped."""
    pts = [(xv, v) for r in records if finite(v := lookup(r, key)) and finite(xv := lookup(r, x))]
    return [p[0] for p in pts], [p[1] for p in pts]


def line(x: list, y: list, name: str, colour: str, width: int = 3, dash: str = "solid", **extra) -> dict:
    return {"type": "scatter", "x": x, "y": y, "mode": "lines", "name": name,
            "line": {"width": width, "color": colour, "dash": dash}, **extra}


def ref_line(axis: str, value: float, colour: str = "#444444") -> dict:
    """A dashed line across the plot at ``value`` on ``axis`` ("x": vertical, "y": horizontal)."""
    other = "y" if axis == "x" else "x"
    return {"type": "line", f"{axis}ref": axis, f"{axis}0": value, f"{axis}1": value,
            f"{other}ref": "paper", f"{other}0": 0, f"{other}1": 1, "line": {"dash": "dash", "width": 3, "color": colour}}


def floats(values) -> list[float]:
    """Tensor / array / sequence → list of Python floats (NaN stays NaN)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def array2d(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"a heatmap needs a 2-D array [H, W], got shape {arr.shape}")
    return arr
