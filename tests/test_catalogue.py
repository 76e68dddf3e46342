"""The distillation catalogue: ensemble targets and losses against hand-written references, the
config's refusals, the summary rows, and each experiment's events on synthetic data."""
from __future__ import annotations

import pytest
import torch

from kdviz.data import synthetic_bundle
from kdviz.engine import TrainConfig, make_model, run_to_end, train
from kdviz.experiments import catalogue as cat
from kdviz.experiments.catalogue_jobs import catalogue_events, catalogue_job, ensemble_events, ta_events
from kdviz.experiments.ensembles import EnsembleTeacher, check_class_counts, combine, kl_mean_offset, multi_teacher_kd
from kdviz.experiments.stats import compare
from kdviz.models import ModelConfig
from test_selfdistill import drain  # events and return value of a generator

torch.set_num_threads(1)
TINY = {"seeds": 2, "transfer": "subset:200", "epochs": 1, "hidden": (16,), "batch_size": 50}


def _logits(seed: int, shape=(5, 4)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


# ----------------------------------------------------------------------------- ensembles by hand
def test_combine_averages_logits_or_probabilities_like_a_hand_computation():
    z1, z2, T = _logits(1), _logits(2), 2.5
    assert torch.allclose(combine([z1, z2], "logits", T), (z1 + z2) / 2)
    p_hand = (torch.exp(z1 / T) / torch.exp(z1 / T).sum(-1, keepdim=True) + torch.exp(z2 / T) / torch.exp(z2 / T).sum(-1, keepdim=True)) / 2
    assert torch.allclose(torch.softmax(combine([z1, z2], "probs", T) / T, -1), p_hand, atol=1e-6)


def test_kl_mean_is_the_mean_of_per_teacher_kl_terms_and_moves_the_student_like_probs():
    zs, T = [_logits(3), _logits(4), _logits(5)], 3.0
    s = _logits(6).requires_grad_(True)
    q = torch.exp(s / T) / torch.exp(s / T).sum(-1, keepdim=True)
    hand = 0.0
    for z in zs:
        p = torch.exp(z / T) / torch.exp(z / T).sum(-1, keepdim=True)
        hand = hand + T * T * (p * (p.log() - q.log())).sum(-1).mean() / len(zs)
    loss = multi_teacher_kd(s, zs, T, "kl_mean")
    assert float(loss.detach()) == pytest.approx(float(hand.detach()), rel=1e-5)
    (g_mean,) = torch.autograd.grad(loss, s)
    probs_loss = multi_teacher_kd(s, zs, T, "probs")
    (g_probs,) = torch.autograd.grad(probs_loss, s)
    assert torch.allclose(g_mean, g_probs, atol=1e-6)  # same gradient ...
    assert float((loss - probs_loss).detach()) == pytest.approx(kl_mean_offset(zs, T), rel=1e-4)  # ... a constant apart


def test_teachers_with_different_class_counts_are_refused_by_name():
    with pytest.raises(ValueError, match="cnn: 10 classes, small: 5 classes"):
        check_class_counts({"cnn": 10, "small": 5})
    with pytest.raises(ValueError, match="2 to 4 teachers"):
        check_class_counts({"one": 10})
    a, b = make_model(ModelConfig(hidden=(8,))), make_model(ModelConfig(hidden=(8,), num_classes=5))
    with pytest.raises(ValueError, match="differ"):
        EnsembleTeacher({"ten": a, "five": b}, "logits", 2.0)
    with pytest.raises(ValueError, match="ensemble mode"):
        EnsembleTeacher({"x": a, "y": make_model(ModelConfig(hidden=(4,)))}, "median", 2.0)


def test_ensemble_teacher_outputs_the_combined_logits():
    a, b = make_model(ModelConfig(hidden=(8,)), 1), make_model(ModelConfig(hidden=(6,)), 2)
    x = torch.randn(7, 1, 28, 28)
    with torch.no_grad():
        out = EnsembleTeacher({"a": a, "b": b}, "logits", 4.0)(x)[0]
        assert torch.allclose(out, (a(x)[0] + b(x)[0]) / 2, atol=1e-6)


# ----------------------------------------------------------------------------- config and summaries
@pytest.mark.parametrize("changes, message", [
    ({"kind": "born-again", "generations": 0}, "generations"),
    ({"kind": "born-again", "generations": 7}, "generations"),
    ({"kind": "born-again", "generations": 3, "temperatures": (1.0,)}, "one temperature per taught generation"),
    ({"kind": "mutual", "peers": 1}, "2 to 4 peers"),
    ({"kind": "mutual", "peers": 5}, "2 to 4 peers"),
    ({"kind": "ensemble", "modes": ("logits", "vote")}, "ensemble mode"),
    ({"kind": "mutual", "seeds": 0}, "seeds"),
    ({"kind": "ta", "transfer": "subset:-3"}, "subset"),
    ({"kind": "nope"}, "experiment must be one of"),
])
def test_bad_requests_are_refused_before_anything_trains(changes, message):
    with pytest.raises(ValueError, match=message):
        cat.config_from_spec(changes)
    events = list(catalogue_job({"data": "synthetic", **changes}))
    assert [e["type"] for e in events] == ["error"] and message.split()[0] in events[0]["text"]


def test_a_lower_peer_cap_refuses_more_peers():
    base = cat.CatalogueConfig(kind="mutual", peers=2)
    assert cat.with_cap(base, 2).max_peers == 2
    with pytest.raises(ValueError, match="2 to 2 peers"):
        cat.config_from_spec({"kind": "mutual", "peers": 3, "max_peers": 2})


def test_summarise_gives_mean_std_and_the_2se_verdict():
    accs = {"a": [0.90, 0.91, 0.92], "b": [0.80, 0.81, 0.79], "c": [0.905, 0.93, 0.90]}
    rows = {r["name"]: r for r in cat.summarise(accs, {"a": ("b", "c")})}
    assert rows["a"]["mean"] == pytest.approx(0.91) and rows["a"]["std"] == pytest.approx(0.01)
    assert rows["a"]["vs"]["b"]["within_noise"] is False and rows["a"]["vs"]["c"]["within_noise"] is True
    assert rows["a"]["vs"]["c"]["within_noise"] == compare(accs["a"], accs["c"]).within_noise
    assert "within noise" in rows["a"]["vs"]["c"]["text"]
    gens = cat.summarise({"gen0": [0.8, 0.81], "gen1": [0.9, 0.91], "gen2": [0.9, 0.92]}, {"gen1": ("gen0",), "gen2": ("gen1",)})
    assert cat.gains_stop(gens).startswith("gains stop at gen2")


# ----------------------------------------------------------------------------- events on synthetic data
@pytest.fixture(scope="module")
def bundle():
    return synthetic_bundle(n_train=400, n_test=200, seed=2, noise=1.2)


def _result(events):
    assert events[-1]["type"] == "result", events[-1]
    return events[-1]


def test_born_again_job_reports_every_generation_and_their_ensemble(bundle):
    cfg = cat.CatalogueConfig(kind="born-again", generations=3, temperatures=(2.0, 6.0), **TINY)
    events = list(catalogue_events(cfg, bundle, "cpu"))
    rows = {r["name"]: r for r in _result(events)["rows"]}
    assert list(rows) == ["gen0", "gen1", "gen2", "ensemble of generations"]
    assert all(r["n"] == 2 for r in rows.values()) and set(rows["gen2"]["vs"]) == {"gen0", "gen1"}
    runs = {e["run"] for e in events if e["type"] == "record"}
    assert runs == {f"gen{g} · s{s}" for g in range(3) for s in range(2)}
    assert any("gains stop" in n or "every generation" in n for n in _result(events)["notes"])


def test_mutual_job_compares_each_peer_with_itself_alone(bundle):
    cfg = cat.CatalogueConfig(kind="mutual", peers=3, T=1.0, alpha=0.5, **TINY)
    rows = {r["name"]: r for r in _result(list(catalogue_events(cfg, bundle, "cpu")))["rows"]}
    for p in ("dml_a", "dml_b", "dml_c"):
        assert set(rows[f"{p} (mutual)"]["vs"]) == {f"{p} (alone)"}
    mean = rows["mean of peers (mutual)"]["accs"]
    assert mean == pytest.approx([sum(rows[f"{p} (mutual)"]["accs"][s] for p in ("dml_a", "dml_b", "dml_c")) / 3 for s in range(2)])


def _teacher(bundle, hidden, seed):
    model = make_model(ModelConfig(hidden=hidden), seed)
    run_to_end(train(model, bundle.train, TrainConfig(epochs=3, batch_size=50, lr=3e-3, seed=seed), device="cpu"))
    return model.eval()


def test_teacher_assistant_and_ensemble_jobs_with_given_teachers(bundle):
    t1, t2 = _teacher(bundle, (64,), 0), _teacher(bundle, (32,), 1)
    cfg = cat.CatalogueConfig(kind="ta", assistant_hidden=(32,), **{**TINY, "hidden": (4,)})
    gen = ta_events(cfg, bundle, torch.device("cpu"), teacher=t1)
    events, (rows, _) = drain(gen)
    assert [r["name"] for r in rows] == ["assistant", "via assistant", "direct", "scratch"]
    assert {e["run"].split(" · ")[0] for e in events if e["type"] == "record"} == {"assistant", "via assistant", "direct", "scratch"}
    cfg = cat.CatalogueConfig(kind="ensemble", modes=("logits", "kl_mean"), **TINY)
    events, (rows, _) = drain(ensemble_events(cfg, bundle, torch.device("cpu"), teachers={"big": t1, "small": t2}))
    names = [r["name"] for r in rows]
    assert names[:2] == ["from ensemble (logits)", "from ensemble (kl_mean)"] and names[-1] == "scratch"
    assert all(r["mean"] > 0.3 for r in rows)  # chance is 0.1

