"""One saved run's manifest (``run.json``) and metrics file: the :class:`Run` record, its checks, reading.

Optional manifest fields (absent in runs saved before them): ``owner`` (the owner's digest, see
``kdviz.runs.access``), ``published`` (others may view and download it) and ``source`` (the job
it was saved from, so the same finished job is not saved twice). Every path in a run's config and
reproduce command is replaced by its file name when read, so no server path is ever shown.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdviz.runs.access import scrub_paths, scrub_text

FORMAT = "kdviz-run-v1"
MANIFEST = "run.json"
METRICS = "metrics.jsonl"
CKPT_DIR = "checkpoints"
RUN_KINDS = ("teacher", "distill", "scenario", "sweep", "compare")
ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
CKPT_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


class RunError(ValueError):
    """A run is missing, corrupt or the request is invalid; the message says which and why."""


@dataclass(frozen=True)
class Run:
    """One saved run. ``records`` is None in listings (manifest only) and a list after ``load``."""

    id: str
    name: str
    kind: str
    created: str  # ISO 8601, UTC
    config: dict
    final: dict
    checkpoints: dict  # checkpoint name -> file name inside <run>/checkpoints/
    reproduce: str
    n_records: int
    path: Path
    records: list | None = None
    owner: str | None = None  # the owner's digest (hosted mode); None = saved in single-user mode
    published: bool = False
    source: str | None = None  # the job it was saved from


def check_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not ID_RE.fullmatch(run_id):
        raise RunError(f"invalid run id {str(run_id)[:100]!r}: ids are lowercase letters, digits and dashes")
    return run_id


def manifest_of(run: Run, **changes) -> dict:
    """The manifest a run is stored as (``changes`` override fields, e.g. ``name=``)."""
    fields = {"id": run.id, "name": run.name, "kind": run.kind, "created": run.created, "config": run.config,
              "final": run.final, "checkpoints": run.checkpoints, "reproduce": run.reproduce,
              "n_records": run.n_records, "owner": run.owner, "published": run.published, "source": run.source}
    return {"format": FORMAT, **fields, **changes}


_FIELD_TYPES = {"name": str, "kind": str, "created": str, "config": dict, "final": dict, "checkpoints": dict, "reproduce": str, "n_records": int}
_OPTIONAL_TYPES = {"owner": (str, type(None)), "published": (bool,), "source": (str, type(None))}


def check_manifest(obj: Any) -> dict:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise RunError(f"run.json is not a kdviz run manifest (expected format {FORMAT!r})")
    for key, typ in _FIELD_TYPES.items():
        if not isinstance(obj.get(key), typ):
            raise RunError(f"run.json field {key!r} is missing or not a {typ.__name__}")
    for key, types in _OPTIONAL_TYPES.items():
        if key in obj and not isinstance(obj[key], types):
            raise RunError(f"run.json field {key!r} has the wrong type ({type(obj[key]).__name__})")
    if obj["kind"] not in RUN_KINDS:
        raise RunError(f"run.json has unknown kind {obj['kind']!r}")
    for label, fname in obj["checkpoints"].items():
        if not isinstance(fname, str) or not CKPT_NAME_RE.fullmatch(fname.removesuffix(".pt")) or not fname.endswith(".pt"):
            raise RunError(f"run.json names an invalid checkpoint file for {label!r}")
    return obj


def read_run(folder: Path) -> Run:
    """The manifest of one run folder, checked; missing files are reported, never ignored."""
    check_id(folder.name)  # a copied-in folder named "My Run" could never be loaded, shown or deleted by id
    try:
        obj = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise RunError("run.json is missing") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"run.json cannot be read ({type(err).__name__}: {str(err)[:80]})") from err
    m = check_manifest(obj)
    if not (folder / METRICS).is_file():
        raise RunError(f"{METRICS} is missing")
    missing = [n for n, f in m["checkpoints"].items() if not (folder / CKPT_DIR / f).is_file()]
    if missing:
        raise RunError(f"checkpoint file(s) missing: {', '.join(missing)}")
    return Run(folder.name, m["name"], m["kind"], m["created"], scrub_paths(m["config"]), m["final"], m["checkpoints"],
               scrub_text(m["reproduce"]), m["n_records"], folder, None, m.get("owner"), m.get("published", False), m.get("source"))


def read_records(folder: Path) -> list[dict]:
    records = []
    with open(folder / METRICS, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise RunError(f"{METRICS} line {i} is not valid JSON ({err.msg})") from err
            if not isinstance(rec, dict):
                raise RunError(f"{METRICS} line {i} is not a JSON object")
            records.append(rec)
    return records
