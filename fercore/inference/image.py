"""The one image module: decode anything a user may hand us into RGB uint8, and convert colours.

``load_image`` accepts an array, a path or encoded bytes and returns an H×W×3 RGB uint8 array or
raises ``ImageError`` with a one-line message. The pixel count is checked from the header before
anything is decoded (``MAX_PIXELS``, 200 megapixels, e.g. 14 000 × 14 000: larger files are refused
as likely decompression bombs). The common case — an 8-bit RGB or gray JPEG, PNG, BMP or WebP — is
decoded by OpenCV straight into one buffer (about 3× faster than Pillow and half the peak memory:
``bench/decode.py`` prints both); every other case (alpha, palette, 16-bit, CMYK, …) goes through
Pillow. EXIF orientation is honoured on both paths. At most ``MAX_BIG_DECODES`` photos above 16
megapixels decode at once in a process; more wait for a slot.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np

from fercore.types import ImageError, ImageTooLargeError, one_line

MAX_PIXELS: int = 200_000_000

ImageSource = Union[np.ndarray, str, Path, bytes, bytearray, memoryview]  # noqa: UP007 - a runtime alias

# Formats and Pillow modes that OpenCV decodes to exactly what Pillow would give (no alpha, 8 bits).
_FAST_FORMATS = {"JPEG", "PNG", "BMP", "WEBP"}
_FAST_MODES = {"RGB", "L"}
_BIG_PIXELS = 16_000_000  # above this, decode without the binding's extra copy (see _imread_in_memory)
# Photos above _BIG_PIXELS decode at most this many at once per process (each 200 MP one needs ~0.6 GB
# at its peak); others wait their turn, so many users uploading huge photos cannot exhaust memory.
MAX_BIG_DECODES = 2
_BIG_DECODES = threading.BoundedSemaphore(MAX_BIG_DECODES)


def load_image(src: ImageSource, name: str | None = None) -> np.ndarray:
    """RGB uint8 H×W×3 array from an array, a file path or encoded bytes.

    Decoding honours EXIF orientation and converts gray, palette, RGBA (composited over white),
    16-bit, CMYK and other Pillow modes. Arrays are taken to be RGB(A) or gray already; uint16 and
    float (0–1) arrays are scaled to uint8. Raises ``ImageError`` naming ``name`` (or the path).
    """
    if isinstance(src, np.ndarray):
        return array_to_rgb(src, name or "image")
    if isinstance(src, (str, Path)):
        path = Path(src)
        return decode_image(_read_file(path), name or str(path))
    if isinstance(src, (bytes, bytearray, memoryview)):
        return decode_image(bytes(src), name or "image")
    raise TypeError(f"load_image expects an array, a path or bytes, got {type(src).__name__}")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (any format Pillow reads) into RGB uint8, honouring EXIF orientation.

    A header claiming more than ``max_pixels`` (at most ``MAX_PIXELS``) raises ``ImageTooLargeError``
    before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow warns above this, refuses above twice this
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                _check_size(im.size, name, min(max_pixels, MAX_PIXELS))
                with _BIG_DECODES if im.size[0] * im.size[1] > _BIG_PIXELS else contextlib.nullcontext():
                    return _decode_opened(im, data)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image, or a format we cannot read") from None
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"{name}: larger than the {MAX_PIXELS // 1_000_000}-megapixel limit") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated …")
        raise ImageError(f"{name}: truncated or corrupt image data ({one_line(exc)})") from None
    except MemoryError:
        raise ImageError(f"{name}: too large to decode in memory") from None


def _decode_opened(im: Any, data: bytes) -> np.ndarray:
    """Pixels of an opened (header-checked) image: OpenCV's fast path when it gives the same result,
    else Pillow's."""
    fast_ok = im.format in _FAST_FORMATS and im.mode in _FAST_MODES and "transparency" not in im.info
    if fast_ok and _looks_complete(str(im.format), data):
        fast = _decode_with_opencv(data, im.size)
        if fast is not None:
            return fast
    im.load()
    return pil_to_rgb(_exif_upright(im))


def _looks_complete(fmt: str, data: bytes) -> bool:
    """Whether the file ends where its format says it should. Truncated files go to Pillow, which
    names the problem in one line (OpenCV's codecs would print their own errors to stderr first)."""
    if fmt == "JPEG":
        return data.rstrip(b"\0\r\n ")[-2:] == b"\xff\xd9"
    if fmt == "PNG":
        return b"IEND" in data[-16:]
    if fmt == "BMP":
        return int.from_bytes(data[2:6], "little") <= len(data)
    if fmt == "WEBP":
        return int.from_bytes(data[4:8], "little") + 8 <= len(data)
    return False


def _imread_in_memory(data: bytes) -> np.ndarray | None:
    """Decode through ``cv2.imread`` on an in-memory file: unlike ``imdecode``, whose result the
    binding copies, it decodes straight into the returned array, halving the peak for huge photos."""
    import cv2

    if not hasattr(os, "memfd_create"):
        return None
    fd = os.memfd_create("fer-image")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return cv2.imread(f"/proc/self/fd/{fd}", None, cv2.IMREAD_COLOR_RGB)  # the dst form: no copy
    except OSError:
        return None
    finally:
        os.close(fd)


def _decode_with_opencv(data: bytes, size: tuple[int, int]) -> np.ndarray | None:
    """RGB uint8 decoded by OpenCV in one buffer (EXIF orientation applied), or None to fall back to
    Pillow (OpenCV could not decode it, or disagrees with the header about its size)."""
    import cv2

    rgb = _imread_in_memory(data) if size[0] * size[1] > _BIG_PIXELS else None
    if rgb is None:
        rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)  # no BGR copy to convert
    if rgb is None or sorted(rgb.shape[:2]) != sorted((size[1], size[0])):
        return None  # truncated data etc.: Pillow gives the precise one-line reason
    return rgb


def _check_size(size: tuple[int, int], name: str, max_pixels: int = MAX_PIXELS) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ImageError(f"{name}: image has no pixels ({w}×{h})")
    if w * h > max_pixels:
        raise ImageTooLargeError(f"{name}: {w}×{h} is larger than the {max_pixels / 1e6:g}-megapixel limit")


def _exif_upright(im: Any) -> Any:
    """The image rotated/flipped as its EXIF orientation tag says (unchanged if the tag is bad)."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a malformed EXIF block must not make a good image unreadable
        return im


def pil_to_rgb(im: Any) -> np.ndarray:
    """RGB uint8 array from a Pillow image of any mode (alpha composited over white)."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return gray_to_rgb(_scale_to_uint8(np.asarray(im)))
    if mode in ("RGB", "L") and "transparency" in im.info:  # a tRNS colour key: that colour is transparent
        im = im.convert("RGBA")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode in ("1", "L"):
        return gray_to_rgb(np.asarray(im.convert("L")))
    elif mode == "LA":
        la = np.asarray(im)
        return gray_to_rgb(_over_white(la[:, :, :1], la[:, :, 1])[:, :, 0])
    if im.mode == "RGBA":
        rgba = np.asarray(im)
        return _over_white(rgba[:, :, :3], rgba[:, :, 3])
    if im.mode != "RGB":  # CMYK, YCbCr, LAB, HSV, RGBX, …
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def array_to_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """RGB uint8 H×W×3 from a gray, RGB or RGBA array of uint8, uint16, bool or float (0–1) values."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: expected an H×W, H×W×3 or H×W×4 array, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"{name}: image has no pixels (shape {a.shape})")
    if a.dtype != np.uint8:
        a = _scale_to_uint8(a, name)
    if a.ndim == 2:
        return gray_to_rgb(a)
    if a.shape[2] == 4:
        return _over_white(a[:, :, :3], a[:, :, 3])
    return a


def _scale_to_uint8(a: np.ndarray, name: str = "image") -> np.ndarray:
    """uint8 from bool, 16-bit or wider ints, or floats (0–1, or 0–255 when the values go above 1)."""
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.integer):
        top = 255 if a.size == 0 or int(a.max()) <= 255 else 65535
        return (np.clip(a, 0, top).astype(np.float32) * (255.0 / top) + 0.5).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        scale = 255.0 if a.size and float(a.max()) <= 1.0 else 1.0
        return (np.clip(a * scale, 0, 255) + 0.5).astype(np.uint8)
    raise ImageError(f"{name}: unsupported pixel type {a.dtype}")


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """H×W×3 copy of a 2-D gray image."""
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite colour channels over a white background using an 8-bit alpha channel."""
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    return (rgb.astype(np.float32) * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)


def to_gray(image: np.ndarray) -> np.ndarray:
    """2-D uint8 gray from an RGB, RGBA or gray uint8 image (a view when it is gray already)."""
    import cv2

    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2GRAY)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ImageError(f"expected a gray, RGB or RGBA image, got shape {image.shape}")


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A 3-channel view/copy of a gray (H×W or H×W×1), RGB or RGBA uint8 image."""
    if image.ndim == 2:
        return gray_to_rgb(image)
    if image.shape[2] == 1:
        return gray_to_rgb(image[:, :, 0])
    return image[:, :, :3]


def fit_within(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale ``image`` so its longer side is at most ``max_side`` (never upscale).

    Returns the (possibly unchanged) image and the factor that maps its pixels back to the
    original's: ``original = small * factor``.
    """
    import cv2

    h, w = image.shape[:2]
    longest = max(h, w)
    if longest <= max_side:
        return image, 1.0
    s = max_side / longest
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), longest / max_side


def encode_png(rgb: np.ndarray) -> bytes:
    """An RGB (or gray) uint8 image as PNG bytes."""
    import cv2

    bgr = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise ImageError("could not encode PNG")
    return buf.tobytes()
