"""Figures and tables of the distillation catalogue (born-again, mutual learning, teacher
assistant, ensembles), from a catalogue result's plain ``rows`` (see kdviz.experiments.catalogue)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from kdviz.figures.style import PERCENT_AXIS, colors, figure


def catalogue_rows(result: Mapping) -> list[dict[str, str]]:
    """Display rows: accuracy mean ± std over seeds, per-seed values, and each comparison (marked within noise)."""
    out = []
    for row in result.get("rows", ()):
        vs = "; ".join(f"vs {ref}: {c['text']}" for ref, c in row["vs"].items())
        out.append({"run": row["name"], f"test accuracy (n={row['n']})": f"{100 * row['mean']:.2f} ± {100 * row['std']:.2f}%",
                    "per seed": " ".join(f"{100 * a:.2f}" for a in row["accs"]), "difference (2·SE)": vs or "–"})
    return out


def catalogue_table(result: Mapping) -> pd.DataFrame:
    return pd.DataFrame(catalogue_rows(result))


def catalogue_bars(result: Mapping) -> go.Figure:
    """One bar per row: mean test accuracy, error bar = std over seeds."""
    rows: Sequence[Mapping] = result.get("rows", ())
    names = [r["name"] for r in rows]
    palette = colors(names)
    trace = {"type": "bar", "x": names, "y": [r["mean"] for r in rows], "marker": {"color": [palette[n] for n in names]},
             "error_y": {"type": "data", "array": [r["std"] for r in rows], "visible": True}, "name": "mean ± std"}
    low = min((r["mean"] - r["std"] for r in rows), default=0.0)
    axis = {**PERCENT_AXIS, "range": [max(0.0, low - 0.02), min(1.0, max((r["mean"] + r["std"] for r in rows), default=1.0) + 0.01)]}
    return figure([trace], result.get("title", "Result") + " — test accuracy over seeds", "", "accuracy", yaxis=axis)
