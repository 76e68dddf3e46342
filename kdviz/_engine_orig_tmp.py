"""Training as a generator of step records, so any front end can drive, pause and resume it.

``train(...)`` yields a :class:`StepRecord` every ``log_every`` steps; a consumer that stops
pulling pauses training, and pulling again resumes it. Data stays resident on the device;
batches are index slices of one permutation per epoch (no DataLoader on the hot path).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator

import torch
from torch import nn

from .data import TensorData, random_shift
from .methods import DistillConfig, build_objective
from .models import ModelConfig, build_model

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "onecycle", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 1.0
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"  # learning-rate schedule, stepped per batch
    seed: int = 0
    jitter: int = 0  # random shift of up to this many pixels (augmentation)
    log_every: int = 10  # steps per yielded record (and per host sync)
    eval_every: int = 0  # steps between test evaluations; 0 = at the end of each epoch
    max_steps: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (0 < self.epochs <= 1000, f"epochs must lie in (0, 1000], got {self.epochs}"),
            (1 <= self.batch_size <= 65536, f"batch_size must lie in [1, 65536], got {self.batch_size}"),
            (math.isfinite(self.lr) and 0 < self.lr <= 100, f"learning rate must lie in (0, 100], got {self.lr}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"),
            (self.schedule in LR_SCHEDULES, f"schedule must be one of {LR_SCHEDULES}, got {self.schedule!r}"),
            (0 <= self.weight_decay <= 1, f"weight_decay must lie in [0, 1], got {self.weight_decay}"),
            (0 <= self.momentum < 1, f"momentum must lie in [0, 1), got {self.momentum}"),
            (0 <= self.jitter <= 4, f"jitter must lie in 0..4 pixels, got {self.jitter}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class StepRecord:
    step: int
    epoch: float
    total: float
    losses: dict[str, float]  # weighted terms; they sum to total
    raw: dict[str, float]  # unweighted values (kl without T², ce, ...)
    lr: float
    T: float | None
    alpha: float | None
    samples_per_s: float
    elapsed_s: float
    train_acc: float
    test_acc: float | None = None
    done: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class NonFiniteLoss(ValueError):
    """Training diverged: the loss became NaN or infinite at ``step``."""

    def __init__(self, step: int, value: float, lr: float):
        self.step = step
        super().__init__(
            f"training stopped at step {step}: the loss became non-finite ({value}); "
            f"the learning rate {lr:g} is probably too high — lower it and start again"
        )


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """An explicit device, else ``KDVIZ_DEVICE``, else CUDA when available, else CPU."""
    name = device or os.environ.get("KDVIZ_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available")
    return dev


def make_model(cfg: ModelConfig, seed: int = 0, device: str | torch.device = "cpu") -> nn.Module:
    """A freshly initialised model; the same seed gives the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(cfg)
    return model.to(device)


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Eval-mode logits ``[N, C]`` in batches (restores the model's train/eval mode)."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i : i + batch_size])[0] for i in range(0, x.shape[0], batch_size)])
    model.train(was_training)
    return out


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    per_class: list[float]  # accuracy per true class (NaN where the class is absent)
    confusion: list[list[int]]  # [true][predicted]
    n: int

    @property
    def errors(self) -> int:
        return self.n - round(self.accuracy * self.n)


def evaluate(model: nn.Module, data: TensorData, num_classes: int = 10, bias: torch.Tensor | None = None) -> EvalResult:
    """Accuracy, per-class accuracy and confusion matrix; ``bias`` ``[C]`` is added to the logits."""
    device = next(model.parameters()).device
    logits = predict_logits(model, data.x.to(device))
    if bias is not None:
        logits = logits + bias.to(logits.device)
    return eval_from_logits(logits, data.y.to(device), num_classes)


def eval_from_logits(logits: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> EvalResult:
    pred = logits.argmax(-1)
    conf = torch.bincount(labels * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    support = conf.sum(1).clamp_min(1)
    per_class = (conf.diag().float() / support).tolist()
    per_class = [p if s > 0 else float("nan") for p, s in zip(per_class, conf.sum(1).tolist())]
    acc = float((pred == labels).float().mean())
    return EvalResult(acc, per_class, conf.tolist(), int(labels.shape[0]))


def agreement(model_a: nn.Module, model_b: nn.Module, data: TensorData) -> float:
    """Fraction of images on which the two models predict the same class."""
    da, db = next(model_a.parameters()).device, next(model_b.parameters()).device
    pa = predict_logits(model_a, data.x.to(da)).argmax(-1).cpu()
    pb = predict_logits(model_b, data.x.to(db)).argmax(-1).cpu()
    return float((pa == pb).float().mean())


# ----------------------------------------------------------------------------- training
def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)
    opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_lr_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.25)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return None


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches only (constant shapes, BatchNorm-safe); at least one."""
    return max(1, n // batch_size)


def total_steps(n: int, cfg: TrainConfig) -> int:
    steps = max(1, math.ceil(cfg.epochs * steps_per_epoch(n, cfg.batch_size)))
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def teacher_logits_cache(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Teacher logits for the whole transfer set, computed once in eval mode: ``[N, C]``."""
    return predict_logits(teacher, x)


def batch_order(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """Endless index batches ``[batch_size]``: a fresh permutation per epoch, drawn on the CPU."""
    per_epoch = steps_per_epoch(n, batch_size)
    size = min(batch_size, n)
    while True:
        perm = torch.randperm(n, generator=generator).to(device, non_blocking=True)
        for i in range(per_epoch):
            yield perm[i * size : (i + 1) * size]


@dataclass
class _Setup:
    """Everything a run needs, built once before the first step."""

    objective: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    cache: torch.Tensor | None  # [N, C] teacher logits, or None when the teacher runs per batch
    total_steps: int
    per_epoch: int


def _setup(student, data, cfg, teacher, distill, device) -> _Setup:
    objective = build_objective(distill, student, teacher).to(device)
    params = [p for p in list(student.parameters()) + list(objective.parameters()) if p.requires_grad]
    opt = make_optimizer(params, cfg)
    steps = total_steps(len(data), cfg)
    # Teacher logits can be computed once when inputs never change (no jitter) and no feature
    # term needs the teacher's activations: the teacher's forward then costs nothing per step.
    cached = teacher is not None and distill is not None and cfg.jitter == 0 and not distill.needs_teacher_features
    cache = teacher_logits_cache(teacher, data.x) if cached else None
    return _Setup(objective, opt, make_lr_schedule(opt, cfg, steps), cache, steps, steps_per_epoch(len(data), cfg.batch_size))


def _teacher_outputs(teacher, setup: _Setup, idx, x, need_feats: bool):
    if teacher is None:
        return None, {}
    if setup.cache is not None:
        return setup.cache[idx], {}
    with torch.no_grad():
        t_logits, t_feats = teacher(x)
    return t_logits, (t_feats if need_feats else {})


def train(
    student: nn.Module,
    data: TensorData,
    cfg: TrainConfig,
    *,
    teacher: nn.Module | None = None,
    distill: DistillConfig | None = None,
    test: TensorData | None = None,
    device: str | torch.device | None = None,
) -> Iterator[StepRecord]:
    """Train ``student`` on ``data``; distil from ``teacher`` when ``distill`` is given.

    Yields a :class:`StepRecord` every ``cfg.log_every`` steps and a final one with
    ``done=True``. Deterministic for a given ``cfg.seed`` (and initial weights).
    Raises :class:`NonFiniteLoss` at the first NaN/inf loss.
    """
    device = resolve_device(device)
    student.to(device).train()
    data = data.to(device)
    if teacher is not None:
        teacher.to(device).eval()  # the teacher stays in eval mode, under no_grad
    torch.manual_seed(cfg.seed)  # dropout masks
    gen = torch.Generator().manual_seed(cfg.seed)  # data order and jitter
    setup = _setup(student, data, cfg, teacher if distill else None, distill, device)
    yield from _loop(student, data, cfg, teacher if distill else None, distill, test, setup, gen, device)


def _loop(student, data, cfg, teacher, distill, test, setup: _Setup, gen, device) -> Iterator[StepRecord]:
    order = batch_order(len(data), cfg.batch_size, gen, device)
    need_feats = distill is not None and distill.needs_teacher_features
    chunk = _Chunk()
    start = time.perf_counter()
    for step in range(1, setup.total_steps + 1):
        progress = (step - 1) / max(1, setup.total_steps - 1)
        T = distill.T_at(progress) if distill else None
        alpha = distill.alpha_at(progress) if distill else None
        idx = next(order)
        x, y = data.x[idx], data.y[idx]
        x_in = random_shift(x, cfg.jitter, gen)
        t_logits, t_feats = _teacher_outputs(teacher, setup, idx, x_in, need_feats)
        s_logits, s_feats = student(x_in)
        weighted, raw = setup.objective(s_logits, s_feats, t_logits, t_feats, y, T, alpha)
        total = sum(weighted.values())
        if device.type == "cpu" and not torch.isfinite(total):  # one cheap check per step on the CPU
            raise NonFiniteLoss(step, float(total), setup.optimizer.param_groups[0]["lr"])
        setup.optimizer.zero_grad(set_to_none=True)
        total.backward()
        setup.optimizer.step()
        if setup.scheduler is not None:
            setup.scheduler.step()
        chunk.add(total, weighted, raw, s_logits, y)
        last = step == setup.total_steps
        evaluate_now = test is not None and (last or _eval_due(step, cfg, setup.per_epoch))
        if step % cfg.log_every == 0 or last or evaluate_now:
            rec = chunk.flush(step, setup, T, alpha, start, evaluate(student, test).accuracy if evaluate_now else None)
            rec.done = last
            student.train()
            yield rec


def _eval_due(step: int, cfg: TrainConfig, per_epoch: int) -> bool:
    every = cfg.eval_every or per_epoch
    return step % every == 0


class _Chunk:
    """Sums of the losses over the steps since the last record, kept on the device.

    One host sync per record (not per step) keeps GPUs busy; on the CPU it is free anyway.
    """

    def __init__(self) -> None:
        self._reset(time.perf_counter())

    def _reset(self, now: float) -> None:
        self.sums: torch.Tensor | None = None  # [1 + n_weighted + n_raw + 1]
        self.keys: tuple[list[str], list[str]] = ([], [])
        self.steps, self.samples, self.t0 = 0, 0, now
        self.first_step = None

    def add(self, total, weighted: dict, raw: dict, s_logits: torch.Tensor, y: torch.Tensor) -> None:
        labelled = y != -100
        correct = ((s_logits.argmax(-1) == y) & labelled).sum() / labelled.sum().clamp_min(1)
        vals = torch.stack([total.detach(), *(v.detach() for v in weighted.values()), *(v.detach() for v in raw.values()), correct.float()])
        self.sums = vals if self.sums is None else self.sums + vals
        self.keys = (list(weighted), list(raw))
        self.steps += 1
        self.samples += y.shape[0]

    def flush(self, step: int, setup: _Setup, T, alpha, start: float, test_acc) -> StepRecord:
        now = time.perf_counter()
        means = (self.sums / max(1, self.steps)).tolist()  # the one host sync
        if not all(math.isfinite(v) for v in means):
            raise NonFiniteLoss(step, means[0], setup.optimizer.param_groups[0]["lr"])
        nw = len(self.keys[0])
        rec = StepRecord(
            step=step,
            epoch=step / setup.per_epoch,
            total=means[0],
            losses=dict(zip(self.keys[0], means[1 : 1 + nw])),
            raw=dict(zip(self.keys[1], means[1 + nw : -1])),
            lr=setup.optimizer.param_groups[0]["lr"],
            T=T,
            alpha=alpha,
            samples_per_s=self.samples / max(now - self.t0, 1e-9),
            elapsed_s=now - start,
            train_acc=means[-1],
            test_acc=test_acc,
        )
        self._reset(time.perf_counter())
        return rec


def run_to_end(records: Iterator[StepRecord], on_record=None) -> list[StepRecord]:
    """Drain a training generator; ``on_record`` sees each record (progress bars, logging)."""
    out = []
    for rec in records:
        out.append(rec)
        if on_record is not None:
            on_record(rec)
    return out
