"""Data as resident tensors: MNIST (idx files, mapped once per machine), an offline fallback, synthetic digits for tests.

The whole data set lives in one ``[N, 1, 28, 28]`` tensor, so the training loop batches by
indexing (airbench style) instead of a per-sample DataLoader: MNIST as its uint8 pixels, normalised
batch by batch on read; the fallback and the synthetic digits as normalised float32.
Labels are ``[N]`` int64; ``-100`` marks an image whose label is hidden from the loss.
:func:`load_bundle` caches the data set per process (jobs, the app); transfer sets (what a
student learns from) are named by strings such as ``"without:3"`` (:func:`parse_transfer`) and are
index views of the shared training images, never copies (:mod:`kdviz.tensordata`).
"""
from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from kdviz import datafiles
# re-exported (kdviz.data.TensorData, kdviz.data.normalise, ...); defined once in kdviz.tensordata
from kdviz.tensordata import HIDDEN_LABEL, MNIST_MEAN, MNIST_STD, TensorData, normalise  # noqa: F401

FALLBACK_FILE = Path(__file__).parent / "assets" / "uci_digits.csv.gz"
FALLBACK_NAME = "UCI handwritten digits (8×8, upscaled) — NOT MNIST"
DATA_SOURCES = ("auto", "synthetic")  # "auto": MNIST, else the fallback; "synthetic": tests
DATA_SOURCE_ENV = "KDVIZ_DATA_SOURCE"
TRANSFER_HELP = "use full, subset:N, without:D[,D] or labelled:N"


@dataclass(frozen=True)
class DataBundle:
    train: TensorData
    test: TensorData
    source: str  # "mnist" | "fallback" | "synthetic"
    name: str
    message: str = ""  # why a fallback is in use, or "" when MNIST loaded

    @property
    def is_mnist(self) -> bool:
        return self.source == "mnist"

    def to(self, device: torch.device | str) -> "DataBundle":
        return replace(self, train=self.train.to(device), test=self.test.to(device))


class DataUnavailable(RuntimeError):
    """MNIST could not be read or downloaded; the message names the folder and the variable."""


def data_root() -> Path:
    """``KDVIZ_DATA_DIR`` if set, else a per-user cache folder."""
    env = os.environ.get("KDVIZ_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "kdviz" / "data"


def load_mnist(root: Path | str | None = None, download: bool | None = None) -> DataBundle:
    """MNIST train (60k) and test (10k) from ``root/MNIST/raw`` (torchvision's layout), as resident tensors.

    The idx files are read directly (:mod:`kdviz.datafiles`: no torchvision import, the uint8
    images mapped from a cache file shared by every process, normalised on read by
    :class:`TensorData`); torchvision is used only to download.
    """
    root = Path(root) if root is not None else data_root()
    if download is None:
        download = os.environ.get("KDVIZ_OFFLINE", "") not in ("1", "true", "yes")
    raw = root / "MNIST" / "raw"
    try:
        if download and not (raw / "t10k-labels-idx1-ubyte").is_file():
            _download(root)
        parts = [(datafiles.idx_path(raw, f"{p}-images-idx3-ubyte"), datafiles.idx_path(raw, f"{p}-labels-idx1-ubyte"))
                 for p in ("train", "t10k")]
        train, test = (TensorData(datafiles.mapped_images(images), datafiles.read_idx(labels).long())
                       for images, labels in parts)
    except Exception as err:  # missing files (OSError), a corrupt file (ValueError), a failed download
        raise DataUnavailable(
            f"MNIST not found in {root} and could not be downloaded ({type(err).__name__}); "
            "set KDVIZ_DATA_DIR to a folder holding MNIST/raw/*-ubyte"
        ) from err
    return DataBundle(train, test, "mnist", "MNIST")


def _download(root: Path) -> None:
    from torchvision.datasets import MNIST  # ~110 MiB per process: imported only to download

    for train in (True, False):
        MNIST(str(root), train=train, download=True)


def load_fallback(test_fraction: float = 0.2, seed: int = 0) -> DataBundle:
    """1,797 real handwritten digits (UCI optdigits, 8×8, 0..16) shipped in the repo (57 kB).

    Each 8×8 image is upscaled to 20×20 and centred in 28×28, like MNIST's 20×20 box.
    """
    with gzip.open(FALLBACK_FILE, "rt") as fh:
        rows = [[int(v) for v in line.split(",")] for line in fh if line.strip()]
    table = torch.tensor(rows)  # [1797, 65]: 64 pixels then the label
    small = table[:, :64].float().reshape(-1, 1, 8, 8) / 16.0
    big = F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False)
    x = F.pad(big, (4, 4, 4, 4)).clamp(0, 1)  # [N, 1, 28, 28] in [0, 1]
    x = (x - MNIST_MEAN) / MNIST_STD
    y = table[:, 64].long()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(y) * test_fraction)
    full = TensorData(x, y)
    return DataBundle(full.select(perm[n_test:]), full.select(perm[:n_test]), "fallback", FALLBACK_NAME)


def load_data(root: Path | str | None = None, download: bool | None = None) -> DataBundle:
    """MNIST when it can be had, else the fallback with ``message`` saying why (one line)."""
    try:
        return load_mnist(root, download)
    except DataUnavailable as err:
        return replace(load_fallback(), message=f"{err}. Using the offline fallback: {FALLBACK_NAME}.")


def synthetic_bundle(n_train: int = 512, n_test: int = 256, seed: int = 0, noise: float = 0.6) -> DataBundle:
    """Learnable fake digits for tests: one random prototype image per class plus Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(10, 1, 28, 28, generator=g)

    def make(n: int) -> TensorData:
        y = torch.arange(n) % 10
        y = y[torch.randperm(n, generator=g)]
        return TensorData(protos[y] + noise * torch.randn(n, 1, 28, 28, generator=g), y)

    return DataBundle(make(n_train), make(n_test), "synthetic", "synthetic test digits")


def check_source(source: str) -> str:
    if source not in DATA_SOURCES:
        raise ValueError(f"data source must be one of {DATA_SOURCES}, got {source!r}")
    return source


def env_data_source() -> str:
    """``KDVIZ_DATA_SOURCE`` ("auto" | "synthetic"), default "auto"; another value is a ValueError naming it."""
    source = os.environ.get(DATA_SOURCE_ENV, "auto").strip().lower() or "auto"
    if source not in DATA_SOURCES:
        raise ValueError(f"{DATA_SOURCE_ENV} must be one of {DATA_SOURCES}, got {source!r}")
    return source


@functools.lru_cache(maxsize=2)
def load_bundle(source: str = "auto") -> DataBundle:
    """The data set, loaded once per process (a warm worker preloads it; callers never modify it)."""
    return synthetic_bundle() if check_source(source) == "synthetic" else load_data()


# ----------------------------------------------------------------------------- transfer sets
def random_subset(data: TensorData, n: int, seed: int = 0) -> TensorData:
    """N images drawn at random without replacement (labels kept)."""
    _check_subset_size(n, len(data))
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data.select(perm[:n])  # a view: no image is copied


def _check_subset_size(n: int, total: int) -> None:
    if not 1 <= n <= total:
        raise ValueError(f"subset size must lie in [1, {total}], got {n}")


def _omit_mask(y: torch.Tensor, digits: tuple[int, ...] | list[int]) -> torch.Tensor:
    """``[N]`` bool: True for the images to keep (their digit is not in ``digits``)."""
    digits = tuple(int(d) for d in digits)
    if any(not 0 <= d <= 9 for d in digits):
        raise ValueError(f"digits to omit must lie in 0..9, got {digits}")
    return ~torch.isin(y, torch.tensor(digits, dtype=y.dtype, device=y.device))


def without_digits(data: TensorData, digits: tuple[int, ...] | list[int]) -> TensorData:
    """The set with every image of the given digits removed (Hinton et al. 2015, §3)."""
    return data.select(_omit_mask(data.y, digits).nonzero().squeeze(1))


LABEL_STREAM = 1_000_003  # offset of the seed that picks the labelled images (see labelled_plus_unlabelled)


def labelled_plus_unlabelled(data: TensorData, n_labelled: int, seed: int = 0) -> TensorData:
    """All images, but only ``n_labelled`` random ones keep their label; the rest get HIDDEN_LABEL.

    The pick draws from ``seed + LABEL_STREAM``, not ``seed``: a training run with the same seed draws
    its first epoch's order from ``manual_seed(seed)`` too, and the two permutations were the same, so
    the labelled images were exactly the first batches of epoch 1 and no label came for the rest of it
    (a scratch student on "labelled:1000" got no gradient at all for 460 of its 469 first-epoch steps).
    """
    _check_labelled_count(n_labelled, len(data))
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed + LABEL_STREAM)).to(data.y.device)
    y = torch.full_like(data.y, HIDDEN_LABEL)
    y[perm[:n_labelled]] = data.y[perm[:n_labelled]]
    return data.with_labels(y)


def _check_labelled_count(n: int, total: int) -> None:
    if not 0 <= n <= total:
        raise ValueError(f"labelled count must lie in [0, {total}], got {n}")


def random_shift(x: torch.Tensor, pixels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Jitter each image by up to ``pixels`` in x and y (Hinton's MNIST setting uses 2). ``[B,1,28,28]``."""
    if pixels <= 0:
        return x
    b, _, h, w = x.shape
    background = (0.0 - MNIST_MEAN) / MNIST_STD  # a black pixel after normalisation
    padded = F.pad(x, (pixels,) * 4, value=background)  # [B, 1, H+2p, W+2p]
    span = 2 * pixels + 1
    dy = torch.randint(0, span, (b,), generator=generator, device="cpu").to(x.device)
    dx = torch.randint(0, span, (b,), generator=generator, device="cpu").to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, 0, rows, cols].unsqueeze(1)


# ----------------------------------------------------------------------------- transfer-set names
@dataclass(frozen=True)
class TransferChoice:
    """A parsed transfer-set name: ``kind`` "full" | "subset" | "without" | "labelled" and its argument."""

    text: str  # as written, e.g. "without:3,5"
    kind: str
    arg: int | tuple[int, ...] | None

    def select(self, train: TensorData, seed: int = 0) -> TensorData:
        """The images the student learns from (a ValueError naming the choice when it does not fit ``train``)."""
        try:
            if self.kind == "subset":
                out = random_subset(train, self.arg, seed)
            elif self.kind == "without":
                out = without_digits(train, self.arg)
            elif self.kind == "labelled":
                out = labelled_plus_unlabelled(train, self.arg, seed)
            else:
                out = train
        except ValueError as err:
            raise _invalid(self.text, err) from err
        if len(out) == 0:
            raise ValueError(f"transfer set {self.text!r} is empty")
        return out

    def size(self, y: torch.Tensor) -> int:
        """How many images :meth:`select` keeps of a set with labels ``y [N]``, without copying any image."""
        try:
            if self.kind == "subset":
                _check_subset_size(self.arg, len(y))
                return self.arg
            if self.kind == "without":
                return int(_omit_mask(y, self.arg).sum())
            if self.kind == "labelled":
                _check_labelled_count(self.arg, len(y))
        except ValueError as err:
            raise _invalid(self.text, err) from err
        return len(y)  # full, labelled: every image (labelled only hides labels)


def parse_transfer(choice: str) -> TransferChoice:
    """``"subset:100"`` → kind "subset", arg 100; ``"without:3,5"`` → ("without", (3, 5)); ``"full"`` → ("full", None)."""
    text = str(choice)
    kind, _, arg = text.partition(":")
    try:
        if kind == "full" and not arg:
            return TransferChoice(text, kind, None)
        if kind in ("subset", "labelled"):
            return TransferChoice(text, kind, int(arg))
        if kind == "without":
            return TransferChoice(text, kind, tuple(int(d) for d in arg.split(",") if d.strip()))
    except ValueError as err:
        raise _invalid(text, err) from err
    raise _invalid(text)


def _invalid(text: str, err: Exception | None = None) -> ValueError:
    why = f" ({err})" if err is not None else ""
    return ValueError(f"transfer set {text!r} is invalid{why}; {TRANSFER_HELP}")


def transfer_set(train: TensorData, choice: str | TransferChoice, seed: int = 0) -> TensorData:
    """The images the student learns from: "full", "subset:N", "without:3[,5]", "labelled:N" (or a parsed choice)."""
    return (choice if isinstance(choice, TransferChoice) else parse_transfer(choice)).select(train, seed)
