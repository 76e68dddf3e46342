"""Live jobs of the language-model lab: generator functions ``fn(spec) -> Iterator[dict]``.

They run in the app's worker processes exactly like ``kdviz.runtime.training_jobs`` jobs (same events,
same ``guarded``/``interleave``). Spec keys:

    out_dir:   folder for checkpoints (required)
    train:     LMTrainConfig fields, e.g. {"steps": 400, "T": 2.0, "alpha": 0.5, "sample_temp": 1.0}

``lm_teacher_job`` adds ``model`` (LMConfig fields; default the 3-layer teacher).
``lm_distill_job`` adds ``teacher`` (checkpoint path; default the shipped one), ``student`` (LMConfig
fields), ``methods`` (default ["distilled", "scratch"]; also "batchmean", "seqkd"), ``train_n`` (real
names the students see), ``teacher_vocab`` ("same" | "other": the teacher re-indexed onto another
vocabulary), ``align`` (map a differing vocabulary by token string instead of refusing it) and
``seqkd_n`` (names the teacher generates for "seqkd").
``lm_seeds_job`` adds ``seeds`` (a list of ints) and runs every method once per seed (no live curves).
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Iterator

import torch

from kdviz.lm.corpus import NAMES_VOCAB, encode_batch
from kdviz.lm.experiments import run_seeds
from kdviz.lm.kd import dropped_mass, to_teacher_ids
from kdviz.lm.model import STUDENT, TEACHER, LMConfig, param_count, save_lm
from kdviz.lm.runs import (DEFAULT_TRAIN_N, SEQKD_N, STUDENT_TRAIN, TEACHER_TRAIN, check_methods, load_teacher, make_config,
                           real_names, reindexed, student_run, teacher_for, train_teacher)
from kdviz.lm.train import LMTrainConfig, evaluate_bpc, sample
from kdviz.runtime.job_specs import out_dir
from kdviz.runtime.protocol import guarded
from kdviz.runtime.training_jobs import interleave


def _train_cfg(spec: dict, default: LMTrainConfig) -> LMTrainConfig:
    return make_config(LMTrainConfig, {**asdict(default), **dict(spec.get("train") or {})}, "training")


@guarded
def lm_teacher_job(spec: dict) -> Iterator[dict]:
    """Train the teacher on all training names; save ``out_dir/lm_teacher.pt``."""
    folder, cfg = out_dir(spec), _train_cfg(spec, TEACHER_TRAIN)
    model_cfg = make_config(LMConfig, {**asdict(TEACHER), **dict(spec.get("model") or {})}, "model")
    model, run = train_teacher(cfg, model_cfg)
    yield {"type": "status", "text": f"training teacher {model_cfg.label()} ({param_count(model):,} parameters)"}
    t0 = time.perf_counter()
    yield from interleave({"teacher": run})
    train_s = time.perf_counter() - t0
    _, val = real_names(None)
    bpc = evaluate_bpc(model, val)
    path = save_lm(folder / "lm_teacher.pt", model, NAMES_VOCAB, {"val_bpc": bpc, "train_s": train_s, "steps": cfg.steps})
    yield {"type": "result", "run": "teacher", "val_bpc": {"teacher": bpc}, "train_s": train_s, "checkpoint": str(path),
           "params": {"teacher": param_count(model)}, "samples": {"teacher": sample(model, n=8, temperature=cfg.sample_temp)}}


def _teacher(spec: dict):
    vocab = spec.get("teacher_vocab", "same")
    if vocab not in ("same", "other"):
        raise ValueError(f"teacher_vocab must be 'same' or 'other', got {vocab!r}")
    ckpt = load_teacher(spec.get("teacher"))
    return reindexed(ckpt) if vocab == "other" else ckpt


@guarded
def lm_distill_job(spec: dict) -> Iterator[dict]:
    """Students side by side (same init, seed and batches), each by its method; then their final bpc."""
    folder, cfg = out_dir(spec), _train_cfg(spec, STUDENT_TRAIN)
    # the lab's student (1 layer, d=32), as the README and the CLI's table have it; until session 5 this
    # fell back to LMConfig()'s 3 layers of d=128 (604k parameters, 4× the teacher) and took 2.4× as long
    student = make_config(LMConfig, {**asdict(STUDENT), **dict(spec.get("student") or {})}, "student")
    methods = check_methods(spec.get("methods", ("distilled", "scratch")))
    words, val = real_names(spec.get("train_n", DEFAULT_TRAIN_N))
    seqkd_n = int(spec.get("seqkd_n", SEQKD_N))
    ckpt = _teacher(spec)
    teacher = teacher_for(ckpt, NAMES_VOCAB, bool(spec.get("align", False)))
    info = {}
    if teacher.vmap is not None:
        b = encode_batch(val)
        with torch.no_grad():
            raw = teacher.model(to_teacher_ids(b.x, teacher.vmap))  # [B, S, V_teacher]
        info = {"aligned": True, "dropped_tokens": list(teacher.vmap.dropped),
                "dropped_mass": dropped_mass(raw, teacher.vmap, cfg.T, b.mask)}
        yield {"type": "status", "text": f"vocabularies aligned: {info['dropped_mass']:.2%} of the teacher's probability dropped"}
    models, runs = {}, {}
    for method in methods:
        models[method], runs[method] = student_run(method, teacher, ckpt, words, val, cfg, student, seqkd_n)
    yield {"type": "status", "text": f"training {', '.join(methods)} on {len(words):,} names (T={cfg.T:g}, alpha={cfg.alpha:g})"}
    t0, final = time.perf_counter(), {}
    for event in interleave(runs):
        if event.get("val_bpc") is not None:
            final[event["run"]] = event["val_bpc"]
        yield event
    train_s = time.perf_counter() - t0
    # Each run's last record is evaluated after its last step (train_lm evaluates at step == steps),
    # on the same weights and names: reuse it rather than evaluate each student again (~0.16 s each, measured).
    bpc = {m: final[m] if m in final else evaluate_bpc(model, val) for m, model in models.items()}
    if teacher.vmap is None:
        bpc["teacher"] = evaluate_bpc(ckpt.model, val)
    paths = {m: str(save_lm(folder / f"lm_{m}.pt", model, NAMES_VOCAB, {"val_bpc": bpc[m], "method": m}))
             for m, model in models.items()}
    samples = {m: sample(model, n=8, temperature=cfg.sample_temp) for m, model in models.items()}
    yield {"type": "result", "val_bpc": bpc, "train_s": train_s, "checkpoints": paths, "samples": samples,
           "train_n": len(words), "params": {m: param_count(model) for m, model in models.items()}, **info}


@guarded
def lm_seeds_job(spec: dict) -> Iterator[dict]:
    """Every method once per seed (sequential); the result holds each method's list of final bpc."""
    cfg = _train_cfg(spec, STUDENT_TRAIN)
    seeds = [int(s) for s in spec.get("seeds", (0, 1, 2))]
    methods = check_methods(spec.get("methods", ("seqkd", "distilled", "scratch")))
    yield from run_seeds(load_teacher(spec.get("teacher")), methods, seeds, cfg, spec.get("train_n", DEFAULT_TRAIN_N),
                         int(spec.get("seqkd_n", SEQKD_N)))
