"""Checkpoints: a model's ``state_dict`` plus its ModelConfig, saved with ``torch.save``.

Loading uses ``torch.load(..., weights_only=True)`` only, so a file that smuggles a pickle
which would run code is refused and executes nothing. Every failure is a
:class:`CheckpointError` with a message a user can act on.

A file is checked completely before any model is built (a model's size comes from the config the
file declares, so a 5 kB file could otherwise describe a 350 MB network): its byte size, that it is
torch.save's uncompressed zip, the config (the class count is bounded; ``limits`` adds the hosted
width/depth caps), and that every tensor has the config's shape and a storage of its own of exactly
its size (views that share or overrun one storage are refused). Reading then costs at most the
file's size, and the model built afterwards is no bigger than the tensors the file really holds::

    model, cfg, meta = load_checkpoint(path)                          # kdviz's own files
    cfg, state, meta = read_checkpoint(upload, limits=active_limits(), max_bytes=1_000_000)  # a stranger's
"""
from __future__ import annotations

import io
import os
import pickletools
import re
import tempfile
import threading
import zipfile
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from kdviz.hosted import HostedLimits, clamp_model_config
from kdviz.models import ModelConfig, build_model

FORMAT = "kdviz-checkpoint-v1"
MAX_CLASSES = 1000  # whatever a file declares (MNIST has 10): the head is num_classes × width
# The largest ModelConfig (MLP 784-4096×6, 1000 classes) is ~365 MB in float32; nothing bigger is a kdviz file.
MAX_CHECKPOINT_BYTES = 400_000_000
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # float16: experiments.scenarios.export_half


class CheckpointError(ValueError):
    """The file is not a usable kdviz checkpoint; the message says why."""


def checkpoint_payload(model: nn.Module, cfg: ModelConfig, meta: dict | None = None) -> dict:
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"format": FORMAT, "model_config": asdict(cfg), "state_dict": sd, "meta": dict(meta or {})}


def save_checkpoint(path: str | Path, model: nn.Module, cfg: ModelConfig, meta: dict | None = None) -> Path:
    """Write atomically: a temp file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(checkpoint_payload(model, cfg, meta), fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def checkpoint_bytes(model: nn.Module, cfg: ModelConfig, meta: dict | None = None) -> bytes:
    buf = io.BytesIO()
    torch.save(checkpoint_payload(model, cfg, meta), buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------- reading: checks before building
def _too_big(n_bytes: int, max_bytes: int, what: str = "checkpoint is") -> None:
    if n_bytes > max_bytes:
        raise CheckpointError(f"{what} {n_bytes:,} bytes; at most {max_bytes:,} bytes are accepted")


def _bounded(source, max_bytes: int) -> Path | bytes:
    """A path whose size is checked, or the bytes of ``source`` (bytes or a file object), at most ``max_bytes``."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            _too_big(path.stat().st_size, max_bytes)
        except FileNotFoundError as err:
            raise CheckpointError(f"checkpoint file not found: {err.filename}") from err
        return path
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        _too_big(len(data), max_bytes)
        return data
    data = source.read(max_bytes + 1)  # a file object: never read more than the limit
    _too_big(len(data), max_bytes, "checkpoint is at least")
    return data


def _opened(src: Path | bytes):
    return io.BytesIO(src) if isinstance(src, bytes) else src


def _check_archive(src: Path | bytes, max_bytes: int) -> None:
    """torch.save writes an uncompressed zip: refuse anything else before torch reads a byte of it
    (the old non-zip format allocates whatever sizes its pickle declares; a compressed record can unpack to gigabytes)."""
    try:
        with zipfile.ZipFile(_opened(src)) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise CheckpointError(f"checkpoint {_why_not_zip(src)}") from err
    if any(r.compress_type != zipfile.ZIP_STORED for r in records):
        raise CheckpointError("checkpoint refused: it has compressed records, which torch.save never writes")
    _too_big(sum(r.file_size for r in records), max_bytes, "checkpoint unpacks to")


def _why_not_zip(src: Path | bytes) -> str:
    with _opened(src) if isinstance(src, bytes) else open(src, "rb") as fh:
        found = _first_import(fh.read(1_000_000))  # a pickle names what it imports near its start
    if found:
        return f"refused: it asks to load {found}, which is not a tensor or plain data (such a file could run code)"
    return "refused: corrupt, or not a file written by torch.save"


def _first_import(data: bytes) -> str | None:
    """The first class or function a pickle would import, found by reading its opcodes (nothing is run)."""
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                return str(arg).replace(" ", ".")
            if op.name == "STACK_GLOBAL" and len(strings) >= 2:
                return ".".join(strings[-2:])
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:  # noqa: BLE001 — not a pickle, or a truncated one: pickletools stops where it cannot go on
        pass
    return None


def _unpickle(src: Path | bytes) -> dict:
    try:
        obj = torch.load(_opened(src), map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for code-running pickles, RuntimeError/EOFError for corrupt files
        raise CheckpointError(f"checkpoint {_why_unreadable(err)} ({type(err).__name__})") from err
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"not a kdviz checkpoint (expected a dict with format={FORMAT!r})")
    if not isinstance(obj.get("meta", {}), dict) or not isinstance(obj.get("state_dict"), dict):
        raise CheckpointError("checkpoint refused: its meta and state_dict must be dicts")
    return obj


def _why_unreadable(err: Exception) -> str:
    """Tell a file that asks to import code (refused) from one that is merely broken (corrupt)."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
    if found or "Unsupported global" in str(err):
        what = found.group(1) if found else "a Python object"
        return f"refused: it asks to load {what}, which is not a tensor or plain data (such a file could run code)"
    return "refused: corrupt, or not a file written by torch.save"


def _config(obj: dict, limits: HostedLimits | None) -> ModelConfig:
    """The declared architecture, within the class bound and (when given) the hosted caps."""
    try:
        raw = dict(obj["model_config"])
        cfg = ModelConfig(**{**raw, "hidden": tuple(raw.get("hidden", ())), "channels": tuple(raw.get("channels", ()))})
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"checkpoint has an invalid model config: {err}") from err
    if type(cfg.num_classes) is not int or cfg.num_classes > MAX_CLASSES:
        raise CheckpointError(f"checkpoint declares num_classes={cfg.num_classes!r}; "
                              f"a whole number from 2 to {MAX_CLASSES:,} is supported")
    if clamp_model_config(cfg, limits)[1]:
        raise CheckpointError(f"checkpoint is for {cfg.label()}; this hosted playground accepts networks of at most "
                              f"{limits.max_depth} layers of at most {limits.max_width} units/channels")
    return cfg


def skeleton(cfg: ModelConfig) -> nn.Module:
    """The network's shapes without its memory (built on the meta device)."""
    with torch.device("meta"):
        return build_model(cfg)


def _dense(t: torch.Tensor) -> bool:
    """Every element in its own place: the strides are a permutation of a contiguous layout."""
    expected = 1
    for size, stride in sorted((p for p in zip(t.shape, t.stride()) if p[0] != 1), key=lambda p: p[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def _check_tensor(name: str, t, want: torch.Tensor, label: str) -> None:
    if not isinstance(t, torch.Tensor) or t.shape != want.shape:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise CheckpointError(f"checkpoint weights do not fit {label}: {name} is {shape}, expected {tuple(want.shape)}")
    allowed = WEIGHT_DTYPES if want.is_floating_point() else (want.dtype,)
    if t.dtype not in allowed:
        raise CheckpointError(f"checkpoint weights do not fit {label}: {name} is {t.dtype}, expected {want.dtype}")
    if t.storage_offset() != 0 or t.untyped_storage().nbytes() != t.numel() * t.element_size():
        raise CheckpointError(f"checkpoint refused: {name} {tuple(t.shape)} is a view into a storage of "
                              f"{t.untyped_storage().nbytes():,} bytes, not {t.numel() * t.element_size():,} bytes of its own")
    if not _dense(t):
        raise CheckpointError(f"checkpoint refused: {name} {tuple(t.shape)} has overlapping strides {t.stride()}")


def _check_state(state: dict, cfg: ModelConfig) -> None:
    """The file's tensors are exactly the config's: same names and shapes, each in its own storage."""
    expected = skeleton(cfg).state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(map(str, set(state) - set(expected)))
    if missing or extra:
        raise CheckpointError(f"checkpoint weights do not fit {cfg.label()}: missing {missing[:3]}, unexpected {extra[:3]}")
    storages = set()
    for name, want in expected.items():
        _check_tensor(name, state[name], want, cfg.label())
        storages.add(state[name].untyped_storage().data_ptr())
    if len(storages) != len(expected):
        raise CheckpointError("checkpoint refused: some of its tensors share one storage")


def read_checkpoint(source, *, limits: HostedLimits | None = None,
                    max_bytes: int = MAX_CHECKPOINT_BYTES) -> tuple[ModelConfig, dict, dict]:
    """``(config, state_dict, meta)`` from a path, bytes or file object, every check done; no model is built.

    ``limits`` (hosted mode) refuses architectures above its width/depth caps; ``max_bytes`` bounds the file.
    """
    src = _bounded(source, max_bytes)
    _check_archive(src, max_bytes)
    obj = _unpickle(src)
    cfg = _config(obj, limits)
    _check_state(obj["state_dict"], cfg)
    return cfg, obj["state_dict"], dict(obj.get("meta", {}))


def load_checkpoint(source, expect: ModelConfig | None = None, *, limits: HostedLimits | None = None,
                    max_bytes: int = MAX_CHECKPOINT_BYTES) -> tuple[nn.Module, ModelConfig, dict]:
    """``(model, config, meta)`` from a path, bytes or file object (checked as in :func:`read_checkpoint`).

    ``expect`` (optional) is the architecture the caller needs; a checkpoint for another one is refused.
    """
    cfg, state, meta = read_checkpoint(source, limits=limits, max_bytes=max_bytes)
    if expect is not None and cfg != expect:
        raise CheckpointError(f"checkpoint is for {cfg.label()}, but {expect.label()} was expected")
    model = build_model(cfg)
    model.load_state_dict(state)  # cannot fail: names, shapes and dtypes were checked above
    return model.eval(), cfg, meta


# ----------------------------------------------------------------------------- a cache bounded in bytes
def model_bytes(model: nn.Module) -> int:
    """Bytes held by the model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


class ModelCache:
    """Models loaded from checkpoint files, holding at most ``max_bytes`` of weights in all (least recently
    used dropped first; a model bigger than the whole budget is loaded but not kept). Keyed on the file's
    path and modification time, so a rewritten file is read again. One instance serves every session
    (Streamlit runs them in threads), hence the lock; models are shared, so callers must not change them.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.max_bytes = max_bytes
        self._models: OrderedDict[tuple, tuple[tuple, int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return sum(size for _, size in self._models.values())

    def get(self, path: str | Path) -> tuple[nn.Module, ModelConfig, dict]:
        """``load_checkpoint(path)``, from memory when this version of the file was loaded before."""
        path = Path(path)
        try:
            key = (str(path.resolve()), path.stat().st_mtime_ns)
        except FileNotFoundError as err:
            raise CheckpointError(f"checkpoint file not found: {err.filename}") from err
        with self._lock:  # also keeps two sessions from loading the same file twice at once
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key][0]
            loaded = load_checkpoint(path)
            size = model_bytes(loaded[0])
            if size <= self.max_bytes:
                self._models[key] = (loaded, size)
                while self.nbytes > self.max_bytes:
                    self._models.popitem(last=False)
            return loaded
