"""Video collection throughput (``python -m fercore video DIR --out-dir OUT``): analysed frames/s with 1 and
2 local worker processes, and the CPU-hours per hour of 30 fps video at strides 1, 2 and 5.

The video is generated: the sample photos, each shown 2 s, scaled to 640×480 and panned a few pixels
per frame (so no two frames are alike), at 30 fps, encoded with H.264. It is cut into segments of
``--segment-seconds`` so two workers share it. Each engine is warmed first (every worker loads its
model), then timed; CPU seconds are read from the worker processes themselves (/proc), so they count the
work (decode, detect, classify, track, write) whatever else the machine runs, while frames/s (wall
clock) falls when the machine is busy: the load average is printed first. CPU-h per video-h = worker CPU
seconds / video seconds: multiply by the hours of video to size a cluster.

    python bench/video_collection.py [--seconds 12] [--segment-seconds 2] [--detector blaze]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import _root  # noqa: F401, E402 - puts the checkout on sys.path (see bench/_root.py)

FPS = 30


def write_bench_video(path: Path, seconds: float) -> int:
    """The sample photos panned slowly, ``seconds`` long at 30 fps, 640×480 H.264; returns the frame count."""
    import av
    import numpy as np
    from frames import PHOTOS, make_frame

    from fercore.inference.batch import find_images
    from fercore.inference.image import load_image

    photos = [make_frame(load_image(f)) for f in find_images([PHOTOS])]
    n = int(seconds * FPS)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(n):
            shift = (i % (2 * FPS)) // 3  # 0..19 px over each photo's 2 s
            frame = np.roll(photos[(i // (2 * FPS)) % len(photos)], shift, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return n


def _warm(spec) -> int:
    """On a worker: build (and cache) its pipeline, then linger so the next warm-up task goes elsewhere."""
    from fercore.inference.engines import worker_pipeline

    worker_pipeline(spec, stream=True)
    time.sleep(0.5)
    return os.getpid()


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the line)
    return total / os.sysconf("SC_CLK_TCK")


def main() -> int:
    from frames import PHOTOS

    from fercore.inference.collection import CollectionOptions, run_collection
    from fercore.inference.engines import LocalEngine
    from fercore.inference.pipeline import PipelineSpec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=12.0, help="video length (default 12 s = 360 frames)")
    p.add_argument("--segment-seconds", type=float, default=2.0)
    p.add_argument("--detector", default="blaze")
    p.add_argument("--model", help="default: the shipped model's int8 twin, as for every video")
    args = p.parse_args()
    if not PHOTOS.exists():
        print(f"sample photos not found at {PHOTOS} (set FER_SHARED_DATA)", file=sys.stderr)
        return 1
    spec = PipelineSpec(detector=args.detector, model=args.model)
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runs = [(1, 1), (2, 1), (1, 2), (1, 5)]  # (workers, stride)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.mp4"
        frames = write_bench_video(video, args.seconds)
        print(
            f"video: {frames} frames, 640×480 at {FPS} fps ({frames / FPS:.0f} s), segments of {args.segment_seconds} s"
        )
        print(
            f"{'workers':>7} {'stride':>6} {'analysed':>8} {'wall s':>7} {'frames/s':>8} {'CPU s':>6} {'CPU/wall':>8} "
            f"{'CPU ms/frame':>12} {'CPU-h per video-h':>17}"
        )
        engines = {w: LocalEngine(w) for w in sorted({w for w, _ in runs})}
        try:
            for workers, engine in engines.items():
                list(engine.map(_warm, [spec] * (2 * workers)))
            for k, (workers, stride) in enumerate(runs):
                engine = engines[workers]
                pids = list(engine._pool._processes)  # type: ignore[attr-defined]
                options = CollectionOptions(spec=spec, stride=stride, segment_s=args.segment_seconds)
                cpu0, t0 = _cpu_seconds(pids), time.perf_counter()
                run = run_collection([str(video)], Path(tmp) / f"out{k}", options, engine)
                wall, cpu = time.perf_counter() - t0, _cpu_seconds(pids) - cpu0
                analysed = run.summary[0]["frames_analysed"]
                assert not run.summary[0]["error"], run.summary[0]["error"]
                print(
                    f"{workers:>7} {stride:>6} {analysed:>8} {wall:>7.1f} {analysed / wall:>8.1f} {cpu:>6.1f} "
                    f"{cpu / wall:>8.2f} {1000 * cpu / analysed:>12.1f} {cpu / (frames / FPS):>17.2f}"
                )
        finally:
            for engine in engines.values():
                engine.close()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
