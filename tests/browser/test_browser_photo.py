"""The Photo page in a real browser (Debian's Chromium via Playwright), as a new user meets it:

* the six faces of t1.jpg carry the same numbers 1…6, left to right, on the annotated image, the
  per-face charts, the table beside the image (all of it visible at 1280 px), the CSV and the JSON;
* a zip of 5 photos + a corrupt JPEG + notes.txt, with a broken PNG beside it: one count of what was
  analysed (5) and what was not (3), every item listed with its reason; a gallery photo opens in detail.

The Photo screenshot of docs/screenshots/ is taken here (t1.jpg: numbered faces)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser_helpers import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    SCREENSHOTS,
    Server,
    choose,
    free_port,
    open_app,
    page_errors,
    save_screenshot,
    server_env,
    skip_unless_browser,
    wait_idle,
)

from fercore.data.locations import shared_data_dir
from fercore.inference.classify import default_model_path

pytestmark = pytest.mark.browser


PHOTOS = shared_data_dir() / "photos"
T1_FACES = 6


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    skip_unless_browser()
    if not Path(default_model_path()).exists():
        pytest.skip(f"no trained model at {default_model_path()}: the page asks for one")
    if not (PHOTOS / "t1.jpg").exists():
        pytest.skip(f"sample photos not found at {PHOTOS} (needs ../shared/data)")
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("browser-photo")
    server = Server(free_port(), server_env(FER_RUNS=str(tmp / "runs"), FER_CACHE=str(tmp / "cache")), tmp / "st.log")
    try:
        server.wait_healthy()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                # 1280 px: the narrow end of a laptop screen, where tables were cut off
                context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
                yield server, context.new_page()
            finally:
                browser.close()
    finally:
        server.stop()


def upload(page, url: str, *files: Path) -> None:
    open_app(page, url)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files([str(f) for f in files])


def download(page, label: str, folder: Path) -> Path:
    with page.expect_download(timeout=30_000) as info:
        page.get_by_role("button", name=label, exact=True).first.click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def grid_text(frame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a st.dataframe, read from the grid's accessible table (once it has rendered:
    the grid fills its table after the element appears, header first and rows later on a loaded machine;
    every grid read here has at least one row)."""
    frame.locator("th").first.wait_for(state="attached", timeout=60_000)
    frame.locator("tbody tr td").first.wait_for(state="attached", timeout=60_000)
    header = frame.evaluate("e => [...e.querySelectorAll('th')].map(x => x.innerText.trim())")
    rows = frame.evaluate(
        "e => [...e.querySelectorAll('tbody tr')].map(r => [...r.querySelectorAll('td')].map(c => c.innerText.trim()))"
    )
    return header, rows


def overflow_px(frame) -> int:
    """How far the grid's content is wider than its box (> 0: columns cut off behind a scrollbar)."""
    return int(
        frame.evaluate("e => { const s = e.querySelector('.dvn-scroller'); return s.scrollWidth - s.clientWidth; }")
    )


def metrics(page) -> dict[str, str]:
    loc = page.locator('[data-testid="stMetric"]')
    out = {}
    for i in range(loc.count()):
        label = loc.nth(i).locator('[data-testid="stMetricLabel"]').inner_text().strip()
        out[label] = loc.nth(i).locator('[data-testid="stMetricValue"]').inner_text().strip()
    return out


def test_t1_faces_have_one_number_on_image_charts_table_csv_and_json(app, tmp_path):
    from fercore.inference.batch import annotated_preview
    from fercore.inference.image import load_image
    from fercore.labels import EMOTIONS
    from fercore.types import Box, FacePrediction

    server, page = app
    upload(page, f"{server.url}/photo", PHOTOS / "t1.jpg")
    page.get_by_text(f"face {T1_FACES}: ").first.wait_for(timeout=120_000)
    wait_idle(page)
    assert not page_errors(page), page_errors(page)

    # JSON and CSV: integer numbers 1…6, left to right by box x
    (entry,) = json.loads(download(page, "JSON (all images)", tmp_path).read_text())
    faces = entry["faces"]
    assert [f["face_id"] for f in faces] == list(range(1, T1_FACES + 1))
    assert all(type(f["face_id"]) is int for f in faces)
    xs = [f["box"][0] for f in faces]
    assert xs == sorted(xs) and len(set(xs)) == T1_FACES, xs
    csv_path = download(page, "CSV (all faces)", tmp_path)
    assert ".0," not in csv_path.read_text()
    table = pd.read_csv(csv_path)
    assert table["face_id"].tolist() == list(range(1, T1_FACES + 1)) and table["x"].tolist() == xs
    assert table["label"].tolist() == [f["label"] for f in faces]

    # the charts: "face 1: label" … "face 6: label", the labels of the JSON's faces of the same number
    wait_idle(page)
    for f in faces:
        assert page.get_by_text(f"face {f['face_id']}: {f['label']}", exact=True).count() == 1, f["face_id"]

    # the table beside the image: a face column 1…6 with the same labels, every column visible
    frame = page.locator('[data-testid="stDataFrame"]').last
    header, rows = grid_text(frame)
    assert header == ["face", "label", *EMOTIONS, "x", "y", "w", "h"], header
    assert [r[0] for r in rows] == [str(i) for i in range(1, T1_FACES + 1)]
    assert [r[1] for r in rows] == [f["label"] for f in faces]
    assert [int(r[header.index("x")]) for r in rows] == xs
    assert overflow_px(frame) <= 0, "the faces table is cut off at 1280 px"

    # the annotated image: exactly the photo with each box tagged with the JSON's number (redrawn here)
    png = load_image(download(page, "Annotated PNG", tmp_path))
    rgb = load_image(PHOTOS / "t1.jpg")
    blank = np.zeros((48, 48), np.uint8)

    def drawn(ids) -> np.ndarray:
        preds = [
            FacePrediction(Box(*f["box"]), f["scores"], f["label"], blank, face_id=i)
            for f, i in zip(faces, ids, strict=True)
        ]
        return annotated_preview(rgb, preds, max(png.shape[:2]))

    numbered = drawn([f["face_id"] for f in faces])
    assert png.shape == numbered.shape
    assert np.abs(png.astype(int) - numbered).max() <= 2, "the image's tags are not the JSON's numbers"
    assert np.abs(png.astype(int) - drawn([None] * T1_FACES)).max() > 100, "no number drawn on the boxes"
    save_screenshot(page, SCREENSHOTS / "photo.png")


def test_zip_batch_has_one_honest_count(app, tmp_path):
    server, page = app
    photos = sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".png"))[:4]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, photo in enumerate([*photos, photos[0]][:5]):
            zf.writestr(f"holiday/{i}_{photo.name}", photo.read_bytes())
        good = (PHOTOS / "t1.jpg").read_bytes()
        zf.writestr("holiday/corrupt.jpg", good[: len(good) // 3])
        zf.writestr("holiday/notes.txt", "packing list")
    (tmp_path / "holiday.zip").write_bytes(buf.getvalue())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    upload(page, f"{server.url}/photo", tmp_path / "holiday.zip", tmp_path / "broken.png")
    page.get_by_text("Skipped or unreadable: 3").first.wait_for(timeout=180_000)
    wait_idle(page)
    assert not page_errors(page), page_errors(page)

    shown = metrics(page)
    assert shown["Images analysed"] == "5" and shown["Skipped or unreadable"] == "3", shown
    frames = page.locator('[data-testid="stDataFrame"]')
    problems = {tuple(h): r for h, r in (grid_text(frames.nth(i)) for i in range(frames.count()))}
    reasons = {row[0]: row[1] for row in problems[("file", "why it was not analysed")]}
    assert set(reasons) == {"holiday.zip/holiday/corrupt.jpg", "holiday.zip/holiday/notes.txt", "broken.png"}
    assert all(reasons.values()) and "not an image" in reasons["holiday.zip/holiday/notes.txt"]
    summary = next(r for h, r in problems.items() if h[0] == "file" and h != ("file", "why it was not analysed"))
    assert len(summary) == 5 and not set(reasons) & {row[0] for row in summary}, "problems kept out of the summary"

    table = pd.read_csv(download(page, "CSV (all faces)", tmp_path))
    assert table["file"].nunique() == 5 + 3 and table["error"].notna().sum() == 3
    text = (tmp_path / "faces.csv").read_text()
    assert not re.search(r",\d+\.0,", text), "box coordinates written as floats"
    assert json.loads((download(page, "JSON (all images)", tmp_path)).read_text())[-1].get("error")

    # a gallery photo opens with its numbered faces and charts
    choose(page, "Open a photo", "holiday.zip/holiday/0_" + photos[0].name, timeout=20_000)
    page.get_by_text("face 1: ").first.wait_for(timeout=60_000)
    wait_idle(page)
    assert page.get_by_text(re.compile(r"face\(s\) found, numbered left to right")).count() == 1
    assert not page_errors(page), page_errors(page)
