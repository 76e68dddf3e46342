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
so no name or id can reach outside the root. No Streamlit here. The reproduce command comes from
``kdviz.runs.reproduce``, tables and curves from ``kdviz.runs.tables``, names, ids and plain data from
``kdviz.runs.naming``, the CLI from ``kdviz.runs.cli``.
"""
from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from kdviz.runs.access import Quota, can_change, can_see, eviction, folder_bytes, owner_key, owner_problem, scrub_paths, scrub_text
from kdviz.runs.files import atomic_write, fsync_dir, json_bytes, jsonl_bytes
from kdviz.runs.manifest import (  # noqa: F401 (FORMAT, ID_RE: re-exported)
    CKPT_DIR, CKPT_NAME_RE, FORMAT, ID_RE, MANIFEST, METRICS, RUN_KINDS, Run, RunError, check_id, manifest_of, read_records,
    read_run)
from kdviz.runs.naming import clean_name, finite_only, new_id, to_plain  # noqa: F401 (clean_name: re-exported)
from kdviz.runs.reproduce import reproduce_command
from kdviz.runs.tables import records_csv

STALE_TMP_S = 3600.0  # hidden temp/trash folders older than this are leftovers of a crash
STUDENT_CHECKPOINTS = ("student", "distilled", "scratch")  # preferred order for "the student's weights"
# Folders in the root that are not runs and are skipped without a warning: kdviz/ui/jobs.py keeps
# its jobs' scratch output (checkpoints before anyone saves them) under <KDVIZ_RUNS_DIR>/app/.
NOT_RUNS = frozenset({"app"})


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


def _stored_paths(config: dict, checkpoints: dict, files: dict) -> dict:
    """The config with every checkpoint path that is copied into the run replaced by the stored copy's
    file name (``teacher.pt`` of the run): no server path is kept, and the run's files are what it names."""
    stored = {str(src): files[_checkpoint_name(k)] for k, src in checkpoints.items() if isinstance(src, (str, Path))}

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return stored.get(value, value) if isinstance(value, str) else value

    return swap(config)


# ----------------------------------------------------------------------------- the store
class AlreadySaved(RunError):
    """The job was saved before (by the same owner); ``.run`` is that run."""

    def __init__(self, run: Run):
        super().__init__(f"already saved as “{run.name}” (id {run.id})")
        self.run = run


class QuotaError(RunError):
    """A save over the owner's or the store's cap; the message says which cap and what to do."""


class RunStore:
    """Runs under ``root`` (default :func:`default_root`). Safe for several processes at once:
    every visible change is a single rename.

    Every method takes ``owner`` (the browser's token in hosted mode, None in single-user mode)
    and enforces ``kdviz.runs.access``: a run ``owner`` may not see is "no saved run"; one it
    may see but not change (someone else's published run) is refused with a message saying so.
    """

    def __init__(self, root: str | Path | None = None, quota: Quota | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.quota = quota

    def folder(self, run_id: str) -> Path:
        return self.root / check_id(run_id)

    def save(self, *, name: str, kind: str, config: dict, records: Iterable[dict] = (), final: dict | None = None,
             checkpoints: dict | None = None, reproduce: str | None = None, now: datetime | None = None,
             owner: str | None = None, source: str | None = None) -> Run:
        """Store a new run and return it (with records). Nothing is visible until it is complete.

        ``source`` (e.g. the job's id): a second save of the same source by the same owner raises
        :class:`AlreadySaved`; over a cap of ``self.quota`` raises :class:`QuotaError`.
        """
        name, key = clean_name(name), owner_key(owner)
        if kind not in RUN_KINDS:
            raise RunError(f"run kind must be one of {RUN_KINDS}, got {kind!r}")
        self._check_source(source, key)
        config, final = to_plain(dict(config), "config"), to_plain(dict(final or {}), "final")
        records = [to_plain(dict(r), f"records[{i}]") for i, r in enumerate(records)]
        now = now or datetime.now(timezone.utc)
        run_id = new_id(name, now)
        ckpt_files = {_checkpoint_name(k): f"{_checkpoint_name(k)}.pt" for k in (checkpoints or {})}
        if len(ckpt_files) != len(checkpoints or {}):
            raise RunError(f"checkpoint names collide after cleaning: {sorted(checkpoints)}")
        config = scrub_paths(_stored_paths(config, checkpoints or {}, ckpt_files))
        reproduce = scrub_text(reproduce if reproduce is not None else reproduce_command(kind, config))
        draft = Run(run_id, name, kind, now.isoformat(timespec="milliseconds"), config, final, ckpt_files, reproduce,
                    len(records), self.root / run_id, None, key, False, source)
        self._make_room(key, _new_bytes(draft, records, checkpoints or {}))
        self._commit(run_id, manifest_of(draft), records, checkpoints or {})
        return replace(read_run(self.root / run_id), records=records)

    def _check_source(self, source: str | None, key: str | None) -> None:
        if source is None:
            return
        same = [r for r in self._all() if r.source == source and r.owner == key]
        if same:
            raise AlreadySaved(same[0])

    def _make_room(self, key: str | None, new_bytes: int) -> None:
        """Refuse a save over the owner's caps; evict oldest unpublished runs to stay under the store's cap."""
        if self.quota is None:
            return
        runs = sorted(self._all(), key=lambda r: (r.created, r.id))
        sizes = {r.id: folder_bytes(r.path) for r in runs}
        mine = [r for r in runs if r.owner == key]
        problem = owner_problem(len(mine), sum(sizes[r.id] for r in mine), new_bytes, self.quota) if key is not None else None
        if problem:
            raise QuotaError(problem)
        evict = eviction([(r.id, r.published, sizes[r.id]) for r in runs], new_bytes, self.quota.max_total_bytes)
        if evict is None:
            raise QuotaError(f"the run store is full ({self.quota.max_total_bytes / 1e6:.0f} MB of published runs); "
                             "this run cannot be saved now")
        for run_id in evict:
            self._remove(run_id)

    def _commit(self, run_id: str, manifest: dict, records: list[dict], checkpoints: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._purge_stale()
        tmp = self.root / f".tmp-{run_id}"
        try:
            (tmp / CKPT_DIR).mkdir(parents=True)
            for label, source in checkpoints.items():
                _copy_checkpoint(source, tmp / CKPT_DIR / manifest["checkpoints"][_checkpoint_name(label)], label)
            atomic_write(tmp / METRICS, jsonl_bytes(records))
            atomic_write(tmp / MANIFEST, json_bytes(manifest))  # last: a folder without it is not a run
            os.rename(tmp, self.root / run_id)  # the one step that makes the run visible
            fsync_dir(self.root)
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

    def list(self, kind: str | None = None, name_contains: str | None = None, owner: str | None = None) -> Listing:
        """Runs ``owner`` may see, newest first, filtered by kind and (case-insensitive) name;
        corrupt folders become warnings (in single-user mode only: in hosted mode they are nobody's)."""
        runs, warnings, key = [], [], owner_key(owner)
        for folder in self._folders():
            try:
                runs.append(read_run(folder))
            except (RunError, OSError) as err:
                warnings.append(f"skipped run folder {folder.name!r}: {err}")
        runs = [r for r in runs if can_see(r.owner, r.published, key)]
        runs.sort(key=lambda r: (r.created, r.id), reverse=True)
        return Listing(filter_runs(runs, kind, name_contains), warnings if key is None else [])

    def _all(self) -> list[Run]:
        return self.list().runs

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        out = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or entry.name in NOT_RUNS or not entry.is_dir():
                continue  # hidden temp/trash folders and stray files are not runs
            out.append(entry)
        return out

    def load(self, run_id: str, owner: str | None = None) -> Run:
        """The run with its per-step records; :class:`RunError` when it is missing, corrupt or not ``owner``'s to see."""
        folder = self.folder(run_id)
        if not folder.is_dir():
            raise RunError(f"no saved run with id {run_id!r}")
        try:
            run = read_run(folder)
        except RunError as err:
            if owner is not None:
                raise RunError(f"no saved run with id {run_id!r}") from err
            raise RunError(f"run {run_id!r} is corrupt: {err}") from err
        if not can_see(run.owner, run.published, owner_key(owner)):
            raise RunError(f"no saved run with id {run_id!r}")
        try:
            return replace(run, records=read_records(folder))
        except RunError as err:
            raise RunError(f"run {run_id!r} is corrupt: {err}") from err

    def _mine(self, run_id: str, owner: str | None, action: str) -> Run:
        run = self.load(run_id, owner)
        if not can_change(run.owner, owner_key(owner)):
            raise RunError(f"run {run_id!r} was published by another user: you may view and download it, not {action} it")
        return run

    def rename(self, run_id: str, new_name: str, owner: str | None = None) -> Run:
        """Rewrite the manifest atomically with a new display name (the id and folder stay)."""
        name = clean_name(new_name)
        run = self._mine(run_id, owner, "rename")
        self._rewrite(run, name=name)
        return replace(run, name=name)

    def publish(self, run_id: str, owner: str | None = None, published: bool = True) -> Run:
        """Let everyone view and download the run (``published=False`` takes that back)."""
        run = self._mine(run_id, owner, "publish")
        self._rewrite(run, published=bool(published))
        return replace(run, published=bool(published))

    def _rewrite(self, run: Run, **changes) -> None:
        raw = json.loads((run.path / MANIFEST).read_text(encoding="utf-8"))  # unscrubbed, as stored
        atomic_write(run.path / MANIFEST, json_bytes({**raw, **manifest_of(run), "config": raw["config"],
                                                      "reproduce": raw["reproduce"], **changes}))

    def delete(self, run_id: str, owner: str | None = None) -> None:
        """Hide the folder with one rename, then remove it; a crash in between leaves only a hidden folder."""
        if owner is not None:
            self._mine(run_id, owner, "delete")
        if not self.folder(run_id).is_dir():
            raise RunError(f"no saved run with id {run_id!r}")
        self._remove(run_id)

    def _remove(self, run_id: str) -> None:
        trash = self.root / f".trash-{run_id}-{secrets.token_hex(3)}"
        os.rename(self.folder(run_id), trash)
        shutil.rmtree(trash, ignore_errors=True)

    def usage(self, owner: str | None) -> tuple[int, int]:
        """``(runs, bytes)`` that ``owner`` keeps in the store (None: every run)."""
        key = owner_key(owner)
        mine = [r for r in self._all() if key is None or r.owner == key]
        return len(mine), sum(folder_bytes(r.path) for r in mine)

    # ------------------------------------------------------------------------- exports
    def export_csv(self, run_id: str, owner: str | None = None) -> str:
        return records_csv(self.load(run_id, owner).records)

    def export_config_json(self, run_id: str, owner: str | None = None) -> str:
        run = self.load(run_id, owner)
        doc = {"name": run.name, "kind": run.kind, "created": run.created, "config": run.config, "final": run.final, "reproduce": run.reproduce}
        return json.dumps(finite_only(doc), indent=2, ensure_ascii=False, allow_nan=False)

    def weights_bytes(self, run_id: str, which: str | None = None, fmt: str = "state_dict", owner: str | None = None) -> bytes:
        """A checkpoint of the run: ``fmt="state_dict"`` → ``torch.save(model.state_dict())`` bytes
        (loads into a plain ``build_model(cfg)``); ``fmt="checkpoint"`` → the kdviz checkpoint file."""
        run = self.load(run_id, owner)
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


def _new_bytes(run: Run, records: list[dict], checkpoints: dict) -> int:
    """About how many bytes saving ``run`` adds (checkpoints given as a model are counted when written)."""
    size = len(jsonl_bytes(records)) + len(json_bytes(manifest_of(run)))
    for source in checkpoints.values():
        if isinstance(source, (bytes, bytearray)):
            size += len(source)
        elif isinstance(source, (str, Path)) and Path(source).is_file():
            size += Path(source).stat().st_size
    return size


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


# ----------------------------------------------------------------------------- listing and job results
def filter_runs(runs: list[Run], kind: str | None = None, name_contains: str | None = None) -> list[Run]:
    """Runs of ``kind`` (None = any) whose name contains ``name_contains`` (case-insensitive)."""
    if kind is not None and kind not in RUN_KINDS:
        raise RunError(f"run kind must be one of {RUN_KINDS}, got {kind!r}")
    needle = (name_contains or "").strip().lower()
    return [r for r in runs if (kind is None or r.kind == kind) and needle in r.name.lower()]


def save_job_result(store: RunStore, kind: str, name: str, spec: dict, records: list[dict], result: dict | None,
                    owner: str | None = None, source: str | None = None) -> Run:
    """Save what a job produced (see docs/architecture.md, "Runs store").

    ``spec`` (the job's arguments) becomes the config, ``records`` the per-step metrics (job event
    dicts; their ``"type"`` key is dropped), ``result`` the final metrics. Checkpoints copied in:
    ``result["checkpoints"] = {name: path}``, a teacher job's single ``result["checkpoint"]``, and the
    teacher file that ``spec["teacher"]`` names (so the run is self-contained and reproducible).
    ``owner`` and ``source`` (the job's id): see :meth:`RunStore.save`.
    """
    result = {k: v for k, v in (result or {}).items() if k != "type"}
    checkpoints = dict(result.pop("checkpoints", None) or {})
    if isinstance(result.get("checkpoint"), str):
        checkpoints.setdefault(str(result.get("run") or kind), result.pop("checkpoint"))
    teacher = spec.get("teacher")
    if isinstance(teacher, str) and "teacher" not in checkpoints and Path(teacher).is_file():
        checkpoints["teacher"] = teacher
    clean = [{k: v for k, v in r.items() if k != "type"} for r in records]
    return store.save(name=name, kind=kind, config=dict(spec), records=clean, final=result, checkpoints=checkpoints,
                      owner=owner, source=source)


