"""End-to-end latency per 640×480 frame: detect + crop + classify (decoding excluded).

Frames are made from ../shared/data/photos: astronaut, grace_hopper and messi5 (one face each)
and t1 (six faces), each scaled to fit 640×480 and centred on black. Per detector it prints:

* single frame — a stateless ``FramePipeline`` on each frame on its own (photos, uploads, the CLI):
  p50/p95 wall-clock ms (OpenCV's tick counter), CPU ms of this process (all threads) and the
  detect/classify split, for the one-face frames and the six-face frame;
* stream — the same detector inside a ``TrackingDetector`` (whole-frame scan every 5th frame,
  known faces followed in between) on steady streams of the same frames (webcam, video);
  Haar only: the tracker follows faces with Haar;
* faces found per bench frame and per full photo (as ``FramePipeline.predict`` sees it).

``--legacy`` adds ``haar-legacy``, the Haar settings before the relative minimum face size
(``min_face=0, max_side=320, scale_factor=1.2, min_neighbors=5``), for a before/after in one run.
When the ``fer`` package is importable the same frames go through ``fer.FER().detect_emotions``.

    python bench/frame_latency.py [--detectors blaze,haar,mtcnn] [--legacy] [--repeat 60] [--model fast,accurate|PATH]
                                  [--cv-threads N] [--min-faces 0.15,0.05]

The classifier is ``--model`` (a tier such as ``accurate``, or a file; several, comma-separated, are
timed in turn in one run), else ``$FER_MODEL``, else the fast tier (models/model.tflite). Wall-clock figures
depend on what else runs on the machine (note the load average printed first); the CPU figure
shows the work done.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _root  # noqa: F401, E402 - puts the checkout on sys.path (see bench/_root.py)

from bench.frames import FRAME_H, FRAME_W, PHOTOS, make_frame  # noqa: E402

ONE_FACE = ("astronaut.png", "grace_hopper.jpg", "messi5.jpg")
SIX_FACES = "t1.jpg"
LEGACY_HAAR = {"min_face": 0.0, "max_side": 320, "scale_factor": 1.2, "min_neighbors": 5}
STREAM_FULL_EVERY = 5


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


class Clock:
    """Wall-clock ms from OpenCV's tick counter, CPU ms of this process (all threads)."""

    def __init__(self):
        import cv2

        self._ticks, self._freq = cv2.getTickCount, cv2.getTickFrequency() / 1000.0

    def __enter__(self) -> Clock:
        self._c0, self._t0 = time.process_time(), self._ticks()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = (self._ticks() - self._t0) / self._freq
        self.cpu = (time.process_time() - self._c0) * 1000.0


def time_predictor(predictor, frames: list[np.ndarray], repeat: int) -> dict[str, list[float]]:
    """Wall, CPU, detect and classify ms per call of ``predictor.predict`` (round-robin over frames)."""
    from fercore.inference.image import to_gray

    for f in frames:  # warm-up: LiteRT tensor allocation, OpenCV buffers
        predictor.predict(f)
    out: dict[str, list[float]] = {"wall": [], "cpu": [], "detect": [], "classify": []}
    for i in range(repeat * len(frames)):
        frame = frames[i % len(frames)]
        with Clock() as c:
            predictor.predict(frame)
        out["wall"].append(c.wall)
        out["cpu"].append(c.cpu)
        # the split, measured on a separate pass so it does not disturb the end-to-end figure
        gray = to_gray(frame)
        with Clock() as d:
            boxes = predictor.detect(frame, gray)
        with Clock() as k:
            predictor.classify(gray, boxes)
        out["detect"].append(d.wall)
        out["classify"].append(k.wall)
    return out


def steady_stream(frame: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` frames of a steady webcam: the frame shifted by -5…+4 px, cycling."""
    return [np.roll(frame, (i % 10) - 5, axis=1) for i in range(n)]


def time_stream(make_predictor, frames: list[np.ndarray], length: int) -> tuple[list[float], list[int]]:
    """Wall ms and faces found per frame of a fresh stateful predictor over a steady stream of each frame."""
    ms, found = [], []
    for frame in frames:
        predictor = make_predictor()
        for f in steady_stream(frame, length):
            with Clock() as c:
                faces = predictor.predict(f)
            ms.append(c.wall)
            found.append(len(faces))
    return ms, found


def time_fer(frames: list[np.ndarray], repeat: int) -> list[float] | None:
    """ms per ``fer``'s detect + classify call on the same frames (``bench/peer_fer.py``), or None if
    ``fer`` is not installed."""
    from bench.peer_fer import load_peer, peer_latency

    peer = load_peer()
    if peer is None:
        return None
    out: list[float] = []
    for frame in frames:
        stats = peer_latency(frame, repeat=repeat, peer=peer)
        out += [stats["p50_ms"]] * repeat if stats else []
    return out


def build_detector(name: str):
    from fercore.inference.detectors import make_detector

    if name == "haar-legacy":
        return make_detector("haar", **LEGACY_HAAR)
    if name == "blaze-short":
        return make_detector("blaze", model="short")
    return make_detector(name)


def report(label: str, stats: dict[str, list[float]], found: list[int]) -> float:
    p50, p95 = percentiles(stats["wall"])
    cpu = float(np.median(stats["cpu"]))
    det, cls = float(np.median(stats["detect"])), float(np.median(stats["classify"]))
    print(
        f"  {label:<27} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  cpu {cpu:7.2f} ms  "
        f"(detect {det:.2f} + classify {cls:.2f} ms p50)  faces found per frame {found}"
    )
    return p50


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--detectors", default="blaze,haar,mtcnn", help="comma-separated: blaze, blaze-short, haar, mtcnn, haar-legacy"
    )
    p.add_argument("--legacy", action="store_true", help="also run haar-legacy (the settings before min_face)")
    p.add_argument("--repeat", type=int, default=60, help="passes over the frames (MTCNN: a tenth)")
    p.add_argument(
        "--model",
        help="classifier(s), comma-separated, timed in turn in this run: a tier (fast, accurate) or a model "
        "file (default: $FER_MODEL or the fast tier)",
    )
    p.add_argument("--photos", default=str(PHOTOS))
    p.add_argument(
        "--cv-threads",
        type=int,
        default=None,
        metavar="N",
        help="cv2.setNumThreads(N) before timing (default: OpenCV's own choice)",
    )
    p.add_argument(
        "--fer-reference",
        type=float,
        default=62.0,
        metavar="MS",
        help="fer's ms per frame quoted when the package is not importable (issue: 62)",
    )
    p.add_argument(
        "--min-faces",
        type=lambda t: [float(v) for v in t.split(",") if v],
        default=[],
        metavar="F,F",
        help="also time Haar at these min_face values (e.g. 0.15,0.05)",
    )
    args = p.parse_args(argv)

    import cv2

    from fercore.inference.image import load_image
    from fercore.models.ensemble import load_classifier, resolve_tier

    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    photos = Path(args.photos)
    if not (photos / SIX_FACES).exists():
        print(f"photos not found in {photos}", file=sys.stderr)
        return 1
    try:
        models = [resolve_tier(m.strip() or None) for m in (args.model or "").split(",")]
    except FileNotFoundError as exc:
        print(f"{exc} (train and export one, or pass --model)", file=sys.stderr)
        return 1
    one = [make_frame(load_image(photos / n)) for n in ONE_FACE]
    six = [make_frame(load_image(photos / SIX_FACES))]
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    if args.legacy and "haar-legacy" not in detectors:
        detectors.insert(detectors.index("haar") + 1 if "haar" in detectors else 0, "haar-legacy")
    print(
        f"frame latency, {FRAME_W}x{FRAME_H}, decode excluded; {os.cpu_count()} cpus, load avg "
        f"{os.getloadavg()[0]:.2f}, OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads"
    )
    print(f"one-face frames: {', '.join(ONE_FACE)}; six-face frame: {SIX_FACES}")
    p50_haar = None
    for model in models:
        classifier = load_classifier(model)
        print(f"== model {model.name} ({model.parent})")
        for name in detectors:
            p50 = bench_detector(name, classifier, one, six, args.repeat)
            if name == "haar" and model == models[0]:
                p50_haar = p50
        for fraction in args.min_faces:
            bench_min_face(fraction, classifier, one, six, args.repeat)
    bench_fer(one, args.repeat, p50_haar, args.fer_reference)
    faces_per_photo(photos, detectors, load_classifier(models[0]))
    return 0


def bench_detector(name: str, classifier, one, six, repeat: int) -> float:
    """Single-frame and stream latency of one detector; returns the single-frame one-face p50."""
    from fercore.inference.detectors.haar import HaarDetector
    from fercore.inference.detectors.tracking import TrackingDetector
    from fercore.inference.pipeline import FramePipeline

    detector = build_detector(name)
    predictor = FramePipeline(detector, classifier)
    passes = max(2, repeat // 10) if name == "mtcnn" else repeat
    print(f"{name}: {detector!r}, {passes} passes")
    found_one = [len(predictor.predict(f)) for f in one]
    found_six = [len(predictor.predict(f)) for f in six]
    p50 = report("single frame, 1 face", time_predictor(predictor, one, passes), found_one)
    report("single frame, 6 faces", time_predictor(predictor, six, passes), found_six)
    if not isinstance(detector, HaarDetector):
        print("  stream                      = single frame: only Haar follows faces between scans")
        return p50

    def tracking():
        return FramePipeline(TrackingDetector(build_detector(name), full_every=STREAM_FULL_EVERY), classifier)

    for label, frames in (("1 face", one), ("6 faces", six)):
        ms, found = time_stream(tracking, frames, passes)
        s50, s95 = percentiles(ms)
        print(
            f"  {'stream (tracking), ' + label:<27} p50 {s50:7.2f} ms  p95 {s95:7.2f} ms  "
            f"mean {np.mean(ms):7.2f} ms  (full scan every {STREAM_FULL_EVERY}th frame)  "
            f"faces found per frame {np.mean(found):.2f} mean"
        )
    return p50


def bench_min_face(fraction: float, classifier, one, six, repeat: int) -> None:
    """Haar at another ``min_face``: single-frame latency on the 1-face frames, faces found on all frames."""
    from fercore.inference.detectors import make_detector
    from fercore.inference.pipeline import FramePipeline

    predictor = FramePipeline(make_detector("haar", min_face=fraction), classifier)
    stats = time_predictor(predictor, one, max(2, repeat // 3))
    p50, p95 = percentiles(stats["wall"])
    found = [len(predictor.predict(f)) for f in one + six]
    print(
        f"  haar min_face {fraction:<5} single frame, 1 face: p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  "
        f"cpu {float(np.median(stats['cpu'])):7.2f} ms  faces found per frame {found}"
    )


def bench_fer(one, repeat: int, p50_haar: float | None, reference: float) -> None:
    """The ``fer`` package on the same frames, or the issue's reference figure when it is missing."""
    fer_ms = time_fer(one, max(2, repeat // 4))
    if fer_ms is None:
        ratio = f" ({reference / p50_haar:.1f}x our haar p50, other conditions)" if p50_haar else ""
        print(f"fer: not importable, no same-run comparison; the issue quotes {reference:.0f} ms/frame{ratio}")
        return
    f50, f95 = percentiles(fer_ms)
    print(f"fer: single frame, 1 face: p50 {f50:7.2f} ms  p95 {f95:7.2f} ms")
    if p50_haar:
        print(f"  ratio fer / haar (p50): {f50 / p50_haar:.1f}x")


def faces_per_photo(photos: Path, detectors, classifier) -> None:
    """Faces found in each full photo (decoded from its file) per detector."""
    from fercore.inference.pipeline import FramePipeline

    print("faces found per full photo (FramePipeline.predict on the file):")
    names = sorted(x.name for x in photos.iterdir() if x.suffix.lower() in (".jpg", ".jpeg", ".png"))
    width = max(len(d) for d in detectors) + 2
    print(f"  {'photo':<18}" + "".join(f"{d:>{width}}" for d in detectors))
    predictors = {d: FramePipeline(build_detector(d), classifier) for d in detectors}
    for n in names:
        counts = [len(predictors[d].predict(photos / n)) for d in detectors]
        print(f"  {n:<18}" + "".join(f"{c:>{width}}" for c in counts))


if __name__ == "__main__":
    sys.exit(main())
