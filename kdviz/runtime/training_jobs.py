"""Job bodies of the Teacher and Distill pages: train a teacher; distil a student beside a scratch twin.

Events, control and the keys every spec has: ``kdviz/runtime/protocol.py``. Keys these jobs add::

    train:       TrainConfig fields, e.g. {"epochs": 1, "lr": 1e-3, "batch_size": 128}
    eval_points: test evaluations during training (default 10) on a fixed sample of
                 at most ``live_test_n`` (default 2000) test images; the result uses the full test set

``teacher_job`` adds ``model`` (ModelConfig fields). ``distill_job`` adds ``teacher`` (checkpoint
path), ``student`` (ModelConfig fields), ``distill`` (DistillConfig fields: T, alpha, schedules),
``terms`` (list of ``{method, weight, student_layer, teacher_layer, param}``) and ``transfer``
("full" | "subset:N" | "without:3" or "without:3,5" | "labelled:N"; see ``kdviz.data.parse_transfer``) and
optionally ``cache_dir`` (where the teacher's logits on the training images are kept for the next run:
``kdviz/teacher_logits.py``). Invalid values never escape as exceptions: the job yields one error event instead.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from kdviz import data as kdata
from kdviz.checkpoints import load_checkpoint, save_checkpoint
from kdviz.engine import NonFiniteLoss, StepRecord, TrainConfig, make_model, total_steps, train, uses_teacher_logits
from kdviz.evaluation import EvalResult, agreement_of, eval_from_logits, evaluate, predict_logits, reliability
from kdviz.methods.objective import DistillConfig
from kdviz.models import ModelConfig, param_count, size_mb
from kdviz.runtime.job_specs import device_and_source, distill_config, model_config, out_dir, train_config
from kdviz.runtime.protocol import guarded, record_event, round_robin, status_event
from kdviz.teacher_logits import base_logits, rows_of

TIMING_BATCH = 256


# ----------------------------------------------------------------------------- measurement
@torch.no_grad()
def ms_per_batch(model: nn.Module, device: torch.device, batch: int = TIMING_BATCH, reps: int = 5) -> float:
    """Median wall time (ms) of one eval-mode forward pass on ``[batch, 1, 28, 28]``."""
    was_training = model.training
    model.eval()
    x = torch.randn(batch, 1, 28, 28, device=device)
    times = []
    for i in range(reps + 1):  # the first pass warms up allocators and kernels
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append((time.perf_counter() - t0) * 1000)
    model.train(was_training)
    return sorted(times)[len(times) // 2]


def model_summary(model: nn.Module, cfg: ModelConfig, device: torch.device) -> dict:
    return {"label": cfg.label(), "model": asdict(cfg), "params": param_count(model),
            "size_mb": size_mb(model), "ms_per_batch": ms_per_batch(model, device)}


def eval_summary(result: EvalResult) -> dict:
    return {"test_acc": result.accuracy, "per_class": result.per_class, "confusion": result.confusion, "errors": result.errors}


def _live_test(test: kdata.TensorData, spec: dict) -> kdata.TensorData:
    """A fixed sample of the test set for the evaluations during training (cheap enough to repeat)."""
    n = int(spec.get("live_test_n", 2000))
    return test if len(test) <= n else kdata.random_subset(test, n, seed=0)


def _with_eval_points(cfg: TrainConfig, n_train: int, spec: dict) -> TrainConfig:
    """About ``eval_points`` test evaluations per run, unless the spec set ``eval_every`` itself."""
    if cfg.eval_every:
        return cfg
    points = int(spec.get("eval_points", 10))
    if points < 1:
        raise ValueError(f"eval_points must be >= 1, got {points}")
    return replace(cfg, eval_every=max(1, total_steps(n_train, cfg) // points))


# ----------------------------------------------------------------------------- teacher
@guarded
def teacher_job(spec: dict) -> Iterator[dict]:
    """Train a teacher, evaluate it, save its checkpoint to ``out_dir/teacher.pt``."""
    cfg, tcfg, folder = model_config(spec.get("model")), train_config(spec.get("train")), out_dir(spec)
    device, source = device_and_source(spec)
    yield status_event("loading data")
    bundle = kdata.load_bundle(source).to(device)
    tcfg = _with_eval_points(tcfg, len(bundle.train), spec)
    model = make_model(cfg, tcfg.seed, device)
    yield status_event(f"training teacher {cfg.label()} on {bundle.name}")
    t0 = time.perf_counter()
    for rec in train(model, bundle.train, tcfg, test=_live_test(bundle.test, spec), device=device):
        yield record_event("teacher", rec.to_dict())
    train_s = time.perf_counter() - t0
    yield status_event("evaluating on the full test set")
    ev = evaluate(model, bundle.test)
    meta = {"test_acc": ev.accuracy, "data_source": bundle.source, "data_name": bundle.name, "train": asdict(tcfg)}
    path = save_checkpoint(folder / "teacher.pt", model, cfg, meta)
    yield {"type": "result", "run": "teacher", **eval_summary(ev), **model_summary(model, cfg, device),
           "checkpoint": str(path), "checkpoints": {"teacher": str(path)}, "train_s": train_s, "data_source": bundle.source, "data_name": bundle.name,
           "steps": rec.step, "threads": torch.get_num_threads()}


# ----------------------------------------------------------------------------- distillation
def _naming_divergence(name: str, records: Iterator[StepRecord]) -> Iterator[StepRecord]:
    try:
        yield from records
    except NonFiniteLoss as err:
        err.args = (f"{name} student: {err}",)  # keep the type and .step; name the run
        raise


def interleave(runs: dict[str, Iterator[StepRecord]]) -> Iterator[dict]:
    """One record event from each run in turn, so both curves advance together.

    A divergence names its run: "distilled student: training stopped at step 40 ...".
    """
    for name, rec in round_robin({n: _naming_divergence(n, it) for n, it in runs.items()}):
        yield record_event(name, rec.to_dict())


def _load_teacher(spec: dict, device: torch.device):
    if not spec.get("teacher"):
        raise ValueError("the distillation spec needs 'teacher': the path of a teacher checkpoint")
    teacher, cfg, meta = load_checkpoint(spec["teacher"])
    return teacher.to(device).eval(), cfg, meta


@guarded
def distill_job(spec: dict) -> Iterator[dict]:
    """Train a distilled and a scratch student side by side (same init, seed and data order)."""
    s_cfg, tcfg, folder = model_config(spec.get("student"), "student"), train_config(spec.get("train")), out_dir(spec)
    dcfg = distill_config(spec.get("distill"), spec.get("terms"))
    device, source = device_and_source(spec)
    choice = kdata.parse_transfer(spec.get("transfer", "full"))  # parsed once; a typo fails before any work
    teacher, t_cfg, t_meta = _load_teacher(spec, device)
    yield status_event("loading data")
    bundle = kdata.load_bundle(source).to(device)
    transfer = choice.select(bundle.train, tcfg.seed)
    tcfg = _with_eval_points(tcfg, len(transfer), spec)
    live_test = _live_test(bundle.test, spec)
    students = {name: make_model(s_cfg, tcfg.seed, device) for name in ("distilled", "scratch")}
    label = f"distilling {t_cfg.label()} → {s_cfg.label()} on {len(transfer):,} images (T={dcfg.T:g}, alpha={dcfg.alpha:g})"
    t_logits = None
    if uses_teacher_logits(tcfg, dcfg):
        yield status_event(label + " — first the teacher's logits on every training image (kept for the next run)")
        t_logits = rows_of(base_logits(teacher, bundle.train, spec.get("cache_dir") or "", amp=tcfg.amp), transfer)
    runs = {
        "distilled": train(students["distilled"], transfer, tcfg, teacher=teacher, distill=dcfg, test=live_test, device=device,
                           teacher_logits=t_logits),
        "scratch": train(students["scratch"], transfer, tcfg, test=live_test, device=device),
    }
    t0 = time.perf_counter()
    for i, event in enumerate(interleave(runs)):
        if i == 0:
            yield status_event(label)
        yield event
    train_s = time.perf_counter() - t0
    yield status_event("evaluating on the full test set")
    yield {"type": "result", **_distill_result(teacher, t_cfg, t_meta, students, s_cfg, bundle, device, folder, dcfg),
           "transfer": choice.text, "transfer_n": len(transfer), "train_s": train_s, "threads": torch.get_num_threads()}


def _distill_result(teacher, t_cfg, t_meta, students, s_cfg, bundle, device, folder: Path, dcfg: DistillConfig) -> dict:
    test, labels = bundle.test, bundle.test.y.cpu()
    # One pass per network over the test set; every figure below reads these logits. Four passes of the
    # shipped CNN teacher (accuracy, agreement twice, calibration) took ~10 s of each run on one thread.
    logits = {n: predict_logits(m, test).cpu() for n, m in {"teacher": teacher, **students}.items()}
    evals = {n: eval_from_logits(z, labels) for n, z in logits.items()}
    paths = {}
    for name, model in students.items():
        meta = {"test_acc": evals[name].accuracy, "role": name, "T": dcfg.T, "alpha": dcfg.alpha, "data_source": bundle.source}
        paths[name] = str(save_checkpoint(folder / f"{name}.pt", model, s_cfg, meta))
    return {
        "test_acc": {n: e.accuracy for n, e in evals.items()},
        "errors": {n: e.errors for n, e in evals.items()},
        "per_class": {n: e.per_class for n, e in evals.items()},
        "confusion": {n: e.confusion for n, e in evals.items()},
        "agreement": {n: agreement_of(logits["teacher"], logits[n]) for n in students},
        "reliability": {n: reliability(z, labels) for n, z in logits.items()},
        "teacher": model_summary(teacher, t_cfg, device),
        "student": model_summary(students["distilled"], s_cfg, device),
        "checkpoints": paths,
        "data_source": bundle.source,
        "data_name": bundle.name,
        "teacher_data_source": t_meta.get("data_source"),
        "T": dcfg.T,
        "alpha": dcfg.alpha,
        "terms": [asdict(t) for t in dcfg.terms],
    }
