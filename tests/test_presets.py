"""Teacher presets and the shipped default teacher (weights_only, small, ≥ 99 % on real MNIST)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from kdviz.checkpoints import CheckpointError
from kdviz.data import load_mnist, synthetic_bundle
from kdviz.devices import bf16_is_fast
from kdviz.engine import total_steps
from kdviz.evaluation import evaluate
from kdviz.experiments.recipes import (
    DEFAULT_TEACHER,
    DEMO_MLP_TEACHER,
    DEMO_TEACHER,
    FAST_CNN_TEACHER,
    LEAN_CNN_TEACHER,
    MLP_TEACHER,
    RETRAIN_COMMAND,
    load_default_teacher,
    teacher_preset,
    train_fast_teacher,
    train_teacher,
)
from kdviz.models import ModelConfig

NO_MNIST = not os.environ.get("KDVIZ_DATA_DIR")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_default_teacher_is_small_and_loads_with_weights_only():
    assert DEFAULT_TEACHER.is_file(), f"missing {DEFAULT_TEACHER}; make it with: {RETRAIN_COMMAND}"
    assert DEFAULT_TEACHER.stat().st_size < 3_000_000
    raw = torch.load(DEFAULT_TEACHER, map_location="cpu", weights_only=True)  # plain tensors and data only
    assert raw["format"] == "kdviz-checkpoint-v1"
    model, cfg, meta = load_default_teacher()
    assert cfg == FAST_CNN_TEACHER.model and not model.training
    assert meta["preset"] == "fast" and meta["data_source"] == "mnist" and meta["test_acc"] >= 0.99
    assert "python -m kdviz teacher --preset fast" in meta["command"]
    for key, value in raw["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.skipif(NO_MNIST, reason="KDVIZ_DATA_DIR unset: real MNIST not available to check the default teacher's accuracy")
def test_default_teacher_reaches_99_percent_on_the_mnist_test_set():
    model, _, _ = load_default_teacher()
    test = load_mnist(download=False).test
    assert len(test) == 10_000
    with torch.no_grad():
        pred = torch.cat([model(test.x[i : i + 2000])[0].argmax(-1) for i in range(0, 10_000, 2000)])
    accuracy = float((pred == test.y).float().mean())  # computed here, not through kdviz.evaluation.evaluate
    assert accuracy >= 0.99


def test_missing_default_teacher_says_how_to_make_it(tmp_path):
    with pytest.raises(CheckpointError, match="missing.*python -m kdviz teacher --preset fast"):
        load_default_teacher(tmp_path / "none.pt")


def test_train_fast_teacher_returns_an_evaluated_eval_mode_model():
    bundle = synthetic_bundle(n_train=512, n_test=128, seed=2)
    model, cfg, meta = train_fast_teacher(bundle, seed=1, device="cpu")
    assert cfg == FAST_CNN_TEACHER.model and not model.training
    assert meta["test_acc"] == evaluate(model, bundle.test).accuracy
    assert meta["steps"] == total_steps(512, FAST_CNN_TEACHER.train) == 8  # 2 epochs of 4 batches of 128
    assert meta["seed"] == 1 and meta["data_source"] == "synthetic" and meta["train_s"] > 0
    assert meta["amp"] == bf16_is_fast("cpu")  # bf16 autocast only where the CPU runs it natively
    again, _, _ = train_fast_teacher(bundle, seed=1, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_the_lean_preset_trains_a_lean_cnn():
    bundle = synthetic_bundle(n_train=512, n_test=128, seed=2)
    model, cfg, meta = train_teacher(bundle, LEAN_CNN_TEACHER, seed=0, device="cpu")
    assert cfg == ModelConfig(arch="cnn", channels=(16, 16, 48), cnn_layout="lean") and not model.training
    assert model.head.in_features == 48 * 3 * 3
    assert meta["preset"] == "lean" and meta["steps"] == total_steps(512, LEAN_CNN_TEACHER.train) == 6  # 1.3 epochs of 4 batches, rounded up
    assert meta["test_acc"] == evaluate(model, bundle.test).accuracy


def test_presets_are_frozen_and_looked_up_by_name():
    assert teacher_preset("fast") is FAST_CNN_TEACHER and teacher_preset("lean") is LEAN_CNN_TEACHER
    with pytest.raises(ValueError, match=r"unknown teacher preset 'nope'; choose one of \['fast', 'lean', 'mlp'\]"):
        teacher_preset("nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        FAST_CNN_TEACHER.name = "slow"
    # the "mlp" preset trains exactly the classroom demo's teacher recipe
    assert teacher_preset("mlp") is MLP_TEACHER and MLP_TEACHER.model == DEMO_MLP_TEACHER.model == ModelConfig(hidden=(1200, 1200), dropout=0.2)
    t = MLP_TEACHER.train
    assert (t.epochs, t.batch_size, t.lr, t.optimizer, t.schedule, t.amp) == (3, 128, 1e-3, "adam", "onecycle", True)


def test_shipped_teachers_live_in_kdviz_assets():
    root = Path(__file__).resolve().parents[1] / "kdviz" / "assets"
    assert DEFAULT_TEACHER == root / "default_teacher.pt" and DEFAULT_TEACHER.is_file()
    assert DEMO_TEACHER == root / "demo_teacher.pt" and DEMO_TEACHER.is_file()
    _, cfg, meta = load_default_teacher(DEMO_TEACHER)
    assert cfg == DEMO_MLP_TEACHER.model and meta["stored_dtype"] == "float16"


def test_recipe_amp_is_checked_and_used_only_where_bf16_is_native(monkeypatch):
    import kdviz.experiments.recipes as rc
    from kdviz.experiments.scenarios import preset

    with pytest.raises(ValueError, match="amp must be True or False"):
        rc.Recipe(amp="yes")
    seen = []
    real_train = rc.train

    def spy(model, data, cfg, **kw):
        seen.append(cfg.amp)
        return real_train(model, data, cfg, **kw)

    monkeypatch.setattr(rc, "train", spy)
    data = synthetic_bundle(n_train=64, n_test=32).train
    recipe = rc.Recipe(ModelConfig(hidden=(8,)), epochs=0.5, amp=True)
    for fast in (False, True):
        monkeypatch.setattr(rc, "bf16_is_fast", lambda device, fast=fast: fast)
        list(rc.train_network(recipe, data, 0, torch.device("cpu"), "s"))
    assert seen == [False, True]  # autocast only where the hardware runs bf16 natively
    assert preset("omitted-digit").student.amp and rc.DEMO_MLP_TEACHER.amp  # the classroom demo asks for it
