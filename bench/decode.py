"""Image decoding cost: ``fercore.inference.image.decode_image`` (OpenCV fast path) against Pillow's decode.

Decodes each sample photo (and a 640×480 JPEG made from one) N times in this process and prints the
median ms per decode for both paths, and their ratio; the outputs are compared for equality.

    python bench/decode.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time

import _root  # noqa: F401, E402 - puts the checkout on sys.path (see bench/_root.py)
import numpy as np

from bench.frames import PHOTOS  # noqa: E402


def pillow_decode(data: bytes) -> np.ndarray:
    """What the decoder did before the fast path: Pillow, EXIF transpose, RGB array."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def median_ms(fn, data: bytes, repeat: int) -> float:
    fn(data)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(data)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=50)
    args = p.parse_args(argv)
    import cv2

    from fercore.inference.image import decode_image

    if not PHOTOS.is_dir():
        print(f"photos not found in {PHOTOS}", file=sys.stderr)
        return 1
    files = {f.name: f.read_bytes() for f in sorted(PHOTOS.iterdir()) if f.suffix.lower() in (".jpg", ".png")}
    frame = cv2.resize(decode_image(files["grace_hopper.jpg"]), (640, 480))
    files["frame_640x480.jpg"] = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    print(f"decode, median of {args.repeat}; {os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.2f}")
    for name, data in files.items():
        ours, pil = median_ms(decode_image, data, args.repeat), median_ms(pillow_decode, data, args.repeat)
        same = np.array_equal(decode_image(data), pillow_decode(data))
        print(f"  {name:<20} fercore {ours:6.2f} ms   Pillow {pil:6.2f} ms   ×{pil / ours:4.1f}   identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
