"""Training, evaluation (bits per character) and sampling for the character-level models.

``train_lm`` is a generator: it yields an :class:`LMRecord` every ``log_every`` steps (and at each
evaluation), so a job can stream it live and pause it between records. With a teacher, the
objective is ``alpha · KD + (1 − alpha) · CE`` (alpha weights distillation); KD is
``kdviz.losses.kd_loss`` masked to real positions ("token") or the batchmean trap ("batchmean").
"""
from __future__ import annotations

import functools
import math
import random
import time
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from kdviz.engine import NonFiniteLoss
from kdviz.lm.corpus import NAMES_VOCAB, Batch, Vocab, encode_batch
from kdviz.lm.kd import REDUCTIONS, VocabMap, align_logits, kd_term, to_teacher_ids
from kdviz.lm.model import CharTransformer, bits
from kdviz.losses import ce_loss, check_alpha, check_temperature
from kdviz.data import HIDDEN_LABEL

EVAL_BATCH = 512
MAX_SAMPLE_TEMP = 5.0


@dataclass(frozen=True)
class LMTrainConfig:
    steps: int = 800
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    seed: int = 0
    T: float = 2.0
    alpha: float = 0.5  # weight of the distillation term
    reduction: str = "token"  # "token" (masked per-token mean) | "batchmean" (the trap)
    eval_every: int = 100
    log_every: int = 10
    sample_temp: float = 1.0
    n_samples: int = 6

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {name}={value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"learning rate must be a finite number > 0, got lr={self.lr!r}")
        check_temperature(self.T)
        check_alpha(self.alpha)
        check_sample_temp(self.sample_temp)
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {self.reduction!r}")


def check_sample_temp(temp: float) -> float:
    if not isinstance(temp, (int, float)) or not math.isfinite(temp) or not 0 < temp <= MAX_SAMPLE_TEMP:
        raise ValueError(f"sampling temperature must lie in (0, {MAX_SAMPLE_TEMP:g}], got {temp!r}")
    return float(temp)


@dataclass(frozen=True)
class LMRecord:
    step: int
    loss: float
    ce: float
    kd: float | None = None  # unweighted; the weighted terms are alpha·kd and (1 − alpha)·ce
    kd_w: float | None = None
    ce_w: float | None = None
    val_bpc: float | None = None
    samples: tuple[str, ...] = ()
    epoch: float = 0.0  # passes over the training names
    samples_per_s: float = 0.0  # names (sequences) per second; the live view's throughput

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Teacher:
    """A frozen teacher and, when its vocabulary differs, the map onto the student's vocabulary."""

    model: CharTransformer
    vmap: VocabMap | None = None

    @torch.inference_mode()  # no version counters tracked: 4.8 → 4.7 ms per 32-name batch (min of 30 rounds)
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, S, V_student]`` teacher logits for student input ids ``x``."""
        if self.vmap is None:
            return self.model(x)
        return align_logits(self.model(to_teacher_ids(x, self.vmap)), self.vmap)


# ----------------------------------------------------------------------------- evaluation / sampling
@functools.lru_cache(maxsize=4)
def _eval_batches(words: tuple[str, ...], vocab: Vocab, context: int) -> tuple[Batch, ...]:
    """``words`` in batches of equal length (no padding), encoded once per word list.

    Attention is causal and padding sits on the right, so a real position's logits do not depend on
    the padding: grouping by length gives the same per-character losses (up to float rounding) while
    skipping the padded positions (37 % of the 516 validation names' positions in arrival-order
    batches, whose longest name fixes the width). Measured, with the encoding cached and
    ``inference_mode``: 352 → 159 ms per evaluation of a 3×128 model on one thread; the demo
    evaluates each student 5 times as it trains."""
    by_len: dict[int, list[str]] = {}
    for w in words:
        by_len.setdefault(len(w), []).append(w)
    return tuple(encode_batch(group[i:i + EVAL_BATCH], vocab, context)
                 for _, group in sorted(by_len.items()) for i in range(0, len(group), EVAL_BATCH))


@torch.inference_mode()
def evaluate_bpc(model: CharTransformer, words: list[str], vocab: Vocab = NAMES_VOCAB) -> float:
    """Mean cross-entropy per predicted character (the end token included), in bits."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    for b in _eval_batches(tuple(words), vocab, model.cfg.context):
        logits = model(b.x)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b.y.reshape(-1),
                                       ignore_index=HIDDEN_LABEL, reduction="sum"))
        count += int(b.mask.sum())
    model.train(was)
    return bits(total / count)


@torch.inference_mode()
def sample(model: CharTransformer, vocab: Vocab = NAMES_VOCAB, n: int = 6, temperature: float = 1.0, seed: int = 0) -> list[str]:
    """``n`` names drawn character by character from softmax(logits / temperature) until the boundary."""
    temperature = check_sample_temp(temperature)
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    for _ in range(model.cfg.context - 1):
        probs = F.softmax(model(x)[:, -1] / temperature, dim=-1)
        nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        nxt[done] = 0
        done |= nxt == 0
        x = torch.cat([x, nxt[:, None]], dim=1)
        if done.all():
            break
    model.train(was)
    return [vocab.decode(row[1:]).split(vocab.chars[0])[0] for row in x.tolist()]


# ----------------------------------------------------------------------------- training
def batches(words: list[str], cfg: LMTrainConfig, vocab: Vocab, context: int) -> Iterator[Batch]:
    """Endless shuffled batches (the seed fixes the order, so distilled and scratch see the same data)."""
    if not words:
        raise ValueError("no training words")
    rng, order = random.Random(cfg.seed), list(words)
    while True:
        rng.shuffle(order)
        for i in range(0, len(order), cfg.batch_size):
            yield encode_batch(order[i:i + cfg.batch_size], vocab, context)


def objective(logits: torch.Tensor, b: Batch, teacher: Teacher | None, cfg: LMTrainConfig, check: bool = True) -> dict:
    """``check=False`` skips the loss input checks (label range, finite logits, a non-empty mask):
    the loop checks the first step only — labels come from ``encode_batch`` and a diverging student
    is caught by the finite-loss test — saving ~0.2 ms and a few host syncs per step (measured)."""
    ce = ce_loss(logits, b.y, check=check)
    if teacher is None:
        return {"total": ce, "ce": ce}
    kd = kd_term(logits, teacher.logits(b.x), cfg.T, b.mask, cfg.reduction, check=check)
    return {"total": cfg.alpha * kd + (1 - cfg.alpha) * ce, "ce": ce, "kd": kd}


def _record(step: int, parts: dict, cfg: LMTrainConfig, **extra) -> LMRecord:
    ce, kd = float(parts["ce"].detach()), parts.get("kd")
    weighted = {} if kd is None else {"kd": float(kd.detach()), "kd_w": cfg.alpha * float(kd.detach()), "ce_w": (1 - cfg.alpha) * ce}
    return LMRecord(step=step, loss=float(parts["total"].detach()), ce=ce, **weighted, **extra)


def train_lm(model: CharTransformer, words: list[str], cfg: LMTrainConfig, teacher: Teacher | None = None,
             val: list[str] | None = None, vocab: Vocab = NAMES_VOCAB) -> Iterator[LMRecord]:
    """AdamW with a cosine learning rate; yields records (with validation bpc and samples at evaluations)."""
    torch.manual_seed(cfg.seed)
    # foreach: a handful of multi-tensor ops instead of ~10 ops per parameter (on CPU torch defaults
    # to the per-parameter loop). Bitwise the same weights after the demo's 250 steps; measured on one
    # thread, a 3×128 model's step + schedule: 6.5 → 5.7 ms. fused=True (2.0 ms) rounds differently,
    # and 250 steps at lr 1e-2 amplify that: final bpc 3.797 → 3.823 and other samples, so not used.
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr / 10)
    model.train()
    stream, seen, t0 = batches(words, cfg, vocab, model.cfg.context), 0, time.perf_counter()
    for step in range(1, cfg.steps + 1):
        b = next(stream)
        parts = objective(model(b.x), b, teacher, cfg, check=step == 1)
        if not torch.isfinite(parts["total"]):
            raise NonFiniteLoss(step, float(parts["total"]), cfg.lr)
        opt.zero_grad(set_to_none=True)
        parts["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        seen += b.x.shape[0]
        evaluating = val is not None and (step % cfg.eval_every == 0 or step == cfg.steps)
        if evaluating or step % cfg.log_every == 0:
            extra = {"epoch": seen / len(words), "samples_per_s": seen / max(time.perf_counter() - t0, 1e-9)}
            if evaluating:
                extra.update(val_bpc=evaluate_bpc(model, val, vocab),
                             samples=tuple(sample(model, vocab, cfg.n_samples, cfg.sample_temp, seed=step)))
            yield _record(step, parts, cfg, **extra)
