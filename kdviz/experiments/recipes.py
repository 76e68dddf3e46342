"""How networks are trained: teacher presets, scenario recipes, the shipped teachers, resumable training.

``LEAN_CNN_TEACHER`` (the default preset) is the quickest way to a ≥ 99 % MNIST teacher: a lean CNN
16-16-48 (see :class:`kdviz.models.CNN`) for 1.3 epochs, in under 10 s on this project's 2-core CPU
(``bench/teacher.py`` measures it over 3 seeds). ``FAST_CNN_TEACHER`` follows the fast-MNIST recipe
(resident data, larger batches, a one-cycle learning rate, a compact classic CNN, bfloat16 autocast where
the CPU/GPU runs it natively): ≥ 99 % in 40-55 s on the same CPU. The default teacher in
``kdviz/assets/default_teacher.pt`` (104 kB) was made by this project's own command line
(``RETRAIN_COMMAND``) and is loaded with ``torch.load(weights_only=True)`` (through
:mod:`kdviz.checkpoints`).

``DEMO_MLP_TEACHER`` is the omitted-digit demo's teacher recipe (an MLP 1200-1200 like the
paper's): for an MLP student an MLP teacher transfers an unseen digit far better than the CNN
does (``bench/demo.py``). It ships in float16 as ``DEMO_TEACHER`` (see :func:`export_half`).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from kdviz import data as kdata
from kdviz import teacher_logits
from kdviz.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from kdviz.engine import StepRecord, TrainConfig, make_model, run_to_end, total_steps, train
from kdviz.devices import bf16_is_fast, resolve_device
from kdviz.evaluation import evaluate
from kdviz.experiments.results import live_test_set
from kdviz.methods.objective import DistillConfig
from kdviz.models import ModelConfig

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # kdviz/assets
DEFAULT_TEACHER = ASSETS / "default_teacher.pt"
# The demo teacher ships in float16 (4.8 MB) so the classroom demo needs no teacher training.
DEMO_TEACHER = ASSETS / "demo_teacher.pt"
RETRAIN_COMMAND = "python -m kdviz teacher --preset fast --out kdviz/assets/default_teacher.pt"
EVAL_POINTS = 8  # test evaluations per training run (on LIVE_TEST_N images) for the live curves


# ----------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class Recipe:
    """How one network is trained: its architecture and optimisation.

    ``lr_decay`` < 1 switches to the resumable trainer: one ``train`` call per epoch, the
    learning rate multiplied by ``lr_decay`` after each, a checkpoint after each.
    """

    model: ModelConfig = ModelConfig(hidden=(800, 800))
    epochs: float = 3.0
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    schedule: str = "onecycle"
    jitter: int = 0
    lr_decay: float = 1.0
    # bfloat16 autocast, used only where the hardware runs it natively (kdviz.engine.bf16_is_fast):
    # the classroom demo's 800-800 student trains ~2.7× faster on an AVX512-BF16 CPU (bench/demo.py)
    amp: bool = False

    def __post_init__(self) -> None:
        self.train_config(0)  # TrainConfig validates epochs, lr, optimizer, schedule, jitter
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        if not isinstance(self.amp, bool):
            raise ValueError(f"amp must be True or False, got {self.amp!r}")

    def train_config(self, seed: int, log_every: int = 20, **changes) -> TrainConfig:
        cfg = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
                          schedule=self.schedule, jitter=self.jitter, seed=seed, log_every=log_every)
        return replace(cfg, **changes)


# The omitted-digit effect needs an MLP teacher like the paper's (a CNN teacher's soft targets
# transfer the unseen digit poorly). Rebuild the shipped copy: see export_half().
DEMO_MLP_TEACHER = Recipe(ModelConfig(hidden=(1200, 1200), dropout=0.2), epochs=3.0, amp=True)


@dataclass(frozen=True)
class TeacherPreset:
    """A teacher the ``teacher`` command trains by name (``TEACHER_PRESETS``)."""

    name: str
    model: ModelConfig
    train: TrainConfig
    description: str


# Chosen on real MNIST with bench/teacher.py among CNN 8-16-32 … 32-64-128, batch 128 … 512, Adam/AdamW/SGD,
# 1 … 3 epochs: the cheapest setting that kept ≥ 99.0 % (16-32-64 at 1.5 epochs or 12-24-48 fell just short).
FAST_CNN_TEACHER = TeacherPreset(
    name="fast",
    model=ModelConfig(arch="cnn", channels=(16, 32, 64)),
    train=TrainConfig(epochs=2, batch_size=128, lr=0.01, optimizer="adam", schedule="onecycle", amp=True, log_every=20),
    description="CNN 16-32-64, 2 epochs, batch 128, Adam one-cycle (max lr 0.01), bf16 autocast where native",
)
# The quickest way to a ≥ 99 % teacher on a CPU: chosen on real MNIST (2 threads, seed 0 unless said) among
# lean CNNs 8-16-32 … 16-32-64, with or without pooling before BatchNorm, a hidden head layer, label
# smoothing, 1 … 1.3 epochs, batch 96 … 512, max lr 0.005 … 0.04. 1 epoch of 16-16-64 read 98.93-99.10 % over
# 5 seeds; 1.2 epochs 98.95-99.15 %. 1.3 epochs over seeds 0-2 in one run of bench/teacher.py: 16-16-64
# 99.04-99.20 % (median 10.4 s), 16-16-48 99.08-99.14 % (9.4 s), batch 512 98.92-99.03 % (11.7 s). Over seeds
# 0-4, 16-16-48 read 99.08 / 99.10 / 99.14 / 99.14 / 98.98 % (median 9.1 s): ~99.1 %, not a guaranteed 99.0.
LEAN_CNN_TEACHER = TeacherPreset(
    name="lean",
    model=ModelConfig(arch="cnn", channels=(16, 16, 48), cnn_layout="lean"),
    train=TrainConfig(epochs=1.3, batch_size=128, lr=0.02, optimizer="adam", schedule="onecycle", amp=True, log_every=20),
    description="CNN 16-16-48 (lean: strided first conv, pooling before BatchNorm, flattened head), 1.3 epochs, "
                "batch 128, Adam one-cycle (max lr 0.02), bf16 autocast where native",
)
# The demo's MLP teacher recipe as a preset, so `python -m kdviz teacher --preset mlp` trains the same network.
MLP_TEACHER = TeacherPreset(
    name="mlp",
    model=DEMO_MLP_TEACHER.model,
    train=DEMO_MLP_TEACHER.train_config(0, amp=DEMO_MLP_TEACHER.amp),
    description="MLP 784-1200-1200-10 with dropout 0.2, 3 epochs, batch 128, Adam one-cycle (max lr 0.001), bf16 autocast where native",
)
TEACHER_PRESETS: dict[str, TeacherPreset] = {p.name: p for p in (LEAN_CNN_TEACHER, FAST_CNN_TEACHER, MLP_TEACHER)}


def teacher_preset(name: str) -> TeacherPreset:
    if name not in TEACHER_PRESETS:
        raise ValueError(f"unknown teacher preset {name!r}; choose one of {sorted(TEACHER_PRESETS)}")
    return TEACHER_PRESETS[name]


# ----------------------------------------------------------------------------- teacher presets
def train_teacher(
    bundle: kdata.DataBundle,
    preset: TeacherPreset = FAST_CNN_TEACHER,
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


def train_fast_teacher(bundle: kdata.DataBundle, seed: int = 0, device: str | torch.device | None = None, on_record=None):
    """The ``FAST_CNN_TEACHER`` preset: ``(model, config, meta)``."""
    return train_teacher(bundle, FAST_CNN_TEACHER, seed, device, on_record)


def load_default_teacher(path: str | Path = DEFAULT_TEACHER) -> tuple[nn.Module, ModelConfig, dict]:
    """The shipped teacher ``(model in eval mode, config, meta)``; a clear error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"the default teacher {path} is missing; train it again with: {RETRAIN_COMMAND}")
    return load_checkpoint(path)


# ----------------------------------------------------------------------------- teachers for scenarios
def teacher_cache_path(cache_dir: str | Path, recipe: Recipe, source: str) -> Path:
    """A file name that changes whenever the recipe or the data source does."""
    key = hashlib.sha1(json.dumps([asdict(recipe), source], sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_dir) / f"teacher-{source}-{key}.pt"


def teacher_candidates(recipe: Recipe, bundle: kdata.DataBundle, cache_dir: str = "",
                       allow_default: bool = True) -> list[tuple[Path, str]]:
    """``[(checkpoint path, source)]`` that may stand in for training ``recipe``, in the order tried."""
    candidates = [(DEFAULT_TEACHER, "shipped default")] if allow_default and bundle.is_mnist else []
    if bundle.is_mnist and recipe == DEMO_MLP_TEACHER:
        candidates.append((DEMO_TEACHER, "shipped demo teacher"))
    if cache_dir:
        candidates.append((teacher_cache_path(cache_dir, recipe, bundle.source), "cached"))
    return candidates


def _usable(path: Path, bundle: kdata.DataBundle) -> tuple[nn.Module, ModelConfig] | None:
    """A checkpoint's model when it loads and was trained on this data source (when it says)."""
    try:
        model, cfg, meta = load_checkpoint(path)
    except CheckpointError:
        return None
    trained_on = meta.get("data_source")
    if trained_on is not None and trained_on != bundle.source:
        return None
    return model, cfg


def obtain_teacher(recipe: Recipe, bundle: kdata.DataBundle, device: torch.device, *, ckpt: str = "",
                   cache_dir: str = "", allow_default: bool = True, run_dir: str = "") -> Iterator[dict]:
    """Yields events; returns ``(teacher, info)``.

    Order: an explicit checkpoint; the shipped teachers (MNIST only); a cached teacher for this
    recipe; else train one (and cache it). ``info`` says which, with its test accuracy.
    """
    if ckpt:
        model, cfg, meta = load_checkpoint(ckpt)  # CheckpointError (a ValueError) names the problem
        return model.to(device).eval(), {"source": "checkpoint", "path": str(ckpt), "label": cfg.label()}
    for path, source in teacher_candidates(recipe, bundle, cache_dir, allow_default):
        found = _usable(path, bundle) if path.is_file() else None
        if found is not None:
            return found[0].to(device).eval(), {"source": source, "path": str(path), "label": found[1].label()}
    model = yield from train_network(recipe, bundle.train, 0, device, "teacher", test=live_test_set(bundle.test), run_dir=run_dir)
    info = {"source": "trained", "path": "", "label": recipe.model.label()}
    if cache_dir:
        path = teacher_cache_path(cache_dir, recipe, bundle.source)
        save_checkpoint(path, model, recipe.model, {"data_source": bundle.source, "recipe": asdict(recipe)})
        info["path"] = str(path)
    return model.eval(), info


def export_half(src: str | Path, dst: str | Path = DEMO_TEACHER) -> Path:
    """Copy a checkpoint with float16 weights (half the bytes); loading upcasts into float32.

    The shipped demo teacher was made by ``python -m kdviz scenario omitted-digit`` (which trains
    and caches the DEMO_MLP_TEACHER recipe under runs/teachers/) and then this function.
    """
    obj = torch.load(src, map_location="cpu", weights_only=True)
    obj["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
    obj["meta"] = {**obj.get("meta", {}), "stored_dtype": "float16"}
    torch.save(obj, dst)
    return Path(dst)


def ship_teacher_logits(bundle: kdata.DataBundle) -> list[Path]:
    """Write the shipped teachers' float32 logits on MNIST into ``kdviz/assets/teacher_logits/``, where
    :func:`kdviz.teacher_logits.base_logits` looks first: the demo teacher's on the training and test
    images (the classroom demo reads both), the default teacher's on the training images (the Distill
    page). Made by ``python -c "from kdviz.data import load_mnist; from kdviz.experiments.recipes import
    ship_teacher_logits; ship_teacher_logits(load_mnist())"`` after either teacher changes."""
    if not bundle.is_mnist:
        raise ValueError(f"the shipped teacher logits are for MNIST, not {bundle.name}")
    demo, default = (load_checkpoint(path)[0].eval() for path in (DEMO_TEACHER, DEFAULT_TEACHER))
    return [teacher_logits.ship(demo, bundle.train), teacher_logits.ship(demo, bundle.test), teacher_logits.ship(default, bundle.train)]


# ----------------------------------------------------------------------------- training
def record_event(run: str, rec: StepRecord, seed: int | None = None) -> dict:
    event = {"type": "record", "run": run, **rec.to_dict()}
    if seed is not None:
        event["seed"] = seed
    return event


def train_network(recipe: Recipe, data: kdata.TensorData, seed: int, device: torch.device, run: str, *,
                  teacher: nn.Module | None = None, distill: DistillConfig | None = None,
                  test: kdata.TensorData | None = None, log_every: int = 20, run_dir: str = "",
                  teacher_logits: torch.Tensor | None = None) -> Iterator[dict]:
    """Train one network from a fresh init (seeded); yields record events, returns the model.
    ``teacher_logits``: the teacher's logits on ``data``, one row per image, when already known."""
    model = make_model(recipe.model, seed, device)
    if recipe.lr_decay < 1:
        yield from _train_resumable(model, recipe, data, seed, device, run, teacher, distill, test, log_every, run_dir,
                                    teacher_logits)
        return model
    cfg = recipe.train_config(seed, log_every, amp=recipe.amp and bf16_is_fast(device))
    cfg = replace(cfg, eval_every=max(1, total_steps(len(data), cfg) // EVAL_POINTS))
    for rec in train(model, data, cfg, teacher=teacher, distill=distill, test=test, device=device, teacher_logits=teacher_logits):
        yield record_event(run, rec, seed)
    return model


def _train_resumable(model, recipe: Recipe, data, seed, device, run, teacher, distill, test, log_every, run_dir,
                     teacher_logits=None) -> Iterator[dict]:
    """One ``train`` call per epoch (lr × lr_decay after each), a checkpoint after each under ``run_dir``.

    A later call with the same ``run_dir`` loads the last finished epoch and goes on from there.
    """
    path = Path(run_dir) / f"{run}.pt" if run_dir else None
    start = _resume_epoch(model, path, recipe, device)
    if start:
        yield {"type": "status", "text": f"{run}: resuming after epoch {start} of {math.ceil(recipe.epochs)}"}
    for epoch in range(start, math.ceil(recipe.epochs)):
        cfg = recipe.train_config(seed * 1000 + epoch, log_every, epochs=min(1.0, recipe.epochs - epoch),
                                  lr=recipe.lr * recipe.lr_decay**epoch, schedule="constant",
                                  amp=recipe.amp and bf16_is_fast(device))
        for rec in train(model, data, cfg, teacher=teacher, distill=distill, test=test, device=device,
                         teacher_logits=teacher_logits):
            rec.epoch += epoch
            yield record_event(run, rec, seed)
        if path is not None:
            save_checkpoint(path, model, recipe.model, {"epoch": epoch + 1, "recipe": asdict(recipe)})


def _plain(obj):
    """JSON round trip: tuples become lists, so a saved recipe compares equal to the live one."""
    return json.loads(json.dumps(obj))


def _resume_epoch(model: nn.Module, path: Path | None, recipe: Recipe, device) -> int:
    """Epochs already done according to the checkpoint at ``path`` (0 when none or another recipe)."""
    if path is None or not path.is_file():
        return 0
    saved, _, meta = load_checkpoint(path)
    if _plain(meta.get("recipe")) != _plain(asdict(recipe)):
        return 0  # another recipe: start over rather than continue a different run
    model.load_state_dict(saved.state_dict())
    model.to(device)
    return int(meta.get("epoch", 0))
