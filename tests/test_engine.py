"""The training engine: determinism, teacher-logit caching, divergence, loss bookkeeping, devices.

Small synthetic data and tiny models on one thread; the CUDA tests skip (with the reason
shown) when no GPU is present.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from kdviz import batches, devices, engine, optim
from kdviz.data import HIDDEN_LABEL, MNIST_MEAN, MNIST_STD, TensorData, labelled_plus_unlabelled, synthetic_bundle
from kdviz.engine import NonFiniteLoss, TrainConfig, make_model, run_to_end, train
from kdviz.evaluation import evaluate, predict_logits
from kdviz.methods import DistillConfig, Objective, build_objective
from kdviz.models import ModelConfig

STUDENT = ModelConfig(hidden=(32,))
TEACHER = ModelConfig(hidden=(64,))
CNN = ModelConfig(arch="cnn", channels=(4, 8))
NO_CUDA = not torch.cuda.is_available()
NO_CUDA_REASON = "no CUDA GPU present: the CUDA code path cannot run on this machine"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def bundle():
    return synthetic_bundle(n_train=320, n_test=100, seed=0)


def run(data, cfg, *, distill=None, test=None, device="cpu", student_seed=0, teacher=None, **kw):
    student = make_model(STUDENT, student_seed)
    if distill is not None and teacher is None:
        teacher = make_model(TEACHER, 7)
    recs = run_to_end(train(student, data, cfg, teacher=teacher, distill=distill, test=test, device=device, **kw))
    return student, recs


def losses_of(recs):
    return [(r.step, r.total, tuple(r.losses.values()), tuple(r.raw.values())) for r in recs]


# ----------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_records_and_weights(bundle):
    cfg = TrainConfig(batch_size=32, max_steps=20, log_every=5, jitter=1, seed=3)
    s1, r1 = run(bundle.train, cfg, distill=DistillConfig())
    s2, r2 = run(bundle.train, cfg, distill=DistillConfig())
    assert losses_of(r1) == losses_of(r2)
    assert all(torch.equal(a, b) for a, b in zip(s1.state_dict().values(), s2.state_dict().values()))
    _, r3 = run(bundle.train, TrainConfig(batch_size=32, max_steps=20, log_every=5, jitter=1, seed=4), distill=DistillConfig())
    assert losses_of(r3) != losses_of(r1)  # the seed really drives data order and jitter


# ----------------------------------------------------------------------------- teacher logits
def teacher_with_calls():
    teacher, calls = make_model(TEACHER, 7), []
    teacher.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    return teacher, calls


def assert_same_losses(a_recs, b_recs):
    assert [r.step for r in a_recs] == [r.step for r in b_recs]
    for a, b in zip(a_recs, b_recs):
        assert a.total == pytest.approx(b.total, rel=1e-5, abs=1e-7)
        assert a.raw == pytest.approx(b.raw, rel=1e-5, abs=1e-7)


def test_cached_and_per_batch_teacher_give_the_same_losses_without_jitter(bundle, monkeypatch):
    cfg = TrainConfig(batch_size=32, epochs=2, max_steps=12, log_every=3)
    distill = DistillConfig(T=3.0, alpha=0.7)
    teacher, calls = teacher_with_calls()
    _, cached = run(bundle.train, cfg, distill=distill, teacher=teacher)
    assert calls == [256, 64]  # once over all 320 images, in predict_logits' 256-row CPU batches
    teacher, calls = teacher_with_calls()
    monkeypatch.setattr(batches, "TEACHER_ROWS", 1)  # no grouping: strictly one teacher pass per batch
    _, per_batch = run(bundle.train, replace(cfg, cache_teacher=False), distill=distill, teacher=teacher)
    assert calls == [32] * 12
    assert_same_losses(cached, per_batch)


def test_grouped_teacher_passes_match_one_by_one_with_jitter(bundle, monkeypatch):
    cfg = TrainConfig(batch_size=32, epochs=2, max_steps=20, log_every=4, jitter=2, seed=1)
    teacher, grouped_calls = teacher_with_calls()
    _, grouped = run(bundle.train, cfg, distill=DistillConfig(), teacher=teacher)
    assert grouped_calls == [512, 128]  # 16 batches of 32 in one pass (TEACHER_ROWS), then the last 4
    monkeypatch.setattr(batches, "TEACHER_ROWS", 1)
    teacher, single_calls = teacher_with_calls()
    _, single = run(bundle.train, cfg, distill=DistillConfig(), teacher=teacher)
    assert single_calls == [32] * 20
    assert_same_losses(grouped, single)  # same batches, same shifts, same logits


def test_precomputed_teacher_logits_are_used_and_checked(bundle):
    teacher = make_model(TEACHER, 7)
    logits = predict_logits(teacher, bundle.train.x)
    cfg = TrainConfig(batch_size=32, max_steps=6, log_every=2)
    _, inner = run(bundle.train, cfg, distill=DistillConfig(), teacher=teacher)
    _, given = run(bundle.train, cfg, distill=DistillConfig(), teacher=teacher, teacher_logits=logits)
    assert losses_of(inner) == losses_of(given)
    _, other = run(bundle.train, cfg, distill=DistillConfig(), teacher=teacher, teacher_logits=torch.zeros_like(logits))
    assert other[0].raw["kl"] != pytest.approx(inner[0].raw["kl"])  # uniform targets really replaced the teacher's
    with pytest.raises(ValueError, match=r"teacher_logits must have shape \[320, C\].*\(10, 10\)"):
        run(bundle.train, cfg, distill=DistillConfig(), teacher=teacher, teacher_logits=logits[:10])
    bad = logits.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(ValueError, match="teacher logits contain 1 non-finite"):
        run(bundle.train, cfg, distill=DistillConfig(), teacher=teacher, teacher_logits=bad)


def test_unchecked_objective_matches_the_checked_one_and_a_hand_kl():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(16, 10, generator=g) * 3, torch.randn(16, 10, generator=g) * 3
    y = torch.randint(0, 10, (16,), generator=g)
    model = make_model(STUDENT, 0)
    for distill in (None, DistillConfig(T=2.5, alpha=0.3)):
        objective = build_objective(distill, model, model if distill else None)
        T, alpha = (distill.T, distill.alpha) if distill else (None, None)
        w_ref, r_ref = objective(s, {}, t if distill else None, {}, y, T, alpha)
        w, r = objective(s, {}, t if distill else None, {}, y, T, alpha, check=False)
        assert list(w) == list(w_ref) and list(r) == list(r_ref)
        for k in w_ref:
            assert torch.allclose(w[k], w_ref[k], rtol=1e-6, atol=1e-7), k
        for k in r_ref:
            assert torch.allclose(r[k], r_ref[k], rtol=1e-6, atol=1e-7), k
    # and independent values: KL(p_t || p_s) by hand, times T²·alpha; CE by hand, times 1 − alpha
    p_t, p_s = F.softmax(t / 2.5, -1), F.softmax(s / 2.5, -1)
    kl_rows = (p_t * (p_t.log() - p_s.log())).sum(-1)
    ce_rows = -F.log_softmax(s, -1).gather(1, y[:, None]).squeeze(1)
    w, r = objective(s, {}, t, {}, y, 2.5, 0.3, check=False)
    assert float(r["kl"]) == pytest.approx(float(kl_rows.mean()), rel=1e-5)
    assert float(w["kd"]) == pytest.approx(0.3 * 2.5**2 * float(kl_rows.mean()), rel=1e-5)
    assert float(w["ce"]) == pytest.approx(0.7 * float(ce_rows.mean()), rel=1e-5)


def test_training_skips_per_step_checks_only_for_plain_fully_labelled_runs(bundle, monkeypatch):
    seen = []
    forward = Objective.forward

    def spy(self, *args, check=True):
        seen.append(check)
        return forward(self, *args, check=check)

    monkeypatch.setattr(Objective, "forward", spy)
    cfg = TrainConfig(batch_size=32, max_steps=2)
    run(bundle.train, cfg, distill=DistillConfig())
    run(labelled_plus_unlabelled(bundle.train, 100, seed=0), cfg, distill=DistillConfig())
    assert seen == [False, False, True, True]  # hidden labels: the checked CE (an all-hidden batch gives 0, not NaN)


# ----------------------------------------------------------------------------- divergence
def test_divergence_stops_at_the_first_non_finite_step_and_names_it(bundle):
    student = make_model(STUDENT, 0)
    cfg = TrainConfig(batch_size=32, lr=10.0, optimizer="sgd", log_every=1, epochs=50)
    seen = []
    with pytest.raises(NonFiniteLoss) as info:
        for rec in train(student, bundle.train, cfg, device="cpu"):
            seen.append(rec)
    step = info.value.step
    assert step == len(seen) + 1  # every earlier step was recorded with a finite loss
    assert all(math.isfinite(r.total) for r in seen)
    assert seen[-1].total > 1e6 * seen[0].total  # it really diverged, rather than failing at once
    assert f"step {step}" in str(info.value) and "learning rate 10" in str(info.value)
    assert all(torch.isfinite(p).all() for p in student.parameters())  # the bad step never updated the weights


def test_divergence_is_reported_the_same_with_sparse_records(bundle):
    cfg = TrainConfig(batch_size=32, lr=10.0, optimizer="sgd", log_every=1, epochs=50)
    with pytest.raises(NonFiniteLoss) as dense:
        run(bundle.train, cfg)
    with pytest.raises(NonFiniteLoss) as sparse:
        run(bundle.train, TrainConfig(batch_size=32, lr=10.0, optimizer="sgd", log_every=50, epochs=50))
    assert sparse.value.step == dense.value.step


# ----------------------------------------------------------------------------- bookkeeping
@pytest.mark.parametrize("kind", ["scratch", "kd", "kd_hidden_labels"])
def test_weighted_losses_sum_to_total(bundle, kind):
    data = labelled_plus_unlabelled(bundle.train, 100, seed=1) if kind == "kd_hidden_labels" else bundle.train
    distill = None if kind == "scratch" else DistillConfig(T=2.0, alpha=0.6)
    _, recs = run(data, TrainConfig(batch_size=32, max_steps=9, log_every=4), distill=distill)
    assert [r.step for r in recs] == [4, 8, 9] and recs[-1].done and not recs[0].done
    for r in recs:
        assert sum(r.losses.values()) == pytest.approx(r.total, rel=1e-6)
        if distill:
            assert r.losses["kd"] == pytest.approx(0.6 * r.raw["kd"], rel=1e-5)
            assert r.raw["kd"] == pytest.approx(4.0 * r.raw["kl"], rel=1e-5)  # T² = 4
        assert 0.0 <= r.train_acc <= 1.0


def test_evaluates_at_each_epoch_end_and_at_the_last_step(bundle):
    student, recs = run(bundle.train, TrainConfig(batch_size=32, epochs=2.5, log_every=4), test=bundle.test)
    per_epoch = 320 // 32
    evaluated = [r.step for r in recs if r.test_acc is not None]
    assert evaluated == [per_epoch, 2 * per_epoch, 25]
    assert recs[-1].test_acc == evaluate(student, bundle.test).accuracy  # the final model's, computed apart
    assert recs[-1].epoch == pytest.approx(2.5)


def test_records_count_the_images_trained_on_since_the_first_step(bundle):
    """``samples`` is cumulative (the window rate ``samples_per_s`` is not): step × batch with full batches,
    so ``samples / elapsed_s`` is the run's average rate the live view shows once a run has ended."""
    _, recs = run(bundle.train, TrainConfig(batch_size=32, epochs=2.5, log_every=3), test=bundle.test)
    assert [r.samples for r in recs] == [32 * r.step for r in recs]  # 320 images: every batch is full
    assert recs[-1].samples == 25 * 32 and recs[-1].elapsed_s > 0


def test_train_accuracy_counts_labelled_images_only():
    x = torch.zeros(64, 1, 28, 28)
    y = torch.full((64,), HIDDEN_LABEL)
    y[:32] = 3
    data = TensorData(x, y)  # every image alike: the student predicts one class for all of them
    _, recs = run(data, TrainConfig(batch_size=64, epochs=40, lr=0.05, log_every=10))
    assert recs[-1].train_acc == 1.0  # learnt "3"; the 32 hidden labels neither help nor hurt


def test_train_accuracy_of_each_record_counts_every_step_of_its_window():
    """Accuracy is counted FOLD_STEPS batches at a time; each record must still hold exactly its own
    window's correct / labelled images, recounted here from the logits a forward hook saw."""
    g = torch.Generator().manual_seed(0)
    n = 320
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 28, 28).contiguous()  # pixel = row index
    y = torch.randint(0, 10, (n,), generator=g)
    y[torch.randperm(n, generator=g)[:100]] = HIDDEN_LABEL
    seen = []
    student = make_model(STUDENT, 0)
    student.register_forward_hook(lambda m, inp, out: seen.append((inp[0][:, 0, 0, 0].long(), out[0].detach().clone())))
    log_every = engine.FOLD_STEPS + 8  # windows that span a fold and a remainder
    cfg = TrainConfig(batch_size=8, epochs=3, max_steps=2 * log_every + 5, log_every=log_every, lr=0.05)
    recs = run_to_end(train(student, TensorData(x, y), cfg, device="cpu"))
    assert [r.step for r in recs] == [log_every, 2 * log_every, 2 * log_every + 5]
    starts = [0] + [r.step for r in recs]
    for r, a, b in zip(recs, starts, starts[1:]):
        correct = labelled = 0
        for rows, logits in seen[a:b]:
            labels = y[rows]
            keep = labels != HIDDEN_LABEL
            correct += int((logits.argmax(-1)[keep] == labels[keep]).sum())
            labelled += int(keep.sum())
        assert r.train_acc == pytest.approx(correct / labelled, abs=1e-12), r.step


# ----------------------------------------------------------------------------- hot-path pieces
def test_shift_moves_each_image_by_its_own_offset():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 1, 28, 28, generator=g)
    offsets = torch.tensor([[0, 0], [2, 2], [4, 4], [0, 4], [3, 1]])
    out = batches.Shifter(2, 5, torch.device("cpu"))(x, offsets)
    black = (0.0 - MNIST_MEAN) / MNIST_STD
    for i, (oy, ox) in enumerate(offsets.tolist()):
        canvas = torch.full((32, 32), black)
        canvas[2:30, 2:30] = x[i, 0]
        assert torch.equal(out[i, 0], canvas[oy : oy + 28, ox : ox + 28]), i
    assert torch.equal(out[1], x[1])  # offset (2, 2) = no shift


def test_optimisers_are_fused_on_the_cpu():
    model = make_model(STUDENT, 0)
    for name in ("adam", "adamw", "sgd"):
        opt = engine.make_optimizer(model.parameters(), TrainConfig(optimizer=name))
        assert isinstance(opt, optim.FusedOptimizer), name  # fused kernels (tests/test_optim.py: same as torch.optim's)
    opt = engine.make_optimizer([torch.nn.Parameter(p.detach().double()) for p in model.parameters()], TrainConfig())
    assert isinstance(opt, torch.optim.Adam)  # no fused kernel in the fallback's dtype: torch.optim


def test_cnn_trains_channels_last_with_unchanged_outputs(bundle):
    model = make_model(CNN, 0).eval()
    x = bundle.test.x[:8]
    before = model(x)[0]
    devices.prepare_model(model, torch.device("cpu"))
    assert model.stages[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model(x)[0], before, atol=1e-5)
    student = make_model(CNN, 0)
    recs = run_to_end(train(student, bundle.train, TrainConfig(batch_size=32, max_steps=20, lr=0.01, log_every=5), device="cpu"))
    assert recs[-1].total < recs[0].total


def test_bf16_is_fast_only_where_native():
    assert isinstance(devices.bf16_is_fast("cpu"), bool)
    if NO_CUDA:
        assert devices.bf16_is_fast("cuda") is False


def test_amp_runs_on_the_cpu_with_float32_weights(bundle):
    student, recs = run(bundle.train, TrainConfig(batch_size=32, max_steps=4, log_every=2, amp=True), distill=DistillConfig())
    assert all(math.isfinite(r.total) for r in recs)
    assert all(p.dtype == torch.float32 for p in student.parameters())


def test_bad_labels_are_refused_before_training(bundle):
    y = bundle.train.y.clone()
    y[5] = 12
    with pytest.raises(ValueError, match=r"labels out of range \[0, 9\].*\[12\]"):
        run(TensorData(bundle.train.x, y), TrainConfig(batch_size=32, max_steps=2))


def test_config_validation_names_the_value():
    with pytest.raises(ValueError, match="amp must be True or False, got 'yes'"):
        TrainConfig(amp="yes")
    with pytest.raises(ValueError, match="batch_size must lie in"):
        TrainConfig(batch_size=0)


# ----------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(NO_CUDA, reason=NO_CUDA_REASON)
def test_cuda_resolved_by_default_and_data_resident(bundle, monkeypatch):
    monkeypatch.delenv("KDVIZ_DEVICE", raising=False)
    assert devices.resolve_device(None).type == "cuda"
    student, recs = run(bundle.train, TrainConfig(batch_size=32, max_steps=10, log_every=5, jitter=2), distill=DistillConfig(), device="cuda")
    assert next(student.parameters()).device.type == "cuda"
    assert all(math.isfinite(r.total) for r in recs) and recs[-1].done


@pytest.mark.skipif(NO_CUDA, reason=NO_CUDA_REASON)
def test_cuda_steps_do_not_sync_with_the_host(bundle):
    data = bundle.train.to("cuda")
    student, teacher = make_model(STUDENT, 0), make_model(TEACHER, 7)
    cfg = TrainConfig(batch_size=32, epochs=10, log_every=20, jitter=1)  # 100 steps, records every 20
    records = train(student, data, cfg, teacher=teacher, distill=DistillConfig(), device="cuda")
    next(records)  # setup (one-off checks) and the first 20 steps
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            n = sum(1 for _ in records)  # 20 more steps per record
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert n == 4 and len(syncs) <= n  # at most the one read per record, never one per step (80 steps)


@pytest.mark.skipif(NO_CUDA, reason=NO_CUDA_REASON)
def test_cuda_divergence_names_the_exact_step(bundle):
    cfg_dense = TrainConfig(batch_size=32, lr=10.0, optimizer="sgd", log_every=1, epochs=50)
    cfg_sparse = TrainConfig(batch_size=32, lr=10.0, optimizer="sgd", log_every=25, epochs=50)
    steps = []
    for cfg in (cfg_dense, cfg_sparse):
        with pytest.raises(NonFiniteLoss) as info:
            run(bundle.train, cfg, device="cuda")
        steps.append(info.value.step)
    assert steps[0] == steps[1]


@pytest.mark.skipif(NO_CUDA, reason=NO_CUDA_REASON)
def test_cuda_amp_and_cached_teacher(bundle):
    teacher = make_model(TEACHER, 7)
    student, recs = run(bundle.train, TrainConfig(batch_size=32, max_steps=10, log_every=5, amp=True), distill=DistillConfig(), teacher=teacher, device="cuda")
    assert all(math.isfinite(r.total) for r in recs)
    assert all(p.dtype == torch.float32 and p.device.type == "cuda" for p in student.parameters())
    acc = evaluate(student, bundle.test).accuracy
    assert 0.0 <= acc <= 1.0
