"""``python -m kdviz scenario NAME``, ``python -m kdviz sweep PARAM`` and ``python -m kdviz selfdistill KIND``:
the experiments lab from the shell."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from kdviz.experiments import sweeps
from kdviz.experiments.results import report_lines
from kdviz.experiments.scenarios import PRESETS, preset, run_scenario, with_overrides
from kdviz.data import load_bundle  # the app's data loader: MNIST or its fallback, or synthetic


def register_cli(subparsers) -> None:
    _register_scenario(subparsers)
    _register_sweep(subparsers)
    _register_selfdistill(subparsers)


def _common(p: argparse.ArgumentParser) -> None:
    """Options every experiments-lab command takes: data, device, teacher, threads, JSON output."""
    p.add_argument("--data", choices=("auto", "synthetic"), default="auto")
    p.add_argument("--device", default=None)
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: shipped, cached or trained)")
    p.add_argument("--cache-dir", default="runs/teachers", help="where trained teachers are cached")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write the full result as JSON here")


def _finish(args: argparse.Namespace, lines: list[str], result: dict) -> int:
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def _print_status(event: dict) -> None:
    if event["type"] == "status":
        print(f"[{event['text']}]", flush=True)


# ----------------------------------------------------------------------------- scenario
def _register_scenario(subparsers) -> None:
    p = subparsers.add_parser("scenario", help="run an experiments-lab scenario (omitted digit, few labels, ...)")
    p.add_argument("scenario", choices=sorted(PRESETS))
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (0..n-1); default: the preset's")
    p.add_argument("--T", type=float, default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--epochs", type=float, default=None, help="student epochs")
    p.add_argument("--omit", type=int, default=None, help="omitted digit (omitted-digit)")
    p.add_argument("--n-labelled", type=int, default=None, help="labelled images (few-labels, unlabelled)")
    p.add_argument("--run-dir", default=None, help="checkpoint folder; hinton resumes from it")
    _common(p)
    p.set_defaults(func=run_scenario_command)


def run_scenario_command(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    overrides = {k: v for k, v in {"seeds": args.seeds, "T": args.T, "alpha": args.alpha, "epochs": args.epochs,
                                   "omit": args.omit, "n_labelled": args.n_labelled}.items() if v is not None}
    cfg = with_overrides(preset(args.scenario), overrides)
    result = run_scenario(cfg, load_bundle(args.data), on_event=_print_status, device=args.device,
                          teacher_ckpt=args.teacher or "", cache_dir=args.cache_dir, run_dir=args.run_dir or "",
                          keep_logits=False)
    return _finish(args, report_lines(result), result)


# ----------------------------------------------------------------------------- sweep
def _register_sweep(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="sweep T, alpha, width, born-again generations or methods over seeds")
    p.add_argument("param", nargs="?", choices=sweeps.SWEEP_PARAMS, help="what to vary")
    p.add_argument("--values", nargs="+", type=_value, default=None, help="grid (default: the standard one)")
    p.add_argument("--exercise", choices=sorted(sweeps.EXERCISES), default=None, help="a one-click exercise instead")
    p.add_argument("--scenario", choices=sweeps.SWEEP_SCENARIOS, default="few-labels")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3)")
    _common(p)
    p.set_defaults(func=run_sweep_command)


def _value(text: str):
    try:
        return float(text)
    except ValueError:
        return text  # method variants


def run_sweep_command(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    if args.exercise:
        spec = {"exercise": args.exercise, "sweep": {"seeds": tuple(range(args.seeds))} if args.seeds else {}}
    elif args.param:
        spec = {"sweep": {"param": args.param, "scenario": args.scenario, **({"values": args.values} if args.values else {}),
                          **({"seeds": args.seeds} if args.seeds else {})}}
    else:
        raise ValueError(f"name a parameter ({', '.join(sweeps.SWEEP_PARAMS)}) or an --exercise ({', '.join(sweeps.EXERCISES)})")
    if args.param == "methods" and args.values:
        spec["sweep"]["values"] = tuple(args.values)
    cfg = sweeps.config_from_spec(spec)
    result = sweeps.run_sweep(cfg, load_bundle(args.data), on_event=_print_status, device=args.device,
                              teacher_ckpt=args.teacher or "", cache_dir=args.cache_dir)
    return _finish(args, sweeps.format_rows(result), result)


# ----------------------------------------------------------------------------- selfdistill (the catalogue)
def _register_selfdistill(subparsers) -> None:
    from kdviz.experiments.catalogue import KINDS

    p = subparsers.add_parser("selfdistill", help="born-again networks, mutual learning, teacher assistants, ensembles over seeds")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--transfer", default=None, help="student data: subset:N, full, ...")
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--hidden", type=_widths, default=None, help="student MLP hidden widths, e.g. 64 or 128,64")
    p.add_argument("--T", type=float, default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--generations", type=int, default=None, help="born-again: generation 0 + taught ones")
    p.add_argument("--temperatures", type=_floats, default=None, help="born-again: T per taught generation, e.g. 1,4,8")
    p.add_argument("--peers", type=int, default=None, help="mutual learning: 2..4 peers")
    p.add_argument("--assistant", dest="assistant_hidden", type=_widths, default=None, help="teacher assistant: MLP widths")
    p.add_argument("--modes", type=lambda t: tuple(t.split(",")), default=None, help="ensemble: logits,probs,kl_mean")
    _common(p)
    p.set_defaults(func=run_selfdistill_command)


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"widths must be comma-separated whole numbers, got {text!r}") from err


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"temperatures must be comma-separated numbers, got {text!r}") from err


def run_selfdistill_command(args: argparse.Namespace) -> int:
    from kdviz.experiments.catalogue import config_from_spec
    from kdviz.experiments.catalogue_jobs import catalogue_events
    from kdviz.figures.catalogue import catalogue_rows
    from kdviz.runs.tables import text_table

    torch.set_num_threads(max(1, args.threads))
    keys = ("seeds", "transfer", "epochs", "hidden", "T", "alpha", "generations", "temperatures", "peers", "assistant_hidden", "modes")
    spec = {"kind": args.kind, **{k: getattr(args, k) for k in keys if getattr(args, k) is not None}}
    if args.teacher:
        spec["teacher_ckpt"] = args.teacher
    cfg = config_from_spec(spec)  # a bad value stops here, before any data is loaded
    result = {}
    for event in catalogue_events(cfg, load_bundle(args.data), args.device):
        _print_status(event)
        result = event if event["type"] == "result" else result
    lines = [f"{result['title']} — {result['data']['name']}, {cfg.transfer}, {cfg.seeds} seed(s)", text_table(catalogue_rows(result)),
             *(f"* {n}" for n in result["notes"])]
    return _finish(args, lines, result)
