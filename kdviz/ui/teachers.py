"""The session's current teacher, shared by every page.

``st.session_state["teacher_ckpt"]`` holds the checkpoint path and
``st.session_state["teacher_summary"]`` a dict: ``label``, ``test_acc``, ``params``, ``size_mb``,
``source`` ("trained here" | "shipped default" | "uploaded: <name>"), ``data_source`` and ``model``
(ModelConfig fields). ``teacher_upload`` accepts a kdviz checkpoint file (validated, never executed;
within the hosted caps in hosted mode); its test accuracy is measured here, not read from the file.
``load_model(path)`` gives the pages a loaded checkpoint from one server-wide cache bounded in bytes.
"""
from __future__ import annotations

import math
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import streamlit as st
from torch import nn

from kdviz.checkpoints import CheckpointError, ModelCache, load_checkpoint, read_checkpoint, skeleton
from kdviz.evaluation import evaluate
from kdviz.experiments.recipes import DEFAULT_TEACHER
from kdviz.hosted import check_upload_size
from kdviz.models import ModelConfig, param_count, size_mb
from kdviz.ui.frame import data_source, get_bundle
from kdviz.ui.hosted import cap, limits
from kdviz.ui.text import md_text

CKPT_KEY, SUMMARY_KEY = "teacher_ckpt", "teacher_summary"
MODEL_CACHE_BYTES = 256_000_000  # loaded checkpoints kept for all sessions together (the demo teacher is 19 MB)


@st.cache_resource(show_spinner=False)
def _model_cache() -> ModelCache:
    return ModelCache(MODEL_CACHE_BYTES)


def load_model(path: str | Path) -> tuple[nn.Module, ModelConfig, dict]:
    """``load_checkpoint(path)`` through the server-wide cache; the model is shared, so do not change it."""
    return _model_cache().get(path)


def _summary(cfg: ModelConfig, test_acc, data_source_name) -> dict:
    shape = skeleton(cfg)  # sizes without building the network
    return {"label": cfg.label(), "test_acc": test_acc, "params": param_count(shape), "size_mb": size_mb(shape),
            "data_source": data_source_name, "model": asdict(cfg)}


@st.cache_data(show_spinner=False, max_entries=64)
def checkpoint_summary(path: str, mtime: float) -> dict:
    """What one of kdviz's own checkpoints holds (``mtime`` makes a rewritten file re-read); its accuracy
    is the one kdviz recorded when it trained it. CheckpointError if unusable."""
    cfg, _, meta = read_checkpoint(path)
    return _summary(cfg, meta.get("test_acc"), meta.get("data_source"))


def summary_of(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    return checkpoint_summary(str(path), path.stat().st_mtime)


def use_teacher(path: str | Path, summary: dict, source: str) -> None:
    st.session_state[CKPT_KEY] = str(path)
    st.session_state[SUMMARY_KEY] = {**summary, "source": source}


def current_teacher() -> tuple[str | None, dict | None]:
    path = st.session_state.get(CKPT_KEY)
    if path and not Path(path).is_file():
        return None, None  # e.g. a temp folder was cleaned: forget it rather than fail later
    return path, st.session_state.get(SUMMARY_KEY) if path else None


def use_default_teacher() -> str | None:
    """Make the shipped teacher current; returns an error message instead of raising."""
    try:
        use_teacher(DEFAULT_TEACHER, summary_of(DEFAULT_TEACHER), "shipped default")
    except CheckpointError as err:
        return f"The shipped default teacher cannot be used: {err}"
    return None


def describe(summary: dict) -> str:
    """One Markdown line; the source (an upload's file name) is shown as typed."""
    acc = summary.get("test_acc")
    acc_text = f"{100 * acc:.2f}% test accuracy" if isinstance(acc, (int, float)) else "test accuracy unknown"
    return (f"**{summary.get('label', '?')}** ({md_text(summary.get('source', '?'))}) — {acc_text}, "
            f"{summary.get('params', 0):,} parameters, {summary.get('size_mb', 0):.2f} MB")


def teacher_box(prefix: str, allow_default: bool = True) -> str | None:
    """Show the current teacher (or that there is none) with a button for the shipped default.

    Returns the checkpoint path of the current teacher, or None.
    """
    path, summary = current_teacher()
    if path:
        st.success(f"Current teacher: {describe(summary or {})}", icon=":material/school:")
    else:
        st.info("No teacher yet in this session.", icon=":material/school:")
    if allow_default and (not summary or summary.get("source") != "shipped default"):
        if DEFAULT_TEACHER.is_file():
            if st.button("Use the shipped default teacher", key=f"{prefix}_use_default"):
                error = use_default_teacher()
                if error:
                    st.error(error)
                else:
                    st.rerun()
        else:
            st.caption(f"The shipped default teacher ({DEFAULT_TEACHER.name}) is not in this installation; "
                       "train one on the Teacher page.")
    return current_teacher()[0]


# ----------------------------------------------------------------------------- upload
LOCAL_MAX_CKPT_BYTES = 20_000_000  # a 1200-1200 MLP teacher is ~8 MB in float32
UPLOADS = Path(tempfile.gettempdir()) / "kdviz-uploads"
UPLOAD_TTL_S = 6 * 3600.0  # an upload no session removed (the server was killed) is swept after this


def purge_old_uploads(folder: Path = UPLOADS, max_age_s: float = UPLOAD_TTL_S) -> int:
    """Delete uploaded teacher files older than ``max_age_s``; returns how many."""
    cutoff, n = time.time() - max_age_s, 0
    for path in folder.glob("teacher-*.pt") if folder.is_dir() else ():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                n += 1
        except OSError:
            pass
    return n


@st.cache_resource(show_spinner=False)
def _startup_sweep() -> int:
    """Once per server process: the uploads that earlier servers left behind."""
    return purge_old_uploads()


def _remove_uploads(paths: list) -> None:
    for path in paths:  # the session ended (runs on a server thread; no st calls here)
        Path(path).unlink(missing_ok=True)


@st.cache_resource(scope="session", on_release=_remove_uploads, show_spinner=False)
def _session_uploads() -> list:
    """The files this session uploaded: deleted when the session ends (a saved run keeps its own copy)."""
    return []


def _store_upload(data: bytes) -> Path:
    """Write an accepted checkpoint under an unguessable name (only this session holds the path)."""
    _startup_sweep()
    UPLOADS.mkdir(parents=True, exist_ok=True)
    path = UPLOADS / f"teacher-{uuid.uuid4().hex}.pt"
    path.write_bytes(data)
    _session_uploads().append(path)
    return path


def accept_checkpoint(data: bytes, max_bytes: int, hosted) -> tuple[Path, dict]:
    """Validate an uploaded teacher checkpoint, measure it and store it; CheckpointError/ValueError say why not.

    ``load_checkpoint`` checks the whole file (size, architecture within ``hosted``'s caps, every tensor)
    before it builds the network, and ``torch.load(weights_only=True)`` runs nothing in it. The accuracy
    shown is measured on this server's test set (whatever the file claims).
    """
    check_upload_size(len(data), hosted, "the checkpoint")
    model, cfg, meta = load_checkpoint(data, limits=hosted, max_bytes=max_bytes)
    accuracy = evaluate(model, get_bundle(data_source()).test, num_classes=cfg.num_classes).accuracy  # batched, no grad
    return _store_upload(data), _summary(cfg, accuracy, meta.get("data_source"))  # what it says it was trained on


def teacher_upload(prefix: str) -> None:
    """A file uploader for a teacher checkpoint saved by kdviz (the app or ``python -m kdviz teacher``)."""
    max_bytes = cap("max_upload_bytes", LOCAL_MAX_CKPT_BYTES)
    upload = st.file_uploader("…or load a teacher checkpoint (.pt) saved by kdviz", type=["pt", "pth"],
                              key=f"{prefix}_ckpt_upload", max_upload_size=max(1, math.ceil(max_bytes / 1e6)),
                              help="A file saved by this app (Saved runs) or by `python -m kdviz teacher --out t.pt`. "
                                   "It is loaded with torch.load(weights_only=True): nothing in it is executed.")
    if upload is None or st.session_state.get(f"{prefix}_ckpt_seen") == upload.file_id:
        return
    st.session_state[f"{prefix}_ckpt_seen"] = upload.file_id  # judge each upload once
    try:
        path, summary = accept_checkpoint(upload.getvalue(), max_bytes, limits())
    except (CheckpointError, ValueError) as err:
        st.error(f"That checkpoint cannot be used: {md_text(err)}", icon=":material/block:")
        return
    use_teacher(path, summary, f"uploaded: {upload.name}")
    st.rerun()  # redraw the teacher box above with the new teacher
