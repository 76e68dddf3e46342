"""Experiments-lab UI: figures and result panels shared by the Home and Experiments pages.

Figures are plain Plotly builders (plain data in); the ``show_*`` helpers draw a scenario or
sweep result with Streamlit. Every comparison is shown as mean ± std over seeds, with the
2·SE within-noise verdict of ``kdviz.experiments.stats`` beside it.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from kdviz.experiments import results as res
from kdviz.experiments import scenarios as sc
from kdviz.hosted import clamp_count
from kdviz.figures import PALETTE
from kdviz.experiments.stats import format_mean_std
from kdviz.ui import live
from kdviz.ui.hosted import limits

ROLE_COLOURS = {"teacher": "#7f7f7f", "distilled": PALETTE[0], "scratch": PALETTE[1]}


# ----------------------------------------------------------------------------- figures
def _svg_box(x: float, y: float, w: float, h: float, colour: str, lines: list[str]) -> str:
    """A rounded box with centred lines of text (the first one bold)."""
    spans = []
    for i, line in enumerate(lines):
        weight = ' font-weight="bold"' if i == 0 else ""
        spans.append(f'<tspan x="{x + w / 2:g}" dy="{0 if i == 0 else 20}"{weight}>{line}</tspan>')
    top = y + h / 2 - 10 * (len(lines) - 1) + 5
    return (f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="8" fill="{colour}" fill-opacity="0.15" '
            f'stroke="{colour}" stroke-width="2"/><text x="{x + w / 2:g}" y="{top:g}" text-anchor="middle">{"".join(spans)}</text>')


def _svg_arrow(x0: float, y0: float, x1: float, y1: float, label: str = "", lx: float | None = None, ly: float | None = None) -> str:
    line = f'<line x1="{x0:g}" y1="{y0:g}" x2="{x1:g}" y2="{y1:g}" stroke="#444" stroke-width="2" marker-end="url(#kdviz-head)"/>'
    if not label:
        return line
    lx, ly = (x0 + x1) / 2 if lx is None else lx, (y0 + y1) / 2 - 8 if ly is None else ly
    return line + f'<text x="{lx:g}" y="{ly:g}" text-anchor="middle" font-size="14">{label}</text>'


def kd_diagram() -> str:
    """Teacher → soft targets softmax(z/T) → student, with the hard labels as the second signal (SVG).

    A static SVG rather than a Plotly figure: it is the first thing on the Home page, and a fresh
    browser then need not load Plotly's 4 MB script to draw it (Home renders faster under load)."""
    parts = [
        _svg_box(10, 10, 220, 90, "#7f7f7f", ["Teacher", "big, already trained"]),
        _svg_box(340, 10, 290, 90, "#2ca02c", ["Soft targets", "softmax(zₜ / T)", "‘a 3 that looks a bit like an 8’"]),
        _svg_box(740, 10, 230, 90, PALETTE[0], ["Student", "small, learns both"]),
        _svg_box(340, 140, 290, 64, PALETTE[1], ["Labels (hard targets)", "‘this is a 3’"]),
        _svg_arrow(230, 55, 336, 55, "logits zₜ"),
        _svg_arrow(630, 55, 736, 55, "α · T² · KL"),
        _svg_arrow(630, 172, 736, 90, "(1 − α) · CE", lx=720, ly=170),
    ]
    return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 980 215" font-family="sans-serif" font-size="15" '
            'role="img" aria-label="Teacher, soft targets and labels, student">'
            '<defs><marker id="kdviz-head" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
            '<path d="M0,0 L10,4 L0,8 z" fill="#444"/></marker></defs>' + "".join(parts) + "</svg>")


def per_class_bars(per_class: dict[str, list[dict]], highlight: int | None = None, title: str = "") -> go.Figure:
    """Grouped bars of per-class accuracy (mean, with ±std error bars); ``highlight`` marks a digit."""
    fig = go.Figure()
    for name, cells in per_class.items():
        means = [None if not math.isfinite(c["mean"]) else c["mean"] for c in cells]
        stds = [0.0 if not math.isfinite(c["std"]) else c["std"] for c in cells]
        fig.add_bar(x=[str(i) for i in range(len(cells))], y=means, name=name, marker_color=ROLE_COLOURS.get(name),
                    error_y=dict(type="data", array=stds, visible=any(s > 0 for s in stds)))
    if highlight is not None:
        fig.add_vrect(x0=highlight - 0.5, x1=highlight + 0.5, fillcolor="#d62728", opacity=0.08, line_width=0)
        fig.add_annotation(x=highlight, y=1.1, text="never seen by the students", showarrow=False, font=dict(color="#d62728"))
    fig.update_layout(barmode="group", title=title or None, height=330, legend=dict(orientation="h", y=-0.2),
                      margin=dict(l=40, r=10, t=40 if title else 20, b=40))
    fig.update_xaxes(title="digit", type="category")
    fig.update_yaxes(title="test accuracy", tickformat=".0%", range=[0, 1.15])
    return fig


def bias_chart(curves: dict[str, dict], digit: int, bias: float) -> go.Figure:
    """Accuracy on ``digit`` (solid) and overall (dotted) against the bias, per student; a line at ``bias``."""
    fig = go.Figure()
    for name, curve in curves.items():
        colour = ROLE_COLOURS.get(name)
        fig.add_scatter(x=curve["bias"], y=curve["digit"], name=f"{name}: digit {digit}", line=dict(color=colour))
        fig.add_scatter(x=curve["bias"], y=curve["overall"], name=f"{name}: all digits", line=dict(color=colour, dash="dot"))
    fig.add_vline(x=bias, line=dict(color="#444", dash="dash"))
    fig.update_layout(height=300, margin=dict(l=40, r=10, t=20, b=40), legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title=f"bias added to the logit of {digit}")
    fig.update_yaxes(title="test accuracy", tickformat=".0%", range=[0, 1.02])
    return fig


def sweep_chart(result: dict, rows_key: str = "rows", metric: str = "test accuracy") -> go.Figure:
    """Distilled mean ± std (error bars) over the grid; scratch as a band (shared) or bars (per value)."""
    rows, param = result[rows_key], result["param"]
    numeric = param in ("T", "alpha", "width")
    xs = [r["value"] if numeric else r["label"] for r in rows]
    fig = go.Figure()
    scratch = [r["scratch"] for r in rows]
    if all(s is not None for s in scratch):
        fig.add_scatter(x=xs, y=[s["mean"] for s in scratch], name="scratch (mean ± std)", mode="lines+markers",
                        line=dict(color=ROLE_COLOURS["scratch"], dash="dot"),
                        error_y=dict(type="data", array=[s["std"] for s in scratch]))
    fig.add_scatter(x=xs, y=[r["distilled"]["mean"] for r in rows], name="distilled (mean ± std)", mode="lines+markers",
                    line=dict(color=ROLE_COLOURS["distilled"]), error_y=dict(type="data", array=[r["distilled"]["std"] for r in rows]),
                    text=[("best" if r["best"] else "≈ best (within noise)" if r["vs_best"] else "") for r in rows])
    fig.update_layout(height=360, margin=dict(l=40, r=10, t=30, b=40), legend=dict(orientation="h", y=-0.2),
                      title=f"{metric} vs {param} — {len(result['seeds'])} seeds")
    fig.update_xaxes(title=param, type="log" if param in ("T", "width") else ("linear" if numeric else "category"))
    fig.update_yaxes(title=metric, tickformat=".1%")
    return fig


# ----------------------------------------------------------------------------- tables
def _pct(d: dict | None, digits: int = 2) -> str:
    if d is None or not math.isfinite(d["mean"]):
        return "n/a"
    if d.get("n") == 1:
        return f"{100 * d['mean']:.{digits}f}"  # one seed: no spread to show
    return format_mean_std(100 * d["mean"], 100 * d["std"], digits)


def _count(d: dict) -> str:
    return f"{d['mean']:.0f}" if d.get("n") == 1 else format_mean_std(d["mean"], d["std"], 0)


def scenario_table(result: dict) -> pd.DataFrame:
    """One row per network: test accuracy (mean ± std over seeds), errors and, for the omitted digit, its accuracy."""
    s, t = result["summary"], result["teacher"]
    omit = result["config"]["omit"] if result["scenario"] == "omitted-digit" else None
    rows = [{"network": f"teacher ({t.get('label', '?')}, {t.get('source', '?')})", "test accuracy (%)": f"{100 * t['accuracy']:.2f}",
             "test errors": str(t["errors"])}]
    for role in res.ROLES:
        row = {"network": f"{role} student", "test accuracy (%)": _pct(s[role]["accuracy"]),
               "test errors": _count(s[role]["errors"])}
        rows.append(row)
    if omit is not None:
        rows[0][f"digit {omit} (%)"] = f"{100 * t['per_class'][omit]:.1f}"
        rows[0]["after bias (%)"] = "—"
        for row, role in zip(rows[1:], res.ROLES):
            row[f"digit {omit} (%)"] = _pct(s[role]["digit_acc"], 1)
            row["after bias (%)"] = _pct(s[role]["digit_acc_after"], 1)
    return pd.DataFrame(rows)


def comparison_lines(result: dict) -> list[str]:
    names = {"accuracy": "test accuracy", "digit_acc": "accuracy on the unseen digit", "digit_acc_after": "… after the bias"}
    out = []
    single = len(result["seeds"]) < 2
    for key, c in result["comparison"].items():
        verdict = "**within noise**" if c["within_noise"] else "beyond noise"
        noise = "one seed: noise unknown" if single else f"2·SE = {200 * c['stderr']:.2f} pts over {len(result['seeds'])} seeds"
        out.append(f"Distilled − scratch, {names.get(key, key)}: **{c['diff'] * 100:+.2f} pts** ({noise})"
                   + ("" if single else f" — {verdict}"))
    if single:
        out.append("One seed gives no estimate of noise: run 3 or more seeds before trusting a difference.")
    return out


def sweep_table(result: dict, rows_key: str = "rows") -> pd.DataFrame:
    return pd.DataFrame([{"point": r["label"], "distilled (%)": _pct(r["distilled"]), "scratch (%)": _pct(r["scratch"]),
                          "gain (pts)": f"{100 * r['gain']['diff']:+.2f}" if r["gain"] else "n/a",
                          "gain vs noise": ("within noise" if r["gain"]["within_noise"] else "beyond noise") if r["gain"] else "n/a",
                          "vs best": "best" if r["best"] else ("≈ best (within noise)" if r["vs_best"] else "worse")}
                         for r in result[rows_key]])


# ----------------------------------------------------------------------------- specs
def teacher_cache_dir() -> str:
    """Trained fast teachers are cached here, so a second click does not train one again."""
    root = os.environ.get("KDVIZ_JOBS_DIR") or str(Path(tempfile.gettempdir()) / "kdviz-jobs")
    return str(Path(root) / "scenario-teachers")


def hosted_overrides(kind: str, overrides: dict) -> tuple[dict, list[str]]:
    """In hosted mode: cap seeds, widths and epochs; the Hinton preset is refused (ValueError)."""
    lim = limits()
    if lim is None:
        return overrides, []
    if kind == "hinton":
        raise ValueError("Hinton's MNIST setting trains for an hour or more; it is switched off on this shared server")
    out, notes = dict(overrides), []
    out["seeds"], notes = clamp_count("seeds", int(out.get("seeds", 1)), lim.max_seeds)
    base = sc.preset(kind)
    if max(base.student.model.hidden) > lim.max_width:
        out["student_hidden"] = [min(h, lim.max_width) for h in base.student.model.hidden]
        notes.append(f"student width capped at {lim.max_width} on this shared server")
    if float(out.get("epochs", base.student.epochs)) > lim.max_epochs:
        out["epochs"] = lim.max_epochs
        notes.append(f"student epochs capped at {lim.max_epochs:g} on this shared server")
    return out, notes


def scenario_spec(kind: str, overrides: dict, data: str, device: str, teacher_ckpt: str | None) -> dict:
    return {"fn": sc.JOB_FNS[kind], "preset": kind, "overrides": overrides, "data": data, "device": device,
            "teacher_ckpt": teacher_ckpt or "", "cache_dir": teacher_cache_dir()}


# ----------------------------------------------------------------------------- result panels
def _logits(result: dict, role: str) -> torch.Tensor:
    """Test logits ``[N, 10]`` of the first seed, converted once per result (the slider re-reads them)."""
    cache = st.session_state.setdefault("_exp_logits", {})
    key = (id(result), role)
    if key not in cache:
        cache.clear() if len(cache) > 8 else None
        cache[key] = torch.tensor(result["logits"][role], dtype=torch.float32)
    return cache[key]


def _set_bias(key: str, value: float) -> None:
    st.session_state[key] = value


def bias_panel(result: dict, prefix: str) -> None:
    """The paper's correction: add b to the omitted digit's logit; accuracy recomputed from stored logits."""
    digit = result["config"]["omit"]
    if "logits" not in result:
        st.caption("This result kept no test logits, so the bias cannot be moved here.")
        return
    labels = result["labels"]
    key = f"{prefix}_bias"
    best = result["runs"]["distilled"][0]["best_bias"]
    bias = st.slider(f"Bias b added to the logit of digit {digit}", 0.0, 8.0, value=0.0, step=0.25, key=key,
                     help="Hinton et al. raised the bias of the 3 by 3.5, the value that maximised overall test accuracy.")
    st.button(f"Use b = {best:g} (maximises overall test accuracy, as in the paper)", key=f"{prefix}_best_bias",
              on_click=_set_bias, args=(key, float(best)))
    cols = st.columns(4)
    for i, role in enumerate(res.ROLES):
        overall, on_digit = res.bias_accuracy(_logits(result, role), labels, digit, bias)
        base_overall, base_digit = res.bias_accuracy(_logits(result, role), labels, digit, 0.0)
        cols[2 * i].metric(f"{role.capitalize()}: digit {digit}", f"{100 * on_digit:.1f}%", f"{100 * (on_digit - base_digit):+.1f} pts vs b = 0")
        cols[2 * i + 1].metric(f"{role.capitalize()}: all digits", f"{100 * overall:.2f}%", f"{100 * (overall - base_overall):+.2f} pts")
    curves = {role: result["runs"][role][0]["bias_curve"] for role in res.ROLES}
    st.plotly_chart(bias_chart(curves, digit, bias), key=f"{prefix}_bias_chart", theme=None)
    p = result.get("paper", res.PAPER_OMITTED)
    run = result["runs"]["distilled"][0]
    n_digit = sum(1 for y in labels if int(y) == digit)
    st.caption(f"The paper (Hinton, Vinyals & Dean 2015, §3): {p['errors']} test errors, {p['errors_on_digit']} of them on the "
               f"{p['digit_count']:,} threes; after a bias of {p['bias']:g}, {100 * p['digit_acc_after']:.1f}% of threes right. "
               f"Here (distilled, seed {run['seed']}): {run['errors']} test errors, {run['digit_errors']} of them on the {n_digit:,} "
               f"{digit}s; after a bias of {run['best_bias']:g}, {100 * run['digit_acc_after']:.1f}% of them right.")


def show_scenario_result(result: dict, prefix: str, bias: bool = True) -> None:
    """Metrics table, per-class bars, comparisons (and the bias slider for the omitted digit)."""
    n = len(result["seeds"])
    omit = result["config"]["omit"] if result["scenario"] == "omitted-digit" else None
    st.markdown(f"**Transfer set:** {result['transfer']['description']}. **Data:** {result['data']['name']} · "
                f"**device:** {result['device']} · {n} seed(s) · {result['elapsed_s']:.0f} s")
    st.dataframe(scenario_table(result), hide_index=True, key=f"{prefix}_table")
    for line in comparison_lines(result):
        st.markdown("- " + line)
    per_class = {"teacher": [{"mean": v, "std": 0.0} for v in result["teacher"]["per_class"]],
                 **{role: result["summary"][role]["per_class"] for role in res.ROLES}}
    title = "Test accuracy per digit" + (f" (mean ± std over {n} seeds)" if n > 1 else "")
    st.plotly_chart(per_class_bars(per_class, omit, title), key=f"{prefix}_per_class", theme=None)
    if "paper_errors" in result:
        p, s = result["paper_errors"], result["summary"]
        st.dataframe(pd.DataFrame([{"network": "teacher", "paper (errors)": p["teacher"], "here (errors)": str(result["teacher"]["errors"])},
                                   *({"network": role, "paper (errors)": p[role],
                                      "here (errors)": _count(s[role]["errors"])}
                                     for role in res.ROLES)]), hide_index=True, key=f"{prefix}_paper")
    if omit is not None and bias:
        bias_panel(result, prefix)


def show_sweep_result(result: dict, prefix: str) -> None:
    st.plotly_chart(sweep_chart(result), key=f"{prefix}_chart", theme=None)
    st.dataframe(sweep_table(result), hide_index=True, key=f"{prefix}_table")
    if result.get("rows_digit"):
        st.plotly_chart(sweep_chart(result, "rows_digit", "accuracy on the unseen digit"), key=f"{prefix}_digit_chart", theme=None)
    if len(result["seeds"]) < 3:
        st.warning("Fewer than 3 seeds: the ± std and the noise verdicts are rough.")
    st.caption("A gain or a point marked *within noise* differs from its reference by less than twice the standard error "
               "of the difference, √(s₁²/n₁ + s₂²/n₂): it is not evidence of an effect.")


def _role_of(run: str) -> str:
    return next((role for role in ROLE_COLOURS if run.startswith(role)), "")


def live_accuracy_figure(handle) -> go.Figure:
    """Test accuracy (fixed 1,000-image sample) of every run so far against its epoch; colour by role, dash by seed."""
    fig = go.Figure()
    for i, name in enumerate(handle.runs):
        evals = handle.evals(name)
        if not evals:
            continue
        seed_rank = sum(1 for other in list(handle.runs)[:i] if _role_of(other) == _role_of(name))
        fig.add_scatter(x=[r["epoch"] for r in evals], y=[r["test_acc"] for r in evals], name=name, mode="lines+markers",
                        line=dict(color=ROLE_COLOURS.get(_role_of(name)), dash="solid" if seed_rank == 0 else "dot"))
    fig.update_layout(height=300, margin=dict(l=50, r=10, t=40, b=40), title="Test accuracy during training (1,000-image sample)",
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="test accuracy", tickformat=".0%")
    return fig


def draw_scenario_live(handle, prefix: str, hint: str) -> None:
    """A scenario job's live view (inside the polling fragment): ``hint`` before any run, then its
    status and the accuracy curves (figure cached as ``{prefix}_acc``, chart key ``{prefix}_live_chart``)."""
    if handle is None:
        st.caption(hint)
        return
    live.status_line(handle)
    if handle.runs:
        st.plotly_chart(live.figure(f"{prefix}_acc", handle, lambda: live_accuracy_figure(handle)),
                        key=f"{prefix}_live_chart", theme=None)
