"""Hosted-playground mode: caps on what one stranger's session may ask of a shared server.

Switch it on with the environment variable ``KDVIZ_HOSTED=1`` (also ``true``/``yes``/``on``;
``0``/``false``/``no``/``off``/unset mean off; anything else is refused, so a typo never leaves
a public server uncapped). Why an environment variable and not ``.streamlit/config.toml``:
Streamlit only knows its own options; an extra ``[kdviz]`` section is ignored with the warning
``"kdviz.hosted" is not a valid config option`` and its value cannot be read back through
Streamlit, so the variable is the single switch::

    KDVIZ_HOSTED=1 streamlit run app.py

Optional overrides (both modes): ``KDVIZ_MAX_JOBS`` — trainings that run at once, the rest wait
in a FIFO queue (default: the number of CPU cores this process may use); in hosted mode also
``KDVIZ_MAX_UPLOAD_BYTES`` (default 1,000,000) and the saved-runs caps of :func:`run_quota`:
``KDVIZ_MAX_RUNS_PER_OWNER`` (20), ``KDVIZ_MAX_BYTES_PER_OWNER`` (50,000,000) and
``KDVIZ_MAX_RUNS_BYTES`` (2,000,000,000 for the whole store; oldest unpublished runs are evicted first).

Pages clamp what a user asked for and show the notes (see ``kdviz/ui/hosted.py``)::

    cfg, notes = clamp_train_config(cfg, active_limits())   # no-op when not hosted
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from typing import Mapping, TypeVar

from kdviz.engine import TrainConfig
from kdviz.models import ModelConfig
from kdviz.runs.access import Quota

ENV_HOSTED = "KDVIZ_HOSTED"
ENV_MAX_JOBS = "KDVIZ_MAX_JOBS"
ENV_MAX_UPLOAD = "KDVIZ_MAX_UPLOAD_BYTES"
ENV_RUN_QUOTA = {"max_runs": "KDVIZ_MAX_RUNS_PER_OWNER", "max_bytes": "KDVIZ_MAX_BYTES_PER_OWNER",
                 "max_total_bytes": "KDVIZ_MAX_RUNS_BYTES"}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")

Cfg = TypeVar("Cfg", ModelConfig, TrainConfig, dict)


def cpu_cores() -> int:
    """CPU cores this process may run on (affinity-aware; containers often pin fewer than the host has)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class HostedLimits:
    """The most one request may ask for in hosted mode. All caps are inclusive."""

    max_width: int = 256  # units per MLP layer / channels per CNN stage
    max_depth: int = 3  # hidden layers (MLP) or stages (CNN)
    max_epochs: float = 2.0
    max_batch_size: int = 512
    max_steps: int = 2000  # optimiser steps per run, whatever epochs × data size gives
    max_seeds: int = 3  # repeats per comparison
    max_peers: int = 2  # students trained together in deep mutual learning
    max_jobs: int = 0  # trainings running at once; 0 = one per CPU core
    max_upload_bytes: int = 1_000_000
    max_images_per_request: int = 16

    def __post_init__(self) -> None:
        if self.max_jobs == 0:
            object.__setattr__(self, "max_jobs", cpu_cores())
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 1):
                raise ValueError(f"hosted limit {f.name} must be a number >= 1, got {value!r}")


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{name}={environ[name]!r} is not understood; use {name}=1 (hosted) or {name}=0")


def _positive_int(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}={raw!r} must be a whole number >= 1")
    return value


def hosted_mode(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``KDVIZ_HOSTED`` switches hosted mode on."""
    return _flag(os.environ if environ is None else environ, ENV_HOSTED)


def job_limit(environ: Mapping[str, str] | None = None) -> int:
    """How many trainings may run at once: ``KDVIZ_MAX_JOBS``, else one per CPU core (both modes)."""
    env = os.environ if environ is None else environ
    return _positive_int(env, ENV_MAX_JOBS) or cpu_cores()


def threads_per_job(max_jobs: int, cores: int | None = None) -> int:
    """torch threads for one training so ``max_jobs`` runs share the cores instead of fighting over them."""
    if max_jobs < 1:
        raise ValueError(f"max_jobs must be >= 1, got {max_jobs}")
    return max(1, (cores or cpu_cores()) // max_jobs)


def active_limits(environ: Mapping[str, str] | None = None) -> HostedLimits | None:
    """The limits in force: a :class:`HostedLimits` in hosted mode (env overrides applied), else None."""
    env = os.environ if environ is None else environ
    if not hosted_mode(env):
        return None
    overrides = {"max_jobs": _positive_int(env, ENV_MAX_JOBS), "max_upload_bytes": _positive_int(env, ENV_MAX_UPLOAD)}
    return HostedLimits(**{k: v for k, v in overrides.items() if v is not None})


def run_quota(environ: Mapping[str, str] | None = None) -> Quota | None:
    """The saved-runs caps in hosted mode (defaults of :class:`~kdviz.runs.access.Quota`, env overrides), else None."""
    env = os.environ if environ is None else environ
    if not hosted_mode(env):
        return None
    overrides = {field: _positive_int(env, name) for field, name in ENV_RUN_QUOTA.items()}
    return Quota(**{k: v for k, v in overrides.items() if v is not None})


# ----------------------------------------------------------------------------- clamping
def _note(what: str, asked, now, cap=None) -> str:
    """E.g. "epochs 20 → 2 (hosted mode allows at most 2)"."""
    return f"{what} {asked} → {now} (hosted mode allows at most {now if cap is None else cap})"


def _as_dict(cfg) -> dict:
    return asdict(cfg) if is_dataclass(cfg) else dict(cfg)


def _rebuild(original: Cfg, values: dict, changed: dict) -> Cfg:
    """Same type as the input: a dataclass via ``replace``, a spec dict with only its own keys changed."""
    if not changed:
        return original
    if is_dataclass(original):
        return replace(original, **changed)
    return {**values, **changed}


def clamp_widths(widths, limits: HostedLimits, what: str) -> tuple[tuple[int, ...], list[str]]:
    """Layer widths: at most ``max_depth`` layers (the first ones kept), each at most ``max_width``."""
    widths, notes = tuple(int(w) for w in widths), []
    if len(widths) > limits.max_depth:
        notes.append(_note(f"{what} count", len(widths), limits.max_depth))
        widths = widths[: limits.max_depth]
    if any(w > limits.max_width for w in widths):
        clamped = tuple(min(w, limits.max_width) for w in widths)
        notes.append(_note(f"{what} widths", _dashed(widths), _dashed(clamped), f"{limits.max_width} per layer"))
        widths = clamped
    return widths, notes


def _dashed(widths: tuple[int, ...]) -> str:
    return "-".join(map(str, widths))


def clamp_model_config(cfg: Cfg, limits: HostedLimits | None) -> tuple[Cfg, list[str]]:
    """``cfg`` (a ModelConfig or a spec dict of its fields) within the hosted width/depth caps.

    Returns ``(cfg, notes)``: one human-readable note per clamped value; unchanged and ``[]``
    when ``limits`` is None (not hosted) or nothing exceeds them.
    """
    if limits is None:
        return cfg, []
    values = _as_dict(cfg)
    # only the widths the architecture uses: the other tuple is inert and must stay equal for checkpoint matching
    key = "hidden" if values.get("arch", ModelConfig.arch) == "mlp" else "channels"
    if key not in values:
        return cfg, []
    widths, notes = clamp_widths(values[key], limits, "MLP hidden layer" if key == "hidden" else "CNN stage")
    changed = {key: widths} if widths != tuple(int(w) for w in values[key]) else {}
    return _rebuild(cfg, values, changed), notes


def _capped(value, cap):
    """``cap`` in the type the user gave (an int stays an int when the cap is whole)."""
    return int(cap) if isinstance(value, int) and float(cap).is_integer() else cap


def clamp_train_config(cfg: Cfg, limits: HostedLimits | None, n_train: int | None = None) -> tuple[Cfg, list[str]]:
    """``cfg`` (a TrainConfig or a spec dict of its fields) within the hosted epoch/batch/step caps.

    ``max_steps`` is always set to at most ``limits.max_steps``; pass ``n_train`` (transfer-set
    size) to get a note when the run would otherwise take more steps. The learning rate is not
    capped: a diverging run is stopped with a message naming the step, which is itself a lesson.
    """
    if limits is None:
        return cfg, []
    values, changed, notes = _as_dict(cfg), {}, []
    for key, what, cap in (("epochs", "epochs", limits.max_epochs), ("batch_size", "batch size", limits.max_batch_size)):
        if isinstance(values.get(key), (int, float)) and values[key] > cap:  # other types: the config refuses them
            changed[key] = _capped(values[key], cap)
            notes.append(_note(what, values[key], changed[key]))
    steps = values.get("max_steps")
    if steps is not None and not isinstance(steps, int):
        return _rebuild(cfg, values, changed), notes  # not a whole number: TrainConfig refuses it with its own message
    planned = steps if steps is not None else _planned_steps({**values, **changed}, n_train)
    if steps is None or steps > limits.max_steps:
        changed["max_steps"] = limits.max_steps
    if planned is not None and planned > limits.max_steps:
        notes.append(_note("steps", planned, limits.max_steps))
    return _rebuild(cfg, values, changed), notes


def _planned_steps(values: dict, n_train: int | None) -> int | None:
    """Steps the run would take over ``n_train`` images (full batches, as the engine counts), or None."""
    try:
        epochs = float(values.get("epochs", TrainConfig.epochs))
        batch = int(values.get("batch_size", TrainConfig.batch_size))
    except (TypeError, ValueError):
        return None
    if n_train is None or batch < 1 or not math.isfinite(epochs):
        return None
    return max(1, math.ceil(epochs * max(1, int(n_train) // batch)))


def clamp_count(what: str, value: int, cap: int | None) -> tuple[int, list[str]]:
    """A count (seeds, jobs, images) within ``cap``; ``cap=None`` means no limit."""
    if cap is None or value <= cap:
        return value, []
    return cap, [_note(what, value, cap)]


def check_upload_size(n_bytes: int, limits: HostedLimits | None, name: str = "the file") -> None:
    """Refuse an upload over the hosted size cap with a ValueError naming both sizes."""
    if limits is not None and n_bytes > limits.max_upload_bytes:
        raise ValueError(
            f"{name} is {n_bytes / 1e6:.2f} MB; this hosted playground accepts uploads of at most "
            f"{limits.max_upload_bytes / 1e6:.2f} MB ({limits.max_upload_bytes:,} bytes)"
        )
