"""Batch throughput of ``python -m fercore predict … --csv``: images/s with 1 and 2 worker threads.

The images are the first ``--n`` files (sorted) of ../shared/data/fer2013/test (48×48 face crops,
whole-image mode: BlazeFace is tried on each, and when it finds nothing the whole crop is classified)
plus the sample photos, run through ``fercore.inference.batch.predict_to_csv`` into a fresh CSV in a temporary
folder, as the CLI does (decode, detect, classify, write a row). Worker threads share one stateless
``FramePipeline``. One warm-up pass reads the files into the page cache first, so each timing sees
the same disk state. Wall-clock figures depend on what else runs (the load average is printed); the
CPU/wall column is this process's CPU seconds per wall second (2.0 = both cores busy): when the
machine is busy it stays below the worker count, and CPU ms/image (the work, whatever the load) shows
whether threads add overhead.

    python bench/batch_predict.py [--n 1000] [--workers 1,2] [--repeat 2] [--detector blaze] [--model PATH]
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

from fercore.data.locations import shared_data_dir  # noqa: E402

DATA = shared_data_dir()


def main() -> int:
    from fercore.inference.batch import find_images, predict_to_csv
    from fercore.inference.pipeline import FramePipeline

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="FER2013 test images (default 1000)")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    p.add_argument("--repeat", type=int, default=2, help="timed runs per worker count; the best is kept")
    p.add_argument("--detector", default="blaze")
    p.add_argument("--model", help="default: the shipped model")
    args = p.parse_args()
    fer, photos = DATA / "fer2013" / "test", DATA / "photos"
    if not fer.exists():
        print(f"FER2013 test folder not found at {fer} (set FER_SHARED_DATA)", file=sys.stderr)
        return 1
    files = find_images([fer])[: args.n] + (find_images([photos]) if photos.exists() else [])
    for f in files:  # warm the page cache
        Path(f).read_bytes()
    pipe = FramePipeline(args.detector, args.model, whole_image_fallback=True)
    pipe.predict(files[0])  # first-call costs (LiteRT delegate, detector) out of the timing
    print(
        f"{len(files)} images ({args.n} FER2013 test crops + sample photos), detector {args.detector}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'workers':>7}  {'images/s':>8}  {'seconds':>7}  {'CPU/wall':>8}  "
        "CPU ms/image  faces  whole-image  unreadable"
    )
    base = None
    for workers in (int(w) for w in args.workers.split(",")):
        best = None
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                t0, c0 = time.perf_counter(), time.process_time()
                run = predict_to_csv(pipe, files, Path(tmp) / "faces.csv", workers=workers)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                whole = (Path(tmp) / "faces.csv").read_text().count(",True,")
            if best is None or wall < best[0]:
                best = (wall, cpu, run, whole)
        wall, cpu, run, whole = best
        rate = len(files) / wall
        base = base or rate
        print(
            f"{workers:>7}  {rate:>8.1f}  {wall:>7.2f}  {cpu / wall:>8.2f}  {1000 * cpu / len(files):>12.2f}  "
            f"{run.faces:>5}  {whole:>11}  "
            f"{len(run.failed):>10}   ({rate / base:.2f}× of 1 worker)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
