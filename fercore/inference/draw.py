"""Drawing on frames: face boxes in their emotion's colour, label and probability, optional bars of
all seven probabilities, and heat-map overlays. Every function returns a new RGB uint8 image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fercore.labels import EMOTIONS, color_rgb

if TYPE_CHECKING:
    from fercore.types import FacePrediction

_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def annotate(rgb: np.ndarray, preds: list[FacePrediction], show_bars: bool = True) -> np.ndarray:
    """A copy of ``rgb`` with each face's box, ``label NN%`` (and ``#id`` when tracked), and bars."""
    out = np.ascontiguousarray(rgb[:, :, :3] if rgb.ndim == 3 else np.repeat(rgb[:, :, None], 3, 2)).copy()
    scale = _ui_scale(out.shape)
    for pred in preds:
        draw_box(out, pred, scale)
        if show_bars:
            draw_bars(out, pred, scale)
    return out


def _ui_scale(shape: tuple[int, ...]) -> float:
    """Text/line size relative to a 640-pixel-high frame (never below 0.35)."""
    return max(0.35, min(shape[:2]) / 640.0)


def caption(pred: FacePrediction) -> str:
    """``"happy 87%"`` or ``"#3 happy 87%"`` for a tracked face."""
    text = f"{pred.label} {round(100 * pred.scores[pred.label])}%"
    return text if pred.face_id is None else f"#{pred.face_id} {text}"


def draw_box(img: np.ndarray, pred: FacePrediction, scale: float) -> None:
    """Draw the box and a filled caption tag above it (below it at the top edge), in place."""
    import cv2

    color = color_rgb(pred.label)
    x, y, w, h = pred.box
    thick = max(1, round(2 * scale))
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), color, thick, cv2.LINE_AA)
    text = caption(pred)
    fscale = 0.55 * scale
    (tw, th), base = cv2.getTextSize(text, _FONT, fscale, max(1, round(scale)))
    ty = y - 4 if y - th - base - 4 >= 0 else min(y + h + th + 4, img.shape[0] - base)
    tx = min(max(x, 0), max(img.shape[1] - tw - 4, 0))
    cv2.rectangle(img, (tx, ty - th - 4), (tx + tw + 4, ty + base), color, -1)
    cv2.putText(img, text, (tx + 2, ty - 2), _FONT, fscale, _ink(color), max(1, round(scale)), cv2.LINE_AA)


def draw_bars(img: np.ndarray, pred: FacePrediction, scale: float) -> None:
    """Seven small probability bars beside the box (right side if room, else left), in place."""
    import cv2

    x, y, w, h = pred.box
    bar_h = max(4, round(8 * scale))
    gap = max(1, round(2 * scale))
    length = max(30, round(60 * scale))
    fscale = 0.32 * scale
    named = fscale >= 0.25  # below that the names are unreadable: colour-coded bars only
    label_w = cv2.getTextSize("surprise", _FONT, fscale, 1)[0][0] + 4 if named else 0
    total_w = label_w + length
    left = x + w + 4 if x + w + 4 + total_w <= img.shape[1] else x - 4 - total_w
    left = max(0, left)
    top = max(0, min(y, img.shape[0] - 7 * (bar_h + gap)))
    for i, name in enumerate(EMOTIONS):
        y0 = top + i * (bar_h + gap)
        p = float(pred.scores.get(name, 0.0))
        bx = left + label_w
        cv2.rectangle(img, (bx, y0), (bx + length, y0 + bar_h), (40, 40, 40), -1)
        if p > 0:
            cv2.rectangle(img, (bx, y0), (bx + max(1, round(length * p)), y0 + bar_h), color_rgb(name), -1)
        if named:
            cv2.putText(img, name, (left, y0 + bar_h), _FONT, fscale, (255, 255, 255), 1, cv2.LINE_AA)


def _ink(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on ``color``."""
    r, g, b = color
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a 0–1 heat map (any size; resized to the image) over a gray or RGB image, jet colours."""
    import cv2

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"heat map must be 2-D, got shape {heat.shape}")
    base = np.asarray(image)
    if base.ndim == 2 or (base.ndim == 3 and base.shape[2] == 1):
        base = np.repeat(base.reshape(base.shape[0], base.shape[1], 1), 3, axis=2)
    base = base[:, :, :3].astype(np.uint8)
    h, w = base.shape[:2]
    heat = cv2.resize(np.clip(np.nan_to_num(heat), 0.0, 1.0), (w, h), interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return cv2.addWeighted(colored, alpha, base, 1.0 - alpha, 0.0)
