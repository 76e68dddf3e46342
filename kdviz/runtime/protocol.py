"""The job protocol: specs, events, control messages and job states. This docstring is the one
description of it; ``worker.py``, ``manager.py``, ``kdviz/ui/jobs.py`` and the docs link here.

**Job.** A generator function ``fn(spec: dict) -> Iterator[dict]`` in a ``kdviz.`` module. It is
headless (pytest iterates it directly) and its generator *is* the training loop: pausing a job
means no longer pulling it. Job bodies: ``kdviz.runtime.training_jobs`` (teacher, distill),
``kdviz.runtime.feature_jobs`` (Feature maps page), ``kdviz.experiments.scenarios`` and
``kdviz.experiments.sweeps`` (experiments lab), ``kdviz.experiments.catalogue_jobs`` (self-distillation &
ensembles), ``kdviz.lm.jobs`` (language models), ``kdviz.interview.runner`` (Run both),
``kdviz.runtime.worker:count_job`` (a torch-free demo).

**Spec.** A plain dict (it crosses a process boundary). ``"fn"`` names the job as
``"kdviz.<module>:<function>"``; nothing else is accepted, and the rule is checked before anything
is imported (:func:`check_job_path`). A spec is validated once, where it enters the runtime
(:func:`validate_spec`, called by ``JobManager.submit``); a bad one is a ``ValueError`` at Start.
Keys every job understands::

    data:        "auto" (MNIST or the offline fallback) | "synthetic" (tests)
    device:      "cpu" | "cuda" | None (auto)
    out_dir:     folder for checkpoints (the local executor fills in a scratch folder when missing)
    threads:     torch threads of the worker (the local executor shares the cores among its slots)
    ui:          page-only data (totals for progress bars); jobs ignore it

Each job module's docstring lists the keys its jobs add.

**Events (job → app).** Plain dicts, in this order:

- ``{"type": "status", "text": ...}`` — phase changes ("loading data", "training …", "evaluating …")
- ``{"type": "record", "run": name, **StepRecord.to_dict()}`` — training progress of run ``name``
  ("teacher", "distilled", "scratch", "student", ...): one per ``log_every`` steps and one at each test evaluation
- ``{"type": "result", ...}`` — final metrics, plain data only (checkpoint paths under ``"checkpoints"``)
- ``{"type": "error", "text": ..., "kind": ...}`` — a clear message; the job then ends. A job turns
  its ``ValueError`` (bad spec value, ``CheckpointError``, ``NonFiniteLoss``) into this event
  (:func:`guarded`); the worker reports anything else the same way.
- ``{"type": "end"}`` — added by the worker after the last event, always, so the app knows the stream is complete.

**Control (app → worker).** Read by the worker between events: ``"pause"`` (stop pulling the
generator), ``"resume"``, ``"step"`` (run until the next record, result or error, then pause),
``"stop"`` (close the generator; a ``"stopped"`` status then ``end`` follow). A warm spare worker
receives the spec itself as a dict on the same channel.

**States (as the app sees a job).** ``queued`` (waiting for a slot; ``position`` is its 1-based
place in the FIFO queue) → ``running`` ⇄ ``paused`` (a paused job keeps its slot, for at most
``KDVIZ_PAUSE_TIMEOUT_S`` while others wait: ``kdviz/runtime/fairshare.py``) → ``done``
(after ``end``) | ``error`` (an error event, or the worker died) | ``stopped`` (by the user; the
curves so far are kept). The last three free the slot at once.

**Polling.** The app drains events without blocking (``JobHandle.poll``). The live panel polls
its job every 0.4 s while it runs or is paused and every 4 s while it is queued; the sidebar polls
every job of the session every 2 s (4 s while all are queued), whatever page is open.
"""
from __future__ import annotations

import functools
import re
from typing import Callable, Iterator

ALLOWED_PREFIX = "kdviz."
END = {"type": "end"}
ACTIVE_STATES = ("queued", "running", "paused")
_JOB_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_job_path(path: str) -> tuple[str, str]:
    """``"kdviz.runtime.training_jobs:teacher_job"`` → ``("kdviz.runtime.training_jobs", "teacher_job")``, importing nothing."""
    module, sep, name = str(path).partition(":")
    parts = module.split(".")
    if not sep or not module.startswith(ALLOWED_PREFIX) or not all(p.isidentifier() for p in parts) or not name.isidentifier():
        raise ValueError(f"job function {path!r} refused: only 'kdviz.<module>:<function>' paths are allowed")
    return module, name


def validate_spec(spec: object) -> dict:
    """A copy of ``spec`` once it is a dict naming an allowed job function; else a ValueError naming what is wrong."""
    if not isinstance(spec, dict):
        raise ValueError(f"a job spec must be a dict, got {type(spec).__name__}")
    check_job_path(spec.get("fn", ""))
    return dict(spec)


def check_job_name(name: str) -> str:
    """A session's job name ("distill", "feature_maps") becomes part of a folder name: letters, digits, _ and - only."""
    if not isinstance(name, str) or not _JOB_NAME.fullmatch(name):
        raise ValueError(f"job name {name!r} refused: use 1-64 letters, digits, '_' or '-'")
    return name


# ----------------------------------------------------------------------------- events
def status_event(text: str) -> dict:
    return {"type": "status", "text": text}


def record_event(run: str, fields: dict) -> dict:
    """A training record of run ``run``; ``fields`` is ``StepRecord.to_dict()`` (or the like)."""
    return {"type": "record", "run": run, **fields}


SEED_SEP = " · s"  # a run repeated over seeds records as "<run> · s<seed>" (the figures colour by run)


def seed_run(run: str, seed: int) -> str:
    return f"{run}{SEED_SEP}{seed}"


def error_event(err: BaseException, text: str | None = None) -> dict:
    return {"type": "error", "text": str(err) if text is None else text, "kind": type(err).__name__}


def guarded(job: Callable[[dict], Iterator[dict]]) -> Callable[[dict], Iterator[dict]]:
    """Turn a ``ValueError`` the job raises (bad spec, CheckpointError, NonFiniteLoss) into one error event."""

    @functools.wraps(job)
    def run(spec: dict) -> Iterator[dict]:
        try:
            yield from job(spec)
        except ValueError as err:
            yield error_event(err)

    return run


def round_robin(runs: dict[str, Iterator]) -> Iterator[tuple[str, object]]:
    """``(name, item)`` taking one item from each iterator in turn until all are exhausted, so the
    curves of runs trained side by side advance together."""
    live = dict(runs)
    while live:
        for name in list(live):
            try:
                item = next(live[name])
            except StopIteration:
                del live[name]
                continue
            yield name, item
