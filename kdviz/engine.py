"""Training as a generator of step records, so any front end can drive, pause and resume it.

``train(...)`` yields a :class:`StepRecord` every ``log_every`` steps; a consumer that stops
pulling pauses training, and pulling again resumes it. Data stays resident on the device;
batches are index slices of one permutation per epoch (no DataLoader on the hot path).

Hot-path choices (each measured with ``bench/throughput.py`` / ``bench/teacher.py`` on a 2-core CPU):
- fused Adam/AdamW/SGD: one kernel per parameter instead of ~10 small ops (~4× faster ``step()``);
- plain KD/scratch objectives skip the per-step input checks (``check=False``): their inputs were
  validated once up front (the checks cost ~50 µs per step on NaN/label tests);
- ``index_select`` batches (~6× faster than ``x[idx]``); jitter shifts by one unfold-and-index;
  shift offsets drawn once per epoch and moved to the device in one copy;
- a teacher that must run every batch (jitter) runs on groups of batches (~512 rows at once);
- conv nets train channels-last on the CPU (~1.7× faster); ``amp`` adds bf16 autocast;
- one ``.item()`` per loss value and step on the CPU (a host read is free there) so a NaN stops
  training at once; on CUDA the per-step values go to a device buffer read once per record, so the
  GPU never waits for the host, and the first non-finite row still names the exact step;
- train accuracy counted over up to 32 batches at once, the loss terms shown but not trained on
  (raw kl) computed outside autograd, and a [B, C] batch's CE without reshapes: together the
  engine went from 89–90 % to 93–94 % of the bare step (20-step chunks, paired, this CPU).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Iterator

import torch
from torch import nn

from kdviz import optim
from kdviz.batches import TEACHER_ROWS, Shifter, feed, shuffled_batches, steps_per_epoch
from kdviz.data import HIDDEN_LABEL, TensorData
from kdviz.devices import autocast, prepare_model, resolve_device
from kdviz.evaluation import evaluate, teacher_logits_cache
from kdviz.losses import check_label_range
from kdviz.methods import DistillConfig, Objective, build_objective
from kdviz.models import ModelConfig, build_model

OPTIMIZERS = ("adam", "adamw", "sgd")
FOLD_STEPS = 32  # batches whose train accuracy is counted in one pass (bounds the logits held)
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
    log_every: int = 10  # steps per yielded record (and per host sync on CUDA)
    eval_every: int = 0  # steps between test evaluations; 0 = at the end of each epoch
    max_steps: int | None = None
    amp: bool = False  # bfloat16 autocast for forward passes (CUDA, or a CPU with AVX512-BF16); weights stay float32
    cache_teacher: bool = True  # reuse the teacher's logits when inputs never change; False: run it every batch

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
            (isinstance(self.amp, bool), f"amp must be True or False, got {self.amp!r}"),
            (isinstance(self.cache_teacher, bool), f"cache_teacher must be True or False, got {self.cache_teacher!r}"),
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
    samples_per_s: float  # since the previous record (the live rate)
    elapsed_s: float  # since the first step, evaluations included
    train_acc: float
    test_acc: float | None = None
    done: bool = False
    samples: int = 0  # images trained on since the first step: samples / elapsed_s is the run's average rate

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


def make_model(cfg: ModelConfig, seed: int = 0, device: str | torch.device = "cpu") -> nn.Module:
    """A freshly initialised model; the same seed gives the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(cfg)
    return model.to(device)


# ----------------------------------------------------------------------------- optimiser and schedule
def make_optimizer(params, cfg: TrainConfig):
    """The configured optimiser, on fused kernels where they exist (``kdviz/optim.py``)."""
    return optim.build(cfg.optimizer, params, cfg.lr, cfg.weight_decay, cfg.momentum)


def make_lr_schedule(opt, cfg: TrainConfig, total_steps: int):
    """Stepped once per batch (None for a constant learning rate)."""
    return optim.schedule(cfg.schedule, opt, cfg.lr, total_steps)


def total_steps(n: int, cfg: TrainConfig) -> int:
    steps = max(1, math.ceil(cfg.epochs * steps_per_epoch(n, cfg.batch_size)))
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


# ----------------------------------------------------------------------------- training
def _check_labels_once(y: torch.Tensor, num_classes: int) -> bool:
    """Raise on out-of-range labels; True when no label is hidden (the check-free loss applies)."""
    check_label_range(y, num_classes)
    return bool((y != HIDDEN_LABEL).all())


@dataclass
class _Setup:
    """Everything a run needs, built once before the first step."""

    objective: nn.Module
    optimizer: object  # kdviz.optim.Adam / SGD, or a torch.optim optimiser
    scheduler: object
    cache: torch.Tensor | None  # [N, C] teacher logits, or None when the teacher runs per batch
    total_steps: int
    per_epoch: int
    fast: bool = False  # objective without per-step input checks (plain KD/scratch, inputs validated once)
    all_labelled: bool = False  # no HIDDEN_LABEL in the data: every image counts for train accuracy


def uses_teacher_logits(cfg: TrainConfig, distill) -> bool:
    """Whether a distilled run reads the teacher's logits once, up front (then ``train(teacher_logits=...)``
    can hand them in): its inputs never change (no jitter) and no feature term needs the teacher's
    activations, so the teacher's forward costs nothing per step."""
    return distill is not None and not cfg.jitter and not distill.needs_teacher_features and cfg.cache_teacher


def _cache_for(teacher, data: TensorData, cfg: TrainConfig, distill, teacher_logits) -> torch.Tensor | None:
    if teacher is None or not uses_teacher_logits(cfg, distill):
        return None
    if teacher_logits is None:
        return teacher_logits_cache(teacher, data, amp=cfg.amp)  # chunk by chunk: a view is never copied whole
    if teacher_logits.ndim != 2 or teacher_logits.shape[0] != len(data):
        raise ValueError(f"teacher_logits must have shape [{len(data)}, C] (one row per training image), got {tuple(teacher_logits.shape)}")
    return teacher_logits.to(data.device, torch.float32)


def _setup(student, data, cfg, teacher, distill, device, teacher_logits=None) -> _Setup:
    objective = build_objective(distill, student, teacher).to(device)
    params = [p for p in list(student.parameters()) + list(objective.parameters()) if p.requires_grad]
    opt = make_optimizer(params, cfg)
    steps = total_steps(len(data), cfg)
    cache = _cache_for(teacher, data, cfg, distill, teacher_logits)
    if cache is not None and not bool(torch.isfinite(cache).all()):
        raise ValueError(f"teacher logits contain {int((~torch.isfinite(cache)).sum())} non-finite value(s) (NaN or ±inf)")
    plain = type(objective) is Objective and not getattr(objective, "bound", ())
    num_classes = cache.shape[1] if cache is not None else _num_classes(student, device)
    all_labelled = _check_labels_once(data.y, num_classes)
    return _Setup(objective, opt, make_lr_schedule(opt, cfg, steps), cache, steps, steps_per_epoch(len(data), cfg.batch_size),
                  fast=all_labelled and plain, all_labelled=all_labelled)


def _num_classes(model: nn.Module, device: torch.device) -> int:
    """Output width of ``model``, from its head when it has one (else one dummy forward)."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return head.out_features
    was_training = model.training
    with torch.no_grad():
        model.eval()
        width = model(torch.zeros(1, 1, 28, 28, device=device))[0].shape[-1]
    model.train(was_training)
    return int(width)


def _teacher_outputs(teacher, setup: _Setup, idx, x, need_feats: bool, t_ahead=None):
    if teacher is None:
        return None, {}
    if t_ahead is not None:  # computed ahead by ``feed`` in a grouped pass
        return t_ahead, {}
    if setup.cache is not None:
        return setup.cache.index_select(0, idx), {}
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
    teacher_logits: torch.Tensor | None = None,
) -> Iterator[StepRecord]:
    """Train ``student`` on ``data``; distil from ``teacher`` when ``distill`` is given.

    Yields a :class:`StepRecord` every ``cfg.log_every`` steps and a final one with
    ``done=True``. Deterministic for a given ``cfg.seed`` (and initial weights).
    Raises :class:`NonFiniteLoss` naming the first step whose loss was NaN/inf.
    ``teacher_logits`` ``[N, C]`` (optional): the teacher's eval-mode logits for ``data``,
    computed once by the caller and reused across runs (used only when no jitter/feature term).
    """
    device = resolve_device(device)
    prepare_model(student, device, cfg.amp).train()
    data = data.to(device, non_blocking=True)  # a transfer set stays a view of the shared images (no copy on the CPU)
    test = test.to(device) if test is not None else None  # once, not at every evaluation
    if teacher is not None:
        prepare_model(teacher, device, cfg.amp).eval()  # the teacher stays in eval mode, under no_grad
    torch.manual_seed(cfg.seed)  # dropout masks
    gen = torch.Generator().manual_seed(cfg.seed)  # data order and jitter
    teacher = teacher if distill else None
    setup = _setup(student, data, cfg, teacher, distill, device, teacher_logits)
    yield from _loop(student, data, cfg, teacher, distill, test, setup, gen, device)


def _step_losses(student, setup: _Setup, teacher, distill, x, y, idx, T, alpha, need_feats, amp, t_ahead=None):
    """Forward passes and loss for one batch: ``(s_logits [B, C], total, weighted, raw)``."""
    with amp:  # the loss too, as AMP recommends: softmax and CE autocast to float32
        t_logits, t_feats = _teacher_outputs(teacher, setup, idx, x, need_feats, t_ahead)
        s_logits, s_feats = student(x)
        weighted, raw = setup.objective(s_logits, s_feats, t_logits, t_feats, y, T, alpha, check=not setup.fast)
    values = list(weighted.values())
    total = values[0]
    for v in values[1:]:  # same order as sum(weighted.values()), without the extra 0 + ...
        total = total + v
    return s_logits, total, weighted, raw


def _loop(student, data, cfg, teacher, distill, test, setup: _Setup, gen, device) -> Iterator[StepRecord]:
    need_feats = distill is not None and distill.needs_teacher_features
    stats, amp = _Stats(device, cfg.log_every, setup.all_labelled), autocast(device, cfg.amp)
    batch = min(cfg.batch_size, len(data))
    order = shuffled_batches(len(data), cfg.batch_size, cfg.jitter, gen, device)
    batches = feed(data, order, Shifter(cfg.jitter, max(batch, TEACHER_ROWS), device),
                   setup.total_steps, batch, _teacher_ahead(teacher, setup, need_feats, amp))
    start = time.perf_counter()
    for step, (idx, x, y, t_ahead) in enumerate(batches, start=1):
        progress = (step - 1) / max(1, setup.total_steps - 1)
        T = distill.T_at(progress) if distill else None
        alpha = distill.alpha_at(progress) if distill else None
        s_logits, total, weighted, raw = _step_losses(student, setup, teacher, distill, x, y, idx, T, alpha, need_feats, amp, t_ahead)
        stats.add(step, total, weighted, raw, s_logits, y, setup.optimizer)  # raises NonFiniteLoss on the CPU
        setup.optimizer.zero_grad(set_to_none=True)
        total.backward()
        setup.optimizer.step()
        if setup.scheduler is not None:
            setup.scheduler.step()
        last = step == setup.total_steps
        evaluate_now = test is not None and (last or _eval_due(step, cfg, setup.per_epoch))
        if step % cfg.log_every == 0 or last or evaluate_now:
            rec = stats.flush(step, setup, T, alpha, start, evaluate(student, test).accuracy if evaluate_now else None)
            rec.done = last
            student.train()
            yield rec


def _teacher_ahead(teacher, setup: _Setup, need_feats: bool, amp):
    """The grouped teacher pass for ``feed`` when the teacher runs every batch for its logits only."""
    if teacher is None or setup.cache is not None or need_feats:
        return None

    def logits(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), amp:
            return teacher(x)[0]  # [k·B, C]

    return logits


def _eval_due(step: int, cfg: TrainConfig, per_epoch: int) -> bool:
    every = cfg.eval_every or per_epoch
    return step % every == 0


class _Stats:
    """Per-step values ``[total, *weighted, *raw]`` and the correct / labelled counts since the last record.

    CPU: one ``.item()`` per value and step — free there — so a NaN stops training
    before the bad step updates the weights. CUDA: rows go to a device buffer ``[log_every, K]`` read
    once per record (the GPU never waits for the host); the first non-finite row names the exact step.
    Train accuracy is counted for up to :data:`FOLD_STEPS` batches at once: one argmax over their
    logits instead of one per step (argmax, compare and sum cost ~20 µs a step with 64 rows on the CPU).
    """

    def __init__(self, device: torch.device, capacity: int, all_labelled: bool) -> None:
        self.device, self.capacity, self.all_labelled = device, capacity, all_labelled
        self.on_host = device.type == "cpu"
        self.buffer: torch.Tensor | None = None  # [capacity, K] on the device (CUDA only)
        self.keys: tuple[list[str], list[str]] = ([], [])
        self.seen = 0  # images since the first step (never reset)
        self._reset(time.perf_counter())

    def _reset(self, now: float) -> None:
        self.rows: list[list[float]] = []  # host rows (CPU)
        self.outputs: list[torch.Tensor] = []  # [B, C] detached logits not yet counted
        self.labels: list[torch.Tensor] = []
        self.correct = self.labelled = 0  # ints, or device scalars on CUDA (no sync before the record)
        self.steps, self.samples, self.t0, self.first_step = 0, 0, now, None

    def add(self, step: int, total, weighted: dict, raw: dict, s_logits: torch.Tensor, y: torch.Tensor, opt) -> None:
        values = (total, *weighted.values(), *raw.values())
        if self.first_step is None:
            self.first_step, self.keys = step, (list(weighted), list(raw))
        self.outputs.append(s_logits.detach())
        self.labels.append(y)
        if len(self.outputs) == FOLD_STEPS:
            self._fold()
        if self.on_host:  # .item() is ~0.6 µs here: cheaper than stacking (~10 µs)
            row = [v.item() for v in values]
            if not math.isfinite(row[0]):
                raise NonFiniteLoss(step, row[0], opt.param_groups[0]["lr"])
            self.rows.append(row)
        else:
            with torch.no_grad():
                vals = torch.stack(values).float()  # [K]
            if self.buffer is None or self.buffer.shape[1] != vals.shape[0]:
                self.buffer = torch.empty(self.capacity, vals.shape[0], device=self.device)
            self.buffer[self.steps].copy_(vals, non_blocking=True)
        self.steps += 1
        self.samples += y.shape[0]

    def _fold(self) -> None:
        """Count the correct and labelled images of the batches held so far."""
        if not self.outputs:
            return
        with torch.no_grad():
            logits, y = torch.cat(self.outputs), torch.cat(self.labels)
            correct = (logits.argmax(-1) == y).sum()  # HIDDEN_LABEL never matches a class
            labelled = y.shape[0] if self.all_labelled else (y != HIDDEN_LABEL).sum()
        if self.on_host:
            correct, labelled = correct.item(), int(labelled)
        self.correct, self.labelled = self.correct + correct, self.labelled + labelled
        self.outputs, self.labels = [], []

    def _host_rows(self, lr: float) -> list[list[float]]:
        """The record's rows on the host, its counts folded in. CUDA: one device→host read for both."""
        self._fold()
        if self.on_host:
            return self.rows
        k, counts = self.buffer.shape[1], (self.correct, self.labelled)
        on_device = [c.reshape(1).double() for c in counts if isinstance(c, torch.Tensor)]  # float64: exact counts
        flat = torch.cat([self.buffer[: self.steps].flatten().double(), *on_device]).tolist()
        read = iter(flat[self.steps * k :])
        self.correct, self.labelled = (next(read) if isinstance(c, torch.Tensor) else c for c in counts)
        rows = [flat[i * k : (i + 1) * k] for i in range(self.steps)]
        for i, row in enumerate(rows):
            if not math.isfinite(row[0]):
                raise NonFiniteLoss(self.first_step + i, row[0], lr)
        return rows

    def flush(self, step: int, setup: _Setup, T, alpha, start: float, test_acc) -> StepRecord:
        lr = setup.optimizer.param_groups[0]["lr"]
        rows = self._host_rows(lr)
        now = time.perf_counter()
        self.seen += self.samples
        sums = [math.fsum(col) for col in zip(*rows)]
        means = [s / max(1, self.steps) for s in sums]
        nw = len(self.keys[0])
        rec = StepRecord(
            step=step,
            epoch=step / setup.per_epoch,
            total=means[0],
            losses=dict(zip(self.keys[0], means[1 : 1 + nw])),
            raw=dict(zip(self.keys[1], means[1 + nw :])),
            lr=lr,
            T=T,
            alpha=alpha,
            samples_per_s=self.samples / max(now - self.t0, 1e-9),
            elapsed_s=now - start,
            train_acc=float(self.correct) / max(float(self.labelled), 1.0),
            test_acc=test_acc,
            samples=self.seen,
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
