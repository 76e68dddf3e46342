"""Sweeps: the grid is validated, seeds are aggregated correctly, born-again generations chain."""
import statistics

import pytest
import torch

from kdviz import data as kdata
from kdviz.experiments import sweeps as sw

TINY = (("student_hidden", (16,)), ("teacher_hidden", (32,)), ("teacher_epochs", 2), ("epochs", 3),
        ("batch_size", 32), ("n_labelled", 60), ("lr", 1e-2))


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bundle():
    return kdata.synthetic_bundle(n_train=200, n_test=100, seed=2)


def _points(rows):
    """(value, role, seed, accuracy) tuples → point dicts."""
    return [{"value": v, "role": r, "seed": s, "accuracy": a} for v, r, s, a in rows]


def test_aggregate_means_stds_and_shared_baseline():
    points = _points([
        (None, "scratch", 0, 0.80), (None, "scratch", 1, 0.82), (None, "scratch", 2, 0.81),
        (1.0, "distilled", 0, 0.85), (1.0, "distilled", 1, 0.86), (1.0, "distilled", 2, 0.84),
        (4.0, "distilled", 0, 0.90), (4.0, "distilled", 1, 0.91), (4.0, "distilled", 2, 0.92),
    ])
    rows = sw.aggregate(points, "T", [4.0, 1.0])
    assert [r["value"] for r in rows] == [4.0, 1.0]  # the order of the grid, not of the points
    t4, t1 = rows
    assert t4["distilled"]["mean"] == pytest.approx(0.91)
    assert t4["distilled"]["std"] == pytest.approx(statistics.stdev([0.90, 0.91, 0.92]))
    assert t4["distilled"]["n"] == 3
    assert t1["scratch"]["mean"] == pytest.approx(0.81)  # the shared baseline
    assert t4["gain"]["diff"] == pytest.approx(0.10) and not t4["gain"]["within_noise"]
    assert t4["best"] and not t1["best"]
    assert not t1["vs_best"]  # 0.85 vs 0.91 with std 0.01: a real difference


def test_aggregate_matches_scratch_by_value_for_width_and_flags_noise():
    points = _points([
        (50, "scratch", 0, 0.70), (50, "scratch", 1, 0.90), (50, "distilled", 0, 0.75), (50, "distilled", 1, 0.88),
        (100, "scratch", 0, 0.60), (100, "scratch", 1, 0.61), (100, "distilled", 0, 0.82), (100, "distilled", 1, 0.84),
    ])
    w50, w100 = sw.aggregate(points, "width", [50, 100])
    assert w50["scratch"]["mean"] == pytest.approx(0.80) and w100["scratch"]["mean"] == pytest.approx(0.605)
    assert w50["gain"]["within_noise"]  # +0.015 with a large spread
    assert w100["best"] and w50["vs_best"]  # 0.815 vs 0.83 is within noise of the best
    assert w50["label"] == "50-50"


def test_aggregate_refuses_a_missing_point():
    with pytest.raises(ValueError, match="no distilled result"):
        sw.aggregate(_points([(None, "scratch", 0, 0.5)]), "T", [2.0])


def test_grid_validation():
    assert sw.SweepConfig("T", (1, 2)).values == (1.0, 2.0)
    with pytest.raises(ValueError, match="temperature"):
        sw.SweepConfig("T", (1, 0))
    with pytest.raises(ValueError, match="alpha"):
        sw.SweepConfig("alpha", (0.5, 1.2))
    with pytest.raises(ValueError, match="positive integers"):
        sw.SweepConfig("width", (10, 2.5))
    with pytest.raises(ValueError, match="1, 2, ..., G"):
        sw.SweepConfig("generations", (1, 3))
    with pytest.raises(ValueError, match="method variants"):
        sw.SweepConfig("methods", ("logit", "magic"))
    with pytest.raises(ValueError, match="sweep parameter"):
        sw.SweepConfig("depth", (1,))
    with pytest.raises(ValueError, match="unknown scenario setting"):
        sw.SweepConfig("T", (1,), overrides=(("temp", 1),))


def test_exercises_use_at_least_three_seeds():
    for name, (_, cfg) in sw.EXERCISES.items():
        assert len(cfg.seeds) >= 3, name
    assert sw.exercise("accuracy-vs-temperature").values == (1, 2, 4, 8, 16, 32)
    assert sw.exercise("born-again").values == (1, 2, 3)


def test_plans():
    t = sw.plan_seed(sw.SweepConfig("T", (2, 8), overrides=TINY))
    assert [(p.value, p.role) for p in t] == [(None, "scratch"), (2.0, "distilled"), (8.0, "distilled")]
    assert [p.distill.T for p in t[1:]] == [2.0, 8.0]
    w = sw.plan_seed(sw.SweepConfig("width", (8, 16), overrides=TINY))
    assert [(p.value, p.role, p.scenario.student.model.hidden) for p in w] == [
        (8, "scratch", (8, 8)), (8, "distilled", (8, 8)), (16, "scratch", (16, 16)), (16, "distilled", (16, 16))]
    m = {p.value: p.distill for p in sw.plan_seed(sw.SweepConfig("methods", sw.METHOD_VARIANTS, overrides=TINY))[1:]}
    assert m["logit"].terms == () and m["logit"].alpha == 0.9
    assert m["feature"].alpha == 0.0 and [t.method for t in m["feature"].terms] == ["fitnet"]
    assert m["logit+feature"].alpha == 0.9 and [t.method for t in m["logit+feature"].terms] == ["fitnet"]


def test_born_again_generation_k_is_taught_by_generation_k_minus_1(bundle, monkeypatch):
    seen = []
    real = sw.train_network

    def spy(recipe, data, seed, device, run, *, teacher=None, **kw):
        model = yield from real(recipe, data, seed, device, run, teacher=teacher, **kw)
        seen.append((run, teacher, model))
        return model

    monkeypatch.setattr(sw, "train_network", spy)
    cfg = sw.SweepConfig("generations", (1, 2, 3), seeds=(0,), overrides=TINY)
    result = sw.run_sweep(cfg, bundle, device="cpu")
    runs = {run: (teacher, model) for run, teacher, model in seen}
    assert runs["gen 2 s0"][0] is runs["gen 1 s0"][1]
    assert runs["gen 3 s0"][0] is runs["gen 2 s0"][1]
    assert runs["scratch s0"][0] is None
    assert [r["label"] for r in result["rows"]] == ["gen 1", "gen 2", "gen 3"]


def test_sweep_job_end_to_end(bundle):
    spec = {"data": "synthetic", "sweep": {"param": "T", "values": [1, 4], "seeds": 2, "overrides": dict(TINY)}}
    events = list(sw.sweep_job(spec))
    assert events[-1]["type"] == "result", events[-1]
    res = events[-1]
    assert len(res["points"]) == 2 * 3  # 2 seeds × (scratch + 2 temperatures)
    for row in res["rows"]:
        accs = [p["accuracy"] for p in res["points"] if p["value"] == row["value"]]
        assert row["distilled"]["mean"] == pytest.approx(sum(accs) / 2)
        assert row["distilled"]["n"] == 2
    assert any("run 6/6" in e["text"] for e in events if e["type"] == "status")


def test_sweep_job_errors_are_events():
    assert list(sw.sweep_job({"sweep": {"param": "depth"}}))[-1]["type"] == "error"
    assert list(sw.sweep_job({"exercise": "nope"}))[-1]["text"].startswith("unknown exercise")


def test_cli_sweep_builds_the_config(monkeypatch, capsys):
    from kdviz.cli import main

    captured = {}

    def fake_run(cfg, bundle, **kw):
        captured["cfg"] = cfg
        return {"param": cfg.param, "scenario": cfg.scenario, "data": {"name": "x"}, "seeds": list(cfg.seeds), "rows": []}

    monkeypatch.setattr(sw, "run_sweep", fake_run)
    assert main(["sweep", "alpha", "--values", "0", "0.5", "--seeds", "3", "--data", "synthetic"]) == 0
    assert captured["cfg"].values == (0.0, 0.5) and captured["cfg"].seeds == (0, 1, 2)
    assert main(["sweep", "--exercise", "born-again", "--data", "synthetic"]) == 0
    assert captured["cfg"].param == "generations"
    assert "sweep of generations" in capsys.readouterr().out
