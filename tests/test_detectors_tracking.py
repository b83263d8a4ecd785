"""fercore.inference.detectors.tracking: Haar for live streams — follow known faces, scan the whole
frame now and then."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import face_tile, load_photo

from fercore.inference.detectors.haar import HaarDetector
from fercore.inference.detectors.tracking import TrackingDetector
from fercore.types import DetectorError


def _fine_haar() -> HaarDetector:
    """Haar with finer size steps than the default (1.25): it finds the astronaut's 56-px face in
    these frames on every frame, which the default's size steps happen to skip, so the tests below
    measure the following, not the full scan's luck at one face size."""
    return HaarDetector(scale_factor=1.2)


def _moving_faces(n: int, second_from: int | None = None) -> list[np.ndarray]:
    """320×240 frames: the astronaut's head sliding right; optionally Grace Hopper's from frame N."""
    ast = face_tile(150)
    grace = cv2.resize(load_photo("grace_hopper.jpg")[60:360, 110:410], (110, 110), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        frame = np.full((240, 320, 3), 90, np.uint8)
        x = i
        frame[10:160, x : x + 150] = ast
        if second_from is not None and i >= second_from:
            frame[125:235, 205:315] = grace
        frames.append(frame)
    return frames


@pytest.mark.data
def test_tracking_detector_follows_faces_with_few_full_scans(photos_dir):
    frames = _moving_faces(40)
    full = _fine_haar()
    tracked = TrackingDetector(_fine_haar(), full_every=5)
    hits_full = hits_tracked = 0
    for i, f in enumerate(frames):
        a, b = full.detect(f), tracked.detect(f)
        hits_full += len(a) == 1
        hits_tracked += len(b) == 1
        if a and b:
            assert a[0].iou(b[0]) > 0.6
        if b:  # the box sits on the moving face
            centre_x = b[0].x + b[0].w / 2
            assert abs(centre_x - (i + 74)) < 20
    assert hits_tracked >= hits_full and hits_tracked >= 36
    assert tracked.full_scans <= 40 // 5 + 3


@pytest.mark.data
def test_tracking_detector_finds_a_new_face_within_full_every_frames(photos_dir):
    frames = _moving_faces(30, second_from=12)
    det = TrackingDetector(_fine_haar(), full_every=5)
    counts = [len(det.detect(f)) for f in frames]
    assert counts[:12].count(1) >= 10
    assert 2 in counts[12 : 12 + 5 + 1]  # picked up at the next full scan
    assert counts[-5:].count(2) >= 4
    scans = det.full_scans
    det.reset()
    det.detect(frames[0])
    assert det.full_scans == scans + 1
    # the face leaves: the follow fails, a full scan confirms nothing is there
    assert det.detect(np.full((240, 320, 3), 90, np.uint8)) == []


def test_bad_parameters():
    with pytest.raises(DetectorError, match="full_every"):
        TrackingDetector(full_every=0)


def test_tracking_detector_scans_faceless_streams_only_every_full_every_frames():
    det = TrackingDetector(full_every=4)
    blank = np.full((240, 320, 3), 90, np.uint8)
    assert all(det.detect(blank) == [] for _ in range(12))
    assert det.full_scans == 3
    assert "full_every=4" in repr(det)


def test_full_every_1_scans_every_frame():
    det = TrackingDetector(full_every=1)
    blank = np.full((120, 160), 90, np.uint8)
    for _ in range(5):
        det.detect_gray(blank)
    assert det.full_scans == 5
