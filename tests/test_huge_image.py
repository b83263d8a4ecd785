"""Huge photos: a 196-megapixel PNG (just under ``MAX_PIXELS``) goes through the Photo path within a
bounded amount of memory and gives it back afterwards; a file whose header claims more than
``MAX_PIXELS`` is refused from its header, quickly and without allocating the pixels.

Memory is measured in a fresh subprocess (this test process holds whatever earlier tests left):
it resets its peak-RSS mark (``/proc/self/clear_refs``, falling back to ``ru_maxrss``) after
building the pipeline and warming it up, then reports the baseline, the peak during the call and
the RSS after it. The huge PNG is written row by row (zlib streaming), never as one array.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import ASTRONAUT_FACE, PHOTOS, ROOT, SHIPPED_MODEL_DIR

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to measure RSS")

MB = 1 << 20
SIDE = 14_000  # 196 megapixels: under the 200-MP limit
HEAD_SIDE = 4_000  # the astronaut's head, pasted at HEAD_AT (x, y)
HEAD_AT = (6_000, 5_000)
PEAK_BUDGET_MB = 1536  # above the baseline, during the call
AFTER_BUDGET_MB = 200  # above the baseline, after it


# ------------------------------------------------------------------------------ writing PNGs


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int) -> bytes:
    """PNG signature + IHDR of an 8-bit RGB image."""
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def write_png_by_rows(path: Path, width: int, height: int, row) -> None:
    """An 8-bit RGB PNG whose row ``y`` is ``row(y)`` (W×3 uint8), compressed as it is written:
    memory stays at a few rows whatever the size."""
    comp = zlib.compressobj(1)
    with open(path, "wb") as fh:
        fh.write(png_header(width, height))
        pending = bytearray()
        for y in range(height):
            pending += comp.compress(b"\x00" + row(y).tobytes())  # filter type 0 (None)
            if len(pending) >= 4 * MB:
                fh.write(_chunk(b"IDAT", bytes(pending)))
                pending.clear()
        pending += comp.flush()
        fh.write(_chunk(b"IDAT", bytes(pending)))
        fh.write(_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """14 000 × 14 000 of flat blue-grey with the astronaut's head (4 000 px) pasted in."""
    import cv2

    photo = PHOTOS / "astronaut.png"
    if not photo.exists():
        pytest.skip(f"sample photo not found at {photo} (needs ../shared/data)")
    rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    head = cv2.resize(rgb[0:256, 96:352], (HEAD_SIDE, HEAD_SIDE), interpolation=cv2.INTER_LINEAR)
    flat = np.empty((SIDE, 3), np.uint8)
    flat[:] = (96, 110, 128)
    x0, y0 = HEAD_AT

    def row(y: int) -> np.ndarray:
        if not y0 <= y < y0 + HEAD_SIDE:
            return flat
        r = flat.copy()
        r[x0 : x0 + HEAD_SIDE] = head[y - y0]
        return r

    path = tmp_path_factory.mktemp("huge") / "huge.png"
    write_png_by_rows(path, SIDE, SIDE, row)
    return path


# ------------------------------------------------------------------------------ the measuring subprocess

PROBE = textwrap.dedent(
    """
    import ctypes, gc, json, resource, sys, time
    from pathlib import Path

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    from fercore.inference.image import MAX_PIXELS
    from fercore.inference.pipeline import FramePipeline
    from fercore.types import ImageError

    target, warmup, model = sys.argv[1], sys.argv[2], sys.argv[3]
    pipeline = FramePipeline("blaze", model or None)  # the Photo page's default detector
    pipeline.predict(warmup)  # interpreters, OpenCV and Pillow loaded and warm
    gc.collect()
    baseline = status("VmRSS")
    try:
        open("/proc/self/clear_refs", "w").write("5")  # peak mark := now
        hwm_reset = status("VmHWM") < baseline + (8 << 20)
    except OSError:
        hwm_reset = False
    t0 = time.perf_counter()
    try:
        faces = [{"box": list(f.box), "label": f.label} for f in pipeline.predict(Path(target))]
        error = None
    except ImageError as exc:
        faces, error = None, str(exc)
    seconds = time.perf_counter() - t0
    peak = status("VmHWM") if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gc.collect()
    after = status("VmRSS")
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        after_trim = status("VmRSS")
    except (OSError, AttributeError):
        after_trim = None
    print(json.dumps({"baseline": baseline, "peak": peak, "after": after, "after_trim": after_trim,
                      "hwm_reset": hwm_reset, "seconds": seconds, "faces": faces, "error": error,
                      "max_pixels": MAX_PIXELS}))
    """
)


def probe(target: Path, timeout: float = 300) -> dict:
    """Run ``FramePipeline("blaze").predict(target)`` in a fresh interpreter; its memory figures."""
    warmup = PHOTOS / "messi5.jpg"
    if not warmup.exists():
        pytest.skip(f"sample photo not found at {warmup} (needs ../shared/data)")
    model = SHIPPED_MODEL_DIR / "model.tflite"
    if not model.exists():
        pytest.skip(f"no shipped model at {model} (train and ship one: python -m training.ship)")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(target), str(warmup), str(model)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    mb = {k: round(out[k] / MB) for k in ("baseline", "peak", "after") if out[k] is not None}
    trim = "" if out["after_trim"] is None else f", after malloc_trim {round(out['after_trim'] / MB)} MB"
    print(
        f"\n{target.name}: {out['seconds']:.2f} s; RSS baseline {mb['baseline']} MB, peak {mb['peak']} MB "
        f"(+{mb['peak'] - mb['baseline']}), after {mb['after']} MB (+{mb['after'] - mb['baseline']}){trim}; "
        f"peak from {'VmHWM after clear_refs' if out['hwm_reset'] else 'ru_maxrss'}"
    )
    return out


# ------------------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def huge_run(huge_png) -> dict:
    """The 196-MP photo through the pipeline once, measured (shared by the tests below)."""
    return probe(huge_png)


@pytest.mark.slow
def test_196_megapixel_photo_within_memory_budget(huge_run):
    out = huge_run
    assert out["error"] is None, out["error"]
    assert out["max_pixels"] >= SIDE * SIDE
    # the one face, found and boxed in full-size pixels
    assert len(out["faces"]) == 1, out["faces"]
    x, y, w, h = out["faces"][0]["box"]
    f = HEAD_SIDE / 256
    cx, cy = HEAD_AT[0] + (ASTRONAUT_FACE[0] - 96) * f, HEAD_AT[1] + ASTRONAUT_FACE[1] * f
    assert x <= cx <= x + w and y <= cy <= y + h, (out["faces"], (cx, cy))
    assert out["faces"][0]["label"] == "happy", out["faces"]
    peak = (out["peak"] - out["baseline"]) / MB
    after = (out["after"] - out["baseline"]) / MB
    assert peak <= PEAK_BUDGET_MB, f"peak {peak:.0f} MB above the baseline (budget {PEAK_BUDGET_MB} MB)"
    assert after <= AFTER_BUDGET_MB, (
        f"{after:.0f} MB still held after the call (budget {AFTER_BUDGET_MB} MB); "
        f"after malloc_trim: {None if out['after_trim'] is None else (out['after_trim'] - out['baseline']) / MB}"
    )


@pytest.mark.slow
def test_196_megapixel_decode_holds_one_full_size_rgb_buffer(huge_run):
    """The peak is about one RGB image + its gray copy (+ small change), not two RGB images."""
    out = huge_run
    rgb_mb = SIDE * SIDE * 3 / MB
    peak = (out["peak"] - out["baseline"]) / MB
    assert peak <= 1.6 * rgb_mb, f"peak {peak:.0f} MB above the baseline; one RGB image is {rgb_mb:.0f} MB"


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header says ``width``×``height`` followed by a few bytes of pixel data."""
    path.write_bytes(png_header(width, height) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))
    return path


def _jpeg_claiming(path: Path, width: int, height: int) -> Path:
    """A small real JPEG whose SOF0 header is patched to say ``width``×``height``."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "name,make,width,height",
    [
        ("claims-20000.png", _png_claiming, 20_000, 20_000),  # 400 MP: Pillow's own bomb limit
        ("claims-14200.png", _png_claiming, 14_200, 14_200),  # 201.6 MP: just above MAX_PIXELS
        ("claims-20000.jpg", _jpeg_claiming, 20_000, 20_000),
    ],
)
def test_header_above_max_pixels_is_refused_without_allocating(tmp_path, name, make, width, height):
    out = probe(make(tmp_path / name, width, height), timeout=120)
    assert out["faces"] is None, "the oversized file was decoded"
    assert out["error"] and name in out["error"] and "megapixel limit" in out["error"], out["error"]
    assert "\n" not in out["error"]
    assert out["seconds"] < 1.0, f"refusing took {out['seconds']:.2f} s"
    grew = (out["peak"] - out["baseline"]) / MB
    assert grew < 32, f"peak RSS grew by {grew:.0f} MB while refusing a header (nothing should be decoded)"
