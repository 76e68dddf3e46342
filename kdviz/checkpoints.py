"""Checkpoints: a model's ``state_dict`` plus its ModelConfig, saved with ``torch.save``.

Loading uses ``torch.load(..., weights_only=True)`` only, so a file that smuggles a pickle
which would run code is refused and executes nothing. Every failure is a
:class:`CheckpointError` with a message a user can act on.
"""
from __future__ import annotations

import io
import re
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from kdviz.models import ModelConfig, build_model

FORMAT = "kdviz-checkpoint-v1"


class CheckpointError(ValueError):
    """The file is not a usable kdviz checkpoint; the message says why."""


def checkpoint_payload(model: nn.Module, cfg: ModelConfig, meta: dict | None = None) -> dict:
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"format": FORMAT, "model_config": asdict(cfg), "state_dict": sd, "meta": dict(meta or {})}


def save_checkpoint(path: str | Path, model: nn.Module, cfg: ModelConfig, meta: dict | None = None) -> Path:
    """Write atomically: a temp file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(checkpoint_payload(model, cfg, meta), fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def checkpoint_bytes(model: nn.Module, cfg: ModelConfig, meta: dict | None = None) -> bytes:
    buf = io.BytesIO()
    torch.save(checkpoint_payload(model, cfg, meta), buf)
    return buf.getvalue()


def _read(source) -> dict:
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        obj = torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint file not found: {err.filename}") from err
    except Exception as err:  # UnpicklingError for code-running pickles, RuntimeError/EOFError for corrupt files
        raise CheckpointError(f"checkpoint {_why_unreadable(err)} ({type(err).__name__})") from err
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"not a kdviz checkpoint (expected a dict with format={FORMAT!r})")
    return obj


def _why_unreadable(err: Exception) -> str:
    """Tell a file that asks to import code (refused) from one that is merely broken (corrupt)."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
    if found or "Unsupported global" in str(err):
        what = found.group(1) if found else "a Python object"
        return f"refused: it asks to load {what}, which is not a tensor or plain data (such a file could run code)"
    return "refused: corrupt, or not a file written by torch.save"


def load_checkpoint(source, expect: ModelConfig | None = None) -> tuple[nn.Module, ModelConfig, dict]:
    """``(model, config, meta)`` from a path, bytes or file object.

    ``expect`` (optional) is the architecture the caller needs; a checkpoint for another one is refused.
    """
    obj = _read(source)
    try:
        raw = dict(obj["model_config"])
        cfg = ModelConfig(**{**raw, "hidden": tuple(raw.get("hidden", ())), "channels": tuple(raw.get("channels", ()))})
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"checkpoint has an invalid model config: {err}") from err
    if expect is not None and cfg != expect:
        raise CheckpointError(f"checkpoint is for {cfg.label()}, but {expect.label()} was expected")
    model = build_model(cfg)
    try:
        model.load_state_dict(obj["state_dict"])
    except (RuntimeError, KeyError, TypeError) as err:
        first = str(err).splitlines()[0][:200]
        raise CheckpointError(f"checkpoint weights do not fit {cfg.label()}: {first}") from err
    return model.eval(), cfg, dict(obj.get("meta", {}))
