"""Turn an uploaded photo or drawing of a digit into an MNIST-like input ``[1, 1, 28, 28]``.

Uploads are untrusted: only PNG and JPEG are accepted (checked by magic bytes *and* by the
decoder), the byte size and the pixel count are limited *before* decoding, so a
decompression bomb (a tiny file claiming 20000×20000 pixels) is refused without allocating
it. Every failure is an :class:`ImageError` (a ``ValueError``) whose message a user can act on.

The preprocessing follows how MNIST was made (LeCun et al.): white ink on black, the digit
scaled so its longest side is 20 px, then placed in a 28×28 frame so that its centre of mass
sits at the frame's centre (≈ (14, 14) in 0-based pixel coordinates, measured on MNIST).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from kdviz.data import MNIST_MEAN, MNIST_STD, normalise

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
BOX = 20  # MNIST digits fit a 20×20 box ...
FRAME = 28  # ... inside a 28×28 frame
CENTRE = 14.0  # mean centre of mass of MNIST test digits, 0-based (row, col)
WORK_SIDE = 1024  # larger images are reduced to this before processing (speed; the box is 20 px)
INK_LEVEL = 0.35  # a pixel is "ink" above this fraction of the darkest-to-lightest contrast
NOISE_LEVEL = 0.12  # below this, faint background noise is set to 0 (MNIST's background is exactly 0)
MIN_CONTRAST = 0.1  # less contrast than this between ink and background: a blank image
STROKE_PX = 2.0  # typical MNIST stroke width inside the 20-px box


class ImageError(ValueError):
    """The upload cannot be used as a digit; the message says why."""


@dataclass(frozen=True)
class ImageLimits:
    """What an upload may cost: bytes on the wire and decoded pixels (width × height)."""

    max_bytes: int = 1_000_000
    max_pixels: int = 16_000_000  # 4000×4000; a 20000×20000 bomb (4·10⁸ px) is refused unread

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class DigitImage:
    """A prepared digit: the model input, what to show, and what was done to get there."""

    x: torch.Tensor  # [1, 1, 28, 28] float32, normalised with MNIST_MEAN / MNIST_STD
    pixels: np.ndarray  # [28, 28] uint8, white ink on black (for display)
    inverted: bool  # True when the upload was dark ink on a light background
    source_size: tuple[int, int]  # (width, height) of the upload
    source_format: str  # "PNG" | "JPEG"


# ----------------------------------------------------------------------------- decoding
def read_bytes(source, max_bytes: int) -> bytes:
    """Bytes of ``source`` (bytes-like or a binary file object such as Streamlit's UploadedFile)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        if hasattr(source, "seek"):
            source.seek(0)
        data = source.read(max_bytes + 1)  # never read more than the limit plus one byte
    else:
        raise ImageError(f"expected image bytes or a file, got {type(source).__name__}")
    if not isinstance(data, bytes):
        raise ImageError(f"expected the file to give bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        size = f"more than {max_bytes:,}" if hasattr(source, "read") else f"{len(data):,}"
        raise ImageError(f"image too large: {size} bytes; the limit is {max_bytes:,} bytes ({max_bytes / 1e6:g} MB)")
    return data


def sniff_format(data: bytes) -> str:
    """``"PNG"`` or ``"JPEG"`` from the first bytes, whatever the file name says."""
    if not data:
        raise ImageError("the file is empty")
    if data.startswith(PNG_MAGIC):
        return "PNG"
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    raise ImageError("not a PNG or JPEG image (its first bytes do not match either format)")


def open_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """Decode after checking the header's pixel count; truncated or corrupt files raise ImageError."""
    fmt = sniff_format(data)
    try:
        im = Image.open(io.BytesIO(data), formats=[fmt])  # reads the header only
    except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"not a readable {fmt} image ({type(err).__name__}: {err})") from err
    except Image.DecompressionBombError as err:  # Pillow's own, larger limit: state ours
        raise _bomb(err, limits) from err
    w, h = im.size
    if w < 1 or h < 1:
        raise ImageError(f"image has no pixels ({w}×{h})")
    if w * h > limits.max_pixels:
        raise ImageError(
            f"too many pixels: {w}×{h} = {w * h:,}; the limit is {limits.max_pixels:,} "
            "(a small file claiming a huge size is a decompression bomb)"
        )
    if fmt == "JPEG":
        im.draft("RGB", (WORK_SIDE, WORK_SIDE))  # let the JPEG decoder downscale cheaply (DCT scaling)
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # "image file is truncated", broken chunks
        raise ImageError(f"the {fmt} file is truncated or corrupt ({err})") from err
    except Image.DecompressionBombError as err:
        raise _bomb(err, limits) from err
    return im


def _bomb(err: Exception, limits: "ImageLimits") -> ImageError:
    """Pillow refused the header before we could; say it in kdviz's terms (our limit, not Pillow's)."""
    claimed = re.search(r"\((\d+) pixels\)", str(err))
    size = f"{int(claimed.group(1)):,}" if claimed else "more than Pillow allows"
    return ImageError(f"too many pixels: the file claims {size}; the limit is {limits.max_pixels:,} "
                      "(a small file claiming a huge size is a decompression bomb)")


def to_gray(im: Image.Image) -> np.ndarray:
    """Any mode → float32 ``[H, W]`` in [0, 1] (0 = black); alpha is flattened onto white."""
    im = ImageOps.exif_transpose(im)  # phone photos carry their rotation in EXIF
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: convert("L") would clip, not scale
        a = np.asarray(im, dtype=np.float64)
        return (np.clip(a, 0, 65535) / 65535.0).astype(np.float32)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")  # CMYK, YCbCr, 1, P, ... via RGB for a consistent luma
    gray = im.convert("L")
    if max(gray.size) > WORK_SIDE:
        gray.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    return np.asarray(gray, dtype=np.float32) / 255.0


# ----------------------------------------------------------------------------- MNIST-style preprocessing
def ink_on_black(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """``[H, W]`` grey → ink in (0, 1] on a background of exactly 0, and whether it was inverted.

    The background level is the median of the border pixels; a light one (> 0.5) means dark ink
    on paper, which is inverted because MNIST is white on black.
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])  # [2H + 2W]
    inverted = float(np.median(border)) > 0.5
    g = 1.0 - gray if inverted else gray
    background = float(np.median(1.0 - border if inverted else border))
    g = np.clip(g - background, 0.0, None)
    peak = float(g.max())
    if peak < MIN_CONTRAST:
        raise ImageError(
            f"blank image: no digit found (ink differs from the background by only {peak:.0%}; "
            f"at least {MIN_CONTRAST:.0%} is needed)"
        )
    g = g / peak
    g[g < NOISE_LEVEL] = 0.0  # paper texture, JPEG ringing
    return g.astype(np.float32), inverted


def crop_to_ink(g: np.ndarray) -> np.ndarray:
    """The smallest box holding every ink pixel (value > INK_LEVEL): ``[h, w]``."""
    rows = np.flatnonzero((g > INK_LEVEL).any(axis=1))
    cols = np.flatnonzero((g > INK_LEVEL).any(axis=0))
    return g[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels ≈ 2·area / boundary (a stroke of width w, length L: area wL, boundary 2L)."""
    padded = np.pad(mask, 1)
    interior = mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    boundary = int(mask.sum() - interior.sum())
    return 2.0 * float(mask.sum()) / max(boundary, 1)


def thicken(patch: np.ndarray) -> np.ndarray:
    """Dilate thin pen strokes so that, once scaled into the 20-px box, they are ~2 px wide like MNIST.

    A 3-px pen line on a 400-px canvas would otherwise shrink to 0.15 px and nearly vanish.
    """
    scale = BOX / max(patch.shape)
    wanted = STROKE_PX / scale  # stroke width in source pixels that becomes STROKE_PX
    radius = int(round((wanted - stroke_width(patch > INK_LEVEL)) / 2))
    if scale >= 1 or radius < 1:
        return patch
    t = torch.from_numpy(np.ascontiguousarray(patch))[None, None]  # [1, 1, h, w]
    t = F.max_pool2d(F.pad(t, (radius,) * 4), 2 * radius + 1, stride=1, padding=radius)  # [1, 1, h+2r, w+2r]
    return t[0, 0].numpy()


def fit_box(patch: np.ndarray) -> np.ndarray:
    """Resize so the longest side is 20 px (aspect ratio kept), ink peak rescaled to 1: ``[h', w']``."""
    h, w = patch.shape
    factor = BOX / max(h, w)
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    t = torch.from_numpy(np.ascontiguousarray(patch))[None, None]  # [1, 1, h, w]
    small = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)[0, 0]
    small = small.clamp(0, 1)
    return (small / small.max().clamp_min(1e-6)).numpy()


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(row, col) of the intensity-weighted centre, 0-based pixel coordinates."""
    total = float(img.sum())
    rows, cols = np.arange(img.shape[0]), np.arange(img.shape[1])
    return float((img.sum(axis=1) * rows).sum() / total), float((img.sum(axis=0) * cols).sum() / total)


def place_by_mass(patch: np.ndarray) -> np.ndarray:
    """Put ``patch`` into a 28×28 frame with its centre of mass at (14, 14), staying inside the frame."""
    h, w = patch.shape
    cy, cx = centre_of_mass(patch)
    top = min(max(int(round(CENTRE - cy)), 0), FRAME - h)
    left = min(max(int(round(CENTRE - cx)), 0), FRAME - w)
    frame = np.zeros((FRAME, FRAME), dtype=np.float32)
    frame[top : top + h, left : left + w] = patch
    return frame


def prepare_digit(source, limits: ImageLimits | None = None) -> DigitImage:
    """Upload (bytes or file) → :class:`DigitImage` ready for a model trained on MNIST."""
    limits = limits or ImageLimits()
    data = read_bytes(source, limits.max_bytes)
    im = open_image(data, limits)
    fmt, size = im.format or sniff_format(data), im.size
    g, inverted = ink_on_black(to_gray(im))
    frame = place_by_mass(fit_box(thicken(crop_to_ink(g))))  # [28, 28] in [0, 1]
    pixels = np.round(frame * 255.0).astype(np.uint8)  # quantised like MNIST's uint8 images
    return DigitImage(pixels_to_input(pixels), pixels, inverted, size, fmt)


def pixels_to_input(pixels: np.ndarray) -> torch.Tensor:
    """uint8 ``[28, 28]`` → normalised float ``[1, 1, 28, 28]`` (:func:`kdviz.data.normalise`, as MNIST's images)."""
    return normalise(torch.from_numpy(np.ascontiguousarray(pixels))).reshape(1, 1, FRAME, FRAME)


def to_pixels(x: torch.Tensor) -> np.ndarray:
    """A normalised image ``[..., 28, 28]`` (any leading dims of size 1) → uint8 ``[28, 28]`` for display."""
    img = (x.detach().float().cpu().reshape(x.shape[-2], x.shape[-1]) * MNIST_STD + MNIST_MEAN).clamp(0, 1)
    return np.round(img.numpy() * 255.0).astype(np.uint8)


def enlarge(pixels: np.ndarray, factor: int = 4) -> np.ndarray:
    """Nearest-neighbour upscaling so browsers do not blur a 28-px image: ``[28f, 28f]``."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    return np.kron(pixels, np.ones((factor, factor), dtype=pixels.dtype))
