"""Images and labels as resident tensors; a selection (a transfer set) is an index view, not a copy.

MNIST's training images (``[60000, 1, 28, 28]`` float32, 188 MB) are a copy-on-write map of a
cache file shared by every process (:mod:`kdviz.datafiles`). A selection used to copy its rows:
``without:3`` made a private 166 MiB anonymous block in every job running the classroom demo
(measured with ``smaps``). A :class:`TensorData` now keeps the shared ``base`` and, for a
selection, an int64 row index into it; labels (small: 8 bytes a row) are stored already selected.
Hot paths read images through :meth:`TensorData.gather` (batches) and :meth:`TensorData.images`
(evaluation, teacher-logit passes); ``.x`` still gives every selected image, as a copy for a view.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

IMAGE_SHAPE = (1, 28, 28)
HIDDEN_LABEL = -100  # a label hidden from the loss


@dataclass(frozen=True)
class TensorData:
    """``base`` ``[M, 1, 28, 28]`` float32 (normalised), ``y`` ``[n]`` int64 labels of the selected
    rows (``HIDDEN_LABEL`` where hidden), ``rows`` ``[n]`` int64 into ``base``, or None for every
    row of ``base`` in order. ``TensorData(x, y)`` is the whole of ``x``."""

    base: torch.Tensor
    y: torch.Tensor
    rows: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.base.ndim != 4 or tuple(self.base.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"images must have shape [N, 1, 28, 28], got {tuple(self.base.shape)}")
        if self.rows is not None:
            if self.rows.dtype != torch.int64:
                raise ValueError(f"rows must be int64, got {self.rows.dtype}")
            _check_index(self.rows, self.base.shape[0], "rows")
            if self.rows.device != self.base.device:
                raise ValueError(f"rows are on {self.rows.device} but the images on {self.base.device}")
        n = self.base.shape[0] if self.rows is None else self.rows.shape[0]
        if tuple(self.y.shape) != (n,):
            raise ValueError(f"labels shape {tuple(self.y.shape)} does not match the {n} selected images "
                             f"(images {tuple(self.base.shape)})")

    def __len__(self) -> int:
        return self.y.shape[0]

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def is_view(self) -> bool:
        return self.rows is not None

    @property
    def x(self) -> torch.Tensor:
        """Every selected image ``[n, 1, 28, 28]``: ``base`` itself when nothing is selected, else a
        copy (no hot path uses it for a view: use :meth:`gather` or :meth:`images`)."""
        return self.base if self.rows is None else self.images()

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 1, 28, 28]`` at positions ``idx`` ``[B]`` of the selection (the training batches).

        ``index_select`` on the base: ~6× faster than ``x[idx]`` on the CPU for 64-row batches; a
        view adds one index_select of B int64 (rows[idx]). Not validated (hot path): index_select
        raises on an index out of range.
        """
        return self.base.index_select(0, idx if self.rows is None else self.rows.index_select(0, idx))

    def images(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Images ``[k, 1, 28, 28]`` at positions ``start:stop`` of the selection (evaluation chunks)."""
        if self.rows is None:
            return self.base[start:stop]
        return self.base.index_select(0, self.rows[start:stop])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "TensorData":
        """The same selection on ``device``: base, rows and labels move (no copy when already there)."""
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return TensorData(move(self.base), move(self.y), None if self.rows is None else move(self.rows))

    def labelled_count(self) -> int:
        return int((self.y != HIDDEN_LABEL).sum())

    def select(self, idx: torch.Tensor) -> "TensorData":
        """Rows ``idx`` of this selection (int64 positions in ``[0, len)``, or a bool mask ``[len]``),
        as a view of the same base: indices compose, no image is copied."""
        idx = _as_positions(idx, len(self), self.y.device)
        rows = idx if self.rows is None else self.rows.index_select(0, idx)
        return TensorData(self.base, self.y.index_select(0, idx), rows.to(self.base.device))

    def with_labels(self, y: torch.Tensor) -> "TensorData":
        """The same images with labels ``y`` ``[n]`` (e.g. some hidden)."""
        return TensorData(self.base, y, self.rows)


def _as_positions(idx, n: int, device: torch.device) -> torch.Tensor:
    """``idx`` as int64 positions on ``device``; a ValueError for a bad shape, dtype or range."""
    idx = torch.as_tensor(idx)
    if idx.dtype == torch.bool:
        if tuple(idx.shape) != (n,):
            raise ValueError(f"a boolean selection mask must have shape [{n}], got {tuple(idx.shape)}")
        idx = idx.nonzero().squeeze(1)
    _check_index(idx, n, "selection indices")
    return idx.to(device, torch.int64)


def _check_index(idx: torch.Tensor, n: int, what: str) -> None:
    if idx.ndim != 1 or idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise ValueError(f"{what} must be a 1-D integer tensor, got dtype {idx.dtype} and shape {tuple(idx.shape)}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"{what} must lie in [0, {n}), got values in [{int(idx.min())}, {int(idx.max())}]")
