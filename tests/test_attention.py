"""Attention-map helpers (kdviz.attention) against hand computation, and a short AT run on synthetic data."""
from __future__ import annotations

import math

import pytest
import torch

import kdviz.attention as attention
from kdviz.attention import (
    ATSetup,
    QuickPairConfig,
    attention_2d,
    attention_difference,
    attention_transfer_setup,
    at_distance,
    compare_stages,
    snapshot_steps,
    spatial_features,
    stage_attention,
    watch_records,
)
from kdviz.data import synthetic_bundle
from kdviz.engine import make_model
from kdviz.methods.at import at_loss
from kdviz.methods.objective import DistillConfig, Term
from kdviz.models import ModelConfig

TEACHER = ModelConfig("cnn", channels=(6, 8, 10))
STUDENT = ModelConfig("cnn", channels=(4, 4))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def hand_map(feat: torch.Tensor) -> torch.Tensor:
    """[C, H, W] → [H, W]: mean over channels of f², divided by its Euclidean norm (loops, no attention_map)."""
    c, h, w = feat.shape
    out = torch.zeros(h, w, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            out[i, j] = sum(float(feat[k, i, j]) ** 2 for k in range(c)) / c
    return out / math.sqrt(float((out**2).sum()))


def test_attention_2d_matches_hand_computation():
    feat = torch.randn(1, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    got = attention_2d(feat)
    assert got.shape == (4, 5)
    torch.testing.assert_close(got.double(), hand_map(feat[0]), atol=1e-6, rtol=1e-5)
    assert float(got.pow(2).sum()) == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(attention_2d(feat[0]), got)  # [C, H, W] accepted too
    with pytest.raises(ValueError, match=r"\[1, C, H, W\]"):
        attention_2d(torch.randn(2, 3, 4, 4))


def test_difference_pools_the_larger_map_like_at_loss():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(1, 2, 4, 4, generator=g), torch.randn(1, 5, 8, 8, generator=g)
    diff = attention_difference(s, t)
    # by hand: average each 2×2 block of the teacher's features, then compare maps
    t_pooled = t.reshape(1, 5, 4, 2, 4, 2).mean(dim=(3, 5))
    expected = hand_map(s[0]) - hand_map(t_pooled[0])
    assert diff.shape == (4, 4)
    torch.testing.assert_close(diff.double(), expected, atol=1e-6, rtol=1e-5)
    assert float(diff.pow(2).mean()) == pytest.approx(float(at_loss(s, t)), rel=1e-5)


def test_mlp_is_refused_naming_its_layers():
    mlp = make_model(ModelConfig("mlp", hidden=(16, 8)))
    with pytest.raises(ValueError, match=r"hidden1 \(1, 16\), hidden2 \(1, 8\)"):
        spatial_features(mlp, torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="spatial feature maps"):
        compare_stages(make_model(TEACHER), mlp, torch.zeros(1, 1, 28, 28))


def test_stage_attention_and_mode_restored():
    model = make_model(TEACHER).train()
    maps = stage_attention(model, torch.randn(1, 1, 28, 28))
    assert {k: tuple(v.shape) for k, v in maps.items()} == {"stage1": (14, 14), "stage2": (7, 7), "stage3": (3, 3)}
    assert model.training  # eval only while computing
    with pytest.raises(ValueError, match="one image"):
        stage_attention(model, torch.randn(2, 1, 28, 28))


def test_compare_stages_pairs_common_stages():
    teacher, student = make_model(TEACHER, seed=0), make_model(STUDENT, seed=1)
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    out = compare_stages(teacher, student, x)
    assert [(c.student_layer, c.teacher_layer) for c in out] == [("stage1", "stage1"), ("stage2", "stage2")]
    t_feats, s_feats = spatial_features(teacher, x), spatial_features(student, x)
    for c in out:
        torch.testing.assert_close(c.teacher_map, attention_2d(t_feats[c.teacher_layer]))
        assert c.distance == pytest.approx(float(at_loss(s_feats[c.student_layer], t_feats[c.teacher_layer])), rel=1e-5)
    cross = compare_stages(teacher, student, x, pairs=[("stage2", "stage1")])[0]
    assert cross.difference.shape == (7, 7) and cross.teacher_map.shape == (14, 14)
    with pytest.raises(ValueError, match="no spatial layer 'stage3'"):
        compare_stages(teacher, student, x, pairs=[("stage3", "stage3")])


def test_at_distance_is_mean_at_loss_over_batch():
    teacher, student = make_model(TEACHER, seed=0), make_model(STUDENT, seed=1)
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    s, t = spatial_features(student, x)["stage2"], spatial_features(teacher, x)["stage2"]
    assert at_distance(teacher, student, x, "stage2", "stage2") == pytest.approx(float(at_loss(s, t)), rel=1e-6)


def test_snapshot_steps():
    steps = snapshot_steps(300, 7, 5)
    assert steps[0] == 0 and steps[-1] == 300 and steps == sorted(set(steps))
    assert all(s % 5 == 0 for s in steps) and len(steps) == 7
    assert snapshot_steps(3, 7) == [0, 1, 2, 3]  # fewer steps than snapshots: no duplicates
    with pytest.raises(ValueError):
        snapshot_steps(0, 3)


def test_setup_falls_back_to_kd_when_objective_refuses_at(monkeypatch):
    teacher, student = make_model(TEACHER), make_model(STUDENT)

    def refuse(distill, s, t):
        raise ValueError("unknown method 'at'")

    monkeypatch.setattr(attention, "build_objective", refuse)
    setup = attention_transfer_setup(student, teacher, "stage2", "stage2")
    assert not setup.uses_at and setup.distill.terms == () and "unknown method 'at'" in setup.note


def test_setup_uses_at_when_the_pair_has_the_stages():
    setup = attention_transfer_setup(make_model(STUDENT), make_model(TEACHER), "stage2", "stage2", weight=500.0)
    assert setup.uses_at, setup.note  # the objective computes AT: a fallback here is a regression
    assert setup.note == "" and setup.distill.terms == (Term("at", 500.0, "stage2", "stage2"),)


def test_setup_falls_back_to_kd_with_the_objectives_reason_for_a_missing_stage():
    setup = attention_transfer_setup(make_model(STUDENT), make_model(TEACHER), "stage3", "stage3")
    assert not setup.uses_at and setup.distill == DistillConfig(T=4.0, alpha=0.9)
    assert "not available" in setup.note and "stage3" in setup.note


def _watch(setup_for, steps=40):
    """Snapshots at steps 0, 10 and ``steps`` of a short run (only the snapshots of :func:`watch_records`)."""
    data = synthetic_bundle(n_train=256, n_test=32)
    teacher, student = make_model(TEACHER, seed=0), make_model(STUDENT, seed=1)
    setup = setup_for(student, teacher)
    cfg = QuickPairConfig(teacher=TEACHER, student=STUDENT, batch_size=32).train_config(steps, log_every=5)
    pairs = watch_records(teacher, student, data.train, data.test.x[:16], cfg, setup, "stage2", "stage2",
                          device="cpu", at_steps=[0, 10, steps])
    return setup, [shot for _, shot in pairs if shot is not None]


def test_watch_records_moves_student_toward_teacher():
    setup, snaps = _watch(lambda s, t: attention_transfer_setup(s, t, "stage2", "stage2"))
    assert [s.step for s in snaps] == [0, 10, 40]
    assert snaps[0].train_acc is None and all(s.student_map.shape == (7, 7) for s in snaps)
    assert setup.uses_at, setup.note  # the objective computes the AT term
    _, kd_only = _watch(lambda s, t: ATSetup(DistillConfig(T=4.0, alpha=0.9), False, "plain KD"))
    assert snaps[0].distance == pytest.approx(kd_only[0].distance)  # same start
    assert snaps[-1].distance < 0.8 * snaps[0].distance  # AT pulls the maps together ...
    assert snaps[-1].distance < 0.5 * kd_only[-1].distance  # ... far more than logit KD alone does


def test_watch_refuses_mlp_before_training():
    data = synthetic_bundle(n_train=64, n_test=8)
    mlp = make_model(ModelConfig("mlp", hidden=(8,)))
    cfg = QuickPairConfig().train_config(5)
    gen = watch_records(make_model(TEACHER), mlp, data.train, data.test.x[:4], cfg, None, "stage2", "stage2")
    with pytest.raises(ValueError, match="spatial feature maps"):
        next(gen)


def test_watch_records_reports_every_record_and_snapshots_the_wanted_steps():
    data = synthetic_bundle(n_train=128, n_test=8)
    teacher, student = make_model(TEACHER, seed=0), make_model(STUDENT, seed=1)
    setup = attention_transfer_setup(student, teacher, "stage1", "stage1")
    cfg = QuickPairConfig(batch_size=32).train_config(9, log_every=2)
    pairs = list(watch_records(teacher, student, data.train, data.test.x[:4], cfg, setup, "stage1", "stage1", "cpu", [0, 4]))
    assert pairs[0][0] is None and pairs[0][1].step == 0  # the untrained student first
    assert [rec.step for rec, _ in pairs[1:]] == [2, 4, 6, 8, 9]  # every record: progress for the caller
    assert [shot.step for _, shot in pairs if shot is not None] == [0, 4, 9]  # wanted steps and the last


def test_watch_refuses_a_stage_the_student_lacks():
    data = synthetic_bundle(n_train=64, n_test=8)
    cfg = QuickPairConfig().train_config(5)
    gen = watch_records(make_model(TEACHER), make_model(STUDENT), data.train, data.test.x[:4], cfg, None, "stage3", "stage3")
    with pytest.raises(ValueError, match="student has no spatial layer 'stage3'"):
        next(gen)


def test_quick_pair_config_is_validated():
    with pytest.raises(ValueError, match="CNN"):
        QuickPairConfig(student=ModelConfig("mlp"))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        QuickPairConfig(batch_size=0)
