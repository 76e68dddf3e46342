"""Who may see and change a saved run, how much one owner may keep, and which paths may be shown.

Owners (hosted playground only): ``owner`` is the browser's random token (``kdviz/ui/owner.py``);
the store keeps only :func:`owner_key` of it (a SHA-256 digest) in ``run.json``. ``owner=None``
means single-user mode: every run is visible and changeable, as before.

* An unpublished run is visible only to its owner; a published one to everyone, read-only.
* Only the owner renames, deletes or (un)publishes. A run someone may not see is reported as
  "no such run", never as "forbidden" (ids typed into the URL reveal nothing).

Quotas (:class:`Quota`): per owner at most ``max_runs`` runs and ``max_bytes`` bytes; the whole
store at most ``max_total_bytes``: when a save would go over it, the oldest *unpublished* runs
(of any owner) are removed first; published runs are never evicted, and when evicting every
unpublished run would not make room the save is refused.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OWNER_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
# An absolute POSIX/Windows path or a home-relative one, as a whole word of a text.
_PATH_IN_TEXT = re.compile(r"(?<![\w.:/\\-])(?:~|[A-Za-z]:)?[/\\][^\s'\"=,;]*")


def owner_key(owner: str | None) -> str | None:
    """The digest stored in run.json for ``owner`` (None stays None); refuses a malformed token."""
    if owner is None:
        return None
    if not isinstance(owner, str) or not OWNER_RE.fullmatch(owner):
        raise ValueError(f"invalid owner token {str(owner)[:20]!r}: 16-128 letters, digits, '-' or '_'")
    return hashlib.sha256(owner.encode("ascii")).hexdigest()[:40]


def can_see(run_owner: str | None, published: bool, key: str | None) -> bool:
    """``key``: the viewer's :func:`owner_key` (None = single-user mode sees everything)."""
    return key is None or published or run_owner == key


def can_change(run_owner: str | None, key: str | None) -> bool:
    return key is None or run_owner == key


@dataclass(frozen=True)
class Quota:
    """Caps on the run store (hosted defaults in :func:`kdviz.hosted.run_quota`)."""

    max_runs: int = 20  # saved runs per owner
    max_bytes: int = 50_000_000  # bytes per owner
    max_total_bytes: int = 2_000_000_000  # the whole store

    def __post_init__(self) -> None:
        for name in ("max_runs", "max_bytes", "max_total_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"run quota {name} must be a whole number >= 1, got {value!r}")


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (0 for files that vanish meanwhile)."""
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:
            pass
    return total


def owner_problem(n_runs: int, n_bytes: int, new_bytes: int, quota: Quota) -> str | None:
    """Why one owner may not save a run of ``new_bytes`` more, or None."""
    if n_runs >= quota.max_runs:
        return (f"you have {n_runs} saved runs, the most this server keeps per user is {quota.max_runs}: "
                "delete one on the Saved runs page first")
    if n_bytes + new_bytes > quota.max_bytes:
        return (f"this run ({new_bytes / 1e6:.1f} MB) would bring your saved runs to {(n_bytes + new_bytes) / 1e6:.1f} MB; "
                f"the most this server keeps per user is {quota.max_bytes / 1e6:.1f} MB: delete a run first")
    return None


def eviction(runs: list[tuple[str, bool, int]], new_bytes: int, max_total: int) -> list[str] | None:
    """Ids to remove so ``new_bytes`` fit under ``max_total``: oldest unpublished first.

    ``runs``: ``(id, published, bytes)`` oldest first. None when even removing every unpublished run is not enough.
    """
    total, out = sum(b for _, _, b in runs), []
    for run_id, published, size in runs:
        if total + new_bytes <= max_total:
            break
        if not published:
            out.append(run_id)
            total -= size
    return out if total + new_bytes <= max_total else None


# ----------------------------------------------------------------------------- no server paths
def scrub_text(text: str) -> str:
    """Every absolute path in ``text`` replaced by its file name: ``/srv/x/teacher.pt`` → ``teacher.pt``."""
    return _PATH_IN_TEXT.sub(lambda m: re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1] or "<path>", text)


def scrub_paths(value: Any) -> Any:
    """A copy of plain data with :func:`scrub_text` applied to every string (keys stay)."""
    if isinstance(value, dict):
        return {k: scrub_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_paths(v) for v in value]
    return scrub_text(value) if isinstance(value, str) else value
