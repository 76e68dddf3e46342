"""Born-again networks and deep mutual learning, end to end on small synthetic data."""
from __future__ import annotations

import pytest
import torch

from kdviz.data import synthetic_bundle
from kdviz.engine import TrainConfig, make_model
from kdviz.methods.objective import DistillConfig
from kdviz.models import ModelConfig
from kdviz.experiments.selfdistill import PEER_RUNS, born_again, check_peers, mutual_learning, mutual_learning_peers

torch.set_num_threads(1)

MLP = ModelConfig("mlp", hidden=(16,))
CFG = TrainConfig(epochs=2, batch_size=32, log_every=4)


@pytest.fixture(scope="module")
def data():
    return synthetic_bundle(n_train=256, n_test=128, seed=3, noise=1.5)


def drain(gen):
    """All events of a self-distillation generator plus its return value."""
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def test_born_again_runs_n_generations_and_reports_n_accuracies(data):
    events, models = drain(born_again(MLP, data.train, CFG, DistillConfig(T=4.0, alpha=0.7), 3, data.test, "cpu", seed=5))
    assert len(models) == 3
    records = [e for e in events if e["type"] == "record"]
    assert {e["generation"] for e in records} == {0, 1, 2}
    assert all(e["run"] == f"gen{e['generation']}" for e in records)
    # generation 0 learns from labels only; later generations are distilled from their predecessor
    assert all(set(e["losses"]) == {"ce"} for e in records if e["generation"] == 0)
    assert all(set(e["losses"]) == {"kd", "ce"} for e in records if e["generation"] > 0)
    result = events[-1]
    assert result["type"] == "result" and result["generations"] == 3
    assert len(result["test_acc"]) == 3 and all(acc > 0.3 for acc in result["test_acc"])  # chance = 0.1
    per_gen = [e for e in events if e["type"] == "generation"]
    assert [g["generation"] for g in per_gen] == [0, 1, 2]
    assert per_gen[0]["agreement_with_teacher"] is None and all(0 <= g["agreement_with_teacher"] <= 1 for g in per_gen[1:])
    assert 0.3 < result["ensemble_acc"] <= 1.0
    # each generation starts from fresh weights, not a copy of its teacher
    assert not torch.equal(models[0].head.weight, models[1].head.weight)


def test_born_again_is_deterministic_and_checks_generations(data):
    small = TrainConfig(epochs=1, batch_size=32, log_every=4)
    runs = [drain(born_again(MLP, data.train, small, DistillConfig(), 2, data.test, "cpu", seed=1))[0][-1] for _ in range(2)]
    assert runs[0]["test_acc"] == runs[1]["test_acc"]
    with pytest.raises(ValueError, match="generations"):
        next(born_again(MLP, data.train, small, DistillConfig(), 0, data.test, "cpu"))


def test_mutual_learning_trains_both_students(data):
    events, (model_a, model_b) = drain(mutual_learning(MLP, ModelConfig("mlp", hidden=(12,)), data.train, CFG,
                                                       T=1.0, alpha=0.5, test=data.test, device="cpu"))
    records = [e for e in events if e["type"] == "record"]
    assert {e["run"] for e in records} == {"dml_a", "dml_b"}
    for run in ("dml_a", "dml_b"):
        mine = [e for e in records if e["run"] == run]
        assert mine[-1]["done"] and mine[-1]["step"] == 16  # 2 epochs × 8 batches, in lockstep
        assert all(set(e["losses"]) == {"kd", "ce"} and e["total"] == pytest.approx(sum(e["losses"].values()), rel=1e-5) for e in mine)
    result = events[-1]
    assert result["type"] == "result"
    assert all(result["test_acc"][run] > 0.3 for run in ("dml_a", "dml_b"))  # chance = 0.1
    assert 0 <= result["agreement"] <= 1


def _final_head(data, cfg_b: ModelConfig, alpha: float) -> torch.Tensor:
    small = TrainConfig(epochs=1, batch_size=32, log_every=8)
    _, (model_a, _) = drain(mutual_learning(MLP, cfg_b, data.train, small, T=2.0, alpha=alpha, device="cpu"))
    return model_a.head.weight.detach()


def test_mutual_learning_couples_the_students_and_is_deterministic(data):
    b1, b2 = ModelConfig("mlp", hidden=(12,)), ModelConfig("mlp", hidden=(20,))
    assert torch.equal(_final_head(data, b1, 0.5), _final_head(data, b1, 0.5))  # same seed, same result
    assert not torch.equal(_final_head(data, b1, 0.5), _final_head(data, b2, 0.5))  # A learns from B
    assert torch.equal(_final_head(data, b1, 0.0), _final_head(data, b2, 0.0))  # alpha = 0: no coupling


def test_mutual_learning_first_step_losses_match_a_reference(data):
    """One full-batch step: each student's logged losses against KL/CE computed here from fresh models."""
    n, T, alpha = len(data.train), 3.0, 0.6
    cfg_b = ModelConfig("mlp", hidden=(12,))
    events, _ = drain(mutual_learning(MLP, cfg_b, data.train, TrainConfig(epochs=1, batch_size=n, log_every=1, seed=4),
                                      T=T, alpha=alpha, device="cpu"))
    records = {e["run"]: e for e in events if e["type"] == "record"}
    with torch.no_grad():  # the same initial weights (seed, seed + 1), before any update
        z = {"dml_a": make_model(MLP, 4)(data.train.x)[0], "dml_b": make_model(cfg_b, 5)(data.train.x)[0]}
    for me, peer in (("dml_a", "dml_b"), ("dml_b", "dml_a")):
        p_peer, p_me = torch.softmax(z[peer] / T, -1), torch.softmax(z[me] / T, -1)
        kl = float((p_peer * (p_peer.log() - p_me.log())).sum(-1).mean())
        ce = float(-torch.log_softmax(z[me], -1)[torch.arange(n), data.train.y].mean())
        assert records[me]["losses"]["kd"] == pytest.approx(alpha * T * T * kl, rel=1e-4)
        assert records[me]["losses"]["ce"] == pytest.approx((1 - alpha) * ce, rel=1e-4)


def test_born_again_uses_one_temperature_per_taught_generation(data):
    small = TrainConfig(epochs=1, batch_size=64, log_every=2)
    events, _ = drain(born_again(MLP, data.train, small, DistillConfig(T=4.0, alpha=0.7), 3, data.test, "cpu", temperatures=(1.5, 6.0)))
    temps = {e["generation"]: e["T"] for e in events if e["type"] == "record" and e["generation"] > 0}
    assert temps == {1: 1.5, 2: 6.0}
    with pytest.raises(ValueError, match="one temperature per taught generation"):
        next(born_again(MLP, data.train, small, DistillConfig(), 3, data.test, "cpu", temperatures=(2.0,)))
    with pytest.raises(ValueError, match="temperature"):
        next(born_again(MLP, data.train, small, DistillConfig(), 2, data.test, "cpu", temperatures=(-1.0,)))


def test_three_peers_each_learn_from_the_mean_of_their_kl_terms(data):
    """One full-batch step with three peers: each logged KD term is the mean of its two KL terms, by hand."""
    n, T, alpha = len(data.train), 2.0, 0.5
    cfgs = [MLP, ModelConfig("mlp", hidden=(12,)), ModelConfig("mlp", hidden=(8,))]
    events, models = drain(mutual_learning_peers(cfgs, data.train, TrainConfig(epochs=1, batch_size=n, log_every=1, seed=7),
                                                 T=T, alpha=alpha, device="cpu"))
    assert len(models) == 3
    records = {e["run"]: e for e in events if e["type"] == "record"}
    with torch.no_grad():
        z = {name: make_model(c, 7 + i)(data.train.x)[0] for i, (name, c) in enumerate(zip(PEER_RUNS, cfgs))}
    for me in PEER_RUNS[:3]:
        log_q = torch.log_softmax(z[me] / T, -1)
        kls = [float((torch.softmax(z[o] / T, -1) * (torch.log_softmax(z[o] / T, -1) - log_q)).sum(-1).mean())
               for o in PEER_RUNS[:3] if o != me]
        assert records[me]["losses"]["kd"] == pytest.approx(alpha * T * T * sum(kls) / 2, rel=1e-4)


@pytest.mark.parametrize("n", [0, 1, 5, True, 2.0])
def test_mutual_learning_refuses_a_bad_number_of_peers(data, n):
    with pytest.raises(ValueError, match="2 to 4 peers"):
        check_peers(n)
    with pytest.raises(ValueError, match="2 to 2 peers"):
        next(mutual_learning_peers([MLP] * 3, data.train, CFG, device="cpu", max_peers=2))
