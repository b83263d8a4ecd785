"""fercore.inference.highlights: the rows it picks from a per-face video table, and the frames it crops them from
(decode order, as in process_video's table)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import moving_face_frames, write_video

from fercore.inference.highlights import pick_moments, read_frames, thumbnail, video_highlights
from fercore.inference.video import TABLE_COLUMNS
from fercore.labels import EMOTIONS
from fercore.types import Box, VideoError


def table_of(rows: list[dict]) -> pd.DataFrame:
    base = {"x": 10, "y": 10, "w": 20, "h": 20, "label": "neutral", **dict.fromkeys(EMOTIONS, 0.0)}
    return pd.DataFrame([{**base, **r} for r in rows], columns=TABLE_COLUMNS)


def test_pick_moments_per_face_per_emotion_peak():
    rows = [
        {"frame": 0, "time_s": 0.0, "face_id": 1, "happy": 0.2, "neutral": 0.8},
        {"frame": 1, "time_s": 0.1, "face_id": 1, "happy": 0.9, "neutral": 0.1, "x": 30},
        {"frame": 2, "time_s": 0.2, "face_id": 1, "happy": 0.9, "neutral": 0.1},  # a tie: the earlier wins
        {"frame": 1, "time_s": 0.1, "face_id": 2, "sad": 0.7, "neutral": 0.3},
        {"frame": 2, "time_s": 0.2, "face_id": None, "angry": 1.0},  # untracked rows are ignored
    ]
    moments = pick_moments(table_of(rows), min_probability=0.25)
    got = [(m.face_id, m.emotion, m.frame, m.probability) for m in moments]
    assert got == [(1, "happy", 1, 0.9), (1, "neutral", 0, 0.8), (2, "sad", 1, 0.7), (2, "neutral", 1, 0.3)]
    assert moments[0].box == Box(30, 10, 20, 20) and moments[0].caption() == "happy 90% · 0:00.1"
    assert len(pick_moments(table_of(rows))) == 14  # every emotion of both faces without a floor
    assert {m.face_id for m in pick_moments(table_of(rows), max_faces=1)} == {1}  # the most seen face
    assert pick_moments(table_of([])) == []
    with pytest.raises(ValueError, match="missing columns"):
        pick_moments(pd.DataFrame({"frame": [0]}))


def coloured_frames(n: int, size: int = 64) -> list[np.ndarray]:
    """Frame i is flat gray at level 10·i: a crop tells which frame it came from."""
    return [np.full((size, size, 3), 10 * i + 20, np.uint8) for i in range(n)]


def test_read_frames_and_highlights_come_from_the_right_frames(tmp_path):
    video = tmp_path / "v.mp4"
    write_video(video, coloured_frames(20))
    got = dict(read_frames(video, {3, 17}))
    assert set(got) == {3, 17}
    assert abs(float(got[3].mean()) - 50) < 4 and abs(float(got[17].mean()) - 190) < 4
    rows = [{"frame": i, "time_s": i / 10, "face_id": 1, "happy": i / 20, "sad": (20 - i) / 20} for i in range(20)]
    seen = []
    moments = video_highlights(table_of(rows), video, size=32, progress=seen.append)
    by = {m.emotion: m for m in moments if m.probability > 0}
    assert by["happy"].frame == 19 and by["sad"].frame == 0
    assert by["happy"].image.shape == (32, 32, 3) and abs(float(by["happy"].image.mean()) - 210) < 5
    assert abs(float(by["sad"].image.mean()) - 20) < 5
    assert seen[-1] == 1.0

    def cancel(fraction):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        video_highlights(table_of(rows), video, progress=cancel)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 2000)
    with pytest.raises(VideoError, match="bad.mp4"):
        video_highlights(table_of(rows), bad)


def test_crop_face_pads_squares_and_clips():
    rgb = np.zeros((100, 200, 3), np.uint8)
    rgb[40:60, 90:110] = 255
    crop = thumbnail(rgb, Box(90, 40, 20, 20), pad=0.5, size=40)
    assert crop.shape == (40, 40, 3) and crop[20, 20].tolist() == [255, 255, 255] and crop[2, 2].tolist() == [0, 0, 0]
    assert thumbnail(rgb, Box(190, 90, 30, 30)).shape == (128, 128, 3)  # over the edge: clipped, then resized
    assert not thumbnail(rgb, Box(500, 500, 10, 10)).any()  # outside: a black tile


@pytest.mark.data
def test_highlights_of_a_processed_video_match_its_input_frames(tmp_path, photos_dir, shipped_classifier):
    """The rows of process_video's table index the input's frames: a crop from the input video at a
    highlight equals the same crop of the frame that was written into it."""
    from fercore.inference.pipeline import FramePipeline
    from fercore.inference.video import process_video

    frames = moving_face_frames(16)
    src = tmp_path / "in.mp4"
    write_video(src, frames)
    pipe = FramePipeline("blaze", shipped_classifier, tracker=True, draw=True)
    result = process_video(src, tmp_path / "out.mp4", pipeline=pipe, stride=2)
    moments = video_highlights(result.table, src, min_probability=0.0)
    assert moments and {m.frame % 2 for m in moments} == {0}
    for m in moments:
        expected = thumbnail(frames[m.frame], m.box)
        assert np.abs(m.image.astype(int) - expected.astype(int)).mean() < 12, (m.frame, m.emotion)
    assert Path(result.out_path).exists()
