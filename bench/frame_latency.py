"""End-to-end latency per 640×480 frame: detect + crop + classify (decoding excluded).

Frames are made from ../shared/data/photos: astronaut, grace_hopper and messi5 (one face each)
and t1 (six faces), each scaled to fit 640×480 and centred on black. For each detector the
script prints p50/p95 wall-clock ms per frame, the CPU ms per frame (this process, all threads)
and the detect/classify split; when the ``fer`` package is importable, the same frames go
through ``fer.FER().detect_emotions`` in the same run and the ratio is printed. Then it prints the
faces found per photo (full photo, as ``Predictor.predict`` sees it) per detector. For live video
it also times Haar inside a ``TrackingDetector`` on steady streams made from the same frames.

    python bench/frame_latency.py [--detectors haar,mtcnn] [--repeat 60] [--model PATH]

Wall-clock figures depend on what else runs on the machine; the CPU figure shows the work done.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = Path(os.environ.get("FER_SHARED_DATA", ROOT.parent / "shared" / "data")) / "photos"
ONE_FACE = ("astronaut.png", "grace_hopper.jpg", "messi5.jpg")
SIX_FACES = "t1.jpg"
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


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def time_predictor(predictor, frames: list[np.ndarray], repeat: int) -> dict[str, list[float]]:
    """Wall, CPU, detect and classify ms per call of ``predictor.predict`` (round-robin over frames)."""
    from fercore.preprocess import to_gray

    for f in frames:  # warm-up: LiteRT tensor allocation, OpenCV buffers
        predictor.predict(f)
    out: dict[str, list[float]] = {"wall": [], "cpu": [], "detect": [], "classify": []}
    for i in range(repeat * len(frames)):
        frame = frames[i % len(frames)]
        c0, t0 = time.process_time(), time.perf_counter()
        predictor.predict(frame)
        t1, c1 = time.perf_counter(), time.process_time()
        out["wall"].append((t1 - t0) * 1000)
        out["cpu"].append((c1 - c0) * 1000)
        # the split, measured on a separate pass so it does not disturb the end-to-end figure
        gray = to_gray(frame)
        s0 = time.perf_counter()
        boxes = predictor.detect(frame, gray)
        s1 = time.perf_counter()
        predictor.predict_faces(frame, boxes, gray=gray)
        s2 = time.perf_counter()
        out["detect"].append((s1 - s0) * 1000)
        out["classify"].append((s2 - s1) * 1000)
    return out


def steady_stream(frame: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` frames of a steady webcam: the frame shifted by -5…+4 px, cycling."""
    return [np.roll(frame, (i % 10) - 5, axis=1) for i in range(n)]


def time_stream(make_predictor, frames: list[np.ndarray], length: int) -> list[float]:
    """Wall ms per frame of a fresh stateful predictor run over a steady stream of each frame."""
    ms = []
    for frame in frames:
        predictor = make_predictor()
        for f in steady_stream(frame, length):
            t0 = time.perf_counter()
            predictor.predict(f)
            ms.append((time.perf_counter() - t0) * 1000)
    return ms


def time_fer(frames: list[np.ndarray], repeat: int) -> list[float] | None:
    """ms per ``fer.FER().detect_emotions`` call on the same frames, or None if ``fer`` is missing."""
    try:
        from fer import FER
    except Exception:
        return None
    detector = FER()
    bgr = [f[:, :, ::-1].copy() for f in frames]  # fer follows OpenCV: BGR arrays
    for f in bgr:
        detector.detect_emotions(f)
    ms = []
    for i in range(repeat * len(bgr)):
        t0 = time.perf_counter()
        detector.detect_emotions(bgr[i % len(bgr)])
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


def report(name: str, stats: dict[str, list[float]], faces: int) -> float:
    p50, p95 = percentiles(stats["wall"])
    cpu = float(np.median(stats["cpu"]))
    det, cls = float(np.median(stats["detect"])), float(np.median(stats["classify"]))
    print(f"  {name:<9} {faces}-face frame: p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  "
          f"cpu {cpu:7.2f} ms  (detect {det:.2f} + classify {cls:.2f} ms p50)")
    return p50


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detectors", default="haar,mtcnn")
    p.add_argument("--repeat", type=int, default=60, help="passes over the frames (MTCNN: a tenth)")
    p.add_argument("--model", help="classifier model (default: $FER_MODEL or models/model.tflite)")
    p.add_argument("--photos", default=str(PHOTOS))
    p.add_argument("--fer-reference", type=float, default=62.0, metavar="MS",
                   help="fer's ms per frame quoted when the package is not importable (issue: 62)")
    p.add_argument("--haar-sides", type=lambda t: [int(v) for v in t.split(",") if v], default=[],
                   metavar="N,N", help="also time Haar at these max_side values (e.g. 240,480)")
    args = p.parse_args(argv)

    from fercore.classify import EmotionClassifier, default_model_path
    from fercore.predictor import load_image

    photos = Path(args.photos)
    if not (photos / SIX_FACES).exists():
        print(f"photos not found in {photos}", file=sys.stderr)
        return 1
    model = Path(args.model) if args.model else default_model_path()
    if not model.exists():
        print(f"{model}: model not found (train and export one, or pass --model)", file=sys.stderr)
        return 1
    classifier = EmotionClassifier(model)
    one = [make_frame(load_image(photos / n)) for n in ONE_FACE]
    six = [make_frame(load_image(photos / SIX_FACES))]
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    print(f"frame latency, {FRAME_W}x{FRAME_H}, decode excluded; model {model.name} ({model.parent}); "
          f"{os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.2f}")
    p50_haar = bench_detectors(detectors, classifier, one, six, args.repeat)
    if "haar" in detectors:
        bench_tracking(classifier, one, six, args.repeat)
    for side in args.haar_sides:
        bench_haar_side(side, classifier, one, six, args.repeat)
    bench_fer(one, args.repeat, p50_haar, args.fer_reference)
    faces_per_photo(photos, detectors, classifier)
    return 0


def bench_detectors(detectors, classifier, one, six, repeat: int) -> float | None:
    """Stateless Predictor per detector on the one- and six-face frames; returns Haar's 1-face p50."""
    from fercore.detect import make_detector
    from fercore.predictor import Predictor

    p50_haar = None
    for name in detectors:
        predictor = Predictor(make_detector(name), classifier)
        passes = max(2, repeat // 10) if name == "mtcnn" else repeat
        print(f"{name}: {predictor.detector!r}, {passes} passes")
        p50 = report(name, time_predictor(predictor, one, passes), 1)
        report(name, time_predictor(predictor, six, passes), 6)
        if name == "haar":
            p50_haar = p50
    return p50_haar


def bench_tracking(classifier, one, six, repeat: int) -> None:
    """Haar inside a TrackingDetector on steady streams of the same frames (live-video setting)."""
    from fercore.detect import TrackingDetector, make_detector
    from fercore.predictor import Predictor

    def tracking():
        return Predictor(TrackingDetector(make_detector("haar"), full_every=5), classifier)

    print(f"haar+track: {tracking().detector!r}, steady {FRAME_W}x{FRAME_H} streams "
          f"(whole-frame scan every 5th frame, known faces followed in between)")
    for label, frames in (("1-face", one), ("6-face", six)):
        ms = time_stream(tracking, frames, repeat)
        p50, p95 = percentiles(ms)
        print(f"  haar+track {label} stream: p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  mean {np.mean(ms):7.2f} ms")


def bench_haar_side(side: int, classifier, one, six, repeat: int) -> None:
    """Haar at another ``max_side``: latency on the 1-face frames, faces found on all frames."""
    from fercore.detect import make_detector
    from fercore.predictor import Predictor

    predictor = Predictor(make_detector("haar", max_side=side), classifier)
    stats = time_predictor(predictor, one, max(2, repeat // 3))
    p50, p95 = percentiles(stats["wall"])
    found = [len(predictor.predict(f)) for f in one + six]
    print(f"  haar max_side {side:<5} 1-face frame: p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  "
          f"cpu {float(np.median(stats['cpu'])):7.2f} ms  faces found per frame {found}")


def bench_fer(one, repeat: int, p50_haar: float | None, reference: float) -> None:
    """The ``fer`` package on the same frames, or the issue's reference figure when it is missing."""
    fer_ms = time_fer(one, max(2, repeat // 4))
    if fer_ms is None:
        ratio = f" ({reference / p50_haar:.1f}x our haar p50, other conditions)" if p50_haar else ""
        print(f"  fer       not importable: no same-run comparison; the issue quotes {reference:.0f} ms/frame{ratio}")
        return
    f50, f95 = percentiles(fer_ms)
    print(f"  fer       1-face frame: p50 {f50:7.2f} ms  p95 {f95:7.2f} ms")
    if p50_haar:
        print(f"  ratio fer / haar (p50): {f50 / p50_haar:.1f}x")


def faces_per_photo(photos: Path, detectors, classifier) -> None:
    """Faces found in each full photo (decoded from its file) per detector."""
    from fercore.detect import make_detector
    from fercore.predictor import Predictor

    print("faces found per photo (full photo through Predictor.predict):")
    names = sorted(x.name for x in photos.iterdir() if x.suffix.lower() in (".jpg", ".jpeg", ".png"))
    print(f"  {'photo':<18}" + "".join(f"{d:>7}" for d in detectors))
    predictors = {d: Predictor(make_detector(d), classifier) for d in detectors}
    for n in names:
        counts = [len(predictors[d].predict(photos / n)) for d in detectors]
        print(f"  {n:<18}" + "".join(f"{c:>7}" for c in counts))


if __name__ == "__main__":
    sys.exit(main())
