"""The figure library (kdviz.figures): the traces carry exactly the data given, in the documented form."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from kdviz.engine import StepRecord
from kdviz.experiments.scenario_specs import hosted_overrides, scenario_spec, teacher_cache_dir
from kdviz.figures import (
    LOG_FLOOR,
    PALETTE,
    RUN_COLORS,
    TERM_COLORS,
    accuracy_curves,
    attention_comparison,
    bias_chart,
    colors,
    comparison_lines,
    confusion_heatmap,
    heatmap_row,
    kd_diagram,
    loss_breakdown,
    metric_curves,
    per_class_bars,
    probability_bars,
    run_overlay,
    scenario_live_accuracy,
    series_lines,
    sweep_chart,
    sweep_table,
    validate,
)
from kdviz.hosted import HostedLimits

KD, CE = "α·KD  (α·T²·KL)", "(1−α)·CE"  # the loss breakdown's legend names (the browser tests look for them)


def rec(step, kd, ce, acc=None):
    return {"step": step, "total": kd + ce, "losses": {"kd": kd, "ce": ce}, "raw": {"kd": kd * 2, "kl": kd / 8, "ce": ce * 2},
            "test_acc": acc}


def by_name(fig: go.Figure) -> dict:
    return {t.name: t for t in fig.data}


# ----------------------------------------------------------------------------- probabilities
def test_probability_bars_linear_and_log():
    p1, p4 = [0.9, 0.1, 0.0], torch.tensor([0.5, 0.3, 0.2])
    fig = probability_bars({"T = 1": p1, "T = 4": p4})
    assert isinstance(fig, go.Figure) and [t.type for t in fig.data] == ["bar", "bar"]
    assert [t.name for t in fig.data] == ["T = 1", "T = 4"]
    assert list(fig.data[0].y) == p1 and list(fig.data[1].y) == pytest.approx([0.5, 0.3, 0.2])
    assert list(fig.data[0].x) == ["0", "1", "2"] and fig.layout.yaxis.type != "log"
    log = probability_bars({"T = 1": p1}, log=True, class_names=["a", "b", "c"])
    assert log.layout.yaxis.type == "log" and list(log.data[0].x) == ["a", "b", "c"]
    assert list(log.data[0].y) == [0.9, 0.1, LOG_FLOOR]  # 0 has no logarithm: drawn at the floor
    assert list(log.data[0].customdata) == p1  # the hover keeps the true value


def test_probability_bars_rejects_mismatched_classes():
    with pytest.raises(ValueError, match="same number of classes"):
        probability_bars({"a": [0.5, 0.5], "b": [0.2, 0.3, 0.5]})
    with pytest.raises(ValueError, match="at least one"):
        probability_bars({})
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        probability_bars({"a": [0.2, 0.3, 0.5]}, class_names=["x", "y"])


# ----------------------------------------------------------------------------- training curves
def test_loss_breakdown_stacks_weighted_terms_and_draws_total():
    records = [rec(10, 0.5, 1.0), rec(20, 0.3, 0.6)]
    fig = loss_breakdown(records)
    assert [t.name for t in fig.data] == [KD, CE, "total"]
    kd, ce, total = fig.data
    assert kd.stackgroup == ce.stackgroup == "terms" and total.stackgroup is None
    assert list(kd.x) == [10, 20] and list(kd.y) == [0.5, 0.3] and list(total.y) == [1.5, pytest.approx(0.9)]
    assert kd.line.color == TERM_COLORS["kd"] and ce.line.color == TERM_COLORS["ce"]
    raw = loss_breakdown(records, raw=True)
    # the raw view leaves out T²·KL: it is the KL line times T², which would dwarf the others
    assert [t.name for t in raw.data] == ["KL(teacher‖student) at T, no T²", "CE with true labels"]
    assert all(t.stackgroup is None for t in raw.data)
    assert list(raw.data[0].y) == [0.5 / 8, 0.3 / 8] and list(raw.data[1].y) == [2.0, 1.2]


def test_loss_breakdown_missing_and_non_finite_values_leave_no_point():
    r1 = StepRecord(step=1, epoch=0.1, total=2.0, losses={"ce": 2.0}, raw={"ce": 2.0}, lr=1e-3, T=None, alpha=None,
                    samples_per_s=1.0, elapsed_s=0.1, train_acc=0.1).to_dict()
    r3 = {**rec(3, float("nan"), 0.5), "total": float("inf")}
    fig = by_name(loss_breakdown([r1, rec(2, 0.2, 0.8), r3, {**rec(4, 0.1, 0.4), "losses": {"kd": 0.1, "ce": 0.4, "at": 0.3}}]))
    assert list(fig[CE].x) == [1, 2, 3, 4] and list(fig[CE].y) == [2.0, 0.8, 0.5, 0.4]
    assert list(fig[KD].x) == [2, 4] and list(fig[KD].y) == [0.2, 0.1]  # absent at 1, NaN at 3
    assert list(fig["total"].x) == [1, 2, 4]  # inf dropped
    assert list(fig["at"].y) == [0.3] and fig["at"].line.color not in {*RUN_COLORS.values(), *TERM_COLORS.values()}


def test_colours_keep_roles_and_terms_and_give_others_distinct_free_colours():
    palette = colors(["ce", "at", "distilled", "fitnet", "kd", "teacher"])
    assert (palette["ce"], palette["kd"]) == (TERM_COLORS["ce"], TERM_COLORS["kd"])
    assert (palette["distilled"], palette["teacher"]) == (RUN_COLORS["distilled"], RUN_COLORS["teacher"])
    assert palette["at"] != palette["fitnet"] and PALETTE[2] == palette["at"]  # the first free colour, whatever its position
    assert not {palette["at"], palette["fitnet"]} & {*RUN_COLORS.values(), *TERM_COLORS.values()}
    assert len(set(colors([f"run {i}" for i in range(5)]).values())) == 5


def test_metric_curves_follow_dotted_keys_and_scale_nothing():
    recs = [rec(1, 0.2, 0.5), rec(2, 0.1, 0.4), {"step": 3}]
    fig = metric_curves({"distilled": recs, "scratch": recs[:1]}, key="raw.ce")
    assert [t.name for t in fig.data] == ["distilled", "scratch"]
    assert list(fig.data[0].x) == [1, 2] and list(fig.data[0].y) == [1.0, 0.8]  # the step without raw.ce: no point
    assert fig.data[0].line.color == RUN_COLORS["distilled"] and fig.data[1].line.color == RUN_COLORS["scratch"]
    acc = metric_curves({"distilled": [{"step": 1, "train_acc": 0.5}]}, key="train_acc", percent=True)
    assert list(acc.data[0].y) == [0.5] and acc.layout.yaxis.tickformat.endswith("%")


def test_accuracy_curves_colour_a_run_over_seeds_alike_and_dash_each_seed():
    runs = {"gen0 · s0": [rec(1, 0, 1, 0.5)], "gen1 · s0": [rec(1, 0, 1, 0.6)], "gen0 · s1": [rec(1, 0, 1, 0.4)],
            "gen1 · s1": [rec(1, 0, 1, 0.7)], "scratch": [rec(1, 0, 1, 0.3)]}
    style = {d.name: (d.line.color, d.line.dash) for d in accuracy_curves(runs).data}
    assert style["gen0 · s0"][0] == style["gen0 · s1"][0] != style["gen1 · s0"][0] == style["gen1 · s1"][0]
    assert [style[n][1] for n in ("gen0 · s0", "gen0 · s1", "gen1 · s0", "gen1 · s1")] == ["solid", "dash", "solid", "dash"]
    assert len({c for c, _ in style.values()}) == 3  # gen0, gen1, scratch


def test_accuracy_curves_skip_missing_values_and_draw_the_teacher():
    fig = accuracy_curves({"scratch": [rec(1, 0, 1, None), rec(2, 0, 1, 0.5), rec(3, 0, 1, 0.7), rec(4, 0, 1, float("nan"))]})
    assert len(fig.data) == 1 and list(fig.data[0].x) == [2, 3] and list(fig.data[0].y) == [0.5, 0.7]
    assert fig.layout.yaxis.tickformat.endswith("%") and not fig.layout.shapes  # fractions shown as percent
    taught = accuracy_curves({"distilled": [rec(1, 0, 1, 0.9)]}, teacher_acc=0.9725)
    (shape,), (note,) = taught.layout.shapes, taught.layout.annotations
    assert shape.y0 == shape.y1 == 0.9725 and shape.xref == "paper" and note.text == "teacher 97.25%"
    assert not accuracy_curves({}, teacher_acc=float("nan")).layout.shapes  # no teacher accuracy, no line


def test_chart_builders_pass_plotly_validation():
    """Every builder yields a figure that survives Plotly's validation round trip (and JSON, as Streamlit sends it)."""
    recs = [{"step": s, "epoch": s / 5, "total": 1.0 / s, "train_acc": 0.5, "test_acc": 0.9 if s % 2 else None,
             "losses": {"kd": 0.6 / s, "ce": 0.4 / s}, "raw": {"kd": 2.0, "kl": 0.1, "ce": 0.4}} for s in range(1, 6)]
    figs = [metric_curves({"distilled": recs, "scratch": recs}, key="raw.ce"),
            accuracy_curves({"distilled": recs}, teacher_acc=0.95),
            loss_breakdown(recs), loss_breakdown(recs, raw=True),
            confusion_heatmap([[5, 1], [0, 4]], "c"), per_class_bars({"teacher": [1.0, float("nan")]}, highlight=1),
            scenario_live_accuracy({"teacher": recs, "distilled s0": recs}), run_overlay([("a", [1, 2], [0.1, 0.2])], "total", log_y=True),
            bias_chart({"distilled": {"bias": [0, 1], "digit": [0.1, 0.5], "overall": [0.9, 0.91]}}, 3, 0.5)]
    for fig in figs:
        validate(fig)
        json.loads(fig.to_json())
    stacked = loss_breakdown(recs)
    kd, ce, total = (stacked.data[i].y for i in range(3))
    assert all(abs(a + b - t) < 1e-12 for a, b, t in zip(kd, ce, total))  # the stacked terms reach the total line


def test_series_lines_and_run_overlay():
    lines = series_lines({"AT": ([0, 10, 20], [0.5, float("nan"), 0.1])}, log_y=True)
    assert lines.layout.yaxis.type == "log" and list(lines.data[0].x) == [0, 20] and list(lines.data[0].y) == [0.5, 0.1]
    with pytest.raises(ValueError, match="2 x values"):
        series_lines({"AT": ([0, 10], [1.0])})
    acc = run_overlay([("a · distilled", [1, 2], [0.5, 0.6]), ("b", [1], [0.4])], "test_acc", log_y=True)
    assert [t.name for t in acc.data] == ["a · distilled", "b"] and list(acc.data[0].y) == [0.5, 0.6]
    assert acc.layout.yaxis.type != "log" and acc.layout.yaxis.tickformat.endswith("%")  # accuracy: never log
    loss = run_overlay([("a", [1, 2], [2.0, 1.0])], "losses.kd", log_y=True)
    assert loss.layout.yaxis.type == "log" and not loss.layout.yaxis.tickformat


# ----------------------------------------------------------------------------- evaluation
def test_confusion_heatmap_colours_by_log_count_and_shows_counts():
    conf = [[8, 2], [0, 0]]
    fig = confusion_heatmap(conf, "m")
    trace = fig.data[0]
    assert trace.type == "heatmap" and [list(r) for r in trace.text] == conf
    assert np.allclose(trace.z, [[math.log10(9), math.log10(3)], [0.0, 0.0]])  # empty row stays 0
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.title.text == "m"
    with pytest.raises(ValueError, match="square"):
        confusion_heatmap([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="counts"):
        confusion_heatmap([[1, -2], [0, float("nan")]])


def test_per_class_bars_nan_becomes_gap():
    fig = per_class_bars({"teacher": [1.0, float("nan")], "student": [0.5, 0.25]})
    assert [t.name for t in fig.data] == ["teacher", "student"]
    assert list(fig.data[0].y) == [1.0, None] and list(fig.data[1].y) == [0.5, 0.25]
    assert fig.data[0].marker.color == RUN_COLORS["teacher"] and not fig.data[0].error_y.visible


def test_per_class_bars_mean_std_cells_and_highlight():
    cells = [{"mean": 0.9, "std": 0.02}, {"mean": float("nan"), "std": float("nan")}, {"mean": 0.0, "std": 0.0}]
    fig = per_class_bars({"teacher": [0.95, 0.9, 0.8], "scratch": cells}, highlight=2)
    scratch = by_name(fig)["scratch"]
    assert list(scratch.y) == [0.9, None, 0.0] and list(scratch.error_y.array) == [0.02, 0.0, 0.0] and scratch.error_y.visible
    (shade,) = fig.layout.shapes
    assert (shade.x0, shade.x1) == (1.5, 2.5) and "never seen" in fig.layout.annotations[0].text
    with pytest.raises(ValueError, match="'scratch'.*number"):
        per_class_bars({"scratch": ["high"]})


# ----------------------------------------------------------------------------- 2-D maps
def test_heatmap_row_scales():
    a, b = np.array([[0.0, 1.0], [2.0, 3.0]]), torch.tensor([[0.0, 6.0], [1.0, 1.0]])
    diff = np.array([[-0.5, 0.25], [0.0, 0.1]])
    fig = heatmap_row({"a": a, "b": b, "d": diff}, diverging={"d"}, shared_scale=True)
    ha, hb, hd = fig.data
    assert ha.zmax == hb.zmax == 6.0 and ha.zmin == 0
    assert hd.zmid == 0 and hd.zmin == -0.5 and hd.zmax == 0.5
    assert [a.text for a in fig.layout.annotations] == ["a", "b", "d"]
    own = heatmap_row({"a": a, "b": b})
    assert own.data[0].zmax == 3.0 and own.data[1].zmax == 6.0
    with pytest.raises(ValueError, match="2-D"):
        heatmap_row({"x": np.zeros(4)})
    with pytest.raises(ValueError, match="at least one"):
        heatmap_row({})


def test_attention_comparison():
    t, s = torch.rand(7, 7), torch.rand(7, 7)
    fig = attention_comparison(t, s, s - t, teacher_label="T", student_label="S")
    assert len(fig.data) == 3 and fig.data[2].zmid == 0
    assert [a.text for a in fig.layout.annotations] == ["T", "S", "S − T"]
    assert fig.data[0].zmax == fig.data[1].zmax == pytest.approx(float(torch.maximum(t, s).max()))  # one shared scale
    assert len(attention_comparison(t, s).data) == 2
    assert not math.isnan(float(fig.data[0].zmax))


# ----------------------------------------------------------------------------- experiments
def sweep_result(scratch: bool = True) -> dict:
    def cell(mean, std):
        return {"mean": mean, "std": std, "n": 2}
    rows = [{"value": v, "label": f"T={v}", "distilled": cell(m, 0.01), "scratch": cell(0.9, 0.02) if scratch else None,
             "gain": {"diff": m - 0.9, "within_noise": v == 1} if scratch else None, "best": v == 4, "vs_best": v == 1}
            for v, m in ((1, 0.91), (4, 0.95))]
    return {"param": "T", "seeds": [0, 1], "rows": rows}


def test_sweep_chart_and_table():
    fig = by_name(sweep_chart(sweep_result()))
    assert list(fig["distilled (mean ± std)"].y) == [0.91, 0.95] and list(fig["distilled (mean ± std)"].error_y.array) == [0.01, 0.01]
    assert list(fig["scratch (mean ± std)"].x) == [1, 4] and list(fig["distilled (mean ± std)"].text) == ["≈ best (within noise)", "best"]
    assert sweep_chart(sweep_result()).layout.xaxis.type == "log" and list(sweep_chart(sweep_result()).layout.xaxis.tickvals) == [1, 4]
    assert list(by_name(sweep_chart(sweep_result(scratch=False)))) == ["distilled (mean ± std)"]
    table = sweep_table(sweep_result())
    assert list(table["point"]) == ["T=1", "T=4"] and list(table["gain (pts)"]) == ["+1.00", "+5.00"]
    assert list(table["gain vs noise"]) == ["within noise", "beyond noise"] and list(table["vs best"]) == ["≈ best (within noise)", "best"]
    assert list(sweep_table(sweep_result(scratch=False))["scratch (%)"]) == ["n/a", "n/a"]


def test_comparison_lines_say_when_noise_is_unknown():
    comparison = {"accuracy": {"diff": 0.012, "stderr": 0.004, "within_noise": False}}
    one = comparison_lines({"seeds": [0], "comparison": comparison})
    assert one[0] == "Distilled − scratch, test accuracy: **+1.20 pts** (one seed: noise unknown)" and "3 or more" in one[1]
    three = comparison_lines({"seeds": [0, 1, 2], "comparison": comparison})
    assert three == ["Distilled − scratch, test accuracy: **+1.20 pts** (2·SE = 0.80 pts over 3 seeds) — beyond noise"]


def test_scenario_live_accuracy_colours_by_role_and_dashes_later_seeds():
    evals = {"teacher": [{"epoch": 1, "test_acc": 0.97}], "distilled s0": [{"epoch": 0.5, "test_acc": 0.8}, {"epoch": 1, "test_acc": None}],
             "distilled s1": [{"epoch": 0.5, "test_acc": 0.82}], "scratch s0": []}
    fig = scenario_live_accuracy(evals)
    assert [t.name for t in fig.data] == ["teacher", "distilled s0", "distilled s1"]  # no evaluations yet: no trace
    assert list(fig.data[1].x) == [0.5] and list(fig.data[1].y) == [0.8]
    assert fig.data[1].line.color == fig.data[2].line.color == RUN_COLORS["distilled"]
    assert (fig.data[1].line.dash, fig.data[2].line.dash) == ("solid", "dot")


def test_bias_chart_marks_the_bias():
    curve = {"bias": [0.0, 1.0, 2.0], "digit": [0.1, 0.6, 0.9], "overall": [0.97, 0.975, 0.96]}
    fig = bias_chart({"distilled": curve, "scratch": curve}, digit=3, bias=1.5)
    assert [t.name for t in fig.data] == ["distilled: digit 3", "distilled: all digits", "scratch: digit 3", "scratch: all digits"]
    assert list(fig.data[1].y) == curve["overall"] and fig.data[1].line.dash == "dot"
    (mark,) = fig.layout.shapes
    assert mark.x0 == mark.x1 == 1.5 and mark.yref == "paper"


def test_kd_diagram_is_an_svg_in_the_role_colours():
    svg = kd_diagram()
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "Soft targets" in svg and "(1 − α) · CE" in svg
    assert RUN_COLORS["distilled"] in svg and TERM_COLORS["ce"] in svg


# ----------------------------------------------------------------------------- job specs
def test_hosted_overrides_cap_seeds_width_and_epochs():
    asked = {"omit": 3, "seeds": 5, "epochs": 10.0}
    assert hosted_overrides("omitted-digit", asked, None) == (asked, [])  # not hosted: unchanged
    out, notes = hosted_overrides("omitted-digit", asked, HostedLimits(max_seeds=2, max_width=64, max_epochs=1.5))
    assert out["seeds"] == 2 and out["epochs"] == 1.5 and out["omit"] == 3 and asked["seeds"] == 5  # a copy
    assert out["student_hidden"] and max(out["student_hidden"]) == 64 and len(notes) == 3
    with pytest.raises(ValueError, match="Hinton"):
        hosted_overrides("hinton", {}, HostedLimits())


def test_scenario_spec(tmp_path):
    spec = scenario_spec("few-labels", {"seeds": 1}, "synthetic", "cpu", None, tmp_path)
    assert spec["fn"] == "kdviz.experiments.scenarios:few_labels_job" and spec["preset"] == "few-labels"
    assert spec["teacher_ckpt"] == "" and spec["cache_dir"] == teacher_cache_dir(tmp_path) != str(tmp_path)
    assert Path(spec["cache_dir"]).parent == tmp_path
    with pytest.raises(ValueError, match="'nope'"):
        scenario_spec("nope", {}, "synthetic", "cpu", None, tmp_path)


def test_calibration_figures():
    from kdviz.evaluation import reliability
    from kdviz.figures import divergence_contributions, reliability_diagram, schedule_preview
    from kdviz.methods.divergences import per_class_contributions

    logits = torch.tensor([[2.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    rel = {"teacher": reliability(logits, torch.tensor([0, 0, 0])), "distilled": reliability(logits, torch.tensor([0, 1, 0]))}
    fig = validate(reliability_diagram(rel))
    assert fig.data[0].name == "perfect calibration" and list(fig.data[0].x) == [0, 1]
    assert fig.data[1].name == f"teacher (ECE {100 * rel['teacher']['ece']:.2f}%)"
    assert len(fig.data[1].x) == 3 and list(fig.data[1].y) == [1.0, 1.0, 1.0]  # three non-empty bins, all right
    parts = per_class_contributions(torch.tensor([1.0, 0.0, -1.0]), torch.tensor([2.0, 0.0, 0.0]), 2.0)
    bars = validate(divergence_contributions(parts))
    assert len(bars.data) == 4 and all(len(b.y) == 3 for b in bars.data)
    assert bars.data[0].name.startswith("forward KL (KD) = ")
    sched = validate(schedule_preview([0, 0.5, 1], [4, 2.5, 1], [0.9, 0.7, 0.5]))
    assert [d.name for d in sched.data] == ["T", "α"] and sched.data[1].yaxis == "y2"
    json.loads(sched.to_json())
