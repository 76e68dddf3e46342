"""Figure builders (kdviz.figures): the traces carry exactly the data given, in the documented form."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from kdviz.engine import StepRecord
from kdviz.figures import (
    LOG_FLOOR,
    accuracy_curves,
    attention_comparison,
    confusion_heatmap,
    heatmap_row,
    loss_breakdown,
    per_class_bars,
    probability_bars,
    series_lines,
)


def rec(step, kd, ce, acc=None):
    return {"step": step, "total": kd + ce, "losses": {"kd": kd, "ce": ce}, "raw": {"kd": kd * 2, "kl": kd / 8, "ce": ce * 2},
            "test_acc": acc}


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


def test_loss_breakdown_stacks_weighted_terms_and_draws_total():
    records = [rec(10, 0.5, 1.0), rec(20, 0.3, 0.6)]
    fig = loss_breakdown(records)
    names = [t.name for t in fig.data]
    assert names == ["kd", "ce", "total"]
    kd, ce, total = fig.data
    assert kd.stackgroup == ce.stackgroup == "terms" and total.stackgroup is None
    assert list(kd.x) == [10, 20] and list(kd.y) == [0.5, 0.3] and list(total.y) == [1.5, pytest.approx(0.9)]
    raw = loss_breakdown(records, raw=True)
    assert [t.name for t in raw.data] == ["kd", "kl", "ce"] and all(t.stackgroup is None for t in raw.data)
    assert list(raw.data[1].y) == [0.5 / 8, 0.3 / 8]


def test_loss_breakdown_accepts_step_records_and_missing_terms():
    r1 = StepRecord(step=1, epoch=0.1, total=2.0, losses={"ce": 2.0}, raw={"ce": 2.0}, lr=1e-3, T=None, alpha=None,
                    samples_per_s=1.0, elapsed_s=0.1, train_acc=0.1)
    r2 = {**rec(2, 0.2, 0.8)}
    fig = loss_breakdown([r1, r2])
    ce = next(t for t in fig.data if t.name == "ce")
    kd = next(t for t in fig.data if t.name == "kd")
    assert list(ce.y) == [2.0, 0.8] and list(kd.y) == [None, 0.2]  # missing → gap


def test_accuracy_curves_single_runs_skip_missing_values():
    fig = accuracy_curves({"scratch": [rec(1, 0, 1, None), rec(2, 0, 1, 0.5), rec(3, 0, 1, 0.7)]})
    assert len(fig.data) == 1 and list(fig.data[0].x) == [2.0, 3.0] and list(fig.data[0].y) == [0.5, 0.7]
    assert fig.layout.yaxis.tickformat == ".1%"


def test_accuracy_curves_band_is_mean_and_population_std():
    seeds = [[rec(1, 0, 1, 0.5), rec(2, 0, 1, 0.8)], [rec(1, 0, 1, 0.7), rec(2, 0, 1, 0.9), rec(3, 0, 1, 0.95)]]
    fig = accuracy_curves({"distilled": seeds, "other": [rec(1, 0, 1, 0.1)]})
    upper, lower, mean, other = fig.data
    assert list(mean.x) == [1.0, 2.0]  # only x values every seed has
    assert list(mean.y) == pytest.approx([0.6, 0.85])
    std = np.std([[0.5, 0.8], [0.7, 0.9]], axis=0)
    assert list(upper.y) == pytest.approx(list(np.array([0.6, 0.85]) + std))
    assert list(lower.y) == pytest.approx(list(np.array([0.6, 0.85]) - std)) and lower.fill == "tonexty"
    assert other.name == "other"
    lines = accuracy_curves({"distilled": seeds}, band=False)
    assert [t.name for t in lines.data] == ["distilled (seed 0)", "distilled (seed 1)"]


def test_confusion_heatmap_counts_and_normalised():
    conf = [[8, 2], [0, 0]]
    fig = confusion_heatmap(conf)
    assert fig.data[0].type == "heatmap" and [list(r) for r in fig.data[0].z] == [[8, 2], [0, 0]]
    assert fig.layout.yaxis.autorange == "reversed"
    norm = confusion_heatmap(conf, normalise=True)
    assert [list(r) for r in norm.data[0].z] == [[0.8, 0.2], [0.0, 0.0]]  # empty row stays 0, no NaN
    with pytest.raises(ValueError, match="square"):
        confusion_heatmap([[1, 2, 3], [4, 5, 6]])


def test_per_class_bars_nan_becomes_gap():
    fig = per_class_bars({"teacher": [1.0, float("nan")], "student": [0.5, 0.25]})
    assert [t.name for t in fig.data] == ["teacher", "student"]
    assert list(fig.data[0].y) == [1.0, None] and list(fig.data[1].y) == [0.5, 0.25]


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


def test_attention_comparison_and_series_lines():
    t, s = torch.rand(7, 7), torch.rand(7, 7)
    fig = attention_comparison(t, s, s - t, teacher_label="T", student_label="S")
    assert len(fig.data) == 3 and fig.data[2].zmid == 0
    assert [a.text for a in fig.layout.annotations] == ["T", "S", "S − T"]
    assert len(attention_comparison(t, s).data) == 2
    lines = series_lines([0, 10], {"AT": [0.5, 0.1]}, log_y=True)
    assert lines.layout.yaxis.type == "log" and list(lines.data[0].y) == [0.5, 0.1]
    with pytest.raises(ValueError, match="2 x values"):
        series_lines([0, 10], {"AT": [1.0]})
    assert not math.isnan(float(fig.data[0].zmax))
