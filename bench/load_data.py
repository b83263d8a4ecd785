"""Data loading time of a FER2013 folder (or CSV) through ``fercore.data.loader.load_dataset``:
the first load with an empty cache (a temporary ``$FER_CACHE``), then the cached load.

    python bench/load_data.py [PATH] [--repeat 3] [--decode 3000]

PATH defaults to ../shared/data/fer2013. The first load decodes every image (the operating
system may still have the files in its page cache from earlier runs); the cached load reads
the one .npz the first load wrote. Acceptance: cached load under 2 s.

For a folder data set it then times the decoding of one file, in CPU time (steady on a busy
machine, unlike wall time): through ``fercore.inference.image`` (what the loader does: header and size
check, then OpenCV) against OpenCV's grayscale decoder alone (what the loader did before it used
the one image module).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import _root  # noqa: F401, E402 - puts the checkout on sys.path (see bench/_root.py)

from fercore.data.locations import shared_data_dir  # noqa: E402

DEFAULT_DATA = shared_data_dir() / "fer2013"
CACHED_LIMIT_S = 2.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", nargs="?", default=str(DEFAULT_DATA))
    p.add_argument("--repeat", type=int, default=3, help="cached loads to time (the best and all are printed)")
    p.add_argument("--decode", type=int, default=3000, help="files for the per-file decode timing (0: skip)")
    args = p.parse_args(argv)
    src = Path(args.path)
    if not src.exists():
        print(f"{src}: not found", file=sys.stderr)
        return 1

    from fercore.data.loader import load_dataset

    with tempfile.TemporaryDirectory(prefix="fer-cache-") as cache:
        old = os.environ.get("FER_CACHE")
        os.environ["FER_CACHE"] = cache  # load_dataset's default cache folder
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            first = load_dataset(src)
            cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
            cached = []
            for _ in range(max(1, args.repeat)):
                t0 = time.perf_counter()
                again = load_dataset(src)
                cached.append(time.perf_counter() - t0)
                if not again.report.from_cache:
                    print("warning: the second load did not come from the cache", file=sys.stderr)
            size = sum(f.stat().st_size for f in Path(cache).iterdir())
        finally:
            if old is None:
                os.environ.pop("FER_CACHE", None)
            else:
                os.environ["FER_CACHE"] = old

    splits = ", ".join(f"{s} {int((first.splits == s).sum())}" for s in first.split_names)
    print(f"load_dataset({src}): {len(first)} images ({splits}); {first.report.summary()}")
    print(f"  first load (empty cache): {cold:7.2f} s ({cold_cpu:.2f} s CPU)")
    best = min(cached)
    verdict = "ok" if best < CACHED_LIMIT_S else "NOT MET"
    print(
        f"  cached load:              {best:7.2f} s best of {len(cached)} "
        f"({', '.join(f'{c:.2f}' for c in cached)}); cache {size / 1e6:.0f} MB; "
        f"acceptance < {CACHED_LIMIT_S:g} s: {verdict}"
    )
    if src.is_dir() and args.decode > 0:
        decode_costs(src, args.decode)
    return 0


def decode_costs(root: Path, n: int) -> None:
    """CPU µs per file, best of 3: fercore.inference.image (the loader's path) vs OpenCV grayscale alone."""
    import cv2
    import numpy as np

    from fercore.data.folders import list_folder_images, read_face_file, square_face

    paths = [p for _, _, p in list_folder_images(root).files][:n]
    blobs = {p: Path(p).read_bytes() for p in paths}  # warm the page cache: time decoding, not the disk

    def opencv_gray(path: str) -> np.ndarray:
        return square_face(cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_GRAYSCALE))

    costs = {}
    for name, fn in (("fercore.inference.image", read_face_file), ("OpenCV grayscale only", opencv_gray)):
        best = float("inf")
        for _ in range(3):
            c0 = time.process_time()
            for p in paths:
                fn(p)
            best = min(best, (time.process_time() - c0) / len(paths))
        costs[name] = best
    ratio = costs["fercore.inference.image"] / costs["OpenCV grayscale only"]
    print(
        f"  decode one file ({len(blobs)} files, CPU, best of 3): "
        + "; ".join(f"{k} {v * 1e6:.0f} µs" for k, v in costs.items())
        + f"; ratio {ratio:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
