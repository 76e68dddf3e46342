"""Reading the values of a job spec (protocol: ``kdviz/runtime/protocol.py``).

Every reader raises a ``ValueError`` naming the key and the value; :func:`kdviz.runtime.protocol.guarded`
turns it into the job's one error event. Dataclass groups (``model``, ``train``, ``distill``) are
checked against the field names, so a typo is refused instead of silently ignored.
"""
from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import torch

from kdviz.data import check_source
from kdviz.engine import TrainConfig
from kdviz.devices import resolve_device
from kdviz.methods.objective import DistillConfig, Term
from kdviz.models import ModelConfig


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
    """``[{"method", "weight", "student_layer", "teacher_layer", "param"}]`` → Term objects (validated by Objective)."""
    out = []
    for raw in terms or []:
        if not isinstance(raw, dict) or "method" not in raw:
            raise ValueError(f"each method term must be a dict with a 'method' key, got {raw!r}")
        values = _fields_of(Term, raw, "method term")
        param = values.get("param")
        out.append(Term(str(values["method"]), float(values.get("weight", 1.0)),
                        str(values.get("student_layer", "")), str(values.get("teacher_layer", "")),
                        None if param is None else float(param)))
    return tuple(out)


def device_and_source(spec: dict) -> tuple[torch.device, str]:
    """The spec's ``device`` (auto when missing) and data source ("auto" | "synthetic")."""
    return resolve_device(spec.get("device")), check_source(spec.get("data", "auto"))


def out_dir(spec: dict) -> Path:
    if not spec.get("out_dir"):
        raise ValueError("the job spec needs an 'out_dir' folder for its checkpoints")
    return Path(spec["out_dir"])


def whole(spec: dict, key: str, default: int, low: int) -> int:
    """``spec[key]`` as a whole number >= ``low`` (bools and floats refused), else a ValueError naming it."""
    raw = spec.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < low:
        raise ValueError(f"{key} must be a whole number >= {low}, got {raw!r}")
    return raw


def steps(spec: dict, default: int) -> int:
    return whole(spec, "steps", default, 1)
