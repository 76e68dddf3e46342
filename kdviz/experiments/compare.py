"""Method comparison: every distillation method on the same teacher, student and transfer set.

``compare_methods(...)`` trains one student per (method, seed), evaluates it on the full test
set and returns plain-data rows (mean ± std test accuracy, mean wall time, and whether each
method's difference to scratch and to the best method is within noise). ``python -m kdviz
compare ...`` prints them as a table.

Protocol (documented so a table can be read honestly):
- "scratch" is the student trained from the labels alone; "kd" is Hinton KD
  (``alpha·KD + (1 − alpha)·CE``); a divergence (reverse_kl, js, mse_logits) runs exactly as kd
  with its KL swapped (``alpha·D + (1 − alpha)·CE``). Every other method runs as ``CE + weight·term`` with the
  paper's weight (``METHODS[m].default_weight``), as in the CRD / mdistiller benchmarks;
  ``plus_kd=True`` adds ``alpha·KD`` on top (CE then weighs ``1 − alpha``).
- Seed s sets the student's initial weights and its data order; the transfer set is drawn once
  (seed 0), so all methods and seeds see the same images.
- Wall time is training only (teacher forward passes included), without evaluation.
- "Within noise": ``|Δmean| < 2·sqrt(std_a²/n_a + std_b²/n_b)`` (sample std, ddof = 1), the rule of
  :mod:`kdviz.experiments.stats`; with a single seed every difference counts as within noise.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from typing import Iterator

import torch
from torch import nn

from kdviz.data import DataBundle, load_data, transfer_set
from kdviz.devices import resolve_device
from kdviz.engine import TrainConfig, make_model, run_to_end, train
from kdviz.evaluation import eval_from_logits, evaluate, expected_calibration_error, predict_logits
from kdviz.methods import METHODS, DistillConfig, Term, build_objective
from kdviz.models import ModelConfig
from kdviz.experiments.stats import compare as compare_stats
from kdviz.experiments.stats import mean_std
from kdviz.runs.tables import text_table
from kdviz.commands import add_schedule_args, schedule_kwargs, schedule_note

SCRATCH = "scratch"
DEFAULT_METHODS = tuple(METHODS)  # every registered method, in registration order
MAPS_MESSAGE = "not applicable: needs CNN feature maps [B, C, H, W] on both networks"


# ----------------------------------------------------------------------------- configuration per method
def method_config(method: str, T: float = 4.0, alpha: float = 0.9, plus_kd: bool = False, **schedule) -> DistillConfig | None:
    """The DistillConfig a comparison uses for ``method`` (None for scratch); see the module docstring.

    ``schedule``: DistillConfig's T/alpha schedule fields (progressive distillation), for every method."""
    if method == SCRATCH:
        return None
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {[SCRATCH, *METHODS]}")
    if method == "kd":
        return DistillConfig(T=T, alpha=alpha, **schedule)
    if METHODS[method].divergence:  # alpha·divergence + (1 − alpha)·CE: kd with its divergence swapped
        return DistillConfig(T=T, alpha=alpha, terms=(Term(method, 1.0),), **schedule)
    return DistillConfig(T=T, alpha=alpha if plus_kd else 0.0, terms=(Term(method, METHODS[method].default_weight),), **schedule)


def applicability(method: str, distill: DistillConfig | None, student: nn.Module, teacher: nn.Module) -> str:
    """"" when ``method`` can run on this pair, else "not applicable: <why>" (never raises)."""
    if distill is None:
        return ""
    try:
        build_objective(distill, student, teacher)
    except ValueError as err:
        return MAPS_MESSAGE if METHODS[method].needs == "maps" else f"not applicable: {err}"
    return ""


# ----------------------------------------------------------------------------- running
def _one_run(distill, teacher, student_cfg, transfer, test, train_cfg: TrainConfig, seed: int, device) -> tuple[float, float, float]:
    """(test accuracy, training wall seconds, expected calibration error) of one student."""
    student = make_model(student_cfg, seed, device)
    t0 = time.perf_counter()
    run_to_end(train(student, transfer, replace(train_cfg, seed=seed), teacher=teacher, distill=distill, device=device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    logits = predict_logits(student, test)
    return eval_from_logits(logits, test.y).accuracy, wall, expected_calibration_error(logits.cpu(), test.y.cpu())


def iter_compare(
    bundle: DataBundle,
    teacher: nn.Module,
    student_cfg: ModelConfig,
    train_cfg: TrainConfig,
    methods: list[str] | tuple[str, ...] = DEFAULT_METHODS,
    seeds: list[int] | tuple[int, ...] = (0, 1, 2),
    scenario: str = "full",
    device: str | torch.device | None = None,
    *,
    T: float = 4.0,
    alpha: float = 0.9,
    plus_kd: bool = False,
    schedule: dict | None = None,
) -> Iterator[dict]:
    """:func:`compare_methods` as a generator of job events: "status", one "run" per (method, seed), "result" with the rows."""
    methods, seeds = _check_lists(methods, seeds)
    device = resolve_device(device)
    teacher = teacher.to(device).eval()
    bundle = bundle.to(device)
    transfer = transfer_set(bundle.train, scenario, seed=0)
    configs = {m: method_config(m, T, alpha, plus_kd, **(schedule or {})) for m in methods}  # validates every name first
    probe = make_model(student_cfg, 0, device)
    per_method: dict[str, dict] = {}
    for method, distill in configs.items():
        status = applicability(method, distill, probe, teacher)
        per_method[method] = {"status": status or "ok", "accs": [], "wall_s": [], "eces": []}
        if status:
            yield {"type": "status", "text": f"{method}: {status}"}
            continue
        for seed in seeds:
            yield {"type": "status", "text": f"{method}: seed {seed} ({len(transfer)} images)"}
            acc, wall, ece = _one_run(distill, teacher, student_cfg, transfer, bundle.test, train_cfg, seed, device)
            per_method[method]["accs"].append(acc)
            per_method[method]["wall_s"].append(wall)
            per_method[method]["eces"].append(ece)
            yield {"type": "run", "method": method, "seed": seed, "test_acc": acc, "wall_s": wall, "ece": ece}
    yield {"type": "result", "rows": summarise(per_method), "scenario": scenario, "transfer_n": len(transfer),
           "seeds": list(seeds), "student": student_cfg.label(), "T": T, "alpha": alpha, "plus_kd": plus_kd}


def _check_lists(methods, seeds) -> tuple[list[str], list[int]]:
    methods = list(dict.fromkeys(methods))  # order kept, duplicates dropped
    if SCRATCH not in methods:
        methods.insert(0, SCRATCH)  # the baseline every "vs scratch" verdict needs
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    return methods, seeds


def compare_methods(bundle, teacher, student_cfg, train_cfg, methods=DEFAULT_METHODS, seeds=(0, 1, 2),
                    scenario: str = "full", device=None, **kwargs) -> list[dict]:
    """Run every method (plus scratch) over ``seeds`` and return the summary rows (see :func:`summarise`)."""
    result = {}
    for event in iter_compare(bundle, teacher, student_cfg, train_cfg, methods, seeds, scenario, device, **kwargs):
        result = event
    return result["rows"]


# ----------------------------------------------------------------------------- summarising
def summarise(per_method: dict[str, dict]) -> list[dict]:
    """Rows from per-seed results ``{method: {"status", "accs": [...], "wall_s": [...]}}`` (plain data).

    Row keys: method, label, status ("ok" or "not applicable: ..."), accs, n, mean_acc, std_acc
    (ddof = 1), mean_wall_s, eces, mean_ece, std_ece, best, diff_vs_best, noise_vs_best,
    diff_vs_scratch, noise_vs_scratch, ece_diff_vs_scratch, ece_noise_vs_scratch.
    Verdicts are None where they do not apply (the best row vs itself, scratch vs itself).
    """
    rows = [_base_row(m, r) for m, r in per_method.items()]
    done = {r["method"]: r for r in rows if r["n"]}
    best = max(done.values(), key=lambda r: r["mean_acc"])["method"] if done else None
    for row in rows:
        row["best"] = row["method"] == best
        if row["n"]:
            row.update(_verdict(row, done.get(best), "best"), **_verdict(row, done.get(SCRATCH), "scratch"))
    return rows


def _base_row(method: str, result: dict) -> dict:
    accs, walls = list(result.get("accs", [])), list(result.get("wall_s", []))
    label = "Scratch (labels only)" if method == SCRATCH else METHODS[method].label
    row = {"method": method, "label": label, "status": result.get("status", "ok"), "accs": accs, "n": len(accs),
           "mean_acc": None, "std_acc": None, "mean_wall_s": None, "eces": list(result.get("eces", [])),
           "mean_ece": None, "std_ece": None, "best": False,
           "diff_vs_best": None, "noise_vs_best": None, "diff_vs_scratch": None, "noise_vs_scratch": None,
           "ece_diff_vs_scratch": None, "ece_noise_vs_scratch": None,
           "note": METHODS[method].note if method in METHODS else ""}
    if accs:
        ms = mean_std(accs)
        row.update(mean_acc=ms.mean, std_acc=ms.std, mean_wall_s=mean_std(walls).mean)
    if result.get("eces"):
        ece = mean_std(result["eces"])
        row.update(mean_ece=ece.mean, std_ece=ece.std)
    return row


def _verdict(row: dict, ref: dict | None, name: str) -> dict:
    if ref is None or ref["method"] == row["method"]:
        return {}
    c = compare_stats(row["accs"], ref["accs"])
    out = {f"diff_vs_{name}": c.diff, f"noise_vs_{name}": c.within_noise}
    if name == SCRATCH and row["eces"] and ref["eces"]:  # calibration gets its own verdict vs scratch
        e = compare_stats(row["eces"], ref["eces"])
        out.update(ece_diff_vs_scratch=e.diff, ece_noise_vs_scratch=e.within_noise)
    return out


# ----------------------------------------------------------------------------- table
def _diff_cell(diff: float | None, noise: bool | None, is_self: bool) -> str:
    if is_self:
        return "—"
    if diff is None:
        return ""
    return f"{100 * diff:+.2f} " + ("(within noise)" if noise else "(beyond noise)")


def format_table(rows: list[dict]) -> str:
    """Plain-text table (``text_table``): accuracy in %, mean ± std over seeds; methods that do not
    apply follow on one line each (their message would widen every column); a legend line below."""
    measured = [r for r in rows if r["n"]]
    table = text_table([{
        "method": r["method"], "test acc % (mean ± std)": f"{100 * r['mean_acc']:.2f} ± {100 * r['std_acc']:.2f}",
        "ECE % (mean ± std)": "—" if r.get("mean_ece") is None else f"{100 * r['mean_ece']:.2f} ± {100 * r['std_ece']:.2f}",
        "ECE vs scratch (pts)": _diff_cell(r.get("ece_diff_vs_scratch"), r.get("ece_noise_vs_scratch"), r["method"] == SCRATCH),
        "seeds": str(r["n"]), "train s": f"{r['mean_wall_s']:.1f}",
        "vs scratch (pts)": _diff_cell(r["diff_vs_scratch"], r["noise_vs_scratch"], r["method"] == SCRATCH),
        "vs best (pts)": "best" if r["best"] else _diff_cell(r["diff_vs_best"], r["noise_vs_best"], False),
    } for r in measured])
    width = max(len(r["method"]) for r in [{"method": "method"}, *measured])
    skipped = [f"{r['method']:<{width}}  {r['status']}" for r in rows if not r["n"]]
    legend = ("within noise: |Δmean| < 2·sqrt(std_a²/n_a + std_b²/n_b) (std with ddof=1); pts = percentage points; "
              "ECE: expected calibration error, 15 equal-width bins, lower is better")
    return "\n".join([*([table] if table else []), *skipped, legend])


# ----------------------------------------------------------------------------- command line
def parse_model_spec(spec: str, dropout: float = 0.0) -> ModelConfig:
    """``"mlp:128"``, ``"mlp:800,800"``, ``"cnn:16,32"`` → ModelConfig (widths per layer / stage)."""
    arch, _, widths = spec.partition(":")
    try:
        sizes = tuple(int(w) for w in widths.split(",") if w.strip())
    except ValueError as err:
        raise ValueError(f"model spec {spec!r} is invalid: widths must be integers, e.g. mlp:128 or cnn:16,32") from err
    if not sizes:
        raise ValueError(f"model spec {spec!r} needs widths after the colon, e.g. mlp:128 or cnn:16,32")
    key = "hidden" if arch == "mlp" else "channels"
    return ModelConfig(arch=arch, dropout=dropout, **{key: sizes})


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("compare", help="compare distillation methods over seeds (table of mean ± std)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", help="teacher checkpoint; without it a quick teacher is trained first")
    p.add_argument("--teacher-model", default="cnn:32,64", help="architecture of the quick teacher (default cnn:32,64)")
    p.add_argument("--teacher-epochs", type=float, default=1.0)
    p.add_argument("--save-teacher", help="save the quick teacher to this checkpoint path (reuse it with --teacher)")
    p.add_argument("--student", default="mlp:128", help="student architecture, e.g. mlp:128 or cnn:8,16")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"comma list from {list(METHODS)} (scratch is always added)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1), at least 1")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--subset", type=int, help="transfer set: N random training images (same as --scenario subset:N)")
    p.add_argument("--scenario", default="full", help="full | subset:N | without:D[,D] | labelled:N")
    p.add_argument("--T", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.9)
    p.add_argument("--plus-kd", action="store_true", help="add alpha·KD to every feature method")
    add_schedule_args(p)
    p.add_argument("--device", help="cpu | cuda (default: CUDA when available)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.set_defaults(func=run_cli)


def _teacher_for(args, bundle: DataBundle, device: torch.device) -> nn.Module:
    if args.teacher:
        from kdviz.checkpoints import load_checkpoint

        model, cfg, _ = load_checkpoint(args.teacher)
        print(f"teacher: {cfg.label()} from {args.teacher}", flush=True)
        return model.to(device).eval()
    cfg = parse_model_spec(args.teacher_model)
    print(f"training a quick teacher {cfg.label()} for {args.teacher_epochs:g} epoch(s) on {len(bundle.train)} images ...", flush=True)
    model = make_model(cfg, 0, device)
    run_to_end(train(model, bundle.train, TrainConfig(epochs=args.teacher_epochs, batch_size=128, log_every=100), device=device))
    if args.save_teacher:
        from kdviz.checkpoints import save_checkpoint

        print(f"teacher saved to {save_checkpoint(args.save_teacher, model, cfg, {'data_source': bundle.source})}", flush=True)
    return model.eval()


def run_cli(args) -> int:
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    student_cfg = parse_model_spec(args.student)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    schedule = schedule_kwargs(args)
    for m in methods:
        method_config(m, args.T, args.alpha, args.plus_kd, **schedule)  # a typo or a bad schedule fails before any training
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, log_every=100)
    scenario = f"subset:{args.subset}" if args.subset else args.scenario
    bundle = load_data()
    print(f"data: {bundle.name}" + (f" — {bundle.message}" if bundle.message else ""), flush=True)
    teacher = _teacher_for(args, bundle, device)
    print(f"teacher test accuracy: {100 * evaluate(teacher, bundle.test.to(device)).accuracy:.2f}%", flush=True)
    result = {}
    for event in iter_compare(bundle, teacher, student_cfg, train_cfg, methods, list(range(args.seeds)), scenario,
                              device, T=args.T, alpha=args.alpha, plus_kd=args.plus_kd, schedule=schedule):
        if event["type"] == "run":
            print(f"  {event['method']:<8} seed {event['seed']}: {100 * event['test_acc']:.2f}%  ({event['wall_s']:.1f} s)", flush=True)
        result = event
    print(f"\nstudent {student_cfg.label()}, transfer set {scenario} ({result['transfer_n']} images), "
          f"{args.epochs:g} epoch(s), seeds {result['seeds']}, {schedule_note(method_config('kd', args.T, args.alpha, **schedule))}, "
          f"test set {len(bundle.test)}")
    print(format_table(result["rows"]))
    _print_notes(result["rows"])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


def _print_notes(rows: list[dict]) -> None:
    for r in rows:
        if r["n"] and r["note"] and r["method"] != "kd":
            print(f"note ({r['method']}): {r['note']}")
