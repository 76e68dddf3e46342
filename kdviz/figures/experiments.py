"""Experiments-lab figures and tables (Home demo and Experiments page), from plain result dicts.

Every comparison is shown as mean ± std over seeds, with the 2·SE within-noise verdict of
``kdviz.experiments.stats`` beside it. Results are the dicts a scenario or sweep job returns.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from kdviz.experiments import results as res
from kdviz.experiments.stats import format_mean_std
from kdviz.figures.style import LEGEND_BELOW, PERCENT_AXIS, RUN_COLORS, figure, line, points, ref_line


def _role_of(run: str) -> str:
    """``"distilled s1"`` → ``"distilled"``; "" when the name starts with no role."""
    return next((role for role in RUN_COLORS if run.startswith(role)), "")


def scenario_live_accuracy(evals: Mapping[str, Sequence[Mapping]]) -> go.Figure:
    """Test accuracy (fixed 1,000-image sample) of every run so far against its epoch; colour by
    role, dash by seed (the first run of a role solid, later seeds dotted). Runs without evaluations are left out."""
    traces, seen = [], {}
    for name, records in evals.items():
        if not records:
            continue
        role = _role_of(name)
        seed_rank = seen[role] = seen.get(role, -1) + 1
        traces.append(line(*points(records, "test_acc", x="epoch"), name, RUN_COLORS.get(role, "#7F7F7F"),
                           dash="solid" if seed_rank == 0 else "dot", mode="lines+markers"))
    return figure(traces, "Test accuracy during training (1,000-image sample)", "epoch", "test accuracy", height=320,
                  yaxis=PERCENT_AXIS, legend=LEGEND_BELOW, margin={"l": 70, "r": 20, "t": 60, "b": 90})


def bias_chart(curves: Mapping[str, Mapping], digit: int, bias: float) -> go.Figure:
    """Accuracy on ``digit`` (solid) and overall (dotted) against the bias, per student; a line at ``bias``."""
    traces = []
    for name, curve in curves.items():
        colour = RUN_COLORS.get(name, "#7F7F7F")
        traces.append(line(curve["bias"], curve["digit"], f"{name}: digit {digit}", colour))
        traces.append(line(curve["bias"], curve["overall"], f"{name}: all digits", colour, dash="dot"))
    return figure(traces, "", f"bias added to the logit of {digit}", "test accuracy", height=340,
                  yaxis={**PERCENT_AXIS, "range": [0, 1.02]}, shapes=[ref_line("x", bias)],
                  legend=LEGEND_BELOW, margin={"l": 70, "r": 20, "t": 30, "b": 110})


def sweep_chart(result: Mapping, rows_key: str = "rows", metric: str = "test accuracy") -> go.Figure:
    """Distilled mean ± std (error bars) over the grid, and scratch the same way when every point has it.
    A numeric grid is ticked at its own values (a log axis otherwise labels 2…9 between decades)."""
    rows, param = result[rows_key], result["param"]
    numeric = param in ("T", "alpha", "width")
    xs = [r["value"] if numeric else r["label"] for r in rows]
    traces = []
    scratch = [r["scratch"] for r in rows]
    if all(s is not None for s in scratch):
        traces.append(line(xs, [s["mean"] for s in scratch], "scratch (mean ± std)", RUN_COLORS["scratch"], dash="dot",
                           mode="lines+markers", error_y={"type": "data", "array": [s["std"] for s in scratch]}))
    traces.append(line(xs, [r["distilled"]["mean"] for r in rows], "distilled (mean ± std)", RUN_COLORS["distilled"],
                       mode="lines+markers", error_y={"type": "data", "array": [r["distilled"]["std"] for r in rows]},
                       text=[("best" if r["best"] else "≈ best (within noise)" if r["vs_best"] else "") for r in rows]))
    x_type = "log" if param in ("T", "width") else ("linear" if numeric else "category")
    return figure(traces, f"{metric} vs {param} — {len(result['seeds'])} seeds", param, metric, height=380,
                  xaxis={"type": x_type, **({"tickvals": xs} if numeric else {})}, yaxis=PERCENT_AXIS, legend=LEGEND_BELOW,
                  margin={"l": 70, "r": 20, "t": 60, "b": 110})


# ----------------------------------------------------------------------------- tables
def _pct(d: Mapping | None, digits: int = 2) -> str:
    return "n/a" if d is None else res.pct(d, digits)


def _count(d: Mapping) -> str:
    return f"{d['mean']:.0f}" if d.get("n") == 1 else format_mean_std(d["mean"], d["std"], 0)


def scenario_table(result: Mapping) -> pd.DataFrame:
    """One row per network: test accuracy (mean ± std over seeds), errors and, for the omitted digit, its accuracy."""
    s, t = result["summary"], result["teacher"]
    omit = result["config"]["omit"] if result["scenario"] == "omitted-digit" else None
    rows = [{"network": f"teacher ({t.get('label', '?')}, {t.get('source', '?')})", "test accuracy (%)": f"{100 * t['accuracy']:.2f}",
             "test errors": str(t["errors"])}]
    for role in res.ROLES:
        rows.append({"network": f"{role} student", "test accuracy (%)": _pct(s[role]["accuracy"]),
                     "test errors": _count(s[role]["errors"])})
    if "ece" in t and all("ece" in s[role] for role in res.ROLES):  # results stored before calibration carry none
        rows[0]["ECE (%)"] = f"{100 * t['ece']:.2f}"
        for row, role in zip(rows[1:], res.ROLES):
            row["ECE (%)"] = _pct(s[role]["ece"])
    if omit is not None:
        rows[0][f"digit {omit} (%)"] = f"{100 * t['per_class'][omit]:.1f}"
        rows[0]["after bias (%)"] = "—"
        for row, role in zip(rows[1:], res.ROLES):
            row[f"digit {omit} (%)"] = _pct(s[role]["digit_acc"], 1)
            row["after bias (%)"] = _pct(s[role]["digit_acc_after"], 1)
    return pd.DataFrame(rows)


def paper_errors_table(result: Mapping) -> pd.DataFrame:
    """Test errors of the paper's networks beside ours (results of Hinton's setting carry ``paper_errors``)."""
    p, s = result["paper_errors"], result["summary"]
    return pd.DataFrame([{"network": "teacher", "paper (errors)": p["teacher"], "here (errors)": str(result["teacher"]["errors"])},
                         *({"network": role, "paper (errors)": p[role], "here (errors)": _count(s[role]["errors"])}
                           for role in res.ROLES)])


def scenario_per_class(result: Mapping) -> dict[str, list]:
    """The per-class accuracies ``per_class_bars`` draws for a scenario result: the teacher's, then each student's cells."""
    return {"teacher": list(result["teacher"]["per_class"]), **{role: result["summary"][role]["per_class"] for role in res.ROLES}}


def comparison_lines(result: Mapping) -> list[str]:
    """Markdown lines: distilled − scratch per compared quantity, with the noise verdict."""
    names = {"accuracy": "test accuracy", "digit_acc": "accuracy on the unseen digit", "digit_acc_after": "… after the bias",
             "ece": "expected calibration error (lower is better calibrated)"}
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


def sweep_table(result: Mapping, rows_key: str = "rows") -> pd.DataFrame:
    return pd.DataFrame([{"point": r["label"], "distilled (%)": _pct(r["distilled"]), "scratch (%)": _pct(r["scratch"]),
                          "gain (pts)": f"{100 * r['gain']['diff']:+.2f}" if r["gain"] else "n/a",
                          "gain vs noise": ("within noise" if r["gain"]["within_noise"] else "beyond noise") if r["gain"] else "n/a",
                          "vs best": "best" if r["best"] else ("≈ best (within noise)" if r["vs_best"] else "worse")}
                         for r in result[rows_key]])
