"""Run both: train a student with a bug's buggy step and with its fixed step, side by side, as a job.

``run_both_job(spec)`` is a job for the app's runtime (``"fn": "kdviz.interview.runner:run_both_job"``,
see ``kdviz.runtime.protocol`` for the event format). Spec keys: ``bug`` (an id from
``kdviz.interview.bugs``), ``steps`` (per run, default 120), ``data`` ("auto" | "synthetic"),
``device``. Both runs start from the same student weights and see the same batches; records carry
``total`` (the loss), ``grad_norm``, ``train_acc``, ``test_acc`` (on a fixed test sample, a few times
per run) and ``finite``. A run whose loss or gradient is not finite stops there (its last record
says so) and the other run goes on. The teacher is the shipped demo MLP (it has dropout, which the
train-mode bug needs).

``measure(bug, ...)`` is the same comparison on one batch, without training: loss and gradient norm
of both steps (the page's instant numbers, and the effect table in the tests).
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from kdviz.checkpoints import load_checkpoint
from kdviz.data import TensorData, random_subset
from kdviz.engine import make_model
from kdviz.devices import resolve_device
from kdviz.interview.bugs import Bug, get_bug
from kdviz.data import HIDDEN_LABEL
from kdviz.models import ModelConfig
from kdviz.data import check_source, load_bundle
from kdviz.runtime.job_specs import whole
from kdviz.runtime.protocol import guarded, round_robin

DEMO_TEACHER = Path(__file__).resolve().parents[1] / "assets" / "demo_teacher.pt"
STUDENT = ModelConfig(arch="mlp", hidden=(64,))
RUNS = ("buggy", "fixed")


@dataclass(frozen=True)
class RunBothConfig:
    steps: int = 120  # per run
    batch: int = 64  # images per step (token bugs: batch // seq_len sequences)
    seq_len: int = 8  # positions per sequence for the token bugs
    lr: float = 1e-3
    records: int = 40  # records per run
    evals: int = 5  # test evaluations per run
    test_n: int = 1000  # test images per evaluation
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "seq_len", "records", "evals", "test_n"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.batch < self.seq_len:
            raise ValueError(f"batch ({self.batch}) must hold at least one sequence of seq_len={self.seq_len}")


class LogitsOnly(nn.Module):
    """A kdviz model (which returns ``(logits, features)``) returning logits only, as the snippets expect.
    Inputs ``[..., 1, 28, 28]`` with extra leading dims (token sequences) give logits ``[..., C]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        logits = self.model(x.reshape(-1, *x.shape[-3:]))[0]  # [N, C]
        return logits.reshape(*lead, logits.shape[-1])


def token_batch(x: torch.Tensor, y: torch.Tensor, seq_len: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 1, 28, 28]`` as padded "sentences" ``[N // seq_len, seq_len, 1, 28, 28]``.

    Each sequence keeps a random length from 1 to ``seq_len``; later positions become padding: a blank
    image (the background value) with label -100, as a tokenizer pads a batch to its longest sequence.
    """
    b = x.shape[0] // seq_len
    x = x[: b * seq_len].reshape(b, seq_len, *x.shape[1:]).clone()
    y = y[: b * seq_len].reshape(b, seq_len).clone()
    lengths = torch.randint(1, seq_len + 1, (b,), generator=gen)
    pad = torch.arange(seq_len)[None, :] >= lengths[:, None]  # [B, S]
    x[pad] = x.min()
    y[pad] = HIDDEN_LABEL
    return x, y


def grad_norm(model: nn.Module) -> float:
    grads = [p.grad.detach().flatten() for p in model.parameters() if p.grad is not None]
    return float(torch.cat(grads).norm()) if grads else 0.0


def step_loss(bug: Bug, which: str, student: nn.Module, teacher: nn.Module, x, y) -> torch.Tensor:
    fn = bug.buggy_loss if which == "buggy" else bug.fixed_loss
    with warnings.catch_warnings():  # PyTorch's own warning about reduction="mean" is the answer: keep it off the logs
        warnings.simplefilter("ignore", UserWarning)
        return fn(student, teacher, x, y, T=bug.T, alpha=bug.alpha)


def measure(bug: Bug, student: nn.Module, teacher: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, dict]:
    """``{"buggy": {"loss", "grad_norm"}, "fixed": {...}}`` for one batch (copies; the models are untouched)."""
    out = {}
    for which in RUNS:
        s, t = copy.deepcopy(student), copy.deepcopy(teacher)
        loss = step_loss(bug, which, s, t, x, y)
        loss.backward()
        out[which] = {"loss": float(loss.detach()), "grad_norm": grad_norm(s)}
    return out


@torch.no_grad()
def accuracy(model: nn.Module, data: TensorData) -> float:
    was = model.training
    model.eval()
    acc = float((model(data.images()).argmax(-1) == data.y).float().mean())
    model.train(was)
    return acc


def train_run(bug: Bug, which: str, student: nn.Module, teacher: nn.Module, train: TensorData, test: TensorData,
              cfg: RunBothConfig) -> Iterator[dict]:
    """Records of one run (see the module docstring); stops after the first non-finite loss or gradient."""
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)  # same batches in both runs
    log_every, eval_every = max(1, cfg.steps // cfg.records), max(1, cfg.steps // cfg.evals)
    t0 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, len(train), (cfg.batch,), generator=gen)
        x, y = train.gather(idx), train.y[idx]
        if bug.tokens:
            x, y = token_batch(x, y, cfg.seq_len, gen)
        student.train()
        loss = step_loss(bug, which, student, teacher, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm, value = grad_norm(student), float(loss.detach())
        finite = math.isfinite(value) and math.isfinite(norm)
        if finite:
            opt.step()
        last = step == cfg.steps or not finite
        if step % log_every == 0 or last:
            with torch.no_grad():
                logits, real = student(x), y != HIDDEN_LABEL
                train_acc = float((logits.argmax(-1)[real] == y[real]).float().mean())
            elapsed = time.perf_counter() - t0
            test_acc = accuracy(student, test) if step % eval_every == 0 or last else None
            yield {"type": "record", "run": which, "step": step, "epoch": step * cfg.batch / len(train),
                   "total": value, "grad_norm": norm, "finite": finite, "train_acc": train_acc, "test_acc": test_acc,
                   "elapsed_s": elapsed, "samples_per_s": step * cfg.batch / max(elapsed, 1e-9)}
        if not finite:
            return


def load_teacher(device: torch.device) -> nn.Module:
    model, _, _ = load_checkpoint(DEMO_TEACHER)
    return LogitsOnly(model.to(device).eval())


def run_config(spec: dict) -> RunBothConfig:
    return RunBothConfig(steps=whole(spec, "steps", RunBothConfig.steps, 1))


def summary(records: list[dict]) -> dict:
    """Final numbers of one run: its last loss and test accuracy, mean gradient norm, the step of a NaN/inf."""
    finite = [r for r in records if r["finite"]]
    bad = next((r["step"] for r in records if not r["finite"]), None)
    tested = [r for r in records if r["test_acc"] is not None]
    return {"final_loss": finite[-1]["total"] if finite else math.nan,
            "final_test_acc": tested[-1]["test_acc"] if tested else math.nan,
            "mean_grad_norm": sum(r["grad_norm"] for r in finite) / len(finite) if finite else math.nan,
            "nonfinite_step": bad, "steps": records[-1]["step"] if records else 0}


@guarded
def run_both_job(spec: dict) -> Iterator[dict]:
    """Train the buggy and the fixed step from the same start; the result compares them."""
    bug, cfg = get_bug(str(spec.get("bug", ""))), run_config(spec)
    device, source = resolve_device(spec.get("device")), check_source(spec.get("data", "auto"))
    yield {"type": "status", "text": "loading data and the teacher"}
    bundle = load_bundle(source).to(device)
    test = random_subset(bundle.test, min(cfg.test_n, len(bundle.test)), seed=0)
    teacher = load_teacher(device)
    start = make_model(STUDENT, cfg.seed, device)
    yield {"type": "status", "text": f"training a {STUDENT.label()} student with the buggy and the fixed step ({cfg.steps} steps each)"}
    gens = {which: train_run(bug, which, LogitsOnly(copy.deepcopy(start)), copy.deepcopy(teacher), bundle.train, test, cfg)
            for which in RUNS}
    records: dict[str, list[dict]] = {which: [] for which in RUNS}
    for _, event in round_robin(gens):
        records[event["run"]].append(event)
        yield event
    yield {"type": "result", "bug": bug.id, "runs": {which: summary(records[which]) for which in RUNS}}
