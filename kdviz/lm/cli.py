"""``python -m kdviz lm``: the language-model lab headless.

    python -m kdviz lm                                   # seqkd, distilled, scratch over 3 seeds: a bpc table
    python -m kdviz lm --methods distilled scratch batchmean --seeds 0 1 2 3 4 --train-n 300
    python -m kdviz lm make-teacher --out kdviz/assets/lm_teacher.pt   # (re)build the shipped teacher
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from kdviz.lm.experiments import bpc_table, run_seeds
from kdviz.lm.model import param_count, save_lm
from kdviz.lm.corpus import NAMES_VOCAB
from kdviz.lm.runs import DEFAULT_TRAIN_N, METHODS, SHIPPED_TEACHER, STUDENT_TRAIN, TEACHER_TRAIN, load_teacher, real_names, train_teacher
from kdviz.lm.train import evaluate_bpc, sample


def register_cli(sub) -> None:
    p = sub.add_parser("lm", help="character-level language-model distillation (names): a bpc table over seeds")
    p.add_argument("action", nargs="?", choices=("compare", "make-teacher"), default="compare")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=["seqkd", "distilled", "scratch"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=None, help=f"training steps per run (students {STUDENT_TRAIN.steps}, teacher {TEACHER_TRAIN.steps})")
    p.add_argument("--train-n", type=int, default=DEFAULT_TRAIN_N, help="real names the students see")
    p.add_argument("--T", type=float, default=STUDENT_TRAIN.T)
    p.add_argument("--alpha", type=float, default=STUDENT_TRAIN.alpha, help="weight of the distillation term")
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: the shipped one)")
    p.add_argument("--out", default=str(SHIPPED_TEACHER), help="make-teacher: where to save")
    p.add_argument("--threads", type=int, default=1, help="torch threads (tiny models run best on one)")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    if args.action == "make-teacher":
        return make_teacher(args)
    cfg = replace(STUDENT_TRAIN, T=args.T, alpha=args.alpha, steps=args.steps or STUDENT_TRAIN.steps)
    result = None
    for event in run_seeds(load_teacher(args.teacher), tuple(args.methods), args.seeds, cfg, args.train_n):
        if event["type"] == "status":
            print(event["text"], flush=True)
        elif event["type"] == "result":
            result = event
    print(f"\nvalidation bits per character ({result['train_n']} real training names, {cfg.steps} steps, "
          f"T={cfg.T:g}, alpha={cfg.alpha:g}; {result['train_s']:.0f} s)")
    print(bpc_table(result).to_string())
    return 0


def make_teacher(args: argparse.Namespace) -> int:
    cfg = replace(TEACHER_TRAIN, steps=args.steps or TEACHER_TRAIN.steps)
    model, run = train_teacher(cfg)
    for rec in run:
        if rec.val_bpc is not None:
            print(f"step {rec.step}: val {rec.val_bpc:.3f} bpc  {', '.join(rec.samples)}", flush=True)
    _, val = real_names(None)
    bpc = evaluate_bpc(model, val)
    path = save_lm(Path(args.out), model.eval(), NAMES_VOCAB, {"val_bpc": bpc, "steps": cfg.steps, "params": param_count(model)})
    print(f"saved {path} ({param_count(model):,} parameters, val {bpc:.3f} bpc); samples: {', '.join(sample(model, n=8))}")
    return 0
