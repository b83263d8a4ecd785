"""fercore.inference.live: one webcam session — its pipeline, the hand-over queue, recording and ICE settings."""

from __future__ import annotations

import io

import numpy as np
import pytest

from fercore.inference.classify import EmotionClassifier
from fercore.inference.live import STATS_ENV, FrameLog, LiveHistory, LiveSession, Recording, parse_ice_servers
from fercore.types import Box, FacePrediction
from tests.conftest import FixedBackend


def _face(face_id: int) -> FacePrediction:
    probs = np.array([0.1, 0.0, 0.0, 0.7, 0.1, 0.0, 0.1])
    pred = FacePrediction.from_probs(Box(10, 20, 30, 30), probs, np.zeros((48, 48), np.uint8))
    pred.face_id = face_id
    return pred


def test_a_recording_keeps_a_row_per_face_per_frame_and_a_timed_video():
    import av

    rec = Recording(max_seconds=10)
    frame = np.zeros((120, 160, 3), np.uint8)
    for i in range(50):  # 50 frames over 4.9 s: 10 fps, two faces each
        frame[:] = i * 5
        rec.add(frame, [_face(1), _face(2)], now=1000.0 + i * 0.1)
    folder = rec.folder
    result = rec.finish()
    assert not folder.exists()  # nothing stays on disk
    assert len(result.table) == 100 and result.frames == 50
    assert list(result.table["face_id"].unique()) == [1, 2]
    assert result.table["raw_happy"].iloc[0] == pytest.approx(0.7)
    with av.open(io.BytesIO(result.mp4)) as video:
        assert video.duration / 1e6 == pytest.approx(4.9, abs=0.25)  # as long as the recording, not 50/30 s
    summary = result.summary()
    assert summary.set_index("face_id").loc[1, "happy"] == pytest.approx(1.0)
    assert result.csv().startswith(b"frame,time_s,face_id") and b'"rows"' in result.json()


def test_a_recording_stops_at_its_limit_and_a_dropped_one_leaves_nothing():
    rec = Recording(max_seconds=1.0)
    for i in range(30):
        rec.add(np.zeros((48, 64, 3), np.uint8), [_face(1)], now=i * 0.1)
    assert rec.full and rec.frames == 11  # 0.0 … 1.0 s
    folder = rec.folder
    rec.discard()
    assert not folder.exists()
    with pytest.raises(ValueError, match="recording lasts"):
        Recording(max_seconds=10_000)


def test_session_runs_frames_through_its_pipeline_and_publishes_results():
    live = LiveSession(EmotionClassifier(backend=FixedBackend()), "haar")
    frame = np.zeros((240, 320, 3), np.uint8)
    live.start_recording(5)
    out = [live.process(frame) for _ in range(3)]
    assert all(o.shape == frame.shape for o in out) and live.frames == 3
    assert len(live.drain()) == 3 and live.drain() == []
    result = live.stop_recording()
    assert result is not None and result.frames == 3 and live.recording is None
    assert live.stop_recording() is None
    live.use_detector("blaze")
    assert live.detector_name == "blaze"


def test_each_session_logs_its_frames_to_a_file_of_its_own_only_when_asked(tmp_path, monkeypatch):
    frame = np.zeros((240, 320, 3), np.uint8)
    monkeypatch.delenv(STATS_ENV, raising=False)
    quiet = LiveSession(EmotionClassifier(backend=FixedBackend()), "haar")
    quiet.process(frame)
    assert quiet.frame_log is None

    monkeypatch.setenv(STATS_ENV, str(tmp_path / "stats"))
    a = LiveSession(EmotionClassifier(backend=FixedBackend()), "haar")
    b = LiveSession(EmotionClassifier(backend=FixedBackend()), "haar")
    for _ in range(4):
        a.process(frame)
    b.process(frame)
    assert a.frame_log is not None and b.frame_log is not None
    assert sorted(p.name for p in (tmp_path / "stats").iterdir()) == sorted(
        [a.frame_log.path.name, b.frame_log.path.name]
    )
    rows = FrameLog.read(a.frame_log.path)
    published = a.drain()
    assert rows.shape == (4, 3) and len(FrameLog.read(b.frame_log.path)) == 1
    # the same time and latency the page gets, and the face count (none on a blank frame)
    assert rows[:, 0] == pytest.approx([t for t, _, _ in published], abs=1e-5)
    assert rows[:, 1] == pytest.approx([lat for _, lat, _ in published], abs=1e-5)
    assert (rows[:, 1] > 0).all() and (np.diff(rows[:, 0]) >= 0).all() and (rows[:, 2] == 0).all()


def test_a_frame_log_reader_skips_a_half_written_line(tmp_path):
    log = FrameLog(tmp_path)
    log.add(10.0, 0.02, 1)
    log.add(10.1, 0.03, 2)
    with open(log.path, "a") as fh:
        fh.write("10.2\t0.0")  # the writer was mid-line
    assert FrameLog.read(log.path).tolist() == [[10.0, 0.02, 1.0], [10.1, 0.03, 2.0]]


def test_an_empty_recording_says_why_and_the_session_knows_when_frames_flow():
    live = LiveSession(EmotionClassifier(backend=FixedBackend()), "haar")
    assert not live.streaming()
    live.start_recording(5)
    never = live.stop_recording()  # no frame ever: the camera was not started
    assert never is not None and never.frames == 0 and not never.camera_started
    assert "camera never started" in never.empty_reason()
    frame = np.zeros((240, 320, 3), np.uint8)  # no face in it
    live.process(frame)
    assert live.streaming() and not live.streaming(now=live.last_frame_at + 10)
    live.start_recording(5)
    stalled = live.stop_recording()  # the camera ran before, but no frame came while recording
    assert stalled.camera_started and "no frame arrived" in stalled.empty_reason()
    live.start_recording(5)
    live.process(frame)
    live.process(frame)
    faceless = live.stop_recording()
    assert faceless.frames == 2 and faceless.table.empty and faceless.mp4
    assert faceless.empty_reason() == "no face was seen in the 2 recorded frames"
    rec = Recording(5)
    rec.add(frame, [_face(1)], now=0.0)
    assert rec.finish().empty_reason() is None


def test_ice_servers_and_history():
    assert parse_ice_servers("") == []
    assert parse_ice_servers('[{"urls": ["stun:x:3478"]}]') == [{"urls": ["stun:x:3478"]}]
    for bad in ("{", '{"urls": 1}', "[1]"):
        with pytest.raises(ValueError):
            parse_ice_servers(bad)
    hist = LiveHistory(seconds=20)
    faces = [_face(3).to_dict()]
    hist.extend([(100.0 + i * 0.1, 0.005, faces) for i in range(31)], now=103.0)
    stats = hist.stats(now=103.0)
    assert stats["fps"] == pytest.approx(10.0) and stats["latency_ms"] == pytest.approx(5.0)
    assert stats["faces"][0]["face_id"] == 3
    assert len(hist.table(now=103.0)) == 31 * 7
    hist.extend([], now=200.0)
    assert hist.items == []
