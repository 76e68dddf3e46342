"""Expiry of a session's job scratch output: removed when the session ends, swept at start-up.

A job writes its checkpoints to ``spec["out_dir"]`` under ``kdviz.runtime.manager.jobs_root()``;
"Save run" copies them into the run store, so once the session is gone nobody can use them.
(Folders left by a killed server are swept by ``purge_old_job_dirs`` when the executor starts and
on every submit, after ``JOB_DIR_TTL_S``.) No Streamlit calls: this runs on a server thread.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from kdviz.runtime.manager import jobs_root


def remove_job_dirs(handles, root: Path | None = None) -> int:
    """Delete the scratch folders of ``handles`` (only those under ``root``, default ``jobs_root()``)."""
    root, n = (root or jobs_root()).resolve(), 0
    for handle in handles:
        out = handle.spec.get("out_dir") if isinstance(getattr(handle, "spec", None), dict) else None
        if not isinstance(out, str):
            continue
        folder = Path(out).resolve()
        if folder.parent == root and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            n += 1
    return n
