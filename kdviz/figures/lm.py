"""Plotly figures of the language-model lab: plain data in, ``go.Figure`` out (no Streamlit)."""
from __future__ import annotations

import plotly.graph_objects as go

from kdviz.experiments.stats import mean_std
from kdviz.figures.style import EXTRA_COLORS, RUN_COLORS

COLORS = {**RUN_COLORS, "batchmean": EXTRA_COLORS[0], "seqkd": EXTRA_COLORS[1]}  # the one palette (kdviz.figures.style)
LAYOUT = dict(template="plotly_white", height=330, margin=dict(l=50, r=20, t=50, b=45), legend=dict(orientation="h", y=-0.2))


def _color(name: str) -> str:
    return COLORS.get(name, EXTRA_COLORS[-1])


def bpc_curves(runs: dict[str, list[dict]], title: str = "Validation bits per character (lower is better)") -> go.Figure:
    """``runs``: run name → records; points are the records carrying ``val_bpc``."""
    fig = go.Figure()
    for name, records in runs.items():
        pts = [r for r in records if r.get("val_bpc") is not None]
        fig.add_scatter(x=[r["step"] for r in pts], y=[r["val_bpc"] for r in pts], mode="lines+markers", name=name,
                        line=dict(color=_color(name)))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="bits / character", **LAYOUT)
    return fig


def loss_terms(runs: dict[str, list[dict]]) -> go.Figure:
    """The weighted terms of each distilling run: alpha·KD (solid) and (1 − alpha)·CE (dotted)."""
    fig = go.Figure()
    for name, records in runs.items():
        pts = [r for r in records if r.get("kd_w") is not None]
        if not pts:
            continue
        steps = [r["step"] for r in pts]
        fig.add_scatter(x=steps, y=[r["kd_w"] for r in pts], name=f"{name}: alpha·KD", line=dict(color=_color(name)))
        fig.add_scatter(x=steps, y=[r["ce_w"] for r in pts], name=f"{name}: (1−alpha)·CE", line=dict(color=_color(name), dash="dot"))
    fig.update_layout(title="Weighted loss terms (what the gradient sees)", xaxis_title="step", yaxis_title="loss", **LAYOUT)
    return fig


def next_token_heatmap(probs: list[list[float]], positions: list[str], vocab: str, title: str, excluded: list[bool] | None = None) -> go.Figure:
    """Positions (rows, "after 'em'") × vocabulary (columns) probabilities; excluded rows are marked ✗."""
    labels = [p + (" ✗ masked" if excluded and excluded[i] else "") for i, p in enumerate(positions)]
    fig = go.Figure(go.Heatmap(z=probs, x=list(vocab), y=labels, colorscale="Blues", zmin=0, zmax=1,
                               hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="next character", **{**LAYOUT, "height": 120 + 26 * len(positions)})
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return fig


def per_position_kl(values: list[float], positions: list[str], excluded: list[bool]) -> go.Figure:
    colors = ["#cccccc" if ex else COLORS["distilled"] for ex in excluded]
    fig = go.Figure(go.Bar(x=positions, y=values, marker_color=colors,
                           text=["masked" if ex else f"{v:.3f}" for v, ex in zip(values, excluded)], textposition="outside"))
    fig.update_layout(title="KD term per position: KL(teacher ‖ student)·T² (grey: padding the mask excludes)",
                      yaxis_title="KL · T²", **LAYOUT)
    fig.update_xaxes(type="category")
    return fig


REDUCTION_NAMES = {"batchmean": "F.kl_div batchmean (sum ÷ B)", "token_mean": "per-token mean (padding counted)",
                   "masked_token_mean": "masked per-token mean (right)"}


def reduction_vs_length(rows: list[dict]) -> go.Figure:
    """``rows``: ``{"length", "batchmean", "token_mean", "masked_token_mean"}`` per padded length S."""
    fig = go.Figure()
    for key, name in REDUCTION_NAMES.items():
        fig.add_scatter(x=[r["length"] for r in rows], y=[r[key] for r in rows], mode="lines+markers", name=name)
    fig.update_layout(title="The same batch's KD term under three reductions", xaxis_title="padded sequence length S",
                      yaxis_title="KD term", **LAYOUT)
    return fig


def kd_share_vs_length(rows: list[dict], alpha: float) -> go.Figure:
    """``rows``: ``{"length", "batchmean_share", "token_share"}``: the KD term's share of the objective."""
    fig = go.Figure()
    fig.add_scatter(x=[r["length"] for r in rows], y=[r["batchmean_share"] for r in rows], name="batchmean", mode="lines+markers",
                    line=dict(color=COLORS["batchmean"]))
    fig.add_scatter(x=[r["length"] for r in rows], y=[r["token_share"] for r in rows], name="masked per-token mean",
                    mode="lines+markers", line=dict(color=COLORS["distilled"]))
    fig.update_layout(title=f"Effective weight of KD in the objective (alpha = {alpha:g} asked for)", xaxis_title="padded sequence length S",
                      yaxis_title="KD share", yaxis_range=[0, 1], **LAYOUT)
    return fig


def seeds_bars(bpc: dict[str, list[float]], teacher_bpc: float | None = None) -> go.Figure:
    """Mean ± std of final validation bpc per method, every seed as a dot."""
    fig = go.Figure()
    for name, values in bpc.items():
        s = mean_std(values)
        fig.add_bar(x=[name], y=[s.mean], error_y=dict(type="data", array=[s.std]), marker_color=_color(name), name=name,
                    showlegend=False)
        fig.add_scatter(x=[name] * len(values), y=values, mode="markers", marker=dict(color="black", size=6), showlegend=False)
    if teacher_bpc is not None:
        fig.add_hline(y=teacher_bpc, line_dash="dash", annotation_text=f"teacher {teacher_bpc:.3f}")
    lows = [min(v) for v in bpc.values()] + ([teacher_bpc] if teacher_bpc else [])
    fig.update_layout(title="Final validation bits per character over seeds (mean ± std)", yaxis_title="bits / character",
                      yaxis_range=[0.95 * min(lows), None], **LAYOUT)
    return fig
