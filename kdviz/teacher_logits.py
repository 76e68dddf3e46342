"""A teacher's logits on every training image, kept on disk beside the cached teachers.

Why: distilling with soft-target KD alone starts with one teacher pass over the transfer set. For the
classroom demo's MLP 1200-1200 teacher on 54,000 images that pass is most of a second per 10,000 images
on one thread, about as long as the student's whole epoch. The teacher and the images are the same from
one demo to the next, so the logits are too: the first job writes them (60,000 × 10 float32, 2.4 MB),
later jobs read them, and the seeds of one job share them.

The file name is a hash of the teacher's weights, the training images and how the logits were computed
(device type, bf16 or not), so another teacher, another data set or another precision never reads them.

The shipped teachers' logits on MNIST ship too (``SHIPPED_DIR``, written by :func:`ship`; 5.2 MB), so
the very first demo on a fresh install skips the pass as well: the demo teacher's pass over 70,000
images took 6.6 s of a 13.6 s first demo in the browser, the CNN default teacher's ~24 s of the
Distill page's first 44 s run (single thread). A file there is read like a cached one — only when
its name, the hash, matches — and never written or pruned at run time.
"""
from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path

import torch
from torch import nn

from kdviz.evaluation import teacher_logits_cache
from kdviz.tensordata import TensorData

log = logging.getLogger(__name__)
VERSION = 1  # bump when what is stored changes
KEEP_FILES = 16  # the newest logit files kept in a folder (2.4-2.8 MB each): uploaded teachers must not fill the disk
SHIPPED_DIR = Path(__file__).resolve().parent / "assets" / "teacher_logits"  # read-only at run time


def fingerprint(teacher: nn.Module, data: TensorData, amp: bool) -> str:
    """Hex digest of the teacher's parameters and buffers, every image of ``data.base``, and the precision."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"v{VERSION} {data.device.type} amp={bool(amp)} {tuple(data.base.shape)} {data.base.dtype}".encode())
    for name, t in teacher.state_dict().items():
        h.update(f"{name} {tuple(t.shape)} {t.dtype}".encode())
        h.update(_bytes(t))
    h.update(_bytes(data.base))
    return h.hexdigest()


def _bytes(t: torch.Tensor) -> memoryview:
    t = t.detach().cpu().contiguous().reshape(-1)  # 1-d: a 0-d tensor (BatchNorm's step count) cannot be viewed as bytes
    return memoryview(t.view(torch.uint8).numpy()) if t.numel() else memoryview(b"")


def base_logits(teacher: nn.Module, data: TensorData, cache_dir: str | Path = "", amp: bool = False) -> torch.Tensor:
    """The teacher's eval-mode logits for every row of ``data.base`` (``[N, C]`` float32, on ``data``'s
    device): read from ``SHIPPED_DIR`` or ``cache_dir`` when a file for this teacher and these images is
    there, else computed (and written to ``cache_dir`` when it is given)."""
    full = _full(data)
    if not cache_dir:
        return teacher_logits_cache(teacher, full, amp=amp)
    name = file_name(teacher, data, amp)
    for folder in (SHIPPED_DIR, Path(cache_dir)):
        cached = _read(folder / name, full)
        if cached is not None:
            return cached.to(data.device)
    logits = teacher_logits_cache(teacher, full, amp=amp)  # float32 (predict_logits)
    _write(Path(cache_dir) / name, logits)
    return logits


def file_name(teacher: nn.Module, data: TensorData, amp: bool = False) -> str:
    return f"logits-{fingerprint(teacher, data, amp)}.pt"


def ship(teacher: nn.Module, data: TensorData, folder: str | Path = SHIPPED_DIR) -> Path:
    """Compute ``teacher``'s float32 logits on every row of ``data.base`` and write them where
    :func:`base_logits` looks first (see ``kdviz.experiments.recipes.ship_teacher_logits``)."""
    path = Path(folder) / file_name(teacher, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(teacher_logits_cache(teacher, _full(data)).cpu(), path)
    return path


def _full(data: TensorData) -> TensorData:
    """Every row of ``data``'s shared images (labels unused)."""
    return TensorData(data.base, torch.zeros(data.base.shape[0], dtype=torch.int64, device=data.device))


def rows_of(full: torch.Tensor, data: TensorData) -> torch.Tensor:
    """The rows of :func:`base_logits` that ``data`` selects (``[len(data), C]``)."""
    return full if data.rows is None else full.index_select(0, data.rows.to(full.device))


def _read(path: Path, full: TensorData) -> torch.Tensor | None:
    """The stored logits, or None when missing, unreadable or not one finite row per image (then recomputed)."""
    if not path.is_file():
        return None
    try:
        logits = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a torn or foreign file is recomputed, never trusted
        log.warning("ignoring unreadable teacher-logit cache %s: %s", path, err)
        return None
    if not (isinstance(logits, torch.Tensor) and logits.ndim == 2 and logits.shape[0] == len(full)
            and logits.dtype == torch.float32 and bool(torch.isfinite(logits).all())):
        log.warning("ignoring teacher-logit cache %s: not one finite float32 row per image", path)
        return None
    return logits


def _write(path: Path, logits: torch.Tensor) -> None:
    """Atomically (a temporary file renamed), so a reader never sees half a file; a failure only costs speed."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(logits.detach().cpu(), tmp)
        os.replace(tmp, path)
        _prune(path.parent, KEEP_FILES)
    except OSError as err:
        log.warning("could not keep the teacher logits in %s: %s", path, err)
        tmp.unlink(missing_ok=True)


def _prune(folder: Path, keep: int) -> None:
    """Remove all but the ``keep`` most recently written logit files."""
    files = sorted(folder.glob("logits-*.pt"), key=lambda f: f.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)
