"""fercore.inference.collection: a collection of generated videos (one corrupt) through the CLI and both
engines: identical per-video CSVs, a summary listing the corrupt file, a driver killed mid-run and
resumed, a Ray worker killed mid-task and retried, and photo folders on Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, moving_face_frames, write_video

from fercore.inference.collection import (
    SUMMARY_COLUMNS,
    CollectionOptions,
    Segment,
    find_videos,
    output_names,
    plan_video,
    run_collection,
    run_segment,
)
from fercore.inference.pipeline import PipelineSpec

FPS = 10
LENGTHS = {"alpha": 64, "beta": 100, "gamma": 160}  # frames at 10 fps: 6.4, 10 and 16 s
SEGMENT_S = "2"  # 20 frames: every video is cut into several segments
SEGMENTS = {"alpha": 4, "beta": 5, "gamma": 8}
OPTIONS = CollectionOptions(spec=PipelineSpec(), stride=1, segment_s=2.0)


def cli(*args: str | Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fercore", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def collection_args(videos: Path, out: Path, *extra: str) -> list[str | Path]:
    return ["video", videos, "--out-dir", out, "--segment-seconds", SEGMENT_S, *extra]


@pytest.fixture(scope="module")
def videos(tmp_path_factory, photos_dir) -> Path:
    """Three short videos of a face sliding across (pasted from the sample photos) and a corrupt file."""
    folder = tmp_path_factory.mktemp("collection")
    for name, n in LENGTHS.items():
        write_video(folder / f"{name}.mp4", moving_face_frames(n), fps=FPS)
    noise = np.random.default_rng(0).integers(0, 256, 30_000, dtype=np.uint8)
    (folder / "corrupt.mp4").write_bytes(noise.tobytes())
    return folder


@pytest.fixture(scope="module")
def reference(videos, tmp_path_factory) -> Path:
    """The collection analysed once with the local engine (2 processes): what every other run must equal."""
    out = tmp_path_factory.mktemp("ref")
    proc = cli(*collection_args(videos, out, "--engine", "local", "--workers", "2"))
    assert proc.returncode == 1, proc.stderr  # one video could not be read: listed, not fatal
    assert "corrupt.mp4" in proc.stderr and "1 of 4 videos could not be read" in proc.stderr
    return out


def assert_same_outputs(out: Path, reference: Path) -> None:
    for name in LENGTHS:
        got, want = (out / f"{name}.csv").read_bytes(), (reference / f"{name}.csv").read_bytes()
        assert got == want, f"{name}.csv differs"
    assert (out / "summary.csv").read_bytes() == (reference / "summary.csv").read_bytes()


def assert_complete(out: Path) -> None:
    """Every frame of every video analysed once: no frame missing, none twice (one face per frame)."""
    for name, n in LENGTHS.items():
        table = pd.read_csv(out / f"{name}.csv")
        assert table["frame"].is_unique, f"{name}: duplicated rows"
        assert len(table) >= 0.9 * n, f"{name}: {len(table)} rows for {n} frames"
        assert set(table["frame"]) <= set(range(n))


# ------------------------------------------------------------------------------------- fast units


def test_find_videos_takes_files_folders_and_globs(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for rel in ("a/x.mp4", "a/deep/y.MOV", "a/notes.txt", "b.mkv", "c.avi"):
        (tmp_path / rel).write_bytes(b"")
    found = find_videos([tmp_path / "a", str(tmp_path / "*.mkv"), tmp_path / "c.avi", tmp_path / "a" / "x.mp4"])
    assert [Path(f).relative_to(tmp_path).as_posix() for f in found] == ["a/x.mp4", "a/deep/y.MOV", "b.mkv", "c.avi"]
    assert find_videos([str(tmp_path / "*.webm")]) == [str(tmp_path / "*.webm")]  # reported as missing, not dropped


def test_output_names_are_unique():
    assert output_names(["d1/a.mp4", "d2/a.mp4", "b.mp4"])[2] == "b"
    first, second, _ = output_names(["d1/a.mp4", "d2/a.mp4", "b.mp4"])
    assert first != second and first.startswith("a-") and second.startswith("a-")


def test_segments_cover_the_video_once_and_keep_the_stride(tmp_path, photos_dir):
    src = tmp_path / "v.mp4"
    write_video(src, moving_face_frames(50), fps=FPS)
    plan = plan_video(str(src), "v", tmp_path, CollectionOptions(stride=3, segment_s=1.0))
    assert plan.error is None and plan.expected == 50
    assert [(s.start, s.end) for s in plan.segments] == [(0, 12), (12, 24), (24, 36), (36, 48), (48, None)]
    bad = plan_video(str(tmp_path / "nope.mp4"), "nope", tmp_path, OPTIONS)
    assert bad.segments == [] and "no such file" in (bad.error or "")


def test_a_segment_decodes_exactly_its_frames(tmp_path, photos_dir):
    """Seeking into the middle: segment k holds frames [start, end) and nothing else."""
    src = tmp_path / "v.mp4"
    write_video(src, moving_face_frames(45), fps=FPS)
    plan = plan_video(str(src), "v", tmp_path, CollectionOptions(segment_s=1.5))
    frames = []
    for seg in plan.segments:
        meta = run_segment(seg)
        assert meta["recorded"] and meta["error"] is None
        rows = json.loads(seg.path.read_text())["rows"]
        frames += [r[0] for r in rows]
        assert meta["frames"] == (seg.end or 45) - seg.start
    assert frames == sorted(frames) and len(frames) == len(set(frames)) >= 40


def test_cli_usage_errors(tmp_path):
    proc = cli("video", tmp_path / "a.mp4", tmp_path / "b.mp4", "--out", tmp_path / "o.mp4")
    assert proc.returncode == 1 and "--out-dir" in proc.stderr
    proc = cli("video", tmp_path / "a.mp4", "--out", tmp_path / "o.mp4", "--out-dir", tmp_path)
    assert proc.returncode == 2  # mutually exclusive
    proc = cli("video", tmp_path, "--out-dir", tmp_path / "out", "--engine", "local", "--address", "auto")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1


class HereEngine:
    """Runs the tasks in this process, one after the other (fast tests: no worker to start)."""

    workers = 1

    def map(self, fn, tasks):
        return ((task, fn(task)) for task in tasks)

    def close(self) -> None:
        pass


def test_annotated_parts_join_into_one_video(tmp_path, photos_dir):
    import av

    src = tmp_path / "in" / "v.mp4"
    src.parent.mkdir()
    write_video(src, moving_face_frames(45), fps=FPS)
    plain = run_collection([str(src)], tmp_path / "plain", CollectionOptions(segment_s=1.5), HereEngine())
    options = CollectionOptions(segment_s=1.5, annotate=True, stride=2)
    run = run_collection([str(src)], tmp_path / "out", options, HereEngine())
    assert run.summary[0]["frames"] == 45 and run.summary[0]["frames_analysed"] == 23
    with av.open(str(tmp_path / "out" / "v.annotated.mp4")) as c:
        times = [f.time for f in c.decode(video=0)]
    assert len(times) == 45 and times == sorted(times) and times[-1] == pytest.approx(4.4, abs=0.01)
    table = pd.read_csv(tmp_path / "out" / "v.csv")
    assert set(table["frame"]) <= set(range(0, 45, 2)) and len(table) >= 20
    assert plain.summary[0]["frames_analysed"] == 45
    assert list((tmp_path / "out" / ".parts" / "v").iterdir()) == [tmp_path / "out" / ".parts" / "v" / "result.json"]


def test_truncated_and_replaced_videos(tmp_path, photos_dir):
    src = tmp_path / "v.mp4"
    write_video(src, moving_face_frames(60), fps=FPS, codec="libx264", faststart=True)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])  # the index and half the frames
    run = run_collection([str(src)], tmp_path / "out", CollectionOptions(segment_s=2.0), HereEngine())
    row = run.summary[0]
    assert 0 < row["frames"] < 60 and "60" in row["error"] and not run.failed  # listed with a reason, kept
    assert len(pd.read_csv(tmp_path / "out" / "v.csv")) <= row["frames"]

    src.write_bytes(data)  # the complete file replaces it: analysed again, not taken as finished
    run = run_collection([str(src)], tmp_path / "out", CollectionOptions(segment_s=2.0), HereEngine())
    assert run.skipped == 0 and run.summary[0]["frames"] == 60 and run.summary[0]["error"] == ""


# ------------------------------------------------------------------------------ the collection


@pytest.mark.slow
@pytest.mark.data
def test_local_collection_resumes_nothing_twice(videos, reference, tmp_path):
    summary = pd.read_csv(reference / "summary.csv", keep_default_na=False)
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert [Path(v).name for v in summary["video"]] == ["alpha.mp4", "beta.mp4", "corrupt.mp4", "gamma.mp4"]
    bad = summary.set_index(summary["video"].map(lambda v: Path(v).name)).loc["corrupt.mp4"]
    assert bad["frames"] == 0 and "not a readable video" in bad["error"]
    good = summary[summary["error"] == ""]
    assert list(good["frames"]) == [64, 100, 160] and list(good["frames_analysed"]) == [64, 100, 160]
    assert (good["tracks"] >= 1).all() and np.allclose(
        good[[c for c in SUMMARY_COLUMNS if "share_" in c]].sum(axis=1), 1
    )
    assert json.loads((reference / "summary.json").read_text())[0]["video"].endswith("alpha.mp4")
    assert_complete(reference)
    # track ids are per video and unique: one new id per segment edge the face crosses, at most
    gamma = pd.read_csv(reference / "gamma.csv")
    assert gamma["face_id"].min() == 1 and gamma.groupby("face_id")["frame"].min().is_monotonic_increasing

    # a second run skips every finished video and rewrites nothing
    per_video = [reference / f"{name}.csv" for name in LENGTHS]
    stamps = [p.stat().st_mtime_ns for p in per_video]
    proc = cli(*collection_args(videos, reference))
    assert "0 analysed now (0 segments), 3 skipped" in proc.stdout
    assert [p.stat().st_mtime_ns for p in per_video] == stamps


@pytest.mark.slow
@pytest.mark.data
def test_driver_killed_mid_collection_then_resumed(videos, reference, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fercore", *map(str, collection_args(videos, out, "--workers", "1"))]
    driver = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob(".parts/*/seg-*.json")):
            assert driver.poll() is None and time.monotonic() < deadline, "the run ended before a segment was done"
            time.sleep(0.02)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert not (out / "summary.csv").exists(), "killed too late: the collection had finished"
    time.sleep(1.5)  # the pool worker notices its driver is gone and exits
    unfinished = [n for n in LENGTHS if not (out / ".parts" / n / "result.json").exists()]
    kept = [p for n in unfinished for p in (out / ".parts" / n).glob("seg-*.json")]
    assert kept and unfinished, "nothing to resume from"

    proc = cli(*collection_args(videos, out, "--workers", "2"))
    assert proc.returncode == 1 and "corrupt.mp4" in proc.stderr
    assert_complete(out)
    assert_same_outputs(out, reference)
    todo = sum(SEGMENTS[n] for n in unfinished) - len(kept)
    assert f"{len(unfinished)} analysed now ({todo} segments)" in proc.stdout, "finished segments were redone"


# ------------------------------------------------------------------------------------------ Ray


class CrashOnce:
    """A segment task whose worker process dies (``os._exit``) the first time it runs segment 1 of a
    video: Ray must retry it on a fresh worker. The marker file remembers the first attempt."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __call__(self, task: Segment) -> dict:
        if task.index == 1 and not self.marker.exists():
            self.marker.touch()
            os._exit(1)
        return run_segment(task)


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray is the optional scale extra: pip install -r requirements-scale.txt")
    from fercore.inference.engines import ray_runtime_env

    env = ray_runtime_env()
    tests = str(Path(__file__).resolve().parent)  # workers unpickle CrashOnce from this module
    env["env_vars"]["PYTHONPATH"] = os.pathsep.join([env["env_vars"]["PYTHONPATH"], tests])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=env, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.data
def test_ray_engine_gives_the_local_engines_outputs(videos, reference, ray_local, tmp_path):
    from fercore.inference.engines import RayEngine

    out = tmp_path / "ray"
    run = run_collection(find_videos([videos]), out, OPTIONS, RayEngine())
    assert [row["error"] == "" for row in run.summary] == [True, True, False, True]
    assert_same_outputs(out, reference)


@pytest.mark.slow
@pytest.mark.data
def test_a_worker_killed_mid_task_is_retried(videos, reference, ray_local, tmp_path):
    from fercore.inference.engines import RayEngine

    marker = tmp_path / "crashed-once"
    out = tmp_path / "ray"
    run_collection(find_videos([videos]), out, OPTIONS, RayEngine(), analyse=CrashOnce(marker))
    assert marker.exists(), "no worker was killed: the test did not test anything"
    assert_complete(out)
    assert_same_outputs(out, reference)


@pytest.mark.slow
@pytest.mark.data
def test_photo_folder_on_ray_equals_threads_here(photos_dir, ray_local):
    from fercore.inference.batch import find_images, predict_images, predict_on_engine
    from fercore.inference.engines import RayEngine

    files = find_images([photos_dir]) + [str(photos_dir / "missing.jpg")]
    spec = PipelineSpec()
    here = [r.to_dict() for r in predict_images(spec.build(), ((f, f) for f in files))]
    there = [r.to_dict() for r in predict_on_engine(RayEngine(), spec, files, chunk=2)]
    assert there == here and "error" in there[-1] and sum(len(r.get("faces", [])) for r in there) >= 4


@pytest.mark.slow
@pytest.mark.data
def test_cli_predict_csv_on_ray_equals_local(photos_dir, tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional scale extra: pip install -r requirements-scale.txt")
    here, there = tmp_path / "here.csv", tmp_path / "there.csv"
    assert cli("predict", photos_dir, "--csv", here).returncode == 0
    proc = cli("predict", photos_dir, "--csv", there, "--engine", "ray", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert there.read_bytes() == here.read_bytes() and len(pd.read_csv(there)) >= 4


def pipeline_of_this_worker(_: int) -> tuple[int, int]:
    from fercore.inference.engines import worker_pipeline

    return os.getpid(), id(worker_pipeline(PipelineSpec(), stream=True))


@pytest.mark.slow
def test_each_ray_worker_builds_its_pipeline_once(ray_local):
    from fercore.inference.engines import RayEngine

    seen = [result for _, result in RayEngine().map(pipeline_of_this_worker, range(8))]
    by_worker: dict[int, set[int]] = {}
    for pid, pipeline in seen:
        by_worker.setdefault(pid, set()).add(pipeline)
    assert len(seen) == 8 and all(len(ids) == 1 for ids in by_worker.values())
    assert len(by_worker) < 8  # workers are reused across tasks
