"""Command-line commands ``distill`` (the default) and ``teacher``.

``python -m kdviz distill`` trains (or loads) a teacher, then trains the same student twice
from the same seed — from the labels alone and with distillation — and prints a table:
parameters, test accuracy, agreement with the teacher and training wall time. Progress goes
to stderr as tqdm bars; the table goes to stdout.

``python -m kdviz teacher [--preset lean|fast|mlp] --out teacher.pt`` trains a teacher preset
(``kdviz.experiments.recipes``) and saves it as a checkpoint (loaded with ``weights_only=True``);
``--preset fast --out kdviz/assets/default_teacher.pt`` remakes the shipped default teacher.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import torch
from torch import nn
from tqdm import tqdm

from kdviz.checkpoints import load_checkpoint, save_checkpoint
from kdviz.data import DataBundle, DataUnavailable, load_data, load_fallback, load_mnist, synthetic_bundle
from kdviz.devices import resolve_device
from kdviz.engine import StepRecord, TrainConfig, make_model, run_to_end, total_steps, train
from kdviz.evaluation import agreement, evaluate
from kdviz.methods.objective import DistillConfig
from kdviz.methods.schedules import SCHEDULES
from kdviz.models import ModelConfig, param_count
from kdviz.experiments.recipes import DEFAULT_TEACHER, TEACHER_PRESETS, load_default_teacher, teacher_preset, train_teacher
from kdviz.runs.tables import text_table

DATA_CHOICES = ("auto", "mnist", "fallback", "synthetic")


# ----------------------------------------------------------------------------- helpers
def load_bundle(choice: str) -> DataBundle:
    """``auto``: MNIST else the offline fallback; ``mnist``: MNIST or a clear error; ``synthetic``: test digits."""
    if choice == "synthetic":
        return synthetic_bundle(n_train=1024, n_test=256)
    if choice == "fallback":
        return load_fallback()
    if choice == "mnist":
        try:
            return load_mnist()
        except DataUnavailable as err:
            raise ValueError(str(err)) from err
    if choice == "auto":
        return load_data()
    raise ValueError(f"--data must be one of {DATA_CHOICES}, got {choice!r}")


def parse_model(spec: str) -> ModelConfig:
    """``mlp:128``, ``mlp:800,800`` or ``cnn:16,32`` → ModelConfig (widths per layer / stage)."""
    arch, _, widths = spec.partition(":")
    try:
        sizes = tuple(int(w) for w in widths.split(",") if w.strip())
    except ValueError as err:
        raise ValueError(f"model {spec!r} is invalid: widths must be integers, e.g. mlp:128 or cnn:16,32") from err
    if arch not in ("mlp", "cnn") or not sizes:
        raise ValueError(f"model {spec!r} is invalid: use mlp:W[,W...] or cnn:C[,C...], e.g. mlp:128 or cnn:16,32")
    return ModelConfig(arch=arch, **{"hidden" if arch == "mlp" else "channels": sizes})


class ProgressBar:
    """A tqdm bar on ``stream`` (default stderr) moved to each record's step, with its loss;
    an ``on_record`` callback for :func:`kdviz.engine.run_to_end`."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None):
        self.bar = tqdm(total=max(1, total), desc=f"{label:<10}", unit="step", file=stream if stream is not None else sys.stderr,
                        ascii=True, dynamic_ncols=True)

    def __call__(self, rec: StepRecord) -> None:
        self.bar.update(min(rec.step, self.bar.total) - self.bar.n)
        self.bar.set_postfix_str(f"loss {rec.total:.3f}")  # redraws the line
        if rec.done:
            self.bar.close()


def add_schedule_args(p) -> None:
    """Progressive distillation flags: T and alpha move from their start to an end value over training."""
    p.add_argument("--T-schedule", default="constant", choices=SCHEDULES, help="how T changes over training (default constant)")
    p.add_argument("--T-end", type=float, help="T at the end of training (linear / cosine schedules)")
    p.add_argument("--alpha-schedule", default="constant", choices=SCHEDULES, help="how alpha changes over training (default constant)")
    p.add_argument("--alpha-end", type=float, help="alpha at the end of training (linear / cosine schedules)")


def schedule_kwargs(args) -> dict:
    """The DistillConfig schedule fields from the flags of :func:`add_schedule_args`."""
    return {"T_schedule": args.T_schedule, "T_end": args.T_end, "alpha_schedule": args.alpha_schedule, "alpha_end": args.alpha_end}


def schedule_note(distill: DistillConfig) -> str:
    """``T=4, alpha=0.9`` or ``T=4→1 (cosine), alpha=0.9→0.5 (linear)`` for tables."""
    def one(name, start, kind, end):
        return f"{name}={start:g}" if kind == "constant" else f"{name}={start:g}→{end:g} ({kind})"
    return ", ".join((one("T", distill.T, distill.T_schedule, distill.T_end),
                      one("alpha", distill.alpha, distill.alpha_schedule, distill.alpha_end)))


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- teacher
def register_cli(subparsers) -> None:
    _register_distill(subparsers)
    _register_teacher(subparsers)


def _register_teacher(subparsers) -> None:
    p = subparsers.add_parser("teacher", help="train a teacher preset and save it as a checkpoint")
    p.add_argument("--preset", default="lean", choices=sorted(TEACHER_PRESETS),
                   help="teacher preset (default: lean, a CNN that reached 99.08-99.14%% on seeds 0-2 in ~9 s on 2 CPU cores; fast: the shipped default teacher's recipe)")
    p.add_argument("--out", default="teacher.pt", help="checkpoint path to write (default: teacher.pt)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="mnist", choices=DATA_CHOICES, help="training data (default: mnist)")
    p.add_argument("--device", help="cpu | cuda (default: CUDA when available)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.set_defaults(func=run_teacher)


def run_teacher(args) -> int:
    _set_threads(args.threads)
    bundle = load_bundle(args.data)
    out = Path(args.out)
    if out.resolve() == DEFAULT_TEACHER.resolve() and not bundle.is_mnist:
        raise ValueError(f"the shipped default teacher must be trained on MNIST, not {bundle.name}; use --data mnist")
    preset, device = teacher_preset(args.preset), resolve_device(args.device)
    print(f"training teacher preset {preset.name!r} on {bundle.name} ({len(bundle.train):,} images): {preset.description}", file=sys.stderr)
    bar = ProgressBar("teacher", total_steps(len(bundle.train), preset.train))
    model, cfg, meta = train_teacher(bundle, preset, args.seed, device, on_record=bar)
    meta["command"] = f"python -m kdviz teacher --preset {preset.name} --seed {args.seed} --data {args.data} --out {args.out}"
    path = save_checkpoint(out, model, cfg, meta)
    print(f"teacher {cfg.label()} ({param_count(model):,} params): test accuracy {100 * meta['test_acc']:.2f}% "
          f"after {meta['train_s']:.1f} s of training; saved to {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


# ----------------------------------------------------------------------------- distill
def _register_distill(subparsers) -> None:
    p = subparsers.add_parser("distill", help="teacher → student with and without distillation; prints a results table (default command)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--teacher", metavar="PATH", help="load the teacher from this checkpoint instead of training one")
    source.add_argument("--default-teacher", action="store_true", help=f"use the shipped teacher ({DEFAULT_TEACHER.name})")
    p.add_argument("--teacher-preset", default="lean", choices=sorted(TEACHER_PRESETS), help="preset to train when no teacher is given (default: lean)")
    p.add_argument("--student", default="mlp:128", help="student architecture, e.g. mlp:128, mlp:800,800 or cnn:8,16")
    p.add_argument("--epochs", type=float, default=2.0, help="student epochs (default 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--T", type=float, default=4.0, help="distillation temperature (default 4)")
    p.add_argument("--alpha", type=float, default=0.9, help="weight of the distillation term (default 0.9)")
    add_schedule_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="auto", choices=DATA_CHOICES, help="auto: MNIST, else the offline fallback")
    p.add_argument("--device", help="cpu | cuda (default: CUDA when available)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.set_defaults(func=run_distill)


def _obtain_teacher(args, bundle: DataBundle, device: torch.device) -> tuple[nn.Module, ModelConfig, str, float | None]:
    """``(teacher, config, how it was obtained, training seconds or None)``."""
    if args.teacher:
        model, cfg, _ = load_checkpoint(args.teacher)
        return model.to(device).eval(), cfg, f"loaded from {args.teacher}", None
    if args.default_teacher:
        model, cfg, _ = load_default_teacher()
        return model.to(device).eval(), cfg, "shipped default", None
    preset = teacher_preset(args.teacher_preset)
    bar = ProgressBar("teacher", total_steps(len(bundle.train), preset.train))
    model, cfg, meta = train_teacher(bundle, preset, args.seed, device, on_record=bar)
    return model, cfg, f"trained (preset {preset.name})", meta["train_s"]


def _train_student(name: str, cfg: ModelConfig, bundle: DataBundle, train_cfg: TrainConfig, device, teacher=None, distill=None):
    """A student from ``train_cfg.seed``: ``(model, training seconds)``."""
    model = make_model(cfg, train_cfg.seed, device)
    bar = ProgressBar(name, total_steps(len(bundle.train), train_cfg))
    t0 = time.perf_counter()
    run_to_end(train(model, bundle.train, train_cfg, teacher=teacher, distill=distill, device=device), bar)
    return model, time.perf_counter() - t0


def run_distill(args) -> int:
    _set_threads(args.threads)
    device = resolve_device(args.device)
    student_cfg = parse_model(args.student)
    distill = DistillConfig(T=args.T, alpha=args.alpha, **schedule_kwargs(args))  # validates before any training
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, log_every=20)
    bundle = load_bundle(args.data).to(device)
    print(f"data: {bundle.name}" + (f" — {bundle.message}" if bundle.message else ""), file=sys.stderr)
    teacher, t_cfg, how, t_seconds = _obtain_teacher(args, bundle, device)
    scratch, s_seconds = _train_student("scratch", student_cfg, bundle, train_cfg, device)
    distilled, d_seconds = _train_student("distilled", student_cfg, bundle, train_cfg, device, teacher, distill)
    rows = [
        _row("teacher", t_cfg, teacher, bundle, None, t_seconds, how),
        _row("student (labels only)", student_cfg, scratch, bundle, teacher, s_seconds, "scratch"),
        _row("student (distilled)", student_cfg, distilled, bundle, teacher, d_seconds, schedule_note(distill)),
    ]
    print(f"{bundle.name}: {len(bundle.train):,} training / {len(bundle.test):,} test images; student {args.epochs:g} epoch(s), "
          f"batch {args.batch_size}, seed {args.seed}, device {device}")
    print(distill_table(rows))
    return 0


def _row(name: str, cfg: ModelConfig, model: nn.Module, bundle: DataBundle, teacher, seconds: float | None, note: str) -> dict:
    return {
        "model": name, "arch": cfg.label(), "params": param_count(model),
        "test_acc": evaluate(model, bundle.test).accuracy,
        "agreement": agreement(model, teacher, bundle.test) if teacher is not None else None,
        "seconds": seconds, "note": note,
    }


def distill_table(rows: list[dict]) -> str:
    """Plain-text table: model, architecture, params, test accuracy, agreement with the teacher, time."""
    return text_table([{
        "model": r["model"], "architecture": r["arch"], "params": f"{r['params']:,}", "test acc": f"{100 * r['test_acc']:.2f}%",
        "agrees w/ teacher": "—" if r["agreement"] is None else f"{100 * r['agreement']:.2f}%",
        "train time": "—" if r["seconds"] is None else f"{r['seconds']:.1f} s", "note": r["note"],
    } for r in rows])
