"""Choosing the executor: ``KDVIZ_EXECUTOR`` = ``local`` (default: worker processes on this machine)
or ``ray`` (``kdviz/runtime/ray_executor.py``; needs the optional ``ray`` package).

:func:`map_points` fans a list of independent work items out the same way: a plain loop locally,
parallel Ray tasks with ``ray`` (used by ``kdviz.experiments.sweeps`` for the seeds of a sweep).
Ray is imported only when chosen, so kdviz runs without it.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable

EXECUTOR_ENV = "KDVIZ_EXECUTOR"
EXECUTOR_KINDS = ("local", "ray")


def executor_kind(environ=None) -> str:
    """``$KDVIZ_EXECUTOR`` ("local" | "ray"), default "local"; another value is a ValueError naming it."""
    raw = (os.environ if environ is None else environ).get(EXECUTOR_ENV, "").strip().lower() or "local"
    if raw not in EXECUTOR_KINDS:
        raise ValueError(f"{EXECUTOR_ENV}={raw!r}: expected one of {', '.join(EXECUTOR_KINDS)}")
    return raw


def _ray_module():
    try:
        from kdviz.runtime import ray_executor
    except ImportError as err:
        raise ValueError(f"{EXECUTOR_ENV}=ray needs the optional package ray (pip install ray): {err}") from err
    return ray_executor


def make_executor():
    """The server's executor, as ``KDVIZ_EXECUTOR`` asks."""
    if executor_kind() == "ray":
        return _ray_module().ray_executor()
    from kdviz.runtime.manager import local_executor

    return local_executor()


def map_points(fn: Callable, items: Iterable) -> list:
    """``[fn(x) for x in items]``: in this process locally, as parallel Ray tasks with ``KDVIZ_EXECUTOR=ray``."""
    if executor_kind() == "ray":
        return _ray_module().map_points(fn, items)
    return [fn(item) for item in items]
