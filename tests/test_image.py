"""fercore.inference.image: the one decoder (bad and unusual files, every pixel format, the size guard, the
OpenCV fast path) and the gray/RGB helpers."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib

import cv2
import numpy as np
import pytest
from conftest import ASTRONAUT_FACE, GRACE_FACE, contains, encode
from PIL import Image, ImageFile, ImageOps

import fercore.inference.image as image_mod
from fercore.inference.detectors.haar import HaarDetector
from fercore.inference.image import (
    MAX_PIXELS,
    as_rgb,
    decode_image,
    encode_png,
    fit_within,
    gray_to_rgb,
    load_image,
    pil_to_rgb,
    to_gray,
)
from fercore.types import ImageError


def _one_line_error(exc_info, *words: str) -> None:
    msg = str(exc_info.value)
    assert "\n" not in msg and msg
    for w in words:
        assert w in msg, msg


def _pillow_upright(data: bytes) -> np.ndarray:
    """What Pillow alone makes of ``data``: EXIF orientation applied, converted to RGB."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


@pytest.fixture
def fast_path(monkeypatch) -> list[bool]:
    """Records each use of the OpenCV fast path: True when it decoded, False when it fell back."""
    used: list[bool] = []
    real = image_mod._decode_with_opencv

    def spy(*args):
        out = real(*args)
        used.append(out is not None)
        return out

    monkeypatch.setattr(image_mod, "_decode_with_opencv", spy)
    return used


def _photo_like(h: int, w: int, seed: int = 3) -> np.ndarray:
    """Smooth random colours: detail that lossy codecs keep, and no symmetry to hide a rotation."""
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(rgb, (5, 5), 0)


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` RGB pixels, followed by one tiny IDAT: what a
    decompression bomb looks like before it is decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is patched to claim ``width``×``height``."""
    data = bytearray(encode(np.zeros((16, 16, 3), np.uint8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# -------------------------------------------------------------------------------- bad input files


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as e:
        load_image(path)
    _one_line_error(e, "empty.jpg", "empty")


def test_random_bytes_named_jpg(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError) as e:
        load_image(path)
    _one_line_error(e, "noise.jpg", "not an image")
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    "fmt, save",
    [("JPEG", {"quality": 90}), ("JPEG", {"progressive": True}), ("PNG", {}), ("WEBP", {}), ("BMP", {})],
)
@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_files_are_a_one_line_error(tmp_path, fmt, save, keep):
    rgb = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    data = encode(rgb, fmt, **save)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageError) as e:
        load_image(path)
    _one_line_error(e, path.name, "truncated")


def test_truncated_rgba_png_on_the_pillow_path(tmp_path):
    rgba = np.random.default_rng(2).integers(0, 256, (100, 120, 4), dtype=np.uint8)
    data = encode(rgba, "PNG")
    with pytest.raises(ImageError) as e:
        load_image(data[: len(data) // 2], name="cut.png")
    _one_line_error(e, "cut.png", "truncated")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError) as e:
        load_image(tmp_path / "nope.png")
    _one_line_error(e, "nope.png", "no such file")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(TypeError, match="array, a path or bytes"):
        load_image([[0, 1]])  # type: ignore[arg-type]


def test_one_pixel_image(tmp_path):
    path = tmp_path / "dot.png"
    path.write_bytes(encode(np.array([[[10, 200, 30]]], np.uint8), "PNG"))
    rgb = load_image(path)
    assert rgb.shape == (1, 1, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [10, 200, 30]


# ------------------------------------------------------------------------------------ size guard


def test_image_above_the_pixel_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 50 * 50)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # decode_image sets it: restore it
    path = tmp_path / "big.png"
    path.write_bytes(encode(np.zeros((60, 60, 3), np.uint8), "PNG"))
    with pytest.raises(ImageError) as e:
        load_image(path)
    _one_line_error(e, "big.png", "60×60", "megapixel limit")
    assert load_image(encode(np.zeros((50, 50, 3), np.uint8), "PNG")).shape == (50, 50, 3)  # at the limit: fine


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if any pixel data is decoded (by OpenCV or Pillow)."""

    def refuse(*args, **kwargs):
        raise AssertionError("pixel data was decoded: the size must be checked from the header first")

    monkeypatch.setattr(image_mod, "_decode_with_opencv", refuse)
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


@pytest.mark.parametrize(
    "name, data, words",
    [
        ("bomb.png", _png_header_only(15_000, 15_000), ["15000×15000", "megapixel limit"]),  # 225 MP
        ("bomb.jpg", _jpeg_claiming(16_000, 14_000), ["16000×14000", "megapixel limit"]),  # 224 MP
        ("huge.png", _png_header_only(60_000, 60_000), ["megapixel limit"]),  # 3600 MP: Pillow's own guard
    ],
)
def test_size_is_checked_from_the_header_before_decoding(no_decoding, name, data, words):
    assert len(data) < 2000
    start = time.perf_counter()
    with pytest.raises(ImageError) as e:
        decode_image(data, name)
    assert time.perf_counter() - start < 1.0
    _one_line_error(e, name, *words)


def test_a_bomb_is_refused_without_allocating_its_pixels(tmp_path):
    """In a fresh process: refusing a PNG that claims 15 000 × 15 000 (675 MB of RGB) leaves the peak
    memory where it was."""
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(15_000, 15_000))
    code = (
        "import sys, cv2, PIL.Image, numpy\n"
        "from fercore.inference.image import load_image\n"
        "from fercore.types import ImageError\n"
        "def hwm():  # VmHWM of this process (ru_maxrss would carry the parent's peak across exec)\n"
        "    return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1])\n"
        "before = hwm()\n"
        "try:\n"
        "    load_image(sys.argv[1])\n"
        "except ImageError as exc:\n"
        "    print(str(exc))\n"
        "print((hwm() - before) // 1024)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    message, grown_mb = proc.stdout.strip().splitlines()
    assert "megapixel limit" in message
    assert int(grown_mb) < 50, f"peak memory grew by {grown_mb} MB"


def test_max_pixels_is_200_megapixels():
    assert MAX_PIXELS == 200_000_000


# ---------------------------------------------------------------------------- the OpenCV fast path


@pytest.mark.parametrize(
    "fmt, save, gray",
    [
        ("JPEG", {"quality": 90}, False),  # 4:2:0
        ("JPEG", {"quality": 90, "subsampling": 0}, False),  # 4:4:4
        ("JPEG", {"quality": 80, "progressive": True}, False),
        ("JPEG", {"quality": 90}, True),
        ("PNG", {}, False),
        ("PNG", {}, True),
        ("BMP", {}, False),
        ("WEBP", {"quality": 80}, False),
        ("WEBP", {"lossless": True}, False),
    ],
)
def test_fast_path_gives_exactly_what_pillow_gives(fast_path, fmt, save, gray):
    rgb = _photo_like(61, 83)  # odd sizes
    data = encode(rgb[:, :, 0] if gray else rgb, fmt, **save)
    out = decode_image(data, "x")
    assert fast_path == [True]  # decoded by OpenCV
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, _pillow_upright(data))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_on_the_fast_path(fast_path, fmt, orientation):
    """Every EXIF orientation, on a non-square image and through OpenCV, matches Pillow's
    ``exif_transpose``."""
    save = {"quality": 90} if fmt != "PNG" else {}
    data = encode(_photo_like(90, 120), fmt, exif=_exif(orientation), **save)
    out = decode_image(data)
    assert fast_path == [True]
    expected = _pillow_upright(data)
    assert out.shape == expected.shape == ((90, 120, 3) if orientation < 5 else (120, 90, 3))
    np.testing.assert_array_equal(out, expected)


def test_exif_orientation_on_a_square_image(fast_path):
    """A square image's shape cannot tell whether it was turned: the pixels must."""
    square = _photo_like(100, 100)
    for fmt in ("JPEG", "PNG"):
        data = encode(square, fmt, exif=_exif(6))
        np.testing.assert_array_equal(decode_image(data), _pillow_upright(data))
    assert fast_path == [True, True]
    assert not np.array_equal(_pillow_upright(encode(square, "PNG", exif=_exif(6))), square)


def test_exif_orientation_on_the_pillow_path(fast_path):
    """An RGBA PNG (not the fast path) stored sideways with orientation 6 is turned upright too."""
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[:, :, 3] = 255
    rgba[:5, :, :3] = 200  # a bright strip along the stored top edge
    out = decode_image(encode(rgba, "PNG", exif=_exif(6)))
    assert fast_path == []
    assert out.shape == (60, 40, 3)
    assert (out[:, -5:] == 200).all() and (out[:, :-5] == 0).all()  # the top edge is now the right edge


@pytest.mark.data
def test_exif_rotated_jpeg_is_turned_upright_and_the_box_lands_on_the_face(tmp_path, grace):
    """Pixels stored sideways with orientation 6 (rotate 90° clockwise to view), as phones do."""
    sideways = Image.fromarray(grace).transpose(Image.Transpose.ROTATE_90)  # stored turned left
    path = tmp_path / "phone.jpg"
    sideways.save(path, "JPEG", quality=95, exif=_exif(6))
    assert Image.open(path).size == (600, 512)  # stored landscape

    rgb = load_image(path)
    assert rgb.shape == grace.shape  # 600 high × 512 wide, upright
    assert np.abs(rgb.astype(int) - grace).mean() < 6
    detector = HaarDetector()
    (face,) = detector.detect(rgb)
    assert contains(face, GRACE_FACE), face
    (upright,) = detector.detect(grace)
    assert face.iou(upright) > 0.7


def test_a_malformed_exif_block_does_not_make_a_good_image_unreadable():
    rgba = np.full((8, 10, 4), 255, np.uint8)
    data = bytearray(encode(rgba, "PNG", exif=_exif(6)))
    at = data.index(b"eXIf") + 4
    data[at : at + 8] = b"\xff" * 8  # garbage instead of the TIFF header
    crc_from = at - 4
    length = struct.unpack(">I", data[crc_from - 4 : crc_from])[0]
    body = bytes(data[crc_from : at + length])
    data[at + length : at + length + 4] = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    assert load_image(bytes(data)).shape in ((8, 10, 3), (10, 8, 3))


# ------------------------------------------------------------------------ other pixel formats


@pytest.mark.data
def test_rgba_png_is_composited_over_white_and_the_face_found(tmp_path, astronaut, fast_path):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:, :60, 3] = 0  # a transparent strip on the left
    rgba[:, 60:80, 3] = 128
    path = tmp_path / "rgba.png"
    path.write_bytes(encode(rgba, "PNG"))
    rgb = load_image(path)
    assert fast_path == []  # alpha: Pillow
    assert rgb.shape == astronaut.shape
    assert (rgb[:, :60] == 255).all()  # transparent → white
    half = (astronaut[:, 60:80].astype(int) + 255) / 2
    assert np.abs(rgb[:, 60:80] - half).max() <= 1
    assert np.array_equal(rgb[:, 80:], astronaut[:, 80:])
    (face,) = HaarDetector().detect(rgb)
    assert contains(face, ASTRONAUT_FACE)


def test_gray_with_alpha_la_is_composited_over_white():
    gray = np.full((2, 3), 50, np.uint8)
    alpha = np.array([[0, 255, 128], [255, 0, 255]], np.uint8)
    data = encode(np.dstack([gray, alpha]), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "LA"
    out = load_image(data)
    assert out.shape == (2, 3, 3) and (out[:, :, 0] == out[:, :, 2]).all()
    assert out[:, :, 0].tolist() == [[255, 50, 152], [50, 255, 50]]  # 50·a + 255·(1 − a)


def test_palette_and_grayscale_files(tmp_path):
    gray = np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1))
    path = tmp_path / "gray.png"
    path.write_bytes(encode(gray, "PNG"))
    rgb = load_image(path)
    assert rgb.shape == (32, 64, 3) and np.array_equal(rgb[:, :, 1], gray)
    pal = Image.fromarray(np.dstack([gray] * 3)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = tmp_path / "pal.gif"
    pal.save(path)
    out = load_image(path)
    assert out.shape == (32, 64, 3)
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_a_transparent_entry_becomes_white(fmt):
    index = np.zeros((6, 8), np.uint8)
    index[:, 4:] = 1
    pal = Image.fromarray(index, "P")
    pal.putpalette([200, 0, 0, 0, 0, 200] + [0] * (254 * 3))
    buf = io.BytesIO()
    pal.save(buf, fmt, transparency=0)  # red entry transparent
    out = load_image(buf.getvalue())
    assert (out[:, :4] == 255).all()  # transparent red → white
    assert (out[:, 4:] == [0, 0, 200]).all()  # opaque blue stays


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_png_colour_key_transparency_becomes_white(fast_path, mode):
    """A tRNS colour key (one colour declared transparent) in an RGB or gray PNG."""
    if mode == "RGB":
        pixels = np.full((4, 5, 3), 100, np.uint8)
        pixels[0, 0] = 0
        data = encode(pixels, "PNG", transparency=(0, 0, 0))
    else:
        pixels = np.full((4, 5), 100, np.uint8)
        pixels[0, 0] = 7
        data = encode(pixels, "PNG", transparency=7)
    out = load_image(data)
    assert fast_path == []  # OpenCV would ignore the key
    assert out[0, 0].tolist() == [255, 255, 255]
    assert (out.reshape(-1, 3)[1:] == 100).all()


@pytest.mark.data
def test_16_bit_png_gray_and_colour(tmp_path, astronaut):
    rgb16 = astronaut.astype(np.uint16) * 257
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), rgb16[:, :, ::-1])
    decoded = load_image(path)
    assert decoded.dtype == np.uint8 and decoded.shape == astronaut.shape
    assert np.abs(decoded.astype(int) - astronaut).max() <= 1
    (face,) = HaarDetector().detect(decoded)
    assert contains(face, ASTRONAUT_FACE)

    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    path = tmp_path / "gray16.png"
    assert cv2.imwrite(str(path), gray.astype(np.uint16) * 257)
    assert Image.open(path).mode.startswith("I")
    decoded = load_image(path)
    assert decoded.shape == astronaut.shape
    assert np.abs(decoded[:, :, 0].astype(int) - gray).max() <= 1
    (face,) = HaarDetector().detect(decoded)
    assert contains(face, ASTRONAUT_FACE)


@pytest.mark.data
def test_cmyk_jpeg(tmp_path, astronaut, fast_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(astronaut).convert("CMYK").save(path, "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    rgb = load_image(path)
    assert fast_path == []  # CMYK: Pillow
    assert rgb.shape == astronaut.shape
    assert np.abs(rgb.astype(int) - astronaut).mean() < 8  # colours survive, not inverted
    (face,) = HaarDetector().detect(rgb)
    assert contains(face, ASTRONAUT_FACE)


def test_one_bit_image():
    bits = np.zeros((4, 8), bool)
    bits[:, :4] = True
    data = encode(bits, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "1"
    out = load_image(data)
    assert out.shape == (4, 8, 3) and out.dtype == np.uint8
    assert (out[:, :4] == 255).all() and (out[:, 4:] == 0).all()


def test_pil_to_rgb_converts_other_modes():
    assert pil_to_rgb(Image.new("YCbCr", (3, 2), (128, 128, 128))).shape == (2, 3, 3)
    assert pil_to_rgb(Image.new("I;16", (3, 2), 65535))[0, 0].tolist() == [255, 255, 255]
    assert pil_to_rgb(Image.new("F", (3, 2), 0.5))[0, 0].tolist() == [128, 128, 128]
    assert pil_to_rgb(Image.new("PA", (3, 2)))[0, 0].tolist() == [255, 255, 255]  # alpha 0 → white


# ---------------------------------------------------------------------------------------- arrays


def test_arrays_and_bytes():
    assert load_image(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert load_image(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    assert load_image(np.ones((4, 5, 3), np.float32))[0, 0].tolist() == [255, 255, 255]
    assert load_image(np.full((4, 5, 3), 65535, np.uint16))[0, 0].tolist() == [255, 255, 255]
    rgba = np.zeros((4, 5, 4), np.uint8)
    assert load_image(rgba)[0, 0].tolist() == [255, 255, 255]  # fully transparent → white
    rgb = np.random.default_rng(2).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    assert np.array_equal(load_image(encode(rgb, "PNG")), rgb)
    assert np.array_equal(load_image(bytearray(encode(rgb, "PNG"))), rgb)
    assert np.array_equal(load_image(memoryview(encode(rgb, "PNG"))), rgb)
    assert load_image(rgb) is rgb  # an RGB uint8 array is used as it is
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 5, 3, 1), np.uint8))
    with pytest.raises(ImageError, match="no pixels"):
        load_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageError, match="upload.jpg: empty"):
        load_image(b"", name="upload.jpg")


def test_float_arrays_scale_from_0_1_or_0_255_and_tolerate_nan():
    assert load_image(np.full((2, 2), 0.5, np.float64))[0, 0].tolist() == [128, 128, 128]
    assert load_image(np.full((2, 2, 3), 200.0, np.float32))[0, 0].tolist() == [200, 200, 200]  # 0–255 floats
    assert load_image(np.full((2, 2, 3), 999.0, np.float32))[0, 0].tolist() == [255, 255, 255]  # clipped
    odd = np.array([[np.nan, -1.0], [0.25, 1.0]], np.float32)
    assert load_image(odd)[:, :, 0].tolist() == [[0, 0], [64, 255]]


def test_integer_and_bool_arrays():
    assert load_image(np.full((2, 2), 32768, np.uint16))[0, 0, 0] == 128  # 16-bit scaled
    assert load_image(np.full((2, 2), 200, np.uint16))[0, 0, 0] == 200  # values ≤ 255: already 8-bit
    assert load_image(np.full((2, 2), 300, np.int64))[0, 0, 0] == 1  # scaled from 65535
    assert load_image(np.array([[True, False]]))[0, :, 0].tolist() == [255, 0]
    with pytest.raises(ImageError, match="unsupported pixel type"):
        load_image(np.full((2, 2), 1 + 1j))


# --------------------------------------------------------------------------------------- helpers


def test_to_gray_as_rgb_and_gray_to_rgb():
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    assert to_gray(rgb).shape == (3, 4) and to_gray(rgb)[0, 0] == 76  # 0.299·255
    rgba = np.dstack([rgb, np.full((3, 4), 255, np.uint8)])
    assert np.array_equal(to_gray(rgba), to_gray(rgb))
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert to_gray(gray) is gray and np.array_equal(to_gray(gray[:, :, None]), gray)
    with pytest.raises(ImageError, match="shape"):
        to_gray(np.zeros((3, 4, 2), np.uint8))
    assert np.array_equal(gray_to_rgb(gray)[:, :, 2], gray) and gray_to_rgb(gray).flags.c_contiguous
    assert as_rgb(gray).shape == (3, 4, 3) and as_rgb(gray[:, :, None]).shape == (3, 4, 3)
    assert np.array_equal(as_rgb(rgba), rgb)


def test_fit_within_never_upscales():
    img = np.zeros((100, 200), np.uint8)
    same, f = fit_within(img, 400)
    assert same is img and f == 1.0
    same, f = fit_within(img, 200)
    assert same is img and f == 1.0
    small, f = fit_within(img, 50)
    assert small.shape == (25, 50) and f == pytest.approx(4.0)
    small, f = fit_within(np.zeros((300, 100, 3), np.uint8), 150)
    assert small.shape == (150, 50, 3) and f == pytest.approx(2.0)


def test_encode_png_round_trips():
    rgb = np.random.default_rng(4).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert np.array_equal(load_image(encode_png(rgb)), rgb)
    gray = rgb[:, :, 0].copy()
    assert np.array_equal(load_image(encode_png(gray))[:, :, 0], gray)


@pytest.mark.parametrize("side, big", [(100, True), (20, False)], ids=["big", "small"])
def test_big_photos_decode_a_few_at_a_time(monkeypatch, side, big):
    """Photos above the big-photo size take one of MAX_BIG_DECODES slots; smaller ones never wait."""
    import threading

    monkeypatch.setattr(image_mod, "_BIG_PIXELS", 1000)  # a 100×100 photo counts as big here
    active, peak, lock = [0], [0], threading.Lock()
    real = image_mod._decode_opened

    def slow(im, data):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return real(im, data)

    monkeypatch.setattr(image_mod, "_decode_opened", slow)
    data = encode(np.full((side, side, 3), 90, np.uint8), "PNG")
    start = threading.Barrier(6)
    out: list[np.ndarray] = []

    def work():
        start.wait()
        out.append(decode_image(data))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 6 and all(o.shape == (side, side, 3) for o in out)
    assert peak[0] == image_mod.MAX_BIG_DECODES if big else peak[0] > image_mod.MAX_BIG_DECODES
