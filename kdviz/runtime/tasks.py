"""Long-running jobs for the app: generator functions ``fn(spec) -> Iterator[dict]``.

A job runs in a worker process (``kdviz/worker.py``) and yields plain-dict events:

- ``{"type": "status", "text": ...}`` — phase changes
- ``{"type": "record", "run": name, **StepRecord.to_dict()}`` — training progress
- ``{"type": "result", ...}`` — final metrics (plain data only)
- ``{"type": "error", "text": ...}`` — a clear message; the job then ends

Specs are plain dicts (they cross a process boundary). Shared keys::

    data:        "auto" (MNIST or the offline fallback) | "synthetic" (tests)
    device:      "cpu" | "cuda" | None (auto)
    out_dir:     folder for checkpoints (required)
    train:       TrainConfig fields, e.g. {"epochs": 1, "lr": 1e-3, "batch_size": 128}
    eval_points: test evaluations during training (default 10) on a fixed sample of
                 at most ``live_test_n`` (default 2000) test images; the result uses the full test set

``teacher_job`` adds ``model`` (ModelConfig fields). ``distill_job`` adds ``teacher`` (checkpoint
path), ``student`` (ModelConfig fields), ``distill`` (DistillConfig fields: T, alpha, schedules),
``terms`` (list of ``{method, weight, student_layer, teacher_layer}``) and ``transfer``
("full" | "subset:N" | "without:3" or "without:3,5" | "labelled:N").
``quick_pair_job`` (the Feature maps page's built-in CNN pair) adds ``steps`` (per network, default 300).
``watch_at_job`` (the Feature maps page's "watch attention transfer") adds ``teacher`` and ``student``
(checkpoint paths: the teacher, and the student whose architecture a fresh student gets), ``layer``
(default "stage2"), ``steps`` (default 200), ``at_weight`` (β, default 1000), ``index`` (the test image
whose maps are kept, default 0) and ``probe_n`` (images the AT distance averages over, default 128).

Invalid values never escape as exceptions: the job yields one error event instead.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from kdviz import data as kdata
from kdviz.attention import QuickPairConfig, Snapshot, attention_2d, attention_transfer_setup, snapshot_steps, spatial_features, watch_records
from kdviz.checkpoints import load_checkpoint, save_checkpoint
from kdviz.devices import resolve_device
from kdviz.engine import NonFiniteLoss, StepRecord, TrainConfig, make_model, total_steps, train
from kdviz.evaluation import EvalResult, agreement, evaluate
from kdviz.methods.objective import DistillConfig, Term
from kdviz.models import ModelConfig, param_count, size_mb

DATA_SOURCES = ("auto", "synthetic")
TIMING_BATCH = 256


# ----------------------------------------------------------------------------- spec parsing
def _fields_of(cls, values: dict | None, what: str, skip: tuple[str, ...] = ()) -> dict:
    """``values`` checked against the dataclass's field names (a typo must not pass silently)."""
    values = dict(values or {})
    allowed = {f.name for f in fields(cls)} - set(skip)
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {unknown}; allowed: {sorted(allowed)}")
    return values


def _build(cls, values: dict | None, what: str, skip: tuple[str, ...] = ()):
    kwargs = _fields_of(cls, values, what, skip)
    try:
        return cls(**kwargs)
    except TypeError as err:  # e.g. hidden=5 (not a sequence)
        raise ValueError(f"invalid {what} settings {kwargs}: {err}") from err


def model_config(values: dict | None, what: str = "model") -> ModelConfig:
    return _build(ModelConfig, values, what)


def train_config(values: dict | None) -> TrainConfig:
    return _build(TrainConfig, values, "training")


def distill_config(values: dict | None, terms: list | None) -> DistillConfig:
    return replace(_build(DistillConfig, values, "distillation", skip=("terms",)), terms=parse_terms(terms))


def parse_terms(terms: list | None) -> tuple[Term, ...]:
    """``[{"method", "weight", "student_layer", "teacher_layer"}]`` → Term objects (validated by Objective)."""
    out = []
    for raw in terms or []:
        if not isinstance(raw, dict) or "method" not in raw:
            raise ValueError(f"each method term must be a dict with a 'method' key, got {raw!r}")
        values = _fields_of(Term, raw, "method term")
        out.append(Term(str(values["method"]), float(values.get("weight", 1.0)),
                        str(values.get("student_layer", "")), str(values.get("teacher_layer", ""))))
    return tuple(out)


def check_source(source: str) -> str:
    if source not in DATA_SOURCES:
        raise ValueError(f"data source must be one of {DATA_SOURCES}, got {source!r}")
    return source


@functools.lru_cache(maxsize=2)
def load_bundle(source: str = "auto") -> kdata.DataBundle:
    """The data set, loaded once per process (a warm worker preloads it; jobs never modify it)."""
    return kdata.synthetic_bundle() if check_source(source) == "synthetic" else kdata.load_data()


TRANSFER_HELP = "use full, subset:N, without:D[,D] or labelled:N"


def parse_transfer(choice: str) -> tuple[str, int | tuple[int, ...] | None]:
    """``"subset:100"`` → ``("subset", 100)``, ``"without:3,5"`` → ``("without", (3, 5))``, ``"full"`` → ``("full", None)``."""
    kind, _, arg = str(choice).partition(":")
    try:
        if kind == "full" and not arg:
            return kind, None
        if kind in ("subset", "labelled"):
            return kind, int(arg)
        if kind == "without":
            return kind, tuple(int(d) for d in arg.split(",") if d.strip())
    except ValueError as err:
        raise ValueError(f"transfer set {choice!r} is invalid ({err}); {TRANSFER_HELP}") from err
    raise ValueError(f"transfer set {choice!r} is invalid; {TRANSFER_HELP}")


def transfer_set(train_data: kdata.TensorData, choice: str, seed: int = 0) -> kdata.TensorData:
    """The images the student learns from: "full", "subset:N", "without:3[,5]", "labelled:N"."""
    kind, arg = parse_transfer(choice)
    try:
        if kind == "subset":
            out = kdata.random_subset(train_data, arg, seed)
        elif kind == "without":
            out = kdata.without_digits(train_data, arg)
        elif kind == "labelled":
            out = kdata.labelled_plus_unlabelled(train_data, arg, seed)
        else:
            out = train_data
    except ValueError as err:
        raise ValueError(f"transfer set {choice!r} is invalid ({err}); {TRANSFER_HELP}") from err
    if len(out) == 0:
        raise ValueError(f"transfer set {choice!r} is empty")
    return out


def out_dir(spec: dict) -> Path:
    if not spec.get("out_dir"):
        raise ValueError("the job spec needs an 'out_dir' folder for its checkpoints")
    return Path(spec["out_dir"])


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


def _record_event(run: str, rec: StepRecord) -> dict:
    return {"type": "record", "run": run, **rec.to_dict()}


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


def guarded(job: Callable[[dict], Iterator[dict]]) -> Callable[[dict], Iterator[dict]]:
    """Turn a ValueError (bad spec, CheckpointError, NonFiniteLoss) into one error event."""

    def run(spec: dict) -> Iterator[dict]:
        try:
            if not isinstance(spec, dict):
                raise ValueError(f"a job spec must be a dict, got {type(spec).__name__}")
            yield from job(spec)
        except ValueError as err:
            yield {"type": "error", "text": str(err), "kind": type(err).__name__}

    run.__name__, run.__doc__, run.__wrapped__ = job.__name__, job.__doc__, job
    return run


# ----------------------------------------------------------------------------- teacher
@guarded
def teacher_job(spec: dict) -> Iterator[dict]:
    """Train a teacher, evaluate it, save its checkpoint to ``out_dir/teacher.pt``."""
    cfg, tcfg, folder = model_config(spec.get("model")), train_config(spec.get("train")), out_dir(spec)
    device, source = resolve_device(spec.get("device")), check_source(spec.get("data", "auto"))
    yield {"type": "status", "text": "loading data"}
    bundle = load_bundle(source).to(device)
    tcfg = _with_eval_points(tcfg, len(bundle.train), spec)
    model = make_model(cfg, tcfg.seed, device)
    yield {"type": "status", "text": f"training teacher {cfg.label()} on {bundle.name}"}
    t0 = time.perf_counter()
    for rec in train(model, bundle.train, tcfg, test=_live_test(bundle.test, spec), device=device):
        yield _record_event("teacher", rec)
    train_s = time.perf_counter() - t0
    yield {"type": "status", "text": "evaluating on the full test set"}
    ev = evaluate(model, bundle.test)
    meta = {"test_acc": ev.accuracy, "data_source": bundle.source, "data_name": bundle.name, "train": asdict(tcfg)}
    path = save_checkpoint(folder / "teacher.pt", model, cfg, meta)
    yield {"type": "result", "run": "teacher", **eval_summary(ev), **model_summary(model, cfg, device),
           "checkpoint": str(path), "checkpoints": {"teacher": str(path)}, "train_s": train_s, "data_source": bundle.source, "data_name": bundle.name,
           "steps": rec.step, "threads": torch.get_num_threads()}


# ----------------------------------------------------------------------------- distillation
def interleave(runs: dict[str, Iterator[StepRecord]]) -> Iterator[dict]:
    """One record from each run in turn, so both curves advance together.

    A divergence names its run: "distilled student: training stopped at step 40 ...".
    """
    live = dict(runs)
    while live:
        for name in list(live):
            try:
                rec = next(live[name])
            except StopIteration:
                del live[name]
                continue
            except NonFiniteLoss as err:
                err.args = (f"{name} student: {err}",)  # keep the type and .step; name the run
                raise
            yield _record_event(name, rec)


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
    device, source = resolve_device(spec.get("device")), check_source(spec.get("data", "auto"))
    parse_transfer(spec.get("transfer", "full"))  # a typo fails before any work
    teacher, t_cfg, t_meta = _load_teacher(spec, device)
    yield {"type": "status", "text": "loading data"}
    bundle = load_bundle(source).to(device)
    transfer = transfer_set(bundle.train, spec.get("transfer", "full"), tcfg.seed)
    tcfg = _with_eval_points(tcfg, len(transfer), spec)
    live_test = _live_test(bundle.test, spec)
    students = {name: make_model(s_cfg, tcfg.seed, device) for name in ("distilled", "scratch")}
    runs = {
        "distilled": train(students["distilled"], transfer, tcfg, teacher=teacher, distill=dcfg, test=live_test, device=device),
        "scratch": train(students["scratch"], transfer, tcfg, test=live_test, device=device),
    }
    label = f"distilling {t_cfg.label()} → {s_cfg.label()} on {len(transfer):,} images (T={dcfg.T:g}, alpha={dcfg.alpha:g})"
    cached = tcfg.jitter == 0 and not dcfg.needs_teacher_features  # the engine then labels the set once, up front
    yield {"type": "status", "text": label + (" — first the teacher labels every transfer image once" if cached else "")}
    t0 = time.perf_counter()
    for i, event in enumerate(interleave(runs)):
        if i == 0:
            yield {"type": "status", "text": label}
        yield event
    train_s = time.perf_counter() - t0
    yield {"type": "status", "text": "evaluating on the full test set"}
    yield {"type": "result", **_distill_result(teacher, t_cfg, t_meta, students, s_cfg, bundle, device, folder, dcfg),
           "transfer": spec.get("transfer", "full"), "transfer_n": len(transfer), "train_s": train_s,
           "threads": torch.get_num_threads()}


def _distill_result(teacher, t_cfg, t_meta, students, s_cfg, bundle, device, folder: Path, dcfg: DistillConfig) -> dict:
    test = bundle.test
    evals = {"teacher": evaluate(teacher, test), **{n: evaluate(m, test) for n, m in students.items()}}
    paths = {}
    for name, model in students.items():
        meta = {"test_acc": evals[name].accuracy, "role": name, "T": dcfg.T, "alpha": dcfg.alpha, "data_source": bundle.source}
        paths[name] = str(save_checkpoint(folder / f"{name}.pt", model, s_cfg, meta))
    return {
        "test_acc": {n: e.accuracy for n, e in evals.items()},
        "errors": {n: e.errors for n, e in evals.items()},
        "per_class": {n: e.per_class for n, e in evals.items()},
        "confusion": {n: e.confusion for n, e in evals.items()},
        "agreement": {n: agreement(teacher, m, test) for n, m in students.items()},
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


# ----------------------------------------------------------------------------- quick CNN pair (Feature maps page)
QUICK_PAIR_RECORDS = 30  # records per network: enough for a smooth progress bar


def _whole(spec: dict, key: str, default: int, low: int) -> int:
    """``spec[key]`` as a whole number >= ``low`` (bools and floats refused), else a ValueError naming it."""
    raw = spec.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < low:
        raise ValueError(f"{key} must be a whole number >= {low}, got {raw!r}")
    return raw


def _steps(spec: dict, default: int) -> int:
    return _whole(spec, "steps", default, 1)


@guarded
def quick_pair_job(spec: dict) -> Iterator[dict]:
    """A small CNN teacher, then a CNN student distilled from it with KD + attention transfer
    (``kdviz.attention.QuickPairConfig``); both checkpoints go to ``out_dir``."""
    steps, folder = _steps(spec, 300), out_dir(spec)
    cfg = QuickPairConfig(teacher_steps=steps, student_steps=steps)  # validates steps >= 1
    device, source = resolve_device(spec.get("device")), check_source(spec.get("data", "auto"))
    train_cfg = cfg.train_config(steps, log_every=max(1, steps // QUICK_PAIR_RECORDS))
    yield {"type": "status", "text": "loading data"}
    bundle = load_bundle(source).to(device)
    teacher = make_model(cfg.teacher, cfg.seed, device)
    yield {"type": "status", "text": f"training the teacher {cfg.teacher.label()} ({steps} steps)"}
    for rec in train(teacher, bundle.train, train_cfg, device=device):
        yield _record_event("teacher", rec)
    teacher.eval()
    student = make_model(cfg.student, cfg.seed + 1, device)
    setup = attention_transfer_setup(student, teacher, cfg.student_layer, cfg.teacher_layer, cfg.at_weight, cfg.T, cfg.alpha)
    how = f"KD + attention transfer on {cfg.student_layer}" if setup.uses_at else "soft-target KD"
    yield {"type": "status", "text": f"training the student {cfg.student.label()} with {how} ({steps} steps)"}
    for rec in train(student, bundle.train, train_cfg, teacher=teacher, distill=setup.distill, device=device):
        yield _record_event("student", rec)
    yield {"type": "status", "text": "evaluating on the full test set"}
    yield {"type": "result", "steps": steps, "uses_at": setup.uses_at, "note": setup.note, "data_source": bundle.source,
           **_save_pair(folder, {"teacher": (teacher, cfg.teacher), "student": (student, cfg.student)}, bundle, setup.uses_at)}


def _save_pair(folder: Path, models: dict, bundle: kdata.DataBundle, uses_at: bool) -> dict:
    """Evaluate and save each ``{role: (model, cfg)}``: ``{"test_acc": {...}, "checkpoints": {...}, "labels": {...}}``."""
    out = {"test_acc": {}, "checkpoints": {}, "labels": {}}
    for role, (model, cfg) in models.items():
        acc = evaluate(model, bundle.test).accuracy
        meta = {"test_acc": acc, "role": role, "attention_transfer": uses_at, "data_source": bundle.source}
        out["test_acc"][role] = acc
        out["checkpoints"][role] = str(save_checkpoint(folder / f"{role}.pt", model, cfg, meta))
        out["labels"][role] = cfg.label()
    return out


# ----------------------------------------------------------------------------- watch attention transfer (Feature maps page)
WATCH_RECORDS = 60  # progress records per run
WATCH_SNAPSHOTS = 7  # attention maps kept, spaced geometrically (early training changes fastest)
WATCH_PROBE = 128  # images the AT distance is averaged over


def _at_weight(spec: dict) -> float:
    raw = spec.get("at_weight", 1000.0)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) or raw < 0:
        raise ValueError(f"at_weight must be a finite number >= 0, got {raw!r}")
    return float(raw)


def _checkpoint(spec: dict, role: str):
    """``(model, config)`` from the checkpoint path ``spec[role]`` (a clear ValueError when missing or unusable)."""
    path = spec.get(role)
    if not path or not isinstance(path, str):
        raise ValueError(f"the spec needs '{role}': the path of a {role} checkpoint")
    model, cfg, _ = load_checkpoint(path)
    return model, cfg


def _probe(test: kdata.TensorData, index: int, n: int) -> tuple[torch.Tensor, int]:
    """``(probe [n, 1, 28, 28], label)``: test image ``index`` first (its maps are kept), then the first ``n - 1`` test images."""
    if index >= len(test):
        raise ValueError(f"index must be below the {len(test):,} test images, got {index}")
    return torch.cat([test.x[index : index + 1], test.x[: n - 1]]), int(test.y[index])


def _check_stage(model: nn.Module, layer: str, who: str) -> None:
    """A ValueError before any work when ``model`` has no spatial stage ``layer`` (an MLP has none)."""
    feats = spatial_features(model, torch.zeros(1, 1, 28, 28))
    if layer not in feats:
        raise ValueError(f"the {who} has no spatial stage {layer!r}; it has {list(feats)}")


def snapshot_dict(shot: Snapshot) -> dict:
    """A :class:`~kdviz.attention.Snapshot` as plain data (the map as nested lists)."""
    return {"step": shot.step, "distance": shot.distance, "train_acc": shot.train_acc, "map": shot.student_map.tolist()}


@guarded
def watch_at_job(spec: dict) -> Iterator[dict]:
    """Train a fresh student (the architecture of ``student``, seed 1) against ``teacher`` with KD + AT on
    ``layer``; the result holds its attention maps for test image ``index`` at a few steps, the
    teacher's map, and the AT distance at those steps (plain lists)."""
    steps, weight, layer = _steps(spec, 200), _at_weight(spec), str(spec.get("layer", "stage2"))
    index, probe_n = _whole(spec, "index", 0, 0), _whole(spec, "probe_n", WATCH_PROBE, 1)
    device, source = resolve_device(spec.get("device")), check_source(spec.get("data", "auto"))
    teacher, t_cfg = _checkpoint(spec, "teacher")
    _, s_cfg = _checkpoint(spec, "student")
    student = make_model(s_cfg, 1, device)
    teacher = teacher.to(device).eval()
    for model, who in ((teacher, "teacher"), (student, "student")):
        _check_stage(model, layer, who)
    yield {"type": "status", "text": "loading data"}
    bundle = load_bundle(source).to(device)
    probe, label = _probe(bundle.test, index, probe_n)
    setup = attention_transfer_setup(student, teacher, layer, layer, weight)
    every = max(1, steps // WATCH_RECORDS)
    how = f"KD + {weight:g}·AT on {layer}" if setup.uses_at else "soft-target KD"
    yield {"type": "status", "text": f"training a fresh student {s_cfg.label()} against the teacher {t_cfg.label()} with {how} ({steps} steps)"}
    snaps = []
    for rec, shot in watch_records(teacher, student, bundle.train, probe, QuickPairConfig().train_config(steps, every), setup,
                                   layer, layer, device, snapshot_steps(steps, WATCH_SNAPSHOTS, every)):
        if rec is not None:
            yield _record_event("student", rec)
        if shot is not None:
            snaps.append(snapshot_dict(shot))
    t_map = attention_2d(spatial_features(teacher, probe[:1])[layer])
    yield {"type": "result", "steps": steps, "layer": layer, "at_weight": weight, "uses_at": setup.uses_at, "note": setup.note,
           "index": index, "label": label, "teacher_map": t_map.tolist(), "snapshots": snaps,
           "labels": {"teacher": t_cfg.label(), "student": s_cfg.label()}, "data_source": bundle.source}
