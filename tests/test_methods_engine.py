"""Method terms wired into the Objective and the engine: keys, weights, layers, adapters, errors."""
from __future__ import annotations

import pytest
import torch

from kdviz import engine, losses
from kdviz.data import HIDDEN_LABEL, synthetic_bundle
from kdviz.engine import TrainConfig, make_model, run_to_end, train
from kdviz.methods import METHODS, DistillConfig, Term, build_objective, default_layer
from kdviz.methods.at import at_loss
from kdviz.methods.dkd import DKD_ALPHA, DKD_BETA, dkd_loss
from kdviz.methods.fitnet import fitnet_loss
from kdviz.methods.rkd import RKD_ANGLE_MAX_BATCH, rkd_distance_loss
from kdviz.methods.sp import sp_loss
from kdviz.models import ModelConfig, feature_shapes

torch.set_num_threads(1)

CNN_S = ModelConfig("cnn", channels=(4, 8))
CNN_T = ModelConfig("cnn", channels=(6, 12))
MLP_S = ModelConfig("mlp", hidden=(24, 16))
FEATURE_TERMS = tuple(Term(m.name, m.default_weight) for m in METHODS.values() if not m.on_logits)
FEATURE_KEYS = {"kd", "ce", *(t.method for t in FEATURE_TERMS)}


@pytest.fixture(scope="module")
def data():
    return synthetic_bundle(n_train=128, n_test=64, seed=1)


def forward_pair(student, teacher, n: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    s_logits, s_feats = student(x)
    with torch.no_grad():
        t_logits, t_feats = teacher(x)
    return s_logits, s_feats, t_logits, t_feats, y


def test_feature_terms_appear_weighted_and_wired_to_the_right_layers():
    student, teacher = make_model(CNN_S, 0), make_model(CNN_T, 1).eval()
    obj = build_objective(DistillConfig(T=3.0, alpha=0.7, terms=FEATURE_TERMS), student, teacher)
    s_logits, s_feats, t_logits, t_feats, y = forward_pair(student, teacher)
    weighted, raw = obj(s_logits, s_feats, t_logits, t_feats, y, 3.0, 0.7)
    assert set(weighted) == FEATURE_KEYS
    for term in FEATURE_TERMS:
        assert torch.allclose(weighted[term.method], term.weight * raw[term.method])
    # independent recomputation from the named layers (defaults: last stage; pooled for embeddings)
    assert torch.allclose(raw["at"], at_loss(s_feats["stage2"], t_feats["stage2"]))
    assert torch.allclose(raw["sp"], sp_loss(s_feats["stage2"], t_feats["stage2"]))
    assert torch.allclose(raw["rkd_d"], rkd_distance_loss(s_feats["pooled"], t_feats["pooled"]))
    assert torch.allclose(raw["fitnet"], fitnet_loss(obj.adapters["fitnet"](s_feats["stage2"]), t_feats["stage2"]))
    assert torch.allclose(weighted["kd"], 0.7 * losses.kd_loss(s_logits, t_logits, 3.0))
    assert torch.allclose(weighted["ce"], 0.3 * losses.ce_loss(s_logits, y))


def test_engine_records_sum_weighted_terms_to_total(data):
    student, teacher = make_model(CNN_S, 0), make_model(CNN_T, 1)
    recs = run_to_end(train(student, data.train, TrainConfig(batch_size=32, max_steps=3, log_every=1),
                            teacher=teacher, distill=DistillConfig(terms=FEATURE_TERMS), device="cpu"))
    assert len(recs) == 3
    for rec in recs:
        assert set(rec.losses) == FEATURE_KEYS
        assert rec.total == pytest.approx(sum(rec.losses.values()), rel=1e-5)


def test_dkd_replaces_kd_and_keeps_ce_weight():
    student, teacher = make_model(MLP_S, 0), make_model(MLP_S, 1).eval()
    obj = build_objective(DistillConfig(T=4.0, alpha=0.6, terms=(Term("dkd", 2.0),)), student, teacher)
    s_logits, s_feats, t_logits, t_feats, y = forward_pair(student, teacher)
    weighted, raw = obj(s_logits, s_feats, t_logits, t_feats, y, 4.0, 0.6)
    assert set(weighted) == {"ce", "dkd"}
    assert torch.allclose(weighted["dkd"], 2.0 * dkd_loss(s_logits, t_logits, y, DKD_ALPHA, DKD_BETA, 4.0))
    assert torch.allclose(weighted["ce"], 0.4 * losses.ce_loss(s_logits, y))
    # hidden labels: DKD's target class is the teacher's prediction there
    hidden = y.clone()
    hidden[:3] = HIDDEN_LABEL
    expected_targets = torch.cat([t_logits[:3].argmax(-1), y[3:]])
    w2, _ = obj(s_logits, s_feats, t_logits, t_feats, hidden, 4.0, 0.6)
    assert torch.allclose(w2["dkd"], 2.0 * dkd_loss(s_logits, t_logits, expected_targets, DKD_ALPHA, DKD_BETA, 4.0))


def test_kd_term_replaces_default_kd_with_its_weight():
    student, teacher = make_model(MLP_S, 0), make_model(MLP_S, 1).eval()
    obj = build_objective(DistillConfig(T=2.0, alpha=0.5, terms=(Term("kd", 3.0),)), student, teacher)
    s_logits, s_feats, t_logits, t_feats, y = forward_pair(student, teacher)
    weighted, _ = obj(s_logits, s_feats, t_logits, t_feats, y, 2.0, 0.5)
    assert set(weighted) == {"kd", "ce"}
    assert torch.allclose(weighted["kd"], 3.0 * losses.kd_loss(s_logits, t_logits, 2.0))


def test_regressor_params_are_optimised_and_teacher_gets_no_gradient(data, monkeypatch):
    built = []

    def spy(distill, student, teacher):
        obj = engine_build(distill, student, teacher)
        built.append((obj, {k: v.detach().clone() for k, v in obj.state_dict().items()}))
        return obj

    engine_build = engine.build_objective
    monkeypatch.setattr(engine, "build_objective", spy)
    student, teacher = make_model(CNN_S, 0), make_model(CNN_T, 1)
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    distill = DistillConfig(terms=(Term("fitnet", 1.0), Term("crd", 0.8)))
    run_to_end(train(student, data.train, TrainConfig(batch_size=32, max_steps=2), teacher=teacher, distill=distill, device="cpu"))
    obj, initial = built[0]
    assert isinstance(obj.adapters["fitnet"], torch.nn.Conv2d)  # 8 → 12 channels, same 7x7 maps
    assert initial and all(not torch.equal(initial[k], v) for k, v in obj.state_dict().items())
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(t_before[k], v) for k, v in teacher.state_dict().items())


def test_teacher_runs_every_batch_for_feature_terms(data):
    student, teacher = make_model(CNN_S, 0), make_model(CNN_T, 1)
    batches = []
    teacher.register_forward_hook(lambda m, inp, out: batches.append(inp[0].shape[0]))
    run_to_end(train(student, data.train, TrainConfig(batch_size=32, max_steps=4), teacher=teacher,
                     distill=DistillConfig(terms=(Term("at", 1000.0),)), device="cpu"))
    assert batches.count(32) == 4  # one teacher pass per training batch (plus a shape probe)


def test_default_layers_pair_mlp_with_cnn():
    student, teacher = make_model(MLP_S, 0), make_model(CNN_T, 1)
    obj = build_objective(DistillConfig(terms=(Term("fitnet"), Term("rkd_d"), Term("sp"))), student, teacher)
    layers = {b.method: (b.student_layer, b.teacher_layer) for b in obj.bound}
    assert layers == {"fitnet": ("hidden2", "pooled"), "rkd_d": ("hidden2", "pooled"), "sp": ("hidden2", "stage2")}
    assert isinstance(obj.adapters["fitnet"], torch.nn.Linear)
    assert (obj.adapters["fitnet"].in_features, obj.adapters["fitnet"].out_features) == (16, 12)
    assert default_layer("crd", {"stage1": (4, 14, 14), "pooled": (4,)}, {}) == "pooled"
    three_stages = {"stage1": (4, 14, 14), "stage2": (8, 7, 7), "stage3": (16, 3, 3), "pooled": (16,)}
    assert default_layer("at", three_stages, three_stages) == "stage2"  # 3x3 is too coarse for attention
    assert default_layer("sp", three_stages, three_stages) == "stage3"


def test_repeated_method_gets_one_key_per_layer_pair():
    student, teacher = make_model(CNN_S, 0), make_model(CNN_T, 1).eval()
    terms = (Term("at", 1000.0, "stage1", "stage1"), Term("at", 1000.0, "stage2", "stage2"))
    obj = build_objective(DistillConfig(terms=terms), student, teacher)
    weighted, _ = obj(*forward_pair(student, teacher)[:4], torch.zeros(8, dtype=torch.long), 4.0, 0.9)
    assert {"at:stage1:stage1", "at:stage2:stage2"} <= set(weighted)
    with pytest.raises(ValueError, match="listed twice"):
        build_objective(DistillConfig(terms=terms + terms[:1]), student, teacher)


# ----------------------------------------------------------------------------- bad input
def test_at_on_mlp_names_layers_and_shapes():
    with pytest.raises(ValueError) as err:
        build_objective(DistillConfig(terms=(Term("at", 1000.0),)), make_model(MLP_S, 0), make_model(CNN_T, 1))
    msg = str(err.value)
    assert "'hidden2'" in msg and "[B, 16]" in msg and "'stage2'" in msg and "[B, 12, 7, 7]" in msg


def test_unknown_layer_lists_available_layers():
    with pytest.raises(ValueError) as err:
        build_objective(DistillConfig(terms=(Term("sp", 1.0, "", "stage9"),)), make_model(CNN_S, 0), make_model(CNN_T, 1))
    msg = str(err.value)
    assert "'stage9'" in msg and "teacher" in msg
    assert all(name in msg for name in ("stage1", "stage2", "pooled"))


def test_fitnet_map_against_vector_names_both_layers():
    with pytest.raises(ValueError) as err:
        build_objective(DistillConfig(terms=(Term("fitnet", 1.0, "stage1", "hidden1"),)), make_model(CNN_S, 0), make_model(MLP_S, 1))
    msg = str(err.value)
    assert "'stage1'" in msg and "[B, 4, 14, 14]" in msg and "'hidden1'" in msg and "[B, 24]" in msg


def test_unknown_method_and_layers_on_logit_methods_are_rejected():
    with pytest.raises(ValueError) as err:
        Term("fitnets")
    assert all(name in str(err.value) for name in METHODS)
    with pytest.raises(ValueError, match="takes no layers"):
        build_objective(DistillConfig(terms=(Term("dkd", 1.0, "hidden1"),)), make_model(MLP_S, 0), make_model(MLP_S, 1))


def test_rkd_angle_cap_is_stated():
    assert str(RKD_ANGLE_MAX_BATCH) in METHODS["rkd_a"].note


# ----------------------------------------------------------------------------- every registered method
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_is_declared_completely(name):
    m = METHODS[name]
    assert m.name == name and m.label and m.formula and m.paper and m.transfers and m.default_weight > 0
    assert (m.kind == "logits") == (m.needs == "logits") == (m.default_layer is None)
    assert Term(name).method == name  # the objective accepts it


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_trains_the_student_only_through_the_objective(name):
    m = METHODS[name]
    student, teacher = make_model(CNN_S, 0), make_model(CNN_T, 1).eval()
    obj = build_objective(DistillConfig(T=3.0, alpha=0.5, terms=(Term(name, m.default_weight),)), student, teacher)
    weighted, raw = obj(*forward_pair(student, teacher), 3.0, 0.5)
    assert set(weighted) == ({name, "ce"} if m.on_logits else {name, "kd", "ce"})
    scale = 0.5 * m.default_weight if m.divergence else m.default_weight  # a divergence takes KD's alpha (0.5 here)
    assert torch.isfinite(raw[name]) and torch.allclose(weighted[name], scale * raw[name])
    sum(weighted.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert sum(float(p.grad.abs().sum()) for p in student.parameters() if p.grad is not None) > 0


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if not m.on_logits])
def test_every_feature_method_has_a_default_layer_on_both_architectures(name):
    cnn, mlp = feature_shapes(make_model(CNN_T, 0)), feature_shapes(make_model(MLP_S, 0))
    for own, other in ((cnn, cnn), (cnn, mlp), (mlp, cnn)):
        if METHODS[name].needs == "maps" and own is mlp:
            continue  # maps-only methods do not apply to an MLP (tested in test_at_on_mlp_names_layers_and_shapes)
        assert default_layer(name, own, other) in own


def test_cosine_term_adapts_the_mlp_width_to_the_cnn_embedding():
    student, teacher = make_model(MLP_S, 0), make_model(CNN_T, 1).eval()
    obj = build_objective(DistillConfig(terms=(Term("cosine"),)), student, teacher)
    assert [(b.student_layer, b.teacher_layer) for b in obj.bound] == [("hidden2", "pooled")]
    adapter = obj.adapters["cosine"]
    assert isinstance(adapter, torch.nn.Linear) and (adapter.in_features, adapter.out_features) == (16, 12)
    s_logits, s_feats, t_logits, t_feats, y = forward_pair(student, teacher)
    _, raw = obj(s_logits, s_feats, t_logits, t_feats, y, 4.0, 0.9)
    a, b = adapter(s_feats["hidden2"]), t_feats["pooled"]  # [8, 12] each
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    assert torch.allclose(raw["cosine"], (1 - cos).mean())


def test_divergence_term_is_kd_with_its_kl_swapped():
    """reverse_kl at weight 1: alpha·reverse KL + (1 − alpha)·CE, with the reverse KL written by hand."""
    student, teacher = make_model(CNN_S, 0), make_model(CNN_T, 1).eval()
    obj = build_objective(DistillConfig(T=2.0, alpha=0.7, terms=(Term("reverse_kl", 1.0),)), student, teacher)
    s_logits, s_feats, t_logits, t_feats, y = forward_pair(student, teacher)
    weighted, _ = obj(s_logits, s_feats, t_logits, t_feats, y, 2.0, 0.7)
    q, p = torch.softmax(s_logits.double() / 2, 1), torch.softmax(t_logits.double() / 2, 1)
    rkl = (q * (q.log() - p.log())).sum(1).mean() * 4
    ce = torch.nn.functional.cross_entropy(s_logits.double(), y)
    assert set(weighted) == {"reverse_kl", "ce"}
    assert float(sum(weighted.values())) == pytest.approx(float(0.7 * rkl + 0.3 * ce), rel=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"T_schedule": "cosine"}, "T_end"), ({"alpha_schedule": "linear"}, "alpha_end"),
    ({"T_schedule": "step", "T_end": 1.0}, "T_schedule"), ({"T_schedule": "linear", "T_end": 0.0}, "T_end=0.0"),
    ({"alpha_schedule": "linear", "alpha_end": 1.5}, "alpha_end=1.5"), ({"T": -1.0}, "T=-1"),
])
def test_bad_schedules_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillConfig(**kwargs)
