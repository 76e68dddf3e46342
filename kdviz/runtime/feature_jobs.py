"""Job bodies of the Feature maps page: a quick CNN pair, and a short attention-transfer run to watch.

Events, control and the keys every spec has: ``kdviz/runtime/protocol.py``. Keys these jobs add:
``quick_pair_job`` (the page's built-in CNN pair) ``steps`` (student steps, default 300), ``teacher``
(a CNN checkpoint path; default the shipped 99 % CNN, ``kdviz.experiments.recipes.DEFAULT_TEACHER``)
and ``train_teacher`` (True: train the small 16-32-64 teacher for ``steps`` steps instead, ~87 %).
``watch_at_job`` ("watch attention transfer") ``teacher`` and ``student`` (checkpoint paths: the
teacher, and the student whose architecture a fresh student gets), ``layer`` (default "stage2"),
``steps`` (default 200), ``at_weight`` (β, default 1000), ``index`` (the test image whose maps are
kept, default 0) and ``probe_n`` (images the AT distance averages over, default 128).
Invalid values never escape as exceptions: the job yields one error event instead.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from kdviz import data as kdata
from kdviz.attention import QuickPairConfig, Snapshot, attention_2d, attention_transfer_setup, snapshot_steps, spatial_features, watch_records
from kdviz.checkpoints import load_checkpoint, save_checkpoint
from kdviz.engine import make_model, train
from kdviz.evaluation import evaluate
from kdviz.experiments.recipes import DEFAULT_TEACHER
from kdviz.runtime.job_specs import device_and_source, out_dir, steps, whole
from kdviz.runtime.protocol import guarded, record_event, status_event

QUICK_PAIR_RECORDS = 30  # records per network: enough for a smooth progress bar
WATCH_RECORDS = 60  # progress records per run
WATCH_SNAPSHOTS = 7  # attention maps kept, spaced geometrically (early training changes fastest)
WATCH_PROBE = 128  # images the AT distance is averaged over


# ----------------------------------------------------------------------------- quick CNN pair
def _given_teacher(spec: dict, device) -> tuple[nn.Module, object, str]:
    """``(teacher in eval mode, config, path)``: the spec's CNN checkpoint, else the shipped one."""
    path = spec.get("teacher") or str(DEFAULT_TEACHER)
    if not isinstance(path, str):
        raise ValueError(f"teacher must be a checkpoint path, got {path!r}")
    model, t_cfg, _ = load_checkpoint(path)
    if t_cfg.arch != "cnn":
        raise ValueError(f"attention maps need a CNN teacher; {path} holds {t_cfg.label()}")
    return model.to(device).eval(), t_cfg, path


def _trained_teacher(cfg: QuickPairConfig, bundle, train_cfg, device):
    """The small teacher trained here (the page's "train a teacher too" option): yields records, returns it."""
    teacher = make_model(cfg.teacher, cfg.seed, device)
    yield status_event(f"training the teacher {cfg.teacher.label()} ({train_cfg.max_steps} steps)")
    for rec in train(teacher, bundle.train, train_cfg, device=device):
        yield record_event("teacher", rec.to_dict())
    return teacher.eval()


@guarded
def quick_pair_job(spec: dict) -> Iterator[dict]:
    """A CNN student distilled with KD + attention transfer (``kdviz.attention.QuickPairConfig``) from the
    shipped 99 % CNN teacher (or ``spec["teacher"]``), or from a small teacher trained first when
    ``spec["train_teacher"]``; the student's (and a trained teacher's) checkpoint goes to ``out_dir``."""
    n_steps, folder, cfg = steps(spec, 300), out_dir(spec), QuickPairConfig()
    device, source = device_and_source(spec)
    train_cfg = cfg.train_config(n_steps, log_every=max(1, n_steps // QUICK_PAIR_RECORDS))
    trained = bool(spec.get("train_teacher", False))
    given = None if trained else _given_teacher(spec, device)  # a bad checkpoint fails before the data loads
    yield status_event("loading data")
    bundle = kdata.load_bundle(source).to(device)
    if trained:
        teacher, t_cfg = (yield from _trained_teacher(cfg, bundle, train_cfg, device)), cfg.teacher
    else:
        teacher, t_cfg, t_path = given
    student = make_model(cfg.student, cfg.seed + 1, device)
    setup = attention_transfer_setup(student, teacher, cfg.student_layer, cfg.teacher_layer, cfg.at_weight, cfg.T, cfg.alpha)
    how = f"KD + attention transfer on {cfg.student_layer}" if setup.uses_at else "soft-target KD"
    yield status_event(f"training the student {cfg.student.label()} with {how} ({n_steps} steps)")
    for rec in train(student, bundle.train, train_cfg, teacher=teacher, distill=setup.distill, device=device):
        yield record_event("student", rec.to_dict())
    yield status_event("evaluating on the full test set")
    models = {"teacher": (teacher, t_cfg), "student": (student, cfg.student)} if trained else {"student": (student, cfg.student)}
    out = _save_pair(folder, models, bundle, setup.uses_at)
    if not trained:  # the given teacher stays where it is
        out["test_acc"]["teacher"] = evaluate(teacher, bundle.test).accuracy
        out["checkpoints"]["teacher"], out["labels"]["teacher"] = t_path, t_cfg.label()
    yield {"type": "result", "steps": n_steps, "uses_at": setup.uses_at, "note": setup.note, "data_source": bundle.source,
           "teacher_trained": trained, **out}


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


# ----------------------------------------------------------------------------- watch attention transfer
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
    return torch.cat([test.images(index, index + 1), test.images(0, n - 1)]), int(test.y[index])


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
    n_steps, weight, layer = steps(spec, 200), _at_weight(spec), str(spec.get("layer", "stage2"))
    index, probe_n = whole(spec, "index", 0, 0), whole(spec, "probe_n", WATCH_PROBE, 1)
    device, source = device_and_source(spec)
    teacher, t_cfg = _checkpoint(spec, "teacher")
    _, s_cfg = _checkpoint(spec, "student")
    student = make_model(s_cfg, 1, device)
    teacher = teacher.to(device).eval()
    for model, who in ((teacher, "teacher"), (student, "student")):
        _check_stage(model, layer, who)
    yield status_event("loading data")
    bundle = kdata.load_bundle(source).to(device)
    probe, label = _probe(bundle.test, index, probe_n)
    setup = attention_transfer_setup(student, teacher, layer, layer, weight)
    every = max(1, n_steps // WATCH_RECORDS)
    how = f"KD + {weight:g}·AT on {layer}" if setup.uses_at else "soft-target KD"
    yield status_event(f"training a fresh student {s_cfg.label()} against the teacher {t_cfg.label()} with {how} ({n_steps} steps)")
    snaps = []
    for rec, shot in watch_records(teacher, student, bundle.train, probe, QuickPairConfig().train_config(n_steps, every), setup,
                                   layer, layer, device, snapshot_steps(n_steps, WATCH_SNAPSHOTS, every)):
        if rec is not None:
            yield record_event("student", rec.to_dict())
        if shot is not None:
            snaps.append(snapshot_dict(shot))
    t_map = attention_2d(spatial_features(teacher, probe[:1])[layer])
    yield {"type": "result", "steps": n_steps, "layer": layer, "at_weight": weight, "uses_at": setup.uses_at, "note": setup.note,
           "index": index, "label": label, "teacher_map": t_map.tolist(), "snapshots": snaps,
           "labels": {"teacher": t_cfg.label(), "student": s_cfg.label()}, "data_source": bundle.source}
