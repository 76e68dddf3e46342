"""``python -m kdviz scenario NAME``: run an experiments-lab scenario and print its report."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from kdviz.experiments.results import report_lines
from kdviz.experiments.scenarios import PRESETS, preset, run_scenario, with_overrides
from kdviz.runtime.tasks import load_bundle  # the app's data loader: MNIST or its fallback, or synthetic


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("scenario", help="run an experiments-lab scenario (omitted digit, few labels, ...)")
    p.add_argument("scenario", choices=sorted(PRESETS))
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (0..n-1); default: the preset's")
    p.add_argument("--T", type=float, default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--epochs", type=float, default=None, help="student epochs")
    p.add_argument("--omit", type=int, default=None, help="omitted digit (omitted-digit)")
    p.add_argument("--n-labelled", type=int, default=None, help="labelled images (few-labels, unlabelled)")
    p.add_argument("--data", choices=("auto", "synthetic"), default="auto")
    p.add_argument("--device", default=None)
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: shipped, cached or trained)")
    p.add_argument("--cache-dir", default="runs/teachers", help="where trained teachers are cached")
    p.add_argument("--run-dir", default=None, help="checkpoint folder; hinton resumes from it")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write the full result as JSON here")
    p.set_defaults(func=run_scenario_command)


def run_scenario_command(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    overrides = {k: v for k, v in {"seeds": args.seeds, "T": args.T, "alpha": args.alpha, "epochs": args.epochs,
                                   "omit": args.omit, "n_labelled": args.n_labelled}.items() if v is not None}
    cfg = with_overrides(preset(args.scenario), overrides)
    bundle = load_bundle(args.data)
    result = run_scenario(cfg, bundle, on_event=_print_status, device=args.device, teacher_ckpt=args.teacher or "",
                          cache_dir=args.cache_dir, run_dir=args.run_dir or "", keep_logits=False)
    print("\n".join(report_lines(result)))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def _print_status(event: dict) -> None:
    if event["type"] == "status":
        print(f"[{event['text']}]", flush=True)
