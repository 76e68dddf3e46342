"""Scenario and sweep results on the Home and Experiments pages (Streamlit display only).

The figures and tables come from ``kdviz.figures`` (plain result dicts in); the job specs from
``kdviz.experiments.scenario_specs``. Every comparison is shown as mean ± std over seeds, with the
2·SE within-noise verdict beside it.
"""
from __future__ import annotations

import streamlit as st
import torch

from kdviz import figures
from kdviz.experiments import results as res
from kdviz.ui import live
from kdviz.ui.hosted import show_clamp_notes
from kdviz.ui.jobs import get_job
from kdviz.ui.text import md_text


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
    st.plotly_chart(figures.bias_chart(curves, digit, bias), key=f"{prefix}_bias_chart", theme=None)
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
    if result.get("timings_s"):
        st.caption("Where the time went in the worker: " + " · ".join(f"{name} {s:.1f} s" for name, s in result["timings_s"].items())
                   + " (students: training and their test pass).", help="The rest of the wait is the worker start and drawing.")
    st.dataframe(figures.scenario_table(result), hide_index=True, key=f"{prefix}_table")
    for line in figures.comparison_lines(result):
        st.markdown("- " + line)
    title = "Test accuracy per digit" + (f" (mean ± std over {n} seeds)" if n > 1 else "")
    st.plotly_chart(figures.per_class_bars(figures.scenario_per_class(result), omit, title), key=f"{prefix}_per_class", theme=None)
    calibration_panel(result, prefix)
    if "paper_errors" in result:
        st.dataframe(figures.paper_errors_table(result), hide_index=True, key=f"{prefix}_paper")
    if omit is not None and bias:
        bias_panel(result, prefix)


def calibration_panel(result: dict, prefix: str) -> None:
    """Reliability diagram of the teacher and the first seed's students (results stored before calibration: nothing)."""
    runs = result["runs"]
    if "reliability" not in result["teacher"] or not all(runs[role] and "reliability" in runs[role][0] for role in res.ROLES):
        return
    bins = {"teacher": result["teacher"]["reliability"], **{role: runs[role][0]["reliability"] for role in res.ROLES}}
    with st.expander("Calibration: is each network's confidence as high as its accuracy?"):
        st.plotly_chart(figures.reliability_diagram(bins, f"Reliability diagram (students: seed {runs['distilled'][0]['seed']})"),
                        key=f"{prefix}_reliability", theme=None)
        st.caption("ECE (expected calibration error): the gap between confidence and accuracy over 15 equal-width "
                   "confidence bins, weighted by how many test images fall in each; 0 is perfectly calibrated. The table "
                   "above gives it as mean ± std over seeds.")


def show_sweep_result(result: dict, prefix: str) -> None:
    st.plotly_chart(figures.sweep_chart(result), key=f"{prefix}_chart", theme=None)
    st.dataframe(figures.sweep_table(result), hide_index=True, key=f"{prefix}_table")
    if result.get("rows_ece"):
        st.plotly_chart(figures.sweep_chart(result, "rows_ece", "expected calibration error"), key=f"{prefix}_ece_chart", theme=None)
    if result.get("rows_digit"):
        st.plotly_chart(figures.sweep_chart(result, "rows_digit", "accuracy on the unseen digit"), key=f"{prefix}_digit_chart", theme=None)
    if len(result["seeds"]) < 3:
        st.warning("Fewer than 3 seeds: the ± std and the noise verdicts are rough.")
    st.caption("A gain or a point marked *within noise* differs from its reference by less than twice the standard error "
               "of the difference, √(s₁²/n₁ + s₂²/n₂): it is not evidence of an effect.")


def draw_scenario_live(handle, prefix: str, hint: str) -> None:
    """A scenario job's live view (inside the polling fragment): ``hint`` before any run, then its
    status and the accuracy curves (figure cached as ``{prefix}_acc``, chart key ``{prefix}_live_chart``)."""
    if handle is None:
        st.caption(hint)
        return
    live.status_line(handle)
    if handle.runs:
        st.plotly_chart(live.figure(f"{prefix}_acc", handle, lambda: figures.scenario_live_accuracy(
            {name: handle.evals(name) for name in handle.runs})), key=f"{prefix}_live_chart", theme=None)


def run_section(job: str, label: str, key: str, on_click, prefix: str, draw) -> dict | None:
    """The Run button, its error and clamp notes (``{prefix}_error``, ``{prefix}_notes`` in the session),
    the live panel of ``job``; returns the job's result once it has one."""
    st.button(label, key=key, type="primary", on_click=on_click)
    if st.session_state.get(f"{prefix}_error"):
        st.error(md_text(st.session_state[f"{prefix}_error"]))
    show_clamp_notes(st.session_state.get(f"{prefix}_notes", []))
    live.live_panel(job, draw)
    handle = get_job(job)
    return handle.result if handle is not None and handle.result else None
