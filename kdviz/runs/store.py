"""Saved runs on disk: config, per-step metrics, final metrics and checkpoints of one experiment.

Layout (one folder per run, under ``RunStore.root``)::

    <root>/<id>/run.json          manifest (format, name, kind, created, config, final, checkpoints, reproduce)
    <root>/<id>/metrics.jsonl     one JSON object per step record
    <root>/<id>/checkpoints/*.pt  kdviz checkpoints (state_dict + ModelConfig)

Crash safety: a run is assembled in a hidden ``.tmp-*`` folder and becomes visible with one
``os.rename`` of the whole folder, so a crash mid-save never leaves a half run in the list.
Later edits (rename) rewrite the manifest through temp file + fsync + ``os.replace``; delete
first renames the folder to a hidden ``.trash-*`` name. Hidden folders are never listed.
A user-supplied name is display text only: ids are generated slugs checked against ``ID_RE``,
so no name or id can reach outside the root. No Streamlit here.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import secrets
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, is_dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, NamedTuple

FORMAT = "kdviz-run-v1"
MANIFEST = "run.json"
METRICS = "metrics.jsonl"
CKPT_DIR = "checkpoints"
RUN_KINDS = ("teacher", "distill", "scenario", "sweep", "compare")
ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
CKPT_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
MAX_NAME_LEN = 120
STALE_TMP_S = 3600.0  # hidden temp/trash folders older than this are leftovers of a crash
STUDENT_CHECKPOINTS = ("student", "distilled", "scratch")  # preferred order for "the student's weights"
# Folders in the root that are not runs and are skipped without a warning: kdviz/ui/jobs.py keeps
# its jobs' scratch output (checkpoints before anyone saves them) under <KDVIZ_RUNS_DIR>/app/.
NOT_RUNS = frozenset({"app"})


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


class Listing(NamedTuple):
    runs: list[Run]  # newest first
    warnings: list[str]  # one line per skipped (corrupt) folder


def default_root() -> Path:
    """``KDVIZ_RUNS_DIR`` if set, else ``$XDG_DATA_HOME/kdviz/runs`` (default ``~/.local/share``)."""
    env = os.environ.get("KDVIZ_RUNS_DIR")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "kdviz" / "runs"


# ----------------------------------------------------------------------------- names, ids, plain data
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


def check_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not ID_RE.fullmatch(run_id):
        raise RunError(f"invalid run id {str(run_id)[:100]!r}: ids are lowercase letters, digits and dashes")
    return run_id


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


# ----------------------------------------------------------------------------- atomic file helpers
def _fsync_dir(path: Path) -> None:
    """Make a rename durable; not every platform can open a folder, which is fine."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same folder + fsync + ``os.replace``: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, ensure_ascii=False).encode("utf-8")


def _jsonl_bytes(records: Iterable[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


# ----------------------------------------------------------------------------- checkpoints
def _checkpoint_name(name: Any) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", str(name).lower()).strip("-_")[:40]
    if not CKPT_NAME_RE.fullmatch(slug):
        raise RunError(f"invalid checkpoint name {str(name)[:60]!r}")
    return slug


def _copy_checkpoint(source: Any, dest: Path, label: str) -> None:
    """Validate through :mod:`kdviz.checkpoints` (weights_only load), then copy the bytes in.

    ``source``: a path, the checkpoint's bytes, or a ``(model, ModelConfig)`` pair to save.
    """
    from kdviz.checkpoints import CheckpointError, load_checkpoint, save_checkpoint  # torch only when needed

    if isinstance(source, tuple) and len(source) == 2:
        save_checkpoint(dest, source[0], source[1])
        return
    try:
        load_checkpoint(source if isinstance(source, (bytes, bytearray)) else Path(source))
    except CheckpointError as err:
        raise RunError(f"checkpoint {label!r} cannot be saved: {err}") from err
    except TypeError as err:
        raise RunError(f"checkpoint {label!r} must be a path, bytes or (model, config), got {type(source).__name__}") from err
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    atomic_write(dest, data)


def student_checkpoint(run: Run) -> str | None:
    """The checkpoint that holds the student's weights (``student``/``distilled``/``scratch``), else the first."""
    for name in STUDENT_CHECKPOINTS:
        if name in run.checkpoints:
            return name
    return next(iter(run.checkpoints), None)


# ----------------------------------------------------------------------------- reproduce command
# Job plumbing, not experiment settings: never turned into flags.
_NOT_FLAGS = frozenset({"fn", "type", "device", "out_dir", "checkpoints", "records", "result"})
# Nested groups of a job spec whose keys are command-line settings themselves (kdviz/runtime/training_jobs.py).
_LIFTED = ("train", "distill")
# Run kind → ``python -m kdviz`` subcommand.
KIND_COMMANDS = {"teacher": "teacher", "distill": "distill", "scenario": "scenario", "sweep": "sweep", "compare": "compare"}


def model_spec(cfg: Any) -> str:
    """``{"arch": "mlp", "hidden": [128]}`` → ``"mlp:128"`` (the CLI's model spec); strings pass through."""
    if isinstance(cfg, str):
        return cfg
    widths = cfg.get("hidden") if cfg.get("arch", "mlp") == "mlp" else cfg.get("channels")
    return f"{cfg.get('arch', 'mlp')}:{','.join(str(int(w)) for w in widths or ())}"


def _flag_value(value: Any) -> str | None:
    if isinstance(value, dict) and "arch" in value:
        return model_spec(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))  # e.g. method terms
    return str(value)


def config_flags(config: dict) -> list[tuple[str, str | None]]:
    """``[(flag, text)]`` from a config; ``text`` None means a bare flag (a True boolean).

    ``snake_case`` keys become ``--kebab-case`` (``T`` stays ``--T``); groups in ``_LIFTED``
    (``train``, ``distill``) are flattened one level; False/None/empty values are left out; a model
    config becomes ``--student mlp:128`` plus ``--student-dropout 0.2`` when it has dropout.
    """
    items = []
    for key, value in config.items():
        if key in _LIFTED and isinstance(value, dict):
            items += config_flags(value)
            continue
        if key in _NOT_FLAGS or key.startswith("_") or value is None or value is False or value in ([], {}, ""):
            continue
        flag = "--" + key.replace("_", "-")
        text = None if value is True else _flag_value(value)
        if value is True or text is not None:
            items.append((flag, text))
        if isinstance(value, dict) and value.get("dropout"):  # the arch:widths spec has no room for it
            items.append((f"{flag}-dropout", str(value["dropout"])))
    return items


def cli_flags(command: str) -> set[str] | None:
    """Option strings that ``python -m kdviz <command>`` accepts, or None if there is no such command."""
    from kdviz.cli import build_parser  # imported late: kdviz.cli imports this module

    try:
        parser = build_parser()
    except Exception:  # noqa: BLE001 — another module's CLI failing to import must not stop a save
        return None
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        sub = getattr(action, "choices", {}).get(command)
        if sub is not None:
            return {opt for a in sub._actions for opt in a.option_strings}
    return None


def reproduce_command(kind: str, config: dict, known: set[str] | None = None) -> str:
    """``python -m kdviz <command> --flag value ...`` from a run's config.

    ``known``: the flags the command accepts (default: read from the CLI parser when it has the
    command); settings it does not accept are listed in a trailing shell comment, not dropped silently.
    """
    command = KIND_COMMANDS.get(kind, kind)
    known = cli_flags(command) if known is None else known
    words, extra = ["python", "-m", "kdviz", command], []
    for flag, text in config_flags(config):
        if known is not None and flag not in known:
            extra.append(f"{flag[2:]}={text if text is not None else 'true'}")
            continue
        words += [flag] if text is None else [flag, text]
    line = shlex.join(words)
    return line + (f"  # not settable from the command line: {', '.join(extra)}" if extra else "")


def _stored_paths(config: dict, checkpoints: dict, folder: Path, files: dict) -> dict:
    """The config with every checkpoint path that is copied into the run replaced by the stored copy,
    so the reproduce command still works after the original (temporary) file is gone."""
    stored = {str(src): str(folder / CKPT_DIR / files[_checkpoint_name(k)]) for k, src in checkpoints.items() if isinstance(src, (str, Path))}

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return stored.get(value, value) if isinstance(value, str) else value

    return swap(config)


# ----------------------------------------------------------------------------- manifest
def _manifest(run_id: str, name: str, kind: str, created: str, config: dict, final: dict, ckpts: dict, reproduce: str, n: int) -> dict:
    return {
        "format": FORMAT, "id": run_id, "name": name, "kind": kind, "created": created, "config": config,
        "final": final, "checkpoints": ckpts, "reproduce": reproduce, "n_records": n,
    }


_FIELD_TYPES = {"name": str, "kind": str, "created": str, "config": dict, "final": dict, "checkpoints": dict, "reproduce": str, "n_records": int}


def _check_manifest(obj: Any) -> dict:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise RunError(f"run.json is not a kdviz run manifest (expected format {FORMAT!r})")
    for key, typ in _FIELD_TYPES.items():
        if not isinstance(obj.get(key), typ):
            raise RunError(f"run.json field {key!r} is missing or not a {typ.__name__}")
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
    m = _check_manifest(obj)
    if not (folder / METRICS).is_file():
        raise RunError(f"{METRICS} is missing")
    missing = [n for n, f in m["checkpoints"].items() if not (folder / CKPT_DIR / f).is_file()]
    if missing:
        raise RunError(f"checkpoint file(s) missing: {', '.join(missing)}")
    return Run(folder.name, m["name"], m["kind"], m["created"], m["config"], m["final"], m["checkpoints"], m["reproduce"], m["n_records"], folder)


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


# ----------------------------------------------------------------------------- the store
class RunStore:
    """Runs under ``root`` (default :func:`default_root`). Safe for several processes at once:
    every visible change is a single rename."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()

    def folder(self, run_id: str) -> Path:
        return self.root / check_id(run_id)

    def save(self, *, name: str, kind: str, config: dict, records: Iterable[dict] = (), final: dict | None = None,
             checkpoints: dict | None = None, reproduce: str | None = None, now: datetime | None = None) -> Run:
        """Store a new run and return it (with records). Nothing is visible until it is complete."""
        name = clean_name(name)
        if kind not in RUN_KINDS:
            raise RunError(f"run kind must be one of {RUN_KINDS}, got {kind!r}")
        config, final = to_plain(dict(config), "config"), to_plain(dict(final or {}), "final")
        records = [to_plain(dict(r), f"records[{i}]") for i, r in enumerate(records)]
        now = now or datetime.now(timezone.utc)
        run_id = new_id(name, now)
        ckpt_files = {_checkpoint_name(k): f"{_checkpoint_name(k)}.pt" for k in (checkpoints or {})}
        if len(ckpt_files) != len(checkpoints or {}):
            raise RunError(f"checkpoint names collide after cleaning: {sorted(checkpoints)}")
        if reproduce is None:
            reproduce = reproduce_command(kind, _stored_paths(config, checkpoints or {}, self.root / run_id, ckpt_files))
        manifest = _manifest(run_id, name, kind, now.isoformat(timespec="milliseconds"), config, final, ckpt_files, reproduce, len(records))
        self._commit(run_id, manifest, records, checkpoints or {})
        return replace(read_run(self.root / run_id), records=records)

    def _commit(self, run_id: str, manifest: dict, records: list[dict], checkpoints: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._purge_stale()
        tmp = self.root / f".tmp-{run_id}"
        try:
            (tmp / CKPT_DIR).mkdir(parents=True)
            for label, source in checkpoints.items():
                _copy_checkpoint(source, tmp / CKPT_DIR / manifest["checkpoints"][_checkpoint_name(label)], label)
            atomic_write(tmp / METRICS, _jsonl_bytes(records))
            atomic_write(tmp / MANIFEST, _json_bytes(manifest))  # last: a folder without it is not a run
            os.rename(tmp, self.root / run_id)  # the one step that makes the run visible
            _fsync_dir(self.root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _purge_stale(self) -> None:
        """Remove hidden temp/trash folders that a crashed process left behind long ago."""
        cutoff = time.time() - STALE_TMP_S
        for entry in self.root.iterdir():
            try:
                if entry.name.startswith((".tmp-", ".trash-")) and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                pass

    def list(self, kind: str | None = None, name_contains: str | None = None) -> Listing:
        """Runs newest first, filtered by kind and (case-insensitive) name; corrupt folders become warnings."""
        runs, warnings = [], []
        for folder in self._folders():
            try:
                runs.append(read_run(folder))
            except (RunError, OSError) as err:
                warnings.append(f"skipped run folder {folder.name!r}: {err}")
        runs.sort(key=lambda r: (r.created, r.id), reverse=True)
        return Listing(filter_runs(runs, kind, name_contains), warnings)

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        out = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or entry.name in NOT_RUNS or not entry.is_dir():
                continue  # hidden temp/trash folders and stray files are not runs
            out.append(entry)
        return out

    def load(self, run_id: str) -> Run:
        """The run with its per-step records; :class:`RunError` when it is missing or corrupt."""
        folder = self.folder(run_id)
        if not folder.is_dir():
            raise RunError(f"no saved run with id {run_id!r} in {self.root}")
        try:
            run = read_run(folder)
            return replace(run, records=read_records(folder))
        except RunError as err:
            raise RunError(f"run {run_id!r} is corrupt: {err}") from err

    def rename(self, run_id: str, new_name: str) -> Run:
        """Rewrite the manifest atomically with a new display name (the id and folder stay)."""
        name = clean_name(new_name)
        folder = self.folder(run_id)
        run = self.load(run_id)
        manifest = _manifest(run.id, name, run.kind, run.created, run.config, run.final, run.checkpoints, run.reproduce, run.n_records)
        atomic_write(folder / MANIFEST, _json_bytes(manifest))
        return replace(run, name=name)

    def delete(self, run_id: str) -> None:
        """Hide the folder with one rename, then remove it; a crash in between leaves only a hidden folder."""
        folder = self.folder(run_id)
        if not folder.is_dir():
            raise RunError(f"no saved run with id {run_id!r} in {self.root}")
        trash = self.root / f".trash-{run_id}-{secrets.token_hex(3)}"
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------------------- exports
    def export_csv(self, run_id: str) -> str:
        return records_csv(self.load(run_id).records)

    def export_config_json(self, run_id: str) -> str:
        run = self.load(run_id)
        doc = {"name": run.name, "kind": run.kind, "created": run.created, "config": run.config, "final": run.final, "reproduce": run.reproduce}
        return json.dumps(finite_only(doc), indent=2, ensure_ascii=False, allow_nan=False)

    def weights_bytes(self, run_id: str, which: str | None = None, fmt: str = "state_dict") -> bytes:
        """A checkpoint of the run: ``fmt="state_dict"`` → ``torch.save(model.state_dict())`` bytes
        (loads into a plain ``build_model(cfg)``); ``fmt="checkpoint"`` → the kdviz checkpoint file."""
        run = self.load(run_id)
        which = which or student_checkpoint(run)
        if which not in run.checkpoints:
            have = ", ".join(run.checkpoints) or "none"
            raise RunError(f"run {run_id!r} has no checkpoint {which!r} (it has: {have})")
        path = run.path / CKPT_DIR / run.checkpoints[which]
        if fmt == "checkpoint":
            return path.read_bytes()
        if fmt != "state_dict":
            raise RunError(f"weights format must be 'state_dict' or 'checkpoint', got {fmt!r}")
        return _state_dict_bytes(path, which)


def _state_dict_bytes(path: Path, label: str) -> bytes:
    import torch

    from kdviz.checkpoints import CheckpointError, load_checkpoint

    try:
        model, _, _ = load_checkpoint(path)
    except CheckpointError as err:
        raise RunError(f"checkpoint {label!r} is unusable: {err}") from err
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------- records → tables, curves
def filter_runs(runs: list[Run], kind: str | None = None, name_contains: str | None = None) -> list[Run]:
    """Runs of ``kind`` (None = any) whose name contains ``name_contains`` (case-insensitive)."""
    if kind is not None and kind not in RUN_KINDS:
        raise RunError(f"run kind must be one of {RUN_KINDS}, got {kind!r}")
    needle = (name_contains or "").strip().lower()
    return [r for r in runs if (kind is None or r.kind == kind) and needle in r.name.lower()]


def accuracy_summary(final: dict) -> str:
    """Final test accuracy in words: ``"97.8%"`` or ``"distilled 97.1% · scratch 96.5% · teacher 98.9%"``."""
    acc = final.get("test_acc")
    if isinstance(acc, (int, float)) and not isinstance(acc, bool):
        return f"{100 * acc:.2f}%"
    if isinstance(acc, dict):
        parts = [f"{k} {100 * v:.2f}%" for k, v in acc.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return " · ".join(parts)
    return ""


def flatten(record: dict, prefix: str = "") -> dict:
    """``{"losses": {"kd": 1}}`` → ``{"losses.kd": 1}``; lists become JSON text."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return out


def records_csv(records: list[dict]) -> str:
    """CSV with one row per record; columns in order of first appearance; missing cells empty."""
    rows = [flatten(r) for r in records]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def metric_names(records: list[dict]) -> list[str]:
    """Numeric per-step metrics present in the records (flattened names), for chart pickers."""
    names: dict[str, None] = {}
    for rec in records:
        for key, value in flatten(rec).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("step", "done"):
                names.setdefault(key, None)
    return list(names)


def curve_series(run: Run, metric: str, x: str = "step") -> list[tuple[str, list, list]]:
    """``(label, xs, ys)`` per sub-run (``record["run"]``: teacher/distilled/...) of ``metric``; None values skipped."""
    groups: dict[str, tuple[list, list]] = {}
    for rec in run.records or ():
        flat = flatten(rec)
        y = flat.get(metric)
        if not isinstance(y, (int, float)) or isinstance(y, bool) or flat.get(x) is None:
            continue
        label = f"{run.name} · {rec['run']}" if rec.get("run") else run.name
        xs, ys = groups.setdefault(label, ([], []))
        xs.append(flat[x])
        ys.append(y)
    return [(label, xs, ys) for label, (xs, ys) in groups.items()]


def _scalars(obj: dict, prefix: str = "") -> dict:
    """Flattened scalar entries only (lists such as confusion matrices do not fit a table cell)."""
    out = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out.update(_scalars(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (int, float, str, bool)):
            out[f"{prefix}{key}"] = value
    return out


def comparison_rows(runs: list[Run], only_differing: bool = False) -> list[dict]:
    """One row per run: name, kind, created, scalar config settings (job plumbing such as ``out_dir``
    left out) and scalar final metrics; ``only_differing`` keeps the settings that differ between runs."""
    configs = [_scalars({k: v for k, v in r.config.items() if k not in _NOT_FLAGS}) for r in runs]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    if only_differing and len(runs) > 1:
        keys = [k for k in keys if len({json.dumps(c.get(k)) for c in configs}) > 1]
    rows = []
    for run, cfg in zip(runs, configs):
        finals = {f"final.{k}": v for k, v in _scalars(run.final).items()}
        rows.append({"name": run.name, "kind": run.kind, "created": run.created, **{f"config.{k}": cfg.get(k) for k in keys}, **finals})
    return rows


def save_job_result(store: RunStore, kind: str, name: str, spec: dict, records: list[dict], result: dict | None) -> Run:
    """Save what a job produced (see docs/architecture.md, "Runs store").

    ``spec`` (the job's arguments) becomes the config, ``records`` the per-step metrics (job event
    dicts; their ``"type"`` key is dropped), ``result`` the final metrics. Checkpoints copied in:
    ``result["checkpoints"] = {name: path}``, a teacher job's single ``result["checkpoint"]``, and the
    teacher file that ``spec["teacher"]`` names (so the run is self-contained and reproducible).
    """
    result = {k: v for k, v in (result or {}).items() if k != "type"}
    checkpoints = dict(result.pop("checkpoints", None) or {})
    if isinstance(result.get("checkpoint"), str):
        checkpoints.setdefault(str(result.get("run") or kind), result.pop("checkpoint"))
    teacher = spec.get("teacher")
    if isinstance(teacher, str) and "teacher" not in checkpoints and Path(teacher).is_file():
        checkpoints["teacher"] = teacher
    clean = [{k: v for k, v in r.items() if k != "type"} for r in records]
    return store.save(name=name, kind=kind, config=dict(spec), records=clean, final=result, checkpoints=checkpoints)


# ----------------------------------------------------------------------------- command line
def register_cli(subparsers) -> None:
    """``python -m kdviz runs list|show|delete``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", help="runs folder (default: $KDVIZ_RUNS_DIR, else ~/.local/share/kdviz/runs)")
    parser = subparsers.add_parser("runs", help="list, show or delete saved runs")
    actions = parser.add_subparsers(dest="runs_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", parents=[common], help="saved runs, newest first")
    ls.add_argument("--kind", choices=RUN_KINDS)
    ls.add_argument("--name", help="only runs whose name contains this text")
    show = actions.add_parser("show", parents=[common], help="one run's settings, final metrics and reproduce command")
    show.add_argument("id")
    show.add_argument("--csv", action="store_true", help="print the per-step metrics as CSV instead")
    rm = actions.add_parser("delete", parents=[common], help="delete a run")
    rm.add_argument("id")
    rm.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(func=_run_cli)


def _run_cli(args) -> int:
    store = RunStore(args.dir)
    if args.runs_action == "list":
        return _cli_list(store, args.kind, args.name)
    if args.runs_action == "show":
        print(store.export_csv(args.id) if args.csv else _describe(store.load(args.id)), end="")
        return 0
    run = store.load(args.id)
    if not args.yes and not _confirm(f"delete run {run.name!r} ({run.id})? [y/N] "):
        print("not deleted")
        return 1
    store.delete(run.id)
    print(f"deleted {run.id}")
    return 0


def _cli_list(store: RunStore, kind: str | None, name: str | None) -> int:
    listing = store.list(kind=kind, name_contains=name)
    for warning in listing.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not listing.runs:
        print(f"no saved runs in {store.root}")
    for run in listing.runs:
        print(f"{run.id}  {run.kind:<8}  {run.created[:19]}  {run.name}")
    return 0


def _describe(run: Run) -> str:
    lines = [f"{run.name}  ({run.kind}, {run.created}, {run.n_records} records)", f"id: {run.id}", "config:"]
    lines += [f"  {k} = {v}" for k, v in flatten(run.config).items()]
    lines += ["final:"] + [f"  {k} = {v}" for k, v in flatten(run.final).items()]
    lines += ["checkpoints: " + (", ".join(run.checkpoints) or "none"), f"reproduce: {run.reproduce}"]
    return "\n".join(lines) + "\n"


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        print("refusing to delete without --yes when not run interactively", file=sys.stderr)
        return False
    return input(prompt).strip().lower() in ("y", "yes")
