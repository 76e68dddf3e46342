"""Named, frozen teacher presets and the default teacher shipped with kdviz.

``FAST_TEACHER`` follows the fast-MNIST recipe (resident data, larger batches, a one-cycle
learning rate, a compact CNN, bfloat16 autocast where the CPU/GPU runs it natively) and
reaches ≥ 99 % MNIST test accuracy in ~14-16 s of single-thread CPU time on this project's
2-core machine (``bench/teacher.py`` measures it over 3 seeds). The default teacher in
``kdviz/assets/default_teacher.pt`` (104 kB) was made by this project's own command line::

    python -m kdviz teacher --preset fast --out kdviz/assets/default_teacher.pt

and is loaded with ``torch.load(weights_only=True)`` (through :mod:`kdviz.checkpoints`).
``MLP_TEACHER`` is the omitted-digit demo's teacher recipe: for an MLP student an MLP teacher
transfers an unseen digit far better than the CNN does (``bench/demo.py``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from kdviz.checkpoints import CheckpointError, load_checkpoint
from kdviz.data import DataBundle
from kdviz.devices import bf16_is_fast, resolve_device
from kdviz.engine import StepRecord, TrainConfig, make_model, run_to_end, train
from kdviz.evaluation import evaluate
from kdviz.models import ModelConfig

DEFAULT_TEACHER_PATH = Path(__file__).parent / "assets" / "default_teacher.pt"
RETRAIN_COMMAND = "python -m kdviz teacher --preset fast --out kdviz/assets/default_teacher.pt"


@dataclass(frozen=True)
class TeacherPreset:
    name: str
    model: ModelConfig
    train: TrainConfig
    description: str


# Chosen on real MNIST with bench/teacher.py among CNN 8-16-32 … 32-64-128, batch 128 … 512, Adam/AdamW/SGD,
# 1 … 3 epochs: the cheapest setting that kept ≥ 99.0 % (16-32-64 at 1.5 epochs or 12-24-48 fell just short).
FAST_TEACHER = TeacherPreset(
    name="fast",
    model=ModelConfig(arch="cnn", channels=(16, 32, 64)),
    train=TrainConfig(epochs=2, batch_size=128, lr=0.01, optimizer="adam", schedule="onecycle", amp=True, log_every=20),
    description="CNN 16-32-64, 2 epochs, batch 128, Adam one-cycle (max lr 0.01), bf16 autocast where native",
)
# The omitted-digit demo's teacher (kdviz.experiments.scenarios' recipe, plus bf16 autocast): an MLP teacher
# passes "3-ness" to an MLP student far better than the CNN does (bench/demo.py measures both).
MLP_TEACHER = TeacherPreset(
    name="mlp",
    model=ModelConfig(arch="mlp", hidden=(1200, 1200), dropout=0.2),
    train=TrainConfig(epochs=3, batch_size=128, lr=1e-3, optimizer="adam", schedule="onecycle", amp=True, log_every=20),
    description="MLP 784-1200-1200-10 with dropout 0.2, 3 epochs, batch 128, Adam one-cycle (max lr 0.001), bf16 autocast where native",
)
PRESETS: dict[str, TeacherPreset] = {p.name: p for p in (FAST_TEACHER, MLP_TEACHER)}


def get_preset(name: str) -> TeacherPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown teacher preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def train_teacher(
    bundle: DataBundle,
    preset: TeacherPreset = FAST_TEACHER,
    seed: int = 0,
    device: str | torch.device | None = None,
    on_record: Callable[[StepRecord], None] | None = None,
) -> tuple[nn.Module, ModelConfig, dict]:
    """Train ``preset``'s teacher on ``bundle.train``: ``(model in eval mode, config, meta)``.

    ``meta`` holds plain data for a checkpoint: preset, seed, data set, test accuracy, and the
    training wall time (evaluation excluded).
    """
    device = resolve_device(device)
    # bf16 autocast only where the hardware runs it natively (emulated bf16 is slower than float32)
    cfg = replace(preset.train, seed=seed, amp=preset.train.amp and bf16_is_fast(device))
    model = make_model(preset.model, seed, device)
    t0 = time.perf_counter()
    records = run_to_end(train(model, bundle.train, cfg, device=device), on_record)
    train_s = time.perf_counter() - t0
    acc = evaluate(model, bundle.test).accuracy
    meta = {"preset": preset.name, "seed": seed, "data": bundle.name, "data_source": bundle.source, "test_acc": acc,
            "train_s": round(train_s, 2), "steps": records[-1].step, "final_loss": records[-1].total, "amp": cfg.amp,
            "torch": str(torch.__version__)}  # TorchVersion would not load with weights_only
    return model.eval(), preset.model, meta


def train_fast_teacher(bundle: DataBundle, seed: int = 0, device: str | torch.device | None = None, on_record=None):
    """The ``FAST_TEACHER`` preset: ``(model, config, meta)``."""
    return train_teacher(bundle, FAST_TEACHER, seed, device, on_record)


def load_default_teacher(path: str | Path = DEFAULT_TEACHER_PATH) -> tuple[nn.Module, ModelConfig, dict]:
    """The shipped teacher ``(model in eval mode, config, meta)``; a clear error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"the default teacher {path} is missing; train it again with: {RETRAIN_COMMAND}")
    return load_checkpoint(path)
