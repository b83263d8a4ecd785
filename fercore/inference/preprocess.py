"""The one face preprocessing shared by training and inference.

Training faces in FER2013 are 48×48 grayscale crops, roughly square around the face with a small
margin. Inference crops a detector box the same way: square it, widen it by ``FACE_MARGIN``, pad
with edge pixels where it leaves the frame, convert to gray and resize to 48×48 uint8. Scaling to
[0, 1] floats happens inside the model (a Rescaling layer), so every exported format takes uint8
values as float32 and nothing outside the model has to remember the scale.
"""

from __future__ import annotations

import numpy as np

from fercore.inference.image import to_gray

__all__ = [
    "FACE_SIZE",
    "FACE_MARGIN",
    "to_gray",
    "square_box",
    "crop_face",
    "resize_face",
    "crop_faces",
    "to_model_input",
]

FACE_SIZE: int = 48
# Haar/MTCNN boxes are tight around brows–chin; FER2013 crops include a little forehead and jaw.
FACE_MARGIN: float = 0.12


def square_box(x: float, y: float, w: float, h: float, margin: float = FACE_MARGIN) -> tuple[int, int, int, int]:
    """Square a box about its centre and widen it by ``margin`` (fraction of its side)."""
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    return (
        int(round(cx - side / 2.0)),
        int(round(cy - side / 2.0)),
        int(round(side)),
        int(round(side)),
    )


def crop_face(gray: np.ndarray, box: tuple[float, float, float, float], margin: float = FACE_MARGIN) -> np.ndarray:
    """Crop one face from a grayscale frame as a 48×48 uint8 image (edge-padded outside the frame)."""
    import cv2

    sx, sy, side, _ = square_box(*box, margin=margin)
    side = max(side, 1)
    h, w = gray.shape[:2]
    x0, y0, x1, y1 = sx, sy, sx + side, sy + side
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    crop = gray[y0:y1, x0:x1]
    return resize_face(crop)


def resize_face(gray: np.ndarray) -> np.ndarray:
    """Resize any 2-D grayscale image to 48×48 uint8 (area interpolation when shrinking)."""
    import cv2

    if gray.shape == (FACE_SIZE, FACE_SIZE):
        return np.ascontiguousarray(gray, dtype=np.uint8)
    interp = cv2.INTER_AREA if min(gray.shape[:2]) > FACE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(gray, (FACE_SIZE, FACE_SIZE), interpolation=interp).astype(np.uint8)


def crop_faces(
    gray: np.ndarray, boxes: list[tuple[float, float, float, float]], margin: float = FACE_MARGIN
) -> np.ndarray:
    """Stack of 48×48 uint8 face crops, shape (n, 48, 48)."""
    if not boxes:
        return np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8)
    return np.stack([crop_face(gray, b, margin) for b in boxes])


def to_model_input(faces: np.ndarray) -> np.ndarray:
    """(n, 48, 48) uint8 → (n, 48, 48, 1) float32 in 0–255, the input every exported model takes."""
    faces = np.asarray(faces)
    if faces.ndim == 2:
        faces = faces[None]
    if faces.ndim != 3 or faces.shape[1:3] != (FACE_SIZE, FACE_SIZE):  # (n, 48, 48, 1) would become 5-D
        raise ValueError(f"faces must be {FACE_SIZE}×{FACE_SIZE} (shape (n, 48, 48)), got shape {faces.shape}")
    return faces.astype(np.float32)[..., None]
