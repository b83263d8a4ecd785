"""Image in, faces out: ``Predictor(detector, classifier).predict(image) -> list[FacePrediction]``.

The pipeline is decode → detect → crop (``fercore.preprocess.crop_faces``) → classify all faces of
the image in one call. ``load_image`` turns anything a user may hand us (an array, a path, bytes)
into an RGB uint8 array or raises ``ImageError`` with a one-line message.

Image size limit: images above ``MAX_PIXELS`` (200 megapixels, e.g. 14 000 × 14 000) are refused
as likely decompression bombs; a 10 000 × 10 000 photo (100 MP, ~300 MB decoded) is accepted.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from fercore.classify import EmotionClassifier
from fercore.detect import DEFAULT_DETECTOR, Box, FaceDetector, check_image, fit_within, make_detector
from fercore.labels import EMOTIONS
from fercore.preprocess import crop_faces, to_gray

MAX_PIXELS: int = 200_000_000

ImageSource = Union[np.ndarray, str, Path, bytes, bytearray, memoryview]


class ImageError(ValueError):
    """An image that cannot be read: missing, empty, not an image, truncated or too large."""


# --------------------------------------------------------------------------------------- decoding


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


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes (any format Pillow reads) into RGB uint8, honouring EXIF orientation."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow warns above this, refuses above twice this
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                _check_size(im.size, name)
                im.load()
                im = _exif_upright(im)
                return pil_to_rgb(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image, or a format we cannot read") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: larger than the {MAX_PIXELS // 1_000_000}-megapixel limit") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated …")
        raise ImageError(f"{name}: truncated or corrupt image data ({_one_line(exc)})") from None
    except MemoryError:
        raise ImageError(f"{name}: too large to decode in memory") from None


def _check_size(size: tuple[int, int], name: str) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ImageError(f"{name}: image has no pixels ({w}×{h})")
    if w * h > MAX_PIXELS:
        raise ImageError(
            f"{name}: {w}×{h} is larger than the {MAX_PIXELS // 1_000_000}-megapixel limit")


def _exif_upright(im):
    """The image rotated/flipped as its EXIF orientation tag says (unchanged if the tag is bad)."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a malformed EXIF block must not make a good image unreadable
        return im


def pil_to_rgb(im) -> np.ndarray:
    """RGB uint8 array from a Pillow image of any mode (alpha composited over white)."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return gray_to_rgb(_scale_to_uint8(np.asarray(im)))
    if mode == "P":
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
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite colour channels over a white background using an 8-bit alpha channel."""
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    return (rgb.astype(np.float32) * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ------------------------------------------------------------------------------------ predictions


@dataclass
class FacePrediction:
    """One face: its box (original pixels), 7 emotion probabilities, the top label and the 48×48 crop."""

    box: Box
    scores: dict[str, float]
    label: str
    face: np.ndarray = field(repr=False, compare=False)
    face_id: int | None = None

    @property
    def confidence(self) -> float:
        """Probability of the label."""
        return float(self.scores[self.label])

    def to_dict(self) -> dict[str, Any]:
        """``{"box": [x, y, w, h], "label": …, "scores": {emotion: prob}, "face_id": …}`` (JSON-serialisable)."""
        return {
            "box": self.box.as_list(),
            "label": self.label,
            "scores": {k: round(float(v), 6) for k, v in self.scores.items()},
            "face_id": None if self.face_id is None else int(self.face_id),
        }


def scores_to_prediction(box: Box, probs: np.ndarray, face: np.ndarray) -> FacePrediction:
    """A ``FacePrediction`` from one row of class probabilities (FER2013 order)."""
    scores = {name: float(p) for name, p in zip(EMOTIONS, probs)}
    return FacePrediction(box=box, scores=scores, label=EMOTIONS[int(np.argmax(probs))], face=face)


class Predictor:
    """Detect faces, crop them the training way, classify them all in one call.

    ``detector`` is a ``FaceDetector``, a detector name (``"blaze"``, ``"haar"``, ``"mtcnn"``) or None
    (BlazeFace);
    ``classifier`` defaults to the shipped model (``$FER_MODEL`` or ``models/model.tflite``).
    Images whose longer side exceeds ``max_side`` are downscaled for detection only: boxes come
    back in the original pixels and crops are cut from the full-resolution image.
    """

    def __init__(
        self,
        detector: FaceDetector | str | None = None,
        classifier: EmotionClassifier | None = None,
        max_side: int = 1600,
    ):
        if max_side < 32:
            raise ValueError(f"max_side must be >= 32, got {max_side}")
        self.detector: FaceDetector = (
            make_detector(detector or DEFAULT_DETECTOR) if detector is None or isinstance(detector, str) else detector
        )
        self.classifier = classifier if classifier is not None else EmotionClassifier()
        self.max_side = int(max_side)
        self._lock = threading.Lock()  # LiteRT interpreters are not safe to share between threads

    def predict(self, image: ImageSource) -> list[FacePrediction]:
        """Faces in ``image`` (anything ``load_image`` accepts), left to right."""
        rgb = load_image(image)
        gray = to_gray(rgb)
        return self.predict_faces(rgb, self.detect(rgb, gray), gray=gray)

    def detect(self, rgb: np.ndarray, gray: np.ndarray | None = None) -> list[Box]:
        """Face boxes in ``rgb``'s pixels (detection runs on a copy no larger than ``max_side``)."""
        check_image(rgb)
        detect_gray = getattr(self.detector, "detect_gray", None)
        if detect_gray is not None:  # Haar works on gray: convert once, shared with the crops
            small, factor = fit_within(gray if gray is not None else to_gray(rgb), self.max_side)
            boxes = detect_gray(small)
        else:
            small, factor = fit_within(rgb, self.max_side)
            boxes = self.detector.detect(small)
        if factor == 1.0:
            return list(boxes)
        h, w = rgb.shape[:2]
        return [b.scaled(factor).clipped(w, h) for b in boxes]

    def predict_faces(
        self, rgb: np.ndarray, boxes: list[Box], gray: np.ndarray | None = None
    ) -> list[FacePrediction]:
        """Classify the faces at ``boxes`` (original pixels) of ``rgb`` in one classifier call."""
        if not boxes:
            return []
        faces = crop_faces(gray if gray is not None else to_gray(rgb), [tuple(b) for b in boxes])
        with self._lock:
            probs = self.classifier.predict_proba(faces)
        return [scores_to_prediction(b, p, f) for b, p, f in zip(boxes, probs, faces)]
