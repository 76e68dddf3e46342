"""What the store writes for a run besides its files: the display name, the folder id, and
JSON-ready plain data (the store refuses anything else).
"""
from __future__ import annotations

import math
import re
import secrets
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kdviz.runs.manifest import RunError

MAX_NAME_LEN = 120


def clean_name(name: Any) -> str:
    """Display name with control characters removed and whitespace collapsed; refuses empty/too long."""
    if not isinstance(name, str):
        raise RunError(f"run name must be text, got {type(name).__name__}")
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())
    if not text:
        raise RunError("run name must not be empty")
    if len(text) > MAX_NAME_LEN:
        raise RunError(f"run name is {len(text)} characters long; at most {MAX_NAME_LEN} are allowed")
    return text


def slugify(text: str, max_len: int = 40) -> str:
    """Lowercase ASCII letters, digits and single dashes: ``"../../etc"`` → ``"etc"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_len].strip("-")
    return slug or "run"


def new_id(name: str, now: datetime) -> str:
    return f"{now:%Y%m%d-%H%M%S}-{slugify(name)}-{secrets.token_hex(3)}"


def to_plain(obj: Any, where: str = "value") -> Any:
    """JSON-ready copy: dataclasses → dicts, tuples → lists, Paths → str; anything else is refused."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_plain(asdict(obj), where)
    if isinstance(obj, dict):
        return {str(k): to_plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return to_plain(obj.item(), where)
    raise RunError(f"{where} is a {type(obj).__name__}, which cannot be stored in a run (plain data only)")


def finite_only(obj: Any) -> Any:
    """NaN/inf → None, for strict JSON (the store itself keeps them: Python's json reads them back)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_only(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite_only(v) for v in obj]
    return obj
