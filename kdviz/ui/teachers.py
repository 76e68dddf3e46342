"""The session's current teacher, shared by every page.

``st.session_state["teacher_ckpt"]`` holds the checkpoint path and
``st.session_state["teacher_summary"]`` a dict: ``label``, ``test_acc``, ``params``, ``size_mb``,
``source`` ("trained here" | "shipped default" | "uploaded: <name>"), ``data_source`` and ``model``
(ModelConfig fields). ``teacher_upload`` accepts a kdviz checkpoint file (validated, never executed).
"""
from __future__ import annotations

import math
import tempfile
import uuid
from dataclasses import asdict
from pathlib import Path

import streamlit as st

from kdviz.checkpoints import CheckpointError, load_checkpoint
from kdviz.experiments.recipes import DEFAULT_TEACHER
from kdviz.hosted import check_upload_size
from kdviz.models import param_count, size_mb
from kdviz.ui.hosted import cap, limits

CKPT_KEY, SUMMARY_KEY = "teacher_ckpt", "teacher_summary"


@st.cache_data(show_spinner=False, max_entries=64)
def checkpoint_summary(path: str, mtime: float) -> dict:
    """What a checkpoint holds (``mtime`` makes a rewritten file re-read). CheckpointError if unusable."""
    model, cfg, meta = load_checkpoint(path)
    return {"label": cfg.label(), "test_acc": meta.get("test_acc"), "params": param_count(model),
            "size_mb": size_mb(model), "data_source": meta.get("data_source"), "model": asdict(cfg)}


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
    acc = summary.get("test_acc")
    acc_text = f"{100 * acc:.2f}% test accuracy" if isinstance(acc, (int, float)) else "test accuracy unknown"
    return (f"**{summary.get('label', '?')}** ({summary.get('source', '?')}) — {acc_text}, "
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


def _store_upload(data: bytes) -> Path:
    """Write an accepted checkpoint under an unguessable name (only this session holds the path)."""
    UPLOADS.mkdir(parents=True, exist_ok=True)
    path = UPLOADS / f"teacher-{uuid.uuid4().hex}.pt"
    path.write_bytes(data)
    return path


def accept_checkpoint(data: bytes, max_bytes: int, hosted) -> tuple[Path, dict]:
    """Validate an uploaded teacher checkpoint and store it; CheckpointError/ValueError say why not.

    ``torch.load(weights_only=True)`` (in ``load_checkpoint``) refuses pickles that would run code,
    corrupt files and files for another architecture before anything is written or executed.
    """
    if len(data) > max_bytes:
        raise ValueError(f"the file is {len(data) / 1e6:.2f} MB; checkpoints of at most {max_bytes / 1e6:g} MB are accepted")
    check_upload_size(len(data), hosted, "the checkpoint")
    model, cfg, meta = load_checkpoint(data)
    summary = {"label": cfg.label(), "test_acc": meta.get("test_acc"), "params": param_count(model),
               "size_mb": size_mb(model), "data_source": meta.get("data_source"), "model": asdict(cfg)}
    return _store_upload(data), summary


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
        st.error(f"That checkpoint cannot be used: {err}", icon=":material/block:")
        return
    use_teacher(path, summary, f"uploaded: {upload.name}")
    st.rerun()  # redraw the teacher box above with the new teacher
