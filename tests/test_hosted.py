"""Hosted mode: the switch, the caps, and clamping that reports every lowered value."""
from dataclasses import asdict

import pytest

from kdviz.engine import TrainConfig, total_steps
from kdviz.hosted import (
    HostedLimits,
    active_limits,
    check_upload_size,
    clamp_count,
    clamp_model_config,
    clamp_train_config,
    cpu_cores,
    hosted_mode,
    job_limit,
    threads_per_job,
)
from kdviz.models import ModelConfig

LIMITS = HostedLimits(max_width=64, max_depth=2, max_epochs=2.0, max_batch_size=128, max_steps=100, max_jobs=3)


# ----------------------------------------------------------------------------- the switch
@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), (" ON ", True), ("yes", True),
                                            ("0", False), ("false", False), ("", False), ("off", False)])
def test_hosted_flag_values(value, expected):
    assert hosted_mode({"KDVIZ_HOSTED": value}) is expected


def test_hosted_flag_unset_is_off_and_typo_is_refused():
    assert hosted_mode({}) is False
    assert active_limits({}) is None
    # a typo must not silently leave a public server uncapped
    with pytest.raises(ValueError, match="KDVIZ_HOSTED='ture'"):
        hosted_mode({"KDVIZ_HOSTED": "ture"})


def test_active_limits_defaults_and_env_overrides():
    limits = active_limits({"KDVIZ_HOSTED": "1"})
    assert limits.max_upload_bytes == 1_000_000
    assert limits.max_jobs == cpu_cores()
    limits = active_limits({"KDVIZ_HOSTED": "1", "KDVIZ_MAX_JOBS": "5", "KDVIZ_MAX_UPLOAD_BYTES": "2048"})
    assert (limits.max_jobs, limits.max_upload_bytes) == (5, 2048)
    with pytest.raises(ValueError, match="KDVIZ_MAX_JOBS='0'"):
        active_limits({"KDVIZ_HOSTED": "1", "KDVIZ_MAX_JOBS": "0"})
    with pytest.raises(ValueError, match="KDVIZ_MAX_UPLOAD_BYTES='1MB'"):
        active_limits({"KDVIZ_HOSTED": "1", "KDVIZ_MAX_UPLOAD_BYTES": "1MB"})


def test_job_limit_and_threads():
    assert job_limit({}) == cpu_cores()
    assert job_limit({"KDVIZ_MAX_JOBS": "7"}) == 7
    assert threads_per_job(2, cores=16) == 8
    assert threads_per_job(20, cores=2) == 1  # never zero threads
    with pytest.raises(ValueError, match="max_jobs must be >= 1, got 0"):
        threads_per_job(0)


def test_limits_are_validated_and_frozen():
    with pytest.raises(ValueError, match="max_width must be a number >= 1, got 0"):
        HostedLimits(max_width=0)
    with pytest.raises(ValueError, match="max_epochs"):
        HostedLimits(max_epochs=float("nan"))
    with pytest.raises(AttributeError):
        LIMITS.max_width = 10


# ----------------------------------------------------------------------------- model clamping
def test_not_hosted_is_a_no_op():
    cfg = ModelConfig(hidden=(4096, 4096, 4096))
    assert clamp_model_config(cfg, None) == (cfg, [])
    tcfg = TrainConfig(epochs=50)
    assert clamp_train_config(tcfg, None) == (tcfg, [])


def test_mlp_width_and_depth_are_clamped_with_notes():
    cfg, notes = clamp_model_config(ModelConfig(hidden=(800, 32, 100)), LIMITS)
    assert cfg == ModelConfig(hidden=(64, 32))  # first max_depth layers kept, each ≤ max_width
    assert len(notes) == 2
    assert "count 3 → 2" in notes[0] and "at most 2" in notes[0]
    assert "800-32 → 64-32" in notes[1] and "64 per layer" in notes[1]


def test_cnn_channels_clamped_and_unused_hidden_untouched():
    cfg = ModelConfig(arch="cnn", channels=(16, 128), hidden=(800, 800))
    out, notes = clamp_model_config(cfg, LIMITS)
    assert out.channels == (16, 64)
    assert out.hidden == (800, 800)  # inert for a CNN: left equal so checkpoints still match
    assert notes == ["CNN stage widths 16-128 → 16-64 (hosted mode allows at most 64 per layer)"]


def test_model_within_limits_is_returned_unchanged():
    cfg = ModelConfig(hidden=(64, 10))
    out, notes = clamp_model_config(cfg, LIMITS)
    assert out is cfg and notes == []


def test_model_spec_dict_keeps_its_type_and_keys():
    spec = {"arch": "mlp", "hidden": [1000]}
    out, notes = clamp_model_config(spec, LIMITS)
    assert out == {"arch": "mlp", "hidden": (64,)} and len(notes) == 1
    assert spec == {"arch": "mlp", "hidden": [1000]}  # the caller's dict is not mutated
    ModelConfig(**out)  # still a valid config


@pytest.mark.parametrize("hidden", [(1,), (64, 64), (65,), (4000, 1, 70)])
def test_clamped_model_always_fits_the_limits(hidden):
    out, notes = clamp_model_config(ModelConfig(hidden=hidden), LIMITS)
    assert len(out.hidden) <= LIMITS.max_depth and max(out.hidden) <= LIMITS.max_width
    assert bool(notes) == (out.hidden != hidden)  # a note exactly when something changed


# ----------------------------------------------------------------------------- training clamping
def test_epochs_and_batch_size_clamped_and_steps_capped():
    cfg, notes = clamp_train_config(TrainConfig(epochs=10, batch_size=1024, lr=0.5), LIMITS)
    assert (cfg.epochs, cfg.batch_size, cfg.max_steps, cfg.lr) == (2, 128, 100, 0.5)  # lr is never capped
    assert notes == ["epochs 10 → 2 (hosted mode allows at most 2)",
                     "batch size 1024 → 128 (hosted mode allows at most 128)"]


def test_planned_steps_note_matches_the_engine_count():
    cfg = TrainConfig(epochs=2, batch_size=32)
    n_train = 5000
    _, notes = clamp_train_config(cfg, LIMITS, n_train=n_train)
    planned = total_steps(n_train, cfg)  # independent count from the engine
    assert planned > LIMITS.max_steps
    assert notes == [f"steps {planned} → 100 (hosted mode allows at most 100)"]
    # a short run gets the ceiling silently: nothing the user chose was lowered
    out, notes = clamp_train_config(cfg, LIMITS, n_train=320)
    assert out.max_steps == 100 and notes == []


def test_explicit_max_steps():
    out, notes = clamp_train_config(TrainConfig(max_steps=20), LIMITS)
    assert out.max_steps == 20 and notes == []
    out, notes = clamp_train_config(TrainConfig(max_steps=5000), LIMITS)
    assert out.max_steps == 100 and notes == ["steps 5000 → 100 (hosted mode allows at most 100)"]


def test_train_spec_dict_and_float_epochs():
    out, notes = clamp_train_config({"epochs": 2.5, "lr": 10.0}, LIMITS)
    assert out == {"epochs": 2.0, "lr": 10.0, "max_steps": 100}
    assert notes == ["epochs 2.5 → 2.0 (hosted mode allows at most 2.0)"]
    TrainConfig(**out)


def test_garbage_values_are_left_for_the_config_to_refuse():
    out, notes = clamp_train_config({"epochs": "lots", "max_steps": "x"}, LIMITS)
    assert out["epochs"] == "lots" and notes == []
    with pytest.raises(ValueError):
        TrainConfig(**{**out, "max_steps": None, "epochs": float("inf")})


def test_clamped_train_config_round_trips_as_spec():
    cfg, _ = clamp_train_config(TrainConfig(epochs=9, batch_size=4096), LIMITS)
    assert TrainConfig(**asdict(cfg)) == cfg


# ----------------------------------------------------------------------------- counts and uploads
def test_clamp_count():
    assert clamp_count("seeds", 2, 3) == (2, [])
    assert clamp_count("seeds", 9, 3) == (3, ["seeds 9 → 3 (hosted mode allows at most 3)"])
    assert clamp_count("seeds", 9, None) == (9, [])


def test_upload_size_limit():
    limits = HostedLimits()
    check_upload_size(1_000_000, limits)  # exactly the cap is fine
    check_upload_size(50_000_000, None)  # not hosted: no cap here
    with pytest.raises(ValueError, match=r"digit.png is 1.50 MB.*at most 1.00 MB \(1,000,000 bytes\)"):
        check_upload_size(1_500_000, limits, "digit.png")
