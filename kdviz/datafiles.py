"""MNIST's idx files read directly, and the images kept once per machine, as bytes, in a mapped file.

Why not ``torchvision.datasets.MNIST``: importing torchvision costs every process that loads the
data ~110 MiB of proportional set size (PSS, measured by ``bench/memory.py``) for a 20-line parser.
Why a mapped file: the server and each training worker used to hold a private float32 copy of
MNIST (~215 MiB each). The images are written once to a cache file and mapped copy-on-write
(``numpy.memmap`` mode ``"c"``) by every process: the pages live once in the page cache and PSS
splits them between the processes, while a stray in-place write stays private to its process (it
can never change the file another process reads). The file holds the raw uint8 pixels
(``[N, 1, 28, 28]``: 47 MB for the 60,000 training images, 7.8 MB for the 10,000 test images,
a quarter of float32); :class:`kdviz.tensordata.TensorData` normalises them on read, batch by batch.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

CACHE_ENV = "KDVIZ_CACHE_DIR"
CACHE_VERSION = 2  # bump when the file's contents change: old cache files are then never read
CACHE_SUFFIX = "u8"  # v2: raw uint8 pixels (v1 held normalised float32 in ``.f32`` files)
IMAGE_BYTES = 28 * 28  # one image in the cache file
_IDX_DTYPES = {0x08: np.uint8}  # MNIST uses unsigned bytes only


def idx_path(raw_dir: Path, stem: str) -> Path:
    """``raw_dir/stem`` or its ``.gz``; FileNotFoundError naming both when neither exists."""
    for path in (raw_dir / stem, raw_dir / f"{stem}.gz"):
        if path.is_file():
            return path
    raise FileNotFoundError(f"{raw_dir / stem} (or .gz) not found")


def read_idx(path: Path) -> torch.Tensor:
    """An idx file (LeCun's format: magic, dims, big-endian sizes, raw bytes) → uint8 tensor."""
    data = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    if len(data) < 4 or data[0] or data[1] or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an unsigned-byte idx file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {body.size} bytes of data for shape {dims}")
    return torch.from_numpy(body.reshape(dims).copy())


def cache_dir() -> Path:
    """``KDVIZ_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/kdviz/tensors`` (``~/.cache`` by default)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdviz" / "tensors"


def cache_path(source: Path) -> Path:
    """The cache file for ``source``: its name carries the source's path, size and modification
    time (a changed source is read afresh) and :data:`CACHE_VERSION` (an older layout is never read)."""
    stat = source.stat()
    return cache_dir() / f"{_prefix(source)}{stat.st_size}-{stat.st_mtime_ns}-v{CACHE_VERSION}.{CACHE_SUFFIX}"


def _prefix(source: Path) -> str:
    """What every cache file of ``source`` (any version, any modification time) starts with."""
    where = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:10]
    return f"{source.name.split('.')[0]}-{where}-"


def mapped_images(source: Path) -> torch.Tensor:
    """``read_idx(source)`` as ``[N, 1, 28, 28]`` uint8 pixels, mapped from a per-machine cache file
    (N·784 bytes). Without a writable cache folder the tensor is simply private to this process."""
    path = cache_path(source)
    if not _complete(path):
        images = read_idx(source)
        if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
            raise ValueError(f"{source}: images must have shape [N, 28, 28], got {tuple(images.shape)}")
        images = images.unsqueeze(1)
        if not _write(path, images):
            return images
        _remove_stale(source, path)
    count = path.stat().st_size // IMAGE_BYTES
    mapped = np.memmap(path, dtype=np.uint8, mode="c", shape=(count, 1, 28, 28))
    return torch.from_numpy(mapped)  # the tensor keeps the mapping alive


def _remove_stale(source: Path, current: Path) -> None:
    """Delete this source's older cache files (an older layout, e.g. v1's 188 MB float32, or an older
    copy of the source): nothing reads them again. A process still mapping one keeps its pages (Linux
    frees a mapped file's blocks only when the last mapping goes); another writer's ``.tmp`` is left alone."""
    for old in current.parent.glob(f"{_prefix(source)}*"):
        if old != current and not old.name.endswith(".tmp"):
            try:
                old.unlink()
            except OSError:
                pass  # someone else removed it, or the folder is read-only: it stays unused


def _complete(path: Path) -> bool:
    try:
        size = path.stat().st_size
    except OSError:
        return False
    return size > 0 and size % IMAGE_BYTES == 0


def _write(path: Path, images: torch.Tensor) -> bool:
    """Write atomically (a temporary file renamed), so a reader never maps half a file. False when it cannot."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        images.contiguous().numpy().tofile(tmp)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # nothing was written where nothing can be
        return False
