"""fercore.data.uploads: hostile uploads are refused quickly, in bounded memory, leaving nothing on disk.

Each hostile case runs ``load_uploaded`` in a fresh Python process (so its peak memory can be read
from ``VmHWM`` after a reset) with its working folder, temp folder and upload folder inside the test's own
folder; afterwards that folder must hold exactly what it held before.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import stat
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from fercore.data.uploads import SESSION_PREFIX, UploadLimits, UploadSession, load_uploaded, sweep_stale_uploads
from fercore.paths import PROJECT_ROOT as ROOT
from fercore.types import DataError
from tests.conftest import synthetic_faces

MAX_EXTRA_MB = 500
MAX_SECONDS = 15.0

PROBE = r"""
import json, resource, sys, time
from pathlib import Path
from fercore.types import DataError
from fercore.data.uploads import load_uploaded

def hwm_kb():
    # VmHWM, reset below: ru_maxrss would carry the forking parent's peak across exec
    with open("/proc/self/status") as fh:
        return int(next(line for line in fh if line.startswith("VmHWM:")).split()[1])


src, name, base = sys.argv[1:4]
data = Path(src).read_bytes()
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak to the current RSS
with open("/proc/self/statm") as fh:
    before_kb = int(fh.read().split()[1]) * resource.getpagesize() // 1024
high_water_kb = hwm_kb()
t0 = time.perf_counter()
error = None
try:
    load_uploaded(name, data, base)
except DataError as exc:
    error = str(exc)
seconds = time.perf_counter() - t0
peak_kb = hwm_kb()
print(json.dumps({"error": error, "seconds": seconds, "extra_mb": (peak_kb - before_kb) / 1024,
                  "high_water_rise_mb": (peak_kb - high_water_kb) / 1024}))
"""


def _png() -> bytes:
    ok, buf = cv2.imencode(".png", synthetic_faces(1)[0][0])
    return buf.tobytes()


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def _patch_headers(data: bytes, local_offset: int, central_offset: int, value: int, mode: str) -> bytes:
    """Rewrite a 2-byte field of the first member in both its local and its central header."""
    out = bytearray(data)
    central = out.find(b"PK\x01\x02")
    for pos in (local_offset, central + central_offset):
        old = struct.unpack_from("<H", out, pos)[0]
        struct.pack_into("<H", out, pos, old | value if mode == "or" else value)
    return bytes(out)


def zip_dotdot(_: Path) -> bytes:
    return _zip([("fer/happy/ok.png", _png()), ("../ds.zip.d2/evil.png", _png())])


def zip_absolute(_: Path) -> bytes:
    data = _zip([("fer/happy/ok.png", _png()), ("/tmp/evil.png", _png())])
    assert "/tmp/evil.png" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    return data


def zip_symlink_then_file(_: Path) -> bytes:
    link = zipfile.ZipInfo("fer/happy/link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return _zip([(link, b"/tmp"), ("fer/happy/link/evil.png", _png())])


def zip_long_name(_: Path) -> bytes:
    return _zip([("fer/happy/" + "é" * 130 + ".png", _png())])  # 134 characters, 264 bytes


def zip_deep(_: Path) -> bytes:
    return _zip([("/".join(["d"] * 40) + "/happy/x.png", _png())])


def zip_encrypted(_: Path) -> bytes:
    return _patch_headers(_zip([("fer/happy/a.png", _png())]), 6, 8, 0x1, "or")


def zip_unknown_method(_: Path) -> bytes:
    return _patch_headers(_zip([("fer/happy/a.png", _png())]), 8, 10, 99, "set")


def gz_bomb(folder: Path) -> bytes:
    """About 3 MB of gzip that inflates to 3 GB of valid-looking rows (many gzip members)."""
    row = ("0," + " ".join(["0"] * 2304) + ",Training\n").encode()
    member = gzip.compress(row * 14_000)  # 64 MB of text each
    path = folder / "bomb.csv.gz"
    with open(path, "wb") as fh:
        fh.write(gzip.compress(b"emotion,pixels,Usage\n"))
        for _ in range(48):
            fh.write(member)
    return path.read_bytes()


def zip_ratio_bomb(folder: Path) -> bytes:
    """A 200 MB member of zeros that packs into about 200 KB, written as a stream."""
    path = folder / "ratio.zip"
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("fer/happy/bomb.png", "w") as out:
        for _ in range(200):
            out.write(zeros)
    return path.read_bytes()


def zip_many_members(_: Path, n: int = 100_000) -> bytes:
    """``n`` empty stored members, written by hand (zipfile would take seconds)."""
    local, central = [], []
    offset = 0
    for i in range(n):
        name = f"fer/happy/{i:06d}.png".encode()
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
        central.append(
            struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset)
            + name
        )
        local.append(header)
        offset += len(header)
    cd = b"".join(central)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(cd), offset, 0)
    return b"".join(local) + cd + end


def png_bomb(width: int = 12_000, height: int = 12_000) -> bytes:
    """A valid 8-bit gray PNG of zeros (144 megapixels, about 140 KB), compressed row by row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row's pixels
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">2I5B", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zip_pixel_bombs(_: Path) -> bytes:
    """Eight small PNGs of 144 megapixels each, stored (ratio 1): decoded at once they would need
    gigabytes (3.3 GB measured before the loader checked the pixel count from the header)."""
    bomb = png_bomb()
    return _zip([(f"fer/happy/{i}.png", bomb) for i in range(8)], zipfile.ZIP_STORED)


HOSTILE = [
    ("dotdot.zip", zip_dotdot, "points outside the archive"),
    ("absolute.zip", zip_absolute, "has an absolute path"),
    ("symlink.zip", zip_symlink_then_file, "'fer/happy/link' is a symbolic link"),
    ("longname.zip", zip_long_name, "longer than 255 bytes"),
    ("deep.zip", zip_deep, "nested deeper than 12 folders"),
    ("encrypted.zip", zip_encrypted, "'fer/happy/a.png' is encrypted"),
    ("method.zip", zip_unknown_method, "'fer/happy/a.png' uses compression method 99"),
    ("bomb.csv.gz", gz_bomb, "more than 512 MB of text"),
    ("ratio.zip", zip_ratio_bomb, "'fer/happy/bomb.png' expands more than 100×"),
    ("many.zip", zip_many_members, "more than 60,000 files"),
    ("pixels.zip", zip_pixel_bombs, "none of the 8 image files could be read"),
]


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("name,make,message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_upload_is_refused_fast_in_bounded_memory_leaving_nothing(tmp_path, name, make, message):
    inputs, work, cwd, tmp = (tmp_path / d for d in ("inputs", "uploads", "cwd", "tmp"))
    for d in (inputs, work, cwd, tmp):
        d.mkdir()
    src = inputs / ("upload-" + name)
    src.write_bytes(make(inputs))
    before = _tree(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(src), name, str(work)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"{name}: {result['seconds']:.2f} s, peak ≤ +{result['extra_mb']:.0f} MB over the RSS before the call "
        f"(high-water mark rose {result['high_water_rise_mb']:.0f} MB); {result['error']}"
    )
    assert result["error"] is not None and message in result["error"] and name in result["error"]
    assert "\n" not in result["error"]
    assert result["seconds"] < MAX_SECONDS
    assert result["extra_mb"] < MAX_EXTRA_MB
    assert _tree(tmp_path) == before  # nothing written anywhere, nothing left behind


# ---------------------------------------------------------------------------------------- in-process cases


@pytest.mark.parametrize(
    "entries,message",
    [
        ([("fer/happy", b"x"), ("fer/happy/a.png", b"y")], "'fer/happy' is both a file and a folder"),
        ([("fer/happy/a.png", b"y"), ("fer/happy", b"x")], "'fer/happy' is both a file and a folder"),
        ([("fer/happy/a.png", b"y"), ("fer/happy/a.png", b"z")], "'fer/happy/a.png' appears twice"),
        ([("fer/happy/./../../x.png", b"y")], "points outside the archive"),
        ([("C:/x/happy/a.png", b"y")], "has an absolute path"),
    ],
)
def test_zip_name_clashes_and_paths(tmp_path, entries, message):
    duplicate = len(entries) > 1 and entries[0][0] == entries[-1][0]
    with pytest.warns(UserWarning, match="Duplicate name") if duplicate else contextlib.nullcontext():
        data = _zip(entries)
    with pytest.raises(DataError, match=re.escape(message)):
        load_uploaded("x.zip", data, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_zip_special_file_and_damaged_member(tmp_path):
    fifo = zipfile.ZipInfo("fer/happy/pipe.png")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    with pytest.raises(DataError, match="'fer/happy/pipe.png' is a special file"):
        load_uploaded("x.zip", _zip([(fifo, b"")]), tmp_path)
    corrupt = bytearray(_zip([("fer/happy/a.png", _png())]))
    name_len, extra_len = struct.unpack_from("<2H", corrupt, 26)
    corrupt[30 + name_len + extra_len + 20] ^= 0xFF  # a byte of the compressed data: CRC or inflate fails
    with pytest.raises(DataError, match="'fer/happy/a.png' is damaged"):
        load_uploaded("x.zip", bytes(corrupt), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_limits_are_parameters(tmp_path):
    data = _zip([(f"fer/happy/{i}.png", _png()) for i in range(5)])
    with pytest.raises(DataError, match="more than 4 files"):
        load_uploaded("x.zip", data, tmp_path, limits=UploadLimits(max_members=4))
    with pytest.raises(DataError, match="nested deeper than 1 folders"):
        load_uploaded("x.zip", data, tmp_path, limits=UploadLimits(max_depth=1))
    with pytest.raises(DataError, match="x.csv: more than 1 MB"):
        load_uploaded(
            "x.csv", b"emotion,pixels\n" + b"0," + b"1 " * 600_000, tmp_path, limits=UploadLimits(max_csv_bytes=1024**2)
        )


def test_good_zip_loads_into_memory_and_leaves_nothing(tmp_path, class_folder):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(class_folder.rglob("*.png")):
            zf.write(p, "FER/" + str(p.relative_to(class_folder)))
        zf.writestr("__MACOSX/FER/train/._x.png", b"apple double")
        zf.writestr("FER/README.txt", b"not extracted")
    work = tmp_path / "uploads"
    before = _tree(tmp_path)
    ds = load_uploaded("C:\\Users\\me\\fer.zip", buf.getvalue(), work)
    assert _tree(tmp_path) == before | {"uploads"}  # the session folder came and went, nothing else
    assert len(ds) == 175 and ds.split_names == ["train", "test"]
    assert ds.report.source == "fer.zip/FER" and not ds.report.skipped
    assert sorted(set(Path(i).parts[0] for i in ds.ids.tolist())) == ["test", "train"]
    assert list(work.iterdir()) == []


def test_good_csv_and_gz_upload_write_nothing(tmp_path):
    images, labels = synthetic_faces(14)
    text = "emotion,pixels,Usage\n" + "".join(
        f"{lab},{' '.join(map(str, img.ravel()))},{'Training' if i < 10 else 'PublicTest'}\n"
        for i, (img, lab) in enumerate(zip(images, labels, strict=True))
    )
    for name, data in (("fer.csv", text.encode()), ("fer.csv.gz", gzip.compress(text.encode()))):
        ds = load_uploaded(name, data, tmp_path / "uploads")
        np.testing.assert_array_equal(ds.images, images)
        assert ds.split_names == ["train", "test"] and ds.report.source == name
    assert not (tmp_path / "uploads").exists() or list((tmp_path / "uploads").iterdir()) == []


def test_session_folder_is_private_and_removed_even_on_error(tmp_path):
    with pytest.raises(RuntimeError), UploadSession(tmp_path) as session:
        (session.path / "x").write_text("data")
        assert stat.S_IMODE(session.path.stat().st_mode) == 0o700
        assert session.path.name.startswith(SESSION_PREFIX)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_sweep_removes_only_our_stale_folders(tmp_path):
    old = UploadSession(tmp_path).path
    (old / "deep").mkdir()
    (old / "deep" / "f.png").write_bytes(b"x")
    fresh = UploadSession(tmp_path).path
    other = tmp_path / "someone-else"
    other.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    link = tmp_path / (SESSION_PREFIX + "link")
    link.symlink_to(target)
    past = time.time() - 7 * 3600
    for p in (old, other, target):
        os.utime(p, (past, past))
    os.utime(link, (past, past), follow_symlinks=False)
    assert sweep_stale_uploads(tmp_path, max_age_hours=6) == 1
    assert not old.exists() and fresh.exists() and other.exists()
    assert link.is_symlink() and (target / "keep.txt").read_text() == "keep"
    assert sweep_stale_uploads(tmp_path / "missing") == 0


def test_not_a_data_upload(tmp_path):
    with pytest.raises(DataError, match="upload a .csv, .csv.gz or a .zip"):
        load_uploaded("notes.txt", b"hello", tmp_path)
    with pytest.raises(DataError, match="the upload is empty"):
        load_uploaded("fer.csv", b"", tmp_path)
    with pytest.raises(DataError, match="junk.zip: not a valid zip file"):
        load_uploaded("junk.zip", b"PK\x03\x04 garbage", tmp_path)
    with pytest.raises(DataError, match="no class folders"):
        load_uploaded("bad.zip", _zip([("photos/a.png", _png())]), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_extraction_checks_the_resolved_path_too(tmp_path):
    """Defence in depth: even a member that slipped past the name checks cannot land outside."""
    from pathlib import PurePosixPath

    from fercore.data.uploads import _extract_images

    zf = zipfile.ZipFile(io.BytesIO(_zip([("a.png", _png())])))
    root = tmp_path / "session" / "zip"
    root.mkdir(parents=True)
    (root / "happy").symlink_to(tmp_path)  # a link inside the session pointing out of it
    for rel in ("../a.png", "happy/a.png"):
        with pytest.raises(DataError, match="points outside the archive"):
            _extract_images(zf, [(zf.infolist()[0], PurePosixPath(rel))], root, "x.zip", UploadLimits())
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "session" / "a.png").exists()
