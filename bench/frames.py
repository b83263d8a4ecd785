"""What several benches share: where the shared photos are and how a photo becomes a camera frame."""

from __future__ import annotations

import numpy as np

from fercore.data.locations import shared_data_dir

SHARED = shared_data_dir()
PHOTOS = SHARED / "photos"
FRAME_W, FRAME_H = 640, 480


def make_frame(rgb: np.ndarray, width: int = FRAME_W, height: int = FRAME_H) -> np.ndarray:
    """The photo scaled to fit ``width``×``height`` and centred on black."""
    import cv2

    h, w = rgb.shape[:2]
    s = min(width / w, height / h)
    nw, nh = round(w * s), round(h * s)
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    frame = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    frame[y0 : y0 + nh, x0 : x0 + nw] = small
    return frame
