"""fercore.inference.video: annotated H.264 MP4 + per-face table from a generated video; corrupt inputs."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from conftest import moving_face_frames, write_video

from fercore.inference.pipeline import FramePipeline
from fercore.inference.video import TABLE_COLUMNS, process_video
from fercore.labels import EMOTIONS
from fercore.types import VideoError

W, H, FPS = 320, 240, 10
FACE_IN_TILE = (46, 39, 57)  # the face's box (x, y, side) inside the 150×150 tile, approximately


@pytest.fixture
def pipeline(fixed_classifier) -> FramePipeline:
    """Haar (stream variant: follows faces between full scans), a tracker and drawing, fake model."""
    return FramePipeline("haar", fixed_classifier, tracker=True, draw=True, stream=True)


def count_frames(path: Path) -> tuple[int, av.video.stream.VideoStream]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        n = sum(1 for _ in c.decode(stream))
        return n, stream


@pytest.mark.data
@pytest.mark.slow
def test_ten_second_video_keeps_frames_rows_and_one_id(tmp_path, photos_dir, pipeline):
    n = 10 * FPS
    src = tmp_path / "in.mp4"
    write_video(src, moving_face_frames(n))
    fractions: list[float] = []
    result = process_video(
        src, tmp_path / "out" / "annotated.mp4", tmp_path / "faces.csv", pipeline=pipeline, progress=fractions.append
    )

    # the video: same frame count, H.264 in yuv420p, even size, same rate
    assert result.frames == n and result.analysed == n
    frames, stream = count_frames(result.out_path)
    assert frames == n
    assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert (stream.width, stream.height) == (W, H)
    assert result.fps == pytest.approx(FPS)

    # the table: one row per face per frame, one face id throughout, boxes following the face
    table = pd.read_csv(result.csv_path)
    assert list(table.columns) == TABLE_COLUMNS
    assert table["frame"].is_unique  # never two faces in one frame
    assert len(table) >= 0.9 * n
    assert table["face_id"].nunique() == 1
    assert np.allclose(table[list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-3)
    assert table["time_s"].iloc[-1] == pytest.approx(table["frame"].iloc[-1] / FPS, abs=1e-3)
    true_x = table["frame"] * (W - 150) / (n - 1) + FACE_IN_TILE[0]
    centre_x = table["x"] + table["w"] / 2
    assert np.abs(centre_x - (true_x + FACE_IN_TILE[2] / 2)).max() < 20
    assert np.corrcoef(table["frame"], table["x"])[0, 1] > 0.99
    assert result.table.shape == table.shape

    # progress: increasing, ends at 1
    assert fractions[-1] == 1.0 and fractions == sorted(fractions) and len(fractions) >= n


@pytest.mark.data
def test_stride_odd_size_and_max_frames(tmp_path, photos_dir, pipeline):
    src = tmp_path / "odd.mp4"
    write_video(src, moving_face_frames(12, width=322, height=242), codec="libx264")
    result = process_video(src, tmp_path / "o.mp4", pipeline=pipeline, stride=3, max_frames=10)
    assert result.frames == 10 and result.analysed == 4  # frames 0, 3, 6, 9
    assert set(result.table["frame"]) <= {0, 3, 6, 9}
    assert result.csv_path is None
    frames, stream = count_frames(result.out_path)
    assert frames == 10 and stream.width % 2 == 0 and stream.height % 2 == 0


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("empty.mp4", b"", "empty"),
        ("noise.mp4", bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8)), "not a readable video"),
        ("notes.mp4", b"just some text, not a video\n" * 50, "not a readable video"),
    ],
)
def test_corrupt_video_is_a_one_line_error(tmp_path, pipeline, name, content, words):
    src = tmp_path / name
    src.write_bytes(content)
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoError) as e:
        process_video(src, out, pipeline=pipeline)
    msg = str(e.value)
    assert "\n" not in msg and name in msg and words in msg
    assert not out.exists()


def test_missing_video_and_still_image(tmp_path, pipeline):
    with pytest.raises(VideoError, match="no such file"):
        process_video(tmp_path / "nope.mp4", tmp_path / "o.mp4", pipeline=pipeline)
    with pytest.raises(ValueError, match="stride"):
        process_video(tmp_path / "nope.mp4", tmp_path / "o.mp4", pipeline=pipeline, stride=0)


def test_truncated_video_gives_a_partial_result_or_a_one_line_error(tmp_path, pipeline):
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(30)]
    good = tmp_path / "good.mp4"
    write_video(good, frames, codec="libx264", faststart=True)
    data = good.read_bytes()
    head = tmp_path / "head.mp4"
    head.write_bytes(data[:1000])  # the header and no frames
    with pytest.raises(VideoError) as e:
        process_video(head, tmp_path / "o1.mp4", pipeline=pipeline)
    assert "\n" not in str(e.value) and "head.mp4" in str(e.value)
    part = tmp_path / "part.mp4"
    part.write_bytes(data[: 2 * len(data) // 3])
    result = process_video(part, tmp_path / "o2.mp4", pipeline=pipeline)
    assert 5 <= result.frames < 30
    assert count_frames(result.out_path)[0] == result.frames
    assert "of 30 frames" in result.warning


@pytest.mark.data
def test_the_pipeline_is_reset_for_every_video_and_its_detector_follows_faces(tmp_path, photos_dir, pipeline):
    src = tmp_path / "in.mp4"
    write_video(src, moving_face_frames(15))
    first = process_video(src, tmp_path / "a.mp4", pipeline=pipeline)
    scans = pipeline.detector.full_scans
    assert scans < first.frames  # the stream detector followed the face between full scans
    second = process_video(src, tmp_path / "b.mp4", pipeline=pipeline)
    assert set(first.table["face_id"]) == set(second.table["face_id"]) == {1}  # tracks start afresh
    assert pipeline.detector.full_scans - scans == scans  # and so does the following


def test_cancelling_through_progress_removes_the_partial_output(tmp_path, pipeline):
    frames = [np.full((96, 128, 3), 90, np.uint8) for _ in range(20)]
    src = tmp_path / "in.mp4"
    write_video(src, frames)
    out = tmp_path / "out.mp4"

    class Cancelled(Exception):
        pass

    def progress(fraction: float) -> None:
        if fraction > 0.3:
            raise Cancelled

    with pytest.raises(Cancelled):
        process_video(src, out, pipeline=pipeline, progress=progress)
    assert not out.exists()


def test_bad_arguments(tmp_path, pipeline):
    src = tmp_path / "in.mp4"
    write_video(src, [np.zeros((64, 64, 3), np.uint8)] * 3)
    with pytest.raises(ValueError, match="max_frames"):
        process_video(src, tmp_path / "o.mp4", pipeline=pipeline, max_frames=0)
    with pytest.raises(VideoError, match="overwrite the input"):
        process_video(src, src, pipeline=pipeline)
    with pytest.raises(VideoError, match="directory"):
        process_video(tmp_path, tmp_path / "o.mp4", pipeline=pipeline)
