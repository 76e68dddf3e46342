"""Run both (kdviz/interview/runner.py): the job's events, its stop on a NaN, and each bug's measured effect."""
from __future__ import annotations

import math

import pytest
import torch

from kdviz import data as kdata
from kdviz.engine import make_model
from kdviz.interview.bugs import BUGS, get_bug
from kdviz.interview.runner import STUDENT, LogitsOnly, load_teacher, measure, run_both_job, summary, token_batch


def events(spec):
    return list(run_both_job({"data": "synthetic", "device": "cpu", **spec}))


def test_run_both_trains_both_runs_from_the_same_start():
    out = events({"bug": "missing_t2", "steps": 6})
    assert [e["type"] for e in out if e["type"] != "record"] == ["status", "status", "result"]
    records = {run: [e for e in out if e["type"] == "record" and e["run"] == run] for run in ("buggy", "fixed")}
    assert [r["step"] for r in records["buggy"]] == [r["step"] for r in records["fixed"]] == list(range(1, 7))
    first_b, first_f = records["buggy"][0], records["fixed"][0]
    # same weights and batch at step 1: the buggy loss's soft part is the fixed one's / T² (alpha = 0.9 on it)
    assert first_b["total"] < first_f["total"] and first_b["grad_norm"] < first_f["grad_norm"]
    assert all(r["finite"] for rs in records.values() for r in rs)
    assert records["fixed"][-1]["test_acc"] is not None
    result = out[-1]
    assert result["bug"] == "missing_t2" and result["runs"]["fixed"]["steps"] == 6


def test_a_non_finite_loss_stops_that_run_only():
    records = [{"step": 1, "total": 1.0, "grad_norm": 2.0, "finite": True, "test_acc": 0.5},
               {"step": 2, "total": math.nan, "grad_norm": math.nan, "finite": False, "test_acc": 0.4}]
    s = summary(records)
    assert s["nonfinite_step"] == 2 and s["final_loss"] == 1.0 and s["mean_grad_norm"] == 2.0 and s["steps"] == 2


@pytest.mark.parametrize("spec, message", [({"bug": "nope"}, "unknown bug id 'nope'"),
                                           ({"bug": "missing_t2", "steps": 0}, "steps must be a whole number >= 1"),
                                           ({"bug": "missing_t2", "steps": "5"}, "steps must be a whole number >= 1"),
                                           ({"bug": "missing_t2", "data": "mnist"}, "data source must be one of")])
def test_bad_spec_is_one_error_event(spec, message):
    out = list(run_both_job({"data": "synthetic", "device": "cpu", **spec}))
    assert len(out) == 1 and out[0]["type"] == "error" and message in out[0]["text"]


def test_token_batch_pads_with_ignored_labels():
    x, y = torch.randn(12, 1, 28, 28), torch.arange(12) % 10
    xs, ys = token_batch(x, y, 4, torch.Generator().manual_seed(0))
    assert xs.shape == (3, 4, 1, 28, 28) and ys.shape == (3, 4)
    pad = ys == -100
    assert bool((ys[:, 0] != -100).all())  # every sequence keeps at least one token
    assert bool((xs[pad] == x.min()).all())
    assert torch.equal(ys[~pad], y.reshape(3, 4)[~pad])


def test_measured_effect_of_every_bug(capsys):
    """The table in the report: loss and gradient norm of the buggy vs the fixed step on one real batch."""
    bundle = kdata.synthetic_bundle()
    x, y = bundle.train.x[:64], bundle.train.y[:64]
    student, teacher = LogitsOnly(make_model(STUDENT, 0)), load_teacher(torch.device("cpu"))
    rows = {}
    for bug in BUGS:
        xb, yb = token_batch(x, y, 8, torch.Generator().manual_seed(0)) if bug.tokens else (x, y)
        torch.manual_seed(0)
        rows[bug.id] = measure(bug, student, teacher, xb, yb)
    with capsys.disabled():
        print(f"\n{'bug':20} {'loss buggy':>11} {'loss fixed':>11} {'|g| buggy':>10} {'|g| fixed':>10}")
        for name, r in rows.items():
            print(f"{name:20} {r['buggy']['loss']:11.4f} {r['fixed']['loss']:11.4f} {r['buggy']['grad_norm']:10.4f} {r['fixed']['grad_norm']:10.4f}")
    a = {name: r for name, r in rows.items()}
    assert a["alpha_swapped"]["buggy"]["loss"] != pytest.approx(a["alpha_swapped"]["fixed"]["loss"])
    assert a["missing_t2"]["buggy"]["grad_norm"] < a["missing_t2"]["fixed"]["grad_norm"]
    assert a["mean_reduction"]["buggy"]["grad_norm"] < a["mean_reduction"]["fixed"]["grad_norm"]
    assert a["padded_batchmean"]["buggy"]["loss"] > a["padded_batchmean"]["fixed"]["loss"]
    assert all(math.isfinite(r["fixed"]["loss"]) for r in rows.values())
    assert get_bug("log_of_softmax").T == 1.0  # fp16 + T = 1: a gap of 17 is enough to overflow (see test_interview_bugs)


def test_run_both_figure_marks_a_nan_and_refuses_unknown_metrics():
    from kdviz.figures.interview import run_both_figure

    runs = {"buggy": [{"step": 1, "total": 2.0, "finite": True}, {"step": 2, "total": math.nan, "finite": False}],
            "fixed": [{"step": 1, "total": 1.0, "finite": True}, {"step": 2, "total": 0.5, "finite": True}]}
    fig = run_both_figure(runs, "total")
    lines = {t.name: list(t.x) for t in fig.data if t.mode == "lines+markers"}
    assert lines == {"buggy": [1], "fixed": [1, 2]}  # the NaN is not drawn as a point…
    assert [t.text[0] for t in fig.data if t.mode == "markers+text"] == ["NaN/inf at step 2"]  # …but marked
    with pytest.raises(ValueError, match="metric must be one of"):
        run_both_figure(runs, "bogus")
