"""Images and labels as resident tensors; a selection (a transfer set) is an index view, not a copy.

MNIST's training images are kept as their raw bytes (``[60000, 1, 28, 28]`` uint8, 47 MB), a
copy-on-write map of a cache file shared by every process (:mod:`kdviz.datafiles`), and are
normalised on read, batch by batch (:func:`decode`): as float32 they took 188 MB, 179 MiB of
proportional set size once a job had read them all. A selection used to copy its rows:
``without:3`` made a private 166 MiB anonymous block in every job running the classroom demo
(measured with ``smaps``). A :class:`TensorData` now keeps the shared ``base`` and, for a
selection, an int64 row index into it; labels (small: 8 bytes a row) are stored already selected.
Hot paths read images through :meth:`TensorData.gather` (batches) and :meth:`TensorData.images`
(evaluation, teacher-logit passes, one image for a page); ``.x`` still gives every selected image,
decoded (a float32 copy) when the base is uint8 or the set a view.

The normalisation (:data:`MNIST_MEAN`, :data:`MNIST_STD`, :func:`normalise`) is defined here, once;
:mod:`kdviz.data` re-exports it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

IMAGE_SHAPE = (1, 28, 28)
HIDDEN_LABEL = -100  # a label hidden from the loss
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def normalise(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (any shape, e.g. ``[N, 1, 28, 28]``) → float32 of the same shape, (x/255 − mean)/std.

    Elementwise, so a batch decoded alone has exactly the values it has in the whole set decoded
    at once. The three steps run in place on the new float32 tensor (the same operations as
    ``(x.float() / 255 - MNIST_MEAN) / MNIST_STD``, without two temporaries).
    """
    if images_uint8.dtype != torch.uint8:
        raise ValueError(f"normalise expects uint8 pixels, got {images_uint8.dtype}")
    return images_uint8.float().div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD)


@functools.lru_cache(maxsize=8)
def _table(device: torch.device) -> torch.Tensor:
    """``normalise`` of the 256 byte values, computed on the CPU, then kept on ``device`` ``[256]`` float32."""
    return normalise(torch.arange(256, dtype=torch.uint8)).to(device)


def decode(images: torch.Tensor) -> torch.Tensor:
    """Images as the float32 the models read: uint8 pixels normalised, a float tensor as it is.

    On the CPU this is :func:`normalise`. On another device it looks each byte up in
    :func:`normalise`'s table of the 256 values, computed on the CPU: CUDA divides a tensor by a
    Python number as a multiplication by its reciprocal, which can differ in the last bit, and the
    values must be the very ones the CPU gives (those a float32 copy of the data set held).
    """
    if images.dtype != torch.uint8:
        return images
    if images.device.type == "cpu":
        return normalise(images)
    return _table(images.device)[images.long()]


@dataclass(frozen=True)
class TensorData:
    """``base`` ``[M, 1, 28, 28]``: float32 (normalised) or uint8 (raw pixels, normalised on read by
    :func:`decode`); ``y`` ``[n]`` int64 labels of the selected rows (``HIDDEN_LABEL`` where hidden),
    ``rows`` ``[n]`` int64 into ``base``, or None for every row of ``base`` in order.
    ``TensorData(x, y)`` is the whole of ``x``. Every read (:meth:`gather`, :meth:`images`,
    :attr:`x`) gives float32 images."""

    base: torch.Tensor
    y: torch.Tensor
    rows: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.base.ndim != 4 or tuple(self.base.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"images must have shape [N, 1, 28, 28], got {tuple(self.base.shape)}")
        if self.base.dtype != torch.uint8 and not self.base.dtype.is_floating_point:
            raise ValueError(f"images must be uint8 pixels or floating point, got {self.base.dtype}")
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
        """Every selected image ``[n, 1, 28, 28]``: a float ``base`` itself when nothing is selected,
        else a float32 copy (the whole selection decoded: no hot path uses it, use :meth:`gather` or
        :meth:`images`; for one image, ``images(i, i + 1)``)."""
        return decode(self.base) if self.rows is None else self.images()

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 1, 28, 28]`` at positions ``idx`` ``[B]`` of the selection (the training batches).

        ``index_select`` on the base: ~6× faster than ``x[idx]`` on the CPU for 64-row batches; a
        view adds one index_select of B int64 (rows[idx]); a uint8 base decodes only the B images
        gathered. Not validated (hot path): index_select raises on an index out of range.
        """
        return decode(self.base.index_select(0, idx if self.rows is None else self.rows.index_select(0, idx)))

    def images(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Images ``[k, 1, 28, 28]`` at positions ``start:stop`` of the selection (evaluation chunks;
        ``images(i, i + 1)`` for image ``i``). Only those ``k`` images are decoded; a float base's
        whole-set slice is a view of it, not a copy."""
        if self.rows is None:
            return decode(self.base[start:stop])
        return decode(self.base.index_select(0, self.rows[start:stop]))

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
