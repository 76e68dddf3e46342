"""Upload decoding (kdviz.images): hostile files are refused with clear messages, real digits come out MNIST-like."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from kdviz.data import MNIST_MEAN, MNIST_STD
from kdviz.images import (
    ImageError,
    ImageLimits,
    centre_of_mass,
    enlarge,
    pixels_to_input,
    prepare_digit,
    stroke_width,
    to_pixels,
)


def encode(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def seven(size=(300, 200), ink=0, paper=255, width=14, mode="L") -> Image.Image:
    """A '7' drawn off-centre (upper left) on a canvas: dark ink on light paper by default."""
    im = Image.new(mode, size, paper)
    d = ImageDraw.Draw(im)
    d.line([(30, 20), (110, 20), (60, 150)], fill=ink, width=width)
    return im


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_header_png(w: int = 20000, h: int = 20000) -> bytes:
    """A ~100-byte PNG whose header claims w×h 8-bit grey pixels (a decompression-bomb shape)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def ink_box(pixels: np.ndarray, level: int = 0) -> tuple[int, int]:
    rows = np.flatnonzero((pixels > level).any(axis=1))
    cols = np.flatnonzero((pixels > level).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


# ----------------------------------------------------------------------------- hostile input
def test_text_file_renamed_png_is_refused():
    with pytest.raises(ImageError, match="not a PNG or JPEG"):
        prepare_digit(b"hello, I am really a text file\n" * 10)


def test_empty_file_is_refused():
    with pytest.raises(ImageError, match="empty"):
        prepare_digit(b"")


def test_jpeg_magic_with_garbage_is_refused():
    with pytest.raises(ImageError, match="JPEG"):
        prepare_digit(b"\xff\xd8\xff" + b"\x00garbage" * 50)


def test_truncated_png_is_refused():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)  # incompressible: a long IDAT
    data = encode(Image.fromarray(noise))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        prepare_digit(data[: len(data) // 2])


def test_bomb_header_is_refused_before_decoding():
    with pytest.raises(ImageError, match="too many pixels: the file claims 400,000,000; the limit is 16,000,000"):
        prepare_digit(bomb_header_png())
    with pytest.raises(ImageError, match="too many pixels: 5000×4000 = 20,000,000; the limit is 16,000,000"):
        prepare_digit(bomb_header_png(5000, 4000))  # below Pillow's own limit: ours refuses it


def test_real_huge_one_bit_image_is_refused():
    data = encode(Image.new("1", (5000, 5000), 0))  # 25 M pixels, a few kB on disk
    assert len(data) < 100_000
    with pytest.raises(ImageError, match="too many pixels"):
        prepare_digit(data)


def test_oversized_bytes_are_refused_for_bytes_and_files():
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * 1_000_000
    with pytest.raises(ImageError, match="too large: 1,000,008 bytes; the limit is 1,000,000"):
        prepare_digit(big)
    with pytest.raises(ImageError, match="too large: more than 1,000,000 bytes"):
        prepare_digit(io.BytesIO(big))
    small_limit = ImageLimits(max_bytes=100)
    with pytest.raises(ImageError, match="limit is 100 bytes"):
        prepare_digit(encode(seven()), small_limit)


@pytest.mark.parametrize("colour", [0, 255, 128])
def test_blank_images_are_refused(colour):
    with pytest.raises(ImageError, match="blank image"):
        prepare_digit(encode(Image.new("L", (50, 40), colour)))


def test_faint_noise_is_blank():
    noise = 200 + np.random.default_rng(1).integers(0, 10, (60, 60), dtype=np.uint8)  # < 10 grey levels of contrast
    with pytest.raises(ImageError, match="blank image"):
        prepare_digit(encode(Image.fromarray(noise)))


def test_limits_are_validated():
    with pytest.raises(ValueError, match="max_bytes"):
        ImageLimits(max_bytes=0)


# ----------------------------------------------------------------------------- MNIST-style result
def test_drawn_digit_is_centred_by_mass_in_a_20px_box():
    digit = prepare_digit(encode(seven()))
    assert digit.x.shape == (1, 1, 28, 28) and digit.x.dtype == torch.float32
    assert digit.inverted and digit.source_size == (300, 200) and digit.source_format == "PNG"
    cy, cx = centre_of_mass(digit.pixels.astype(np.float64))
    assert abs(cy - 14) <= 1.0 and abs(cx - 14) <= 1.0
    h, w = ink_box(digit.pixels)
    assert max(h, w) <= 20 and max(h, w) >= 19  # longest side scaled to the 20-px box
    assert digit.pixels[0].max() == 0 and digit.pixels[:, 0].max() == 0  # black margin, like MNIST
    assert digit.pixels.max() == 255


def test_normalisation_matches_kdviz_data():
    digit = prepare_digit(encode(seven()))
    expected = (torch.from_numpy(digit.pixels).float() / 255.0 - MNIST_MEAN) / MNIST_STD
    torch.testing.assert_close(digit.x[0, 0], expected)
    assert np.array_equal(to_pixels(digit.x), digit.pixels)  # display round trip


def test_white_on_black_is_not_inverted():
    a = prepare_digit(encode(seven()))
    b = prepare_digit(encode(seven(ink=255, paper=0)))
    assert not b.inverted
    assert np.abs(a.pixels.astype(int) - b.pixels.astype(int)).max() <= 2


def _close_to_reference(data: bytes) -> None:
    ref = prepare_digit(encode(seven())).pixels.astype(float)
    got = prepare_digit(data).pixels.astype(float)
    assert np.abs(ref - got).mean() < 6.0, np.abs(ref - got).mean()


def test_rgba_with_transparent_background_is_flattened_on_white():
    im = Image.new("RGBA", (300, 200), (0, 0, 0, 0))  # transparent *black*: must not read as black paper
    ImageDraw.Draw(im).line([(30, 20), (110, 20), (60, 150)], fill=(0, 0, 0, 255), width=14)
    _close_to_reference(encode(im))


def test_palette_and_colour_modes():
    rgb = seven(mode="RGB", ink=(20, 20, 160), paper=(250, 245, 230))
    _close_to_reference(encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)))
    _close_to_reference(encode(rgb, "JPEG", quality=90))
    _close_to_reference(encode(seven().convert("RGB").convert("CMYK"), "JPEG", quality=95))
    _close_to_reference(encode(seven().convert("1")))


def test_sixteen_bit_grey_is_scaled_not_clipped():
    arr = np.asarray(seven(), dtype=np.uint16) * 257  # 0..65535
    im16 = Image.fromarray(arr)
    assert im16.mode.startswith("I;16")
    data = encode(im16)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    _close_to_reference(data)


def test_thin_pen_on_large_canvas_is_thickened():
    thin = prepare_digit(encode(seven(size=(900, 600), width=3)))
    assert (thin.pixels > 128).sum() >= 20  # visible strokes, not a faint 0.1-px trace
    assert stroke_width(thin.pixels > 128) >= 1.5


def test_uploaded_file_object_is_read():
    digit = prepare_digit(io.BytesIO(encode(seven())))
    assert digit.x.shape == (1, 1, 28, 28)


def test_helpers():
    px = np.arange(784, dtype=np.uint8).reshape(28, 28)
    assert enlarge(px, 3).shape == (84, 84) and enlarge(px, 3)[2, 2] == px[0, 0]
    assert pixels_to_input(px).shape == (1, 1, 28, 28)
    with pytest.raises(ValueError):
        enlarge(px, 0)
