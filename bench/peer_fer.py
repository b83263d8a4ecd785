"""Same-run comparison with a peer: the ``fer`` package (Justin Shenk's FER, Haar + a small CNN).

``fer`` is never a dependency of this project; install it into the venv only to bench against it:

    .venv/bin/pip install --no-deps fer==25.10.3

(its Haar path needs OpenCV, TensorFlow, pandas, requests, tqdm and setuptools' pkg_resources,
all already in the venv; ``--no-deps`` keeps it from pulling torch/facenet-pytorch and moviepy).
fer 25.x no longer exports ``FER`` at the package top level: it lives in ``fer.fer``.

    python bench/peer_fer.py [--photo t1.jpg] [--repeat 20]

prints the peer's detect+classify latency on one 640×480 frame; ``bench/frame_latency.py`` calls
``peer_latency`` on its own frames so both figures come from the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _root  # noqa: F401, E402 - puts the checkout on sys.path (see bench/_root.py)

from bench.frames import FRAME_H, FRAME_W, PHOTOS, make_frame  # noqa: E402


def load_peer() -> Any | None:
    """A ``fer.FER`` (Haar detector, its default TFLite classifier), or None if ``fer`` is not
    importable. Imported here, never at module level, so the bench runs without it."""
    try:
        from fer.fer import FER
    except Exception:  # missing package or one of its own imports: no peer in this run
        return None
    return FER()


def peer_latency(
    frame_rgb: np.ndarray, repeat: int = 20, warmup: int = 2, peer: Any | None = None
) -> dict[str, Any] | None:
    """Wall-clock ms of ``fer``'s ``detect_emotions`` (detect + classify) on one RGB uint8 frame.

    Returns ``{"p50_ms", "p95_ms", "mean_ms", "cpu_ms", "faces", "repeat", "version"}`` (``cpu_ms``:
    median CPU time of this process per call, all threads: steadier on a busy machine), or None when the
    ``fer`` package is not importable. ``peer`` reuses an already built ``FER()`` (building one
    loads TensorFlow; pass it when timing several frames).
    """
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame (h, w, 3), got {frame_rgb.shape} {frame_rgb.dtype}")
    if repeat < 1:
        raise ValueError(f"repeat must be ≥ 1, got {repeat}")
    peer = peer if peer is not None else load_peer()
    if peer is None:
        return None
    import fer

    bgr = np.ascontiguousarray(frame_rgb[:, :, ::-1])  # fer follows OpenCV: BGR arrays
    faces = 0
    for _ in range(warmup):
        faces = len(peer.detect_emotions(bgr))
    ms, cpu_ms = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        faces = len(peer.detect_emotions(bgr))
        ms.append((time.perf_counter() - t0) * 1000)
        cpu_ms.append((time.process_time() - c0) * 1000)
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(np.mean(ms)),
        "cpu_ms": float(np.median(cpu_ms)),
        "faces": faces,
        "repeat": repeat,
        "version": getattr(fer, "__version__", "?"),
    }


def frame_from_photo(path: Path, width: int = FRAME_W, height: int = FRAME_H) -> np.ndarray:
    """The photo scaled to fit ``width``×``height`` and centred on black (frame_latency's frames)."""
    from fercore.inference.image import load_image

    return make_frame(load_image(path), width, height)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photo", default="t1.jpg", help="photo in ../shared/data/photos (or a path)")
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args(argv)
    path = Path(args.photo) if Path(args.photo).exists() else PHOTOS / args.photo
    frame = frame_from_photo(path)
    print(f"load average {os.getloadavg()[0]:.2f} (2-core machine; wall-clock figures depend on it)")
    result = peer_latency(frame, repeat=args.repeat)
    if result is None:
        print("fer: not importable (pip install --no-deps fer==25.10.3 into the venv to compare)")
        return 0
    print(
        f"fer {result['version']} on {path.name} (640×480): detect+classify p50 {result['p50_ms']:.1f} ms, "
        f"p95 {result['p95_ms']:.1f} ms, cpu {result['cpu_ms']:.1f} ms, "
        f"{result['faces']} faces found, {result['repeat']} runs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
