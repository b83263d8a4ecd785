"""Every dashboard page through Streamlit's AppTest: renders without exception, shows its key
elements, and turns bad input into a clear st.error while the app keeps working.

Tests that need the trained model use the real default path (``$FER_MODEL`` or models/) and skip
when it is absent; tests on FER2013 or the sample photos skip when ../shared/data is absent.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from fercore.data.locations import shared_data_dir
from fercore.inference.classify import default_model_path
from fercore.paths import PROJECT_ROOT as ROOT

APP = ROOT / "dashboard" / "app.py"

requires_default_model = pytest.mark.skipif(
    not Path(default_model_path()).exists(),
    reason=f"no trained model at {default_model_path()} (models/ is filled by training; or set FER_MODEL)",
)


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    """Runs go to a fresh folder; no ICE server configuration from the environment."""
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("FER_ICE_SERVERS", raising=False)
    monkeypatch.delenv("FER_DATA", raising=False)
    # AppTest's Runtime is a MagicMock without a session manager, which streamlit-webrtc asks for
    # its session info; outside a live server it does without (None), as in its own unit tests.
    import streamlit_webrtc.component

    monkeypatch.setattr(streamlit_webrtc.component, "get_this_session_info", lambda: None)


def open_page(page: str, timeout: float = 60) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.run()
    if page != "home":
        at.switch_page(f"app_pages/{page}.py").run()
    assert_ok(at)
    return at


def assert_ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def texts(at: AppTest) -> str:
    return "\n".join(
        [m.value for m in at.markdown]
        + [c.value for c in at.caption]
        + [i.value for i in at.info]
        + [w.value for w in at.warning]
        + [s.value for s in at.success]
    )


def plotly_charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def button(at: AppTest, label: str):
    for b in at.button:
        if b.label == label:
            return b
    raise AssertionError(f"no button {label!r}; have {[b.label for b in at.button]}")


def write_fer_csv(path: Path, n: int = 70) -> Path:
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for i in range(n):
        px = " ".join(map(str, rng.integers(0, 255, 48 * 48)))
        lines.append(f"{i % 7},{px},{'Training' if i < n * 0.8 else 'PublicTest'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def zip_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, Path("fer") / f.relative_to(folder))
    return buf.getvalue()


def make_video(path: Path, image: Path, frames: int = 12, size: int = 256) -> Path:
    """A short H.264/MPEG-4 clip of a photo drifting slowly (made with PyAV)."""
    import av
    import cv2

    bgr = cv2.imread(str(image))
    h, w = bgr.shape[:2]
    side = min(h, w)
    rgb = cv2.cvtColor(cv2.resize(bgr[:side, :side], (size + 16, size + 16)), cv2.COLOR_BGR2RGB)
    with av.open(str(path), "w") as out:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = out.add_stream(codec, rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[i % 16 : i % 16 + size, :size]), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


# ----------------------------------------------------------------------------------------------
# Every page renders


@pytest.mark.parametrize(
    "page,title",
    [
        ("home", "Facial expression recognition"),
        ("dataset", "Dataset"),
        ("train", "Train"),
        ("evaluate", "Evaluate"),
        ("photo", "Photo"),
        ("video", "Video"),
        ("webcam", "Webcam"),
    ],
)
def test_every_page_renders(page, title, class_folder, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(class_folder))
    at = open_page(page)
    assert [t.value for t in at.title] == [title]
    assert not errors(at)


# ----------------------------------------------------------------------------------------------
# Home


def test_home_shows_dataset_found_and_model_state(class_folder, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(class_folder))
    at = open_page("home")
    assert any("Dataset found" in s.value for s in at.success)
    headers = [h.value for h in at.header]
    assert "Shipped model" in headers and "Dataset" in headers
    if Path(default_model_path()).exists():
        assert not any("No trained model" in w.value for w in at.warning)
    if (ROOT / "models" / "metrics.json").exists() and not os.environ.get("FER_MODEL"):
        labels = [m.label for m in at.metric]
        assert {"Test accuracy", "Classes", "Size"} <= set(labels)
        assert [m.value for m in at.metric if m.label == "Classes"] == ["7"]


def test_home_model_caption_in_words_and_card_in_sections(tmp_path, monkeypatch):
    """The model's facts as words and formatted numbers (no raw metrics.json keys); the card as its
    introduction, whose facts table has a header, and one expander per section."""
    model = tmp_path / "m" / "model.tflite"
    model.parent.mkdir()
    model.write_bytes(b"stand-in: Home only looks at the file")
    card = {"accuracy": 0.6896, "architecture": "fernet", "n": 3589, "split": "PublicTest", "flops": 282017568}
    (model.parent / "metrics.json").write_text(json.dumps({**card, "train_minutes": 91.3, "epochs": 20}))
    monkeypatch.setenv("FER_MODEL", str(model))
    at = open_page("home")
    caption = next(c.value for c in at.caption if "MFLOPs" in c.value)
    assert (
        caption == "fernet architecture · 282 MFLOPs per face · trained in 91 min over 20 epochs · "
        "tested on 3,589 PublicTest faces"
    )
    assert not any(raw in texts(at) for raw in ("flops:", "train_minutes", "282017568"))
    if (ROOT / "models" / "MODEL_CARD.md").exists():
        intro = next(m.value for m in at.markdown if "| Task |" in m.value)
        header = intro.split("| Task |")[0].strip().splitlines()
        assert header[-2].strip("| ") and header[-1].startswith("|---"), "the facts table has a header row"
        titles = [e.label for e in at.expander]
        assert len(titles) >= 5 and any(t.startswith("Accuracy on FER2013") for t in titles)
        assert any(t.startswith("Limits") for t in titles)
        assert at.image, "the card's confusion matrix is drawn, not a broken link"


def test_home_without_dataset_or_model_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("FER_MODEL", str(tmp_path / "none.tflite"))
    at = open_page("home")
    text = texts(at)
    assert "No trained model found" in text
    assert "not a dataset" in text
    for needle in ("fer2013.csv", "emotion,pixels,Usage", "train/", "FER_DATA", "Kaggle"):
        assert needle in text, needle


# ----------------------------------------------------------------------------------------------
# Dataset


def test_dataset_page_charts_samples_and_paging(class_folder, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(class_folder))
    at = open_page("dataset")
    assert not errors(at)
    assert [m.value for m in at.metric if m.label == "Images"] == ["175"]
    assert len(at.tabs) == 7
    assert len(plotly_charts(at)) >= 2  # counts and intensities
    assert len(at.image) > 10  # sample grid, mean faces, duplicates/blank thumbnails
    pag = at.get("pagination")
    assert pag, "sample grid has paging"
    at.selectbox(key="sample_class").set_value("angry").run()
    assert_ok(at)
    assert "Duplicate groups" in [m.label for m in at.metric]


def capture_downloads(monkeypatch) -> dict[str, bytes]:
    """The bytes of every file the app serves (download buttons), by file name, the latest kept."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    served: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if filename and isinstance(path_or_data, bytes):
            served[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return served


def _decisions(at: AppTest) -> list:
    return [b for b in at.button_group if str(b.key).startswith("noise_decision_")]


def _relabel_rows(served: dict[str, bytes]) -> list[list[str]]:
    lines = served["relabel.csv"].decode().strip().splitlines()
    assert lines[0] == "row,old_label,new_label"
    return [line.split(",") for line in lines[1:]]


@requires_default_model
def test_dataset_label_noise_accept_reject_feeds_the_relabel_file(class_folder, monkeypatch):
    """The Label noise tab: the shipped model's confident disagreements by class pair, each face accepted or
    rejected; the relabel CSV holds exactly the accepted faces, whatever pair or page is shown."""
    monkeypatch.setenv("FER_DATA", str(class_folder))
    served = capture_downloads(monkeypatch)
    at = open_page("dataset")
    at.multiselect(key="noise_rules").set_value(["shipped model"]).run()
    at.button(key="noise_go").click().run()
    assert_ok(at)
    assert not errors(at)
    suspects = at.session_state["noise"][2].suspects
    assert [m.value for m in at.metric if m.label == "Faces audited"] == ["175"]
    assert len(suspects) > 3  # generated bars are no faces: the model disagrees confidently with many labels
    assert [m.value for m in at.metric if m.label == "Suspects"] == [f"{len(suspects):,}"]
    csv = next(d for d in at.get("download_button") if d.proto.label.startswith("Relabel file"))
    assert csv.proto.disabled and csv.proto.label == "Relabel file (CSV, 0 faces)"  # nothing accepted yet
    controls = _decisions(at)
    assert len(controls) == min(len(suspects), 24)  # one accept/reject control per face shown
    by_index = {s.index: s for s in suspects}
    face = [int(str(c.key).rsplit("_", 1)[1]) for c in controls[:3]]
    controls[0].set_value("accept").run()
    _decisions(at)[1].set_value("accept").run()
    _decisions(at)[2].set_value("reject").run()
    assert_ok(at)
    assert [c.value for c in _decisions(at)[:4]] == ["accept", "accept", "reject", None]
    assert any("2 accepted** · 1 rejected" in m.value for m in at.markdown)
    expected = sorted([str(by_index[i].row), by_index[i].label, by_index[i].suggested] for i in face[:2])
    assert sorted(_relabel_rows(served)) == expected
    # another class pair: the decisions stay, the file still holds exactly the two accepted faces
    pair = next(
        p
        for p in at.selectbox(key="noise_pair_1").options[1:]
        if p.split(":")[0].replace(" → ", "->") != f"{by_index[face[0]].label}->{by_index[face[0]].suggested}"
    )
    at.selectbox(key="noise_pair_1").set_value(pair.split(":")[0].replace(" → ", "->")).run()
    assert_ok(at)
    shown = [c.value for c in at.caption if "suspects · page" in c.value]
    assert shown and 0 < int(shown[0].split()[0].replace(",", "")) < len(suspects)  # only that class pair
    assert sorted(_relabel_rows(served)) == expected
    # accept a whole pair at once, then undo one face
    at.button(key="noise_accept_all_1").click().run()
    in_pair = [s for s in suspects if f"{s.label}->{s.suggested}" == pair.split(":")[0].replace(" → ", "->")]
    accepted = {face[0], face[1]} | {s.index for s in in_pair}  # face[1] may be in this pair: counted once
    assert len(_relabel_rows(served)) == len(accepted)
    _decisions(at)[0].set_value(None).run()
    assert len(_relabel_rows(served)) == len(accepted) - 1


@pytest.mark.data
def test_dataset_page_real_fer_with_ferplus_and_revisit_is_instant(fer_dir, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(fer_dir))
    at = open_page("dataset", timeout=180)
    assert not errors(at)
    assert [m.value for m in at.metric if m.label == "Images"] == ["32,298"]
    assert int([m.value for m in at.metric if m.label == "Blank images"][0]) > 0
    assert int([m.value for m in at.metric if m.label == "Conflicting labels"][0]) > 0
    assert any("ferplus_votes.csv" in c.value for c in at.caption)  # FER+ tab found the votes
    at.switch_page("app_pages/home.py").run()
    t0 = time.perf_counter()
    at.switch_page("app_pages/dataset.py").run()
    revisit = time.perf_counter() - t0
    assert_ok(at)
    print(f"dataset page revisit: {revisit:.2f} s")
    assert revisit < 3.0


def test_dataset_page_class_folders_without_splits(tmp_path, monkeypatch):
    import cv2
    from conftest import synthetic_faces

    images, labels = synthetic_faces(28)
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        d = tmp_path / "faces" / ["Angry", "Disgusted", "fearful", "HAPPY", "sadness", "surprised", "calm"][lab]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{i}.png"), img)
    monkeypatch.setenv("FER_DATA_ROOTS", str(tmp_path))  # path fields reach only the data roots
    at = open_page("dataset")
    at.text_input(key="ds_path").set_value(str(tmp_path / "faces")).run()
    assert_ok(at)
    assert not errors(at)
    assert [m.value for m in at.metric if m.label == "Images"] == ["28"]
    assert at.selectbox(key="sample_split").options == ["all"]


def test_dataset_upload_csv_gz_and_zip(class_folder, tmp_path):
    at = open_page("dataset")
    at.radio(key="ds_source").set_value("Upload").run()
    csv = write_fer_csv(tmp_path / "mini.csv")
    at.file_uploader(key="ds_upload").set_value(
        ("mini.csv.gz", gzip.compress(csv.read_bytes()), "application/gzip")
    ).run()
    assert_ok(at)
    assert not errors(at)
    assert [m.value for m in at.metric if m.label == "Images"] == ["70"]
    at.file_uploader(key="ds_upload").set_value(("fer.zip", zip_folder(class_folder), "application/zip")).run()
    assert_ok(at)
    assert not errors(at)
    assert [m.value for m in at.metric if m.label == "Images"] == ["175"]


@pytest.mark.parametrize(
    "name,data",
    [
        ("notes.csv", b"name,value\nx,1\n"),
        ("broken.csv.gz", b"\x1f\x8b\x08\x00garbage"),
        ("archive.zip", b"PK\x03\x04 this is not a zip"),
        ("wrong_layout.zip", "layout"),
    ],
)
def test_dataset_bad_upload_is_a_clear_error(name, data, tmp_path):
    if data == "layout":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("photos/holiday/readme.txt", "no class folders here")
            zf.writestr("photos/cats/cat.txt", "meow")
        data = buf.getvalue()
    at = open_page("dataset")
    at.radio(key="ds_source").set_value("Upload").run()
    at.file_uploader(key="ds_upload").set_value((name, data, "application/octet-stream")).run()
    assert_ok(at)
    assert len(errors(at)) == 1 and name in errors(at)[0], errors(at)
    # the app keeps working: switch back to a good path
    at.radio(key="ds_source").set_value("Configured path").run()
    assert_ok(at)


def test_dataset_bad_path_is_a_clear_error(tmp_path, class_folder, monkeypatch):
    monkeypatch.setenv("FER_DATA_ROOTS", str(tmp_path))
    at = open_page("dataset")
    at.radio(key="ds_source").set_value("Configured path").run()
    at.text_input(key="ds_path").set_value(str(tmp_path / "missing")).run()
    assert_ok(at)
    assert errors(at) and "no such file or folder" in errors(at)[0]
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    at.text_input(key="ds_path").set_value(str(tmp_path / "junk")).run()
    assert errors(at) and "not a dataset" in errors(at)[0]
    at.text_input(key="ds_path").set_value(str(class_folder)).run()  # and it recovers
    assert not errors(at)
    assert [m.value for m in at.metric if m.label == "Images"] == ["175"]


def test_dataset_path_outside_the_data_roots_is_refused_alike(tmp_path, class_folder, monkeypatch):
    """A path field cannot read, nor probe for, files outside the data roots (nor through a link)."""
    monkeypatch.setenv("FER_DATA_ROOTS", str(tmp_path / "roots"))
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / "link").symlink_to(class_folder)
    at = open_page("dataset")
    seen = set()
    for path in (
        class_folder,
        tmp_path / "missing",
        "/etc",
        tmp_path / "roots" / "link",
        tmp_path / "roots" / ".." / "fer",
    ):
        at.text_input(key="ds_path").set_value(str(path)).run()
        assert_ok(at)
        assert len(errors(at)) == 1 and "not inside a data folder" in errors(at)[0]
        seen.add(errors(at)[0].replace(str(path), "<path>"))
        assert not [m for m in at.metric if m.label == "Images"]
    assert len(seen) == 1, seen


# ----------------------------------------------------------------------------------------------
# Train


def test_train_page_form_and_bad_path(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_DATA_ROOTS", str(tmp_path))
    at = open_page("train")
    assert at.get("form"), "the training form"
    assert "Runs" in [h.value for h in at.header]
    at.text_input(key="train_data").set_value(str(tmp_path / "missing"))
    button(at, "Start training").click().run()
    assert_ok(at)
    assert errors(at) and "no such file or folder" in errors(at)[0]
    assert not list((tmp_path / "runs").glob("*")), "nothing was started"


def test_train_page_form_is_generated_from_the_config_and_shows_the_standard_preset(tmp_path, monkeypatch):
    from fercore.models.architectures import list_models, read_model_config
    from fercore.train import OPTIMIZERS, SCHEDULES, presets

    monkeypatch.setenv("FER_DATA_ROOTS", str(tmp_path))
    at = open_page("train")
    assert at.selectbox(key="train_model").options == list(list_models())
    assert at.selectbox(key="train_optimizer").options == list(OPTIMIZERS)
    assert at.selectbox(key="train_schedule").options == list(SCHEDULES)
    choice = at.radio(key="train_preset")
    assert choice.options == [p.label for p in presets.load_presets().values()] + ["Custom"]
    assert choice.value == "standard", "the default is the standard preset"
    standard = presets.load_preset("standard").config()
    assert at.number_input(key="train_epochs").value == standard.epochs
    assert at.number_input(key="train_lr").value == standard.lr
    assert json.loads(at.text_input(key="train_params").value) == standard.model_params
    shipped = read_model_config(ROOT / "models" / "model.keras")
    if shipped:  # the best preset is the shipped model's recipe (its architecture and its batch)
        best = presets.load_preset("best").config()
        assert {k: best.model_params[k] for k in ("widths", "depths", "stem_width")} == {
            k: shipped["model_params"][k] for k in ("widths", "depths", "stem_width")
        }
        assert (best.batch_size, best.epochs) == (shipped["batch_size"], shipped["epochs"])
    assert at.checkbox(key="train_aug_flip").value and not at.checkbox(key="train_aug_mixup").value
    for name in presets.preset_names():  # each preset's expected figures, before the start
        assert presets.load_preset(name).label in texts(at)
    assert "Expected top-1" in texts(at) and "Precision auto →" in texts(at)
    # choosing a preset fills the fields; editing one makes the settings custom
    at.radio(key="train_preset").set_value("quick").run()
    quick = presets.load_preset("quick").config()
    assert at.number_input(key="train_epochs").value == quick.epochs
    assert json.loads(at.text_input(key="train_params").value) == quick.model_params
    at.number_input(key="train_epochs").set_value(quick.epochs + 1)
    at.text_input(key="train_data").set_value(str(tmp_path / "missing"))  # refused: nothing starts
    button(at, "Start training").click().run()
    assert_ok(at)
    assert errors(at) and "no such file or folder" in errors(at)[0]
    assert at.radio(key="train_preset").value == "custom"
    assert at.number_input(key="train_epochs").value == quick.epochs + 1
    # another architecture: the preset's parameters (fernet's), left as filled in, give way to its defaults
    at.selectbox(key="train_model").set_value("coursera")
    button(at, "Start training").click().run()
    assert at.text_input(key="train_params").value == "{}"
    assert errors(at) and "no such file or folder" in errors(at)[0], errors(at)


def test_train_page_presets_show_expected_figures_scaled_to_this_machine(tmp_path, monkeypatch):
    from fercore.train import presets, preview
    from tests.test_train_presets import _presets_copy

    figures = {"quick": {"top1": 0.641, "wall_minutes": 10, "train_images_per_s": 400, "reference": "ref box"},
               "standard": {"top1": None, "wall_minutes": None, "train_images_per_s": None},
               "best": {"top1": None, "wall_minutes": None, "train_images_per_s": None}}  # fmt: skip
    monkeypatch.setattr(presets, "PRESETS_FILE", _presets_copy(tmp_path, **figures))
    probed = []

    def fake_probe(name, params, batch_size, precision="auto", training=True, **_):
        probed.append((name, params, batch_size, training))
        return 0.0123 if training else 0.0045  # values no other test uses (the probe is cached per server)

    monkeypatch.setattr(preview, "probe_seconds_per_step", fake_probe)
    at = open_page("train")
    shown = texts(at)
    assert "Expected top-1: **64.10%**" in shown and "ref box" in shown
    assert shown.count("not measured yet") == 4, "standard and best: no top-1 and no time yet"
    assert "Wall time: **10m00s on the reference machine; measure this one**" in shown
    button(at, "Measure this machine's speed").click().run()
    assert_ok(at)
    quick = presets.load_preset("quick").config()
    assert probed == [
        ("fernet", quick.model_params, quick.batch_size, True),
        ("fernet", quick.model_params, 256, False),
    ]
    here = presets.images_per_second(quick, {0: 0.0123}, 0.0045)
    minutes = 10 * 400 / here
    assert f"≈ {runs_fmt(minutes * 60)} here ({here:,.0f} images/s)" in texts(at)


@pytest.mark.slow
def test_train_page_starts_the_quick_preset_and_shows_its_status_and_curves(tmp_path, class_folder, monkeypatch):
    from fercore import runs
    from fercore.train import TrainConfig, presets

    monkeypatch.setenv("FER_DATA_ROOTS", str(tmp_path))
    at = open_page("train", timeout=300)  # a loaded machine: the script runs are slow, not wrong
    at.radio(key="train_preset").set_value("quick").run()
    at.text_input(key="train_data").set_value(str(class_folder))
    at.number_input(key="train_subset").set_value(70)
    button(at, "Start training").click().run()
    assert_ok(at)
    assert not errors(at), errors(at)
    assert at.radio(key="train_preset").value == "quick", "the dataset and subset size keep the preset"
    (run,) = runs.list_runs(tmp_path / "runs")
    try:
        cfg = TrainConfig.from_dict(runs.read_config(run))
        quick = presets.load_preset("quick").config(data=str(class_folder))
        assert cfg.model_params == quick.model_params and cfg.epochs == quick.epochs
        assert cfg.augment == quick.augment and cfg.subset == 70 and cfg.data == str(class_folder)
        _wait_for(run, lambda: (runs.read_metrics(run)["kind"] == "epoch").any(), 600, "no epoch")
        at.run()
        assert_ok(at)
        assert [m.value for m in at.metric if m.label == "State"][0] in ("running", "stopping", "finished")
        assert any(f"{run.name} — " in h.value for h in at.subheader), "the live panel of the run"
        specs = [c.proto.spec for c in plotly_charts(at)]
        assert any("accuracy per epoch" in s for s in specs) and any("loss per batch" in s for s in specs)
    finally:
        if runs.effective_state(run) in runs.ACTIVE_STATES:
            runs.request_stop(run)
            deadline = time.time() + 300
            while runs.effective_state(run) in runs.ACTIVE_STATES and time.time() < deadline:
                time.sleep(1)


def _wait_for(run: Path, ready, seconds: float, what: str) -> None:
    """Wait until ``ready()`` while the run is active; fail with the log tail otherwise."""
    from fercore import runs

    deadline = time.time() + seconds
    while time.time() < deadline:
        if ready():
            return
        assert runs.effective_state(run) in runs.ACTIVE_STATES, runs.log_tail(run)
        time.sleep(0.2)
    pytest.fail(f"{what} in time:\n" + runs.log_tail(run))


def _fake_run(runs_dir: Path, name: str, status: dict | bytes, log: str = "", config: dict | bytes | None = None,
              metrics: bytes | None = None) -> Path:  # fmt: skip
    from fercore import runs

    run = runs_dir / name
    run.mkdir(parents=True)
    config = {"model": "coursera", "epochs": 3, "data": "x"} if config is None else config
    for file, data in ((runs.CONFIG, config), (runs.STATUS, status), (runs.METRICS, metrics)):
        if data is not None:
            (run / file).write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    if log:
        (run / runs.LOG).write_text(log)
    return run


def test_train_page_one_at_a_time_and_crashed_run(tmp_path, class_folder, monkeypatch):
    monkeypatch.setenv("FER_DATA_ROOTS", str(tmp_path))
    runs_dir = tmp_path / "runs"
    _fake_run(runs_dir, "run-crashed", {"state": "failed", "error": "DataError: bad pixels in row 7",
                                        "started": time.time() - 60, "finished": time.time()},
              log="loading data\nTraceback (most recent call last):\nDataError: bad pixels in row 7\n")  # fmt: skip
    busy = {"state": "running", "pid": os.getpid(), "started": time.time()}
    _fake_run(runs_dir, "run-busy", {**busy, "epoch": 1, "epochs": 3, "step": 10, "steps_per_epoch": 100, "eta": 90})
    at = open_page("train")
    assert any("A training is running (run-busy)" in i.value for i in at.info)
    assert at.get("progress"), "progress bar of the running run"
    assert any(b.label == "Stop" for b in at.button)
    at.text_input(key="train_data").set_value(str(class_folder))
    button(at, "Start training").click().run()
    assert_ok(at)
    assert any("already running" in e for e in errors(at)), errors(at)
    # the crashed run: its error and its log tail
    at.selectbox(key="train_pick").set_value("run-crashed").run()
    assert any("bad pixels in row 7" in e for e in errors(at))
    assert any("Traceback" in c.value for c in at.code)
    table = at.dataframe[0].value
    assert set(table["state"]) == {"failed", "running"}


ROWS = b"1.0,batch,1,2,2.5,0.3,,,0.01\n2.0,epoch,1,4,2.0,0.4,1.9,0.5,0.01\n"


@pytest.mark.parametrize("status, config, metrics, state", [
    (b"[1, 2]", None, None, "unreadable"),  # valid JSON, not an object
    (b'"running"', None, None, "unreadable"),
    (b'{"state": "stopp\xff\xfe"}', None, None, "unreadable"),  # invalid UTF-8
    ({"state": 7, "epoch": "x"}, None, None, "unreadable"),
    ({"state": "stopped", "started": "noon", "epochs": "3", "step": [1], "best_val_accuracy": "high"}, None, ROWS,
     "stopped"),  # wrong types: shown with what can be read
    ({"state": "running", "pid": 2**22 + 7, "pid_start": 1, "started": 1.0}, None, ROWS, "failed"),  # owner gone
    ({"state": "stopped", "started": 1.0}, b"[]", ROWS, "stopped"),  # config not an object
    ({"state": "stopped", "started": 1.0}, None, b"\xff\xfe\x00" + ROWS + b"\xff,batch\n", "stopped"),
    ({"state": "stopped", "started": 1.0}, None, ROWS, "stopped"),  # metrics without a header
    ({"state": "stopped", "started": 1.0}, None, b"", "stopped"),
])  # fmt: skip
def test_train_page_survives_damaged_run_files(tmp_path, status, config, metrics, state):
    _fake_run(tmp_path / "runs", "run-damaged", status, config=config, metrics=metrics, log="some log\n")
    at = open_page("train")
    assert at.get("form"), "the form still renders"
    table = at.dataframe[0].value
    assert list(table["run"]) == ["run-damaged"] and list(table["state"]) == [state]
    at.selectbox(key="train_pick").set_value("run-damaged").run()
    assert_ok(at)
    if state in ("unreadable", "failed"):
        assert any(f"run-damaged {state}" in e for e in errors(at)), errors(at)
    if metrics and state == "stopped":
        assert len(plotly_charts(at)) == 3, "the readable rows are drawn"


def test_train_page_resume_and_restart(tmp_path, monkeypatch):
    from fercore import runs
    from fercore.train import TrainConfig

    runs_dir = tmp_path / "runs"
    stopped = _fake_run(runs_dir, "run-stopped", {"state": "stopped", "started": 1.0, "completed_epochs": 1})
    (stopped / runs.LAST).parent.mkdir()
    (stopped / runs.LAST).write_bytes(b"checkpoint")
    _fake_run(runs_dir, "run-early", {"state": "failed", "error": "killed", "started": 1.0})  # no checkpoint
    calls = []

    def fake_launch(config, root, python=None, resume=None):
        calls.append((config, resume))
        new = _fake_run(root, f"run-new{len(calls)}", {"state": "starting", "pid": os.getpid(), "started": time.time()})
        return resume or new

    from fercore.train import launch as launcher

    monkeypatch.setattr(launcher, "launch_training", fake_launch)
    at = open_page("train")
    at.selectbox(key="train_pick").set_value("run-early").run()
    assert at.button(key="resume_hist_run-early").disabled, "nothing to resume from"
    at.selectbox(key="train_pick").set_value("run-stopped").run()
    assert not at.button(key="resume_hist_run-stopped").disabled
    at.button(key="resume_hist_run-stopped").click().run()
    assert_ok(at)
    assert calls == [(None, stopped)]
    at.selectbox(key="train_pick").set_value("run-early").run()
    at.button(key="restart_hist_run-early").click().run()
    assert_ok(at)
    assert calls[1] == (TrainConfig.from_dict({"model": "coursera", "epochs": 3, "data": "x"}), None)


@pytest.mark.data
@pytest.mark.slow
def test_train_page_starts_a_run_shows_metrics_and_stop_ends_it(fer_dir, tmp_path):
    from fercore import runs

    at = open_page("train")
    at.text_input(key="train_data").set_value(str(fer_dir))
    at.selectbox(key="train_model").set_value("coursera")
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_batch_size").set_value(16)
    at.number_input(key="train_subset").set_value(3000)
    at.selectbox(key="train_optimizer").set_value("adam")
    at.number_input(key="train_lr").set_value(0.001)
    # the weight averages are form fields too: EMA instead of the preset's SWA (one or the other)
    at.number_input(key="train_swa_epochs").set_value(0)
    at.number_input(key="train_ema").set_value(0.99)
    button(at, "Start training").click().run()
    assert_ok(at)
    assert not errors(at), errors(at)
    started = list(runs.list_runs(tmp_path / "runs"))
    assert len(started) == 1
    run = started[0]
    try:
        cfg = runs.read_config(run)
        assert cfg["epochs"] == 1 and cfg["subset"] == 3000 and cfg["batch_size"] == 16
        assert cfg["ema"] == 0.99 and cfg["swa_epochs"] == 0
        at.run()  # the live panel of the starting run: Stop waits until training runs
        assert button(at, "Stop").disabled

        def started() -> bool:
            return runs.read_status(run).get("state") == "running" and (runs.read_metrics(run)["kind"] == "batch").any()

        _wait_for(run, started, 240, "training did not start")
        at.run()
        assert [m.value for m in at.metric if m.label == "State"] == ["running"]
        assert at.get("progress"), "progress bar"
        button(at, "Stop").click().run()
        assert runs.stop_requested(run) or runs.effective_state(run) not in runs.ACTIVE_STATES
        deadline = time.time() + 180
        while runs.effective_state(run) in runs.ACTIVE_STATES and time.time() < deadline:
            time.sleep(0.5)
        status = runs.read_status(run)
        assert status["state"] == "stopped", (status, runs.log_tail(run))
        at.run()
        assert_ok(at)
        state = [m.value for m in at.metric if m.label == "State"]
        assert state and state[0] == "stopped"
        assert len(plotly_charts(at)) >= 1, "batch-loss curve of the run"
        table = at.dataframe[0].value
        assert list(table["run"]) == [run.name] and list(table["state"]) == ["stopped"]
        assert not button(at, "Resume").disabled, "a stopped run with a checkpoint can be resumed"
    finally:
        pid = runs.read_status(run).get("pid")
        if runs.effective_state(run) in runs.ACTIVE_STATES and pid:
            runs.request_stop(run)
            time.sleep(5)
            if runs.pid_alive(pid):
                os.kill(int(pid), 15)


def test_train_page_previews_a_tiny_model_and_its_time_per_epoch(tmp_path, class_folder, monkeypatch):
    from fercore.models.architectures import build_model, count_flops
    from fercore.train import preview
    from fercore.train.precision import resolve_precision

    tiny = {"widths": [8], "depths": [1], "stem_width": 8}
    monkeypatch.setenv("FER_DATA_ROOTS", str(tmp_path))
    timed = []

    def fake_probe(name, params, batch_size, precision="auto", training=True, augment=None, **_):
        timed.append((name, params, batch_size, precision, training, augment.crop if augment else None))
        return (0.2 if augment.crop else 0.25) if training else 0.1

    monkeypatch.setattr(preview, "probe_seconds_per_step", fake_probe)  # the probe itself: test_train_preview
    at = open_page("train")
    at.checkbox(key="train_aug_crop").set_value(False)  # whole faces every epoch (crops: below)
    at.number_input(key="train_crop_epochs").set_value(0)
    at.text_input(key="train_data").set_value(str(class_folder))
    at.text_input(key="train_params").set_value('{"width": [8]}')
    button(at, "Preview the model").click().run()
    assert any("no parameter width" in e for e in errors(at)), errors(at)
    at.text_input(key="train_params").set_value(json.dumps(tiny))
    at.number_input(key="train_batch_size").set_value(32)
    button(at, "Preview the model").click().run()
    assert_ok(at)
    model = build_model("fernet", **tiny)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] == f"{model.count_params():,}"
    assert metrics["FLOPs per face"] == f"{count_flops(model) / 1e6:,.1f} M"
    table = next(d.value for d in at.dataframe if "output shape" in d.value.columns)
    assert list(table["layer"]) == [layer.name for layer in model.layers]
    assert int(table["parameters"].sum()) == model.count_params()
    assert not list((tmp_path / "runs").glob("*")), "a preview starts nothing"
    button(at, "Measure time per epoch").click().run()
    assert_ok(at)
    here = resolve_precision("auto")  # the form's default precision follows this machine
    assert timed[0] == ("fernet", tiny, 32, here, True, 0) and timed[1][2:5] == (256, here, False)
    expected = preview.epoch_estimate(0.25, 140, 32, 35, 0.1)  # 4 steps of 32 + one validation batch
    assert {m.label: m.value for m in at.metric}["Time per epoch"] == f"≈ {runs_fmt(expected)}"
    at.run()
    assert len(timed) == 2, "the probe is cached per model, parameters, batch size and precision"
    # crops for the first epoch of three: a probe per side, the run's time weighs each by its epochs
    at.checkbox(key="train_aug_crop").set_value(True)
    at.number_input(key="train_crop_epochs").set_value(1)
    at.number_input(key="train_epochs").set_value(3)
    button(at, "Preview the model").click().run()
    button(at, "Measure time per epoch").click().run()
    assert_ok(at)
    assert [t[4:] for t in timed[2:]] == [(True, 40), (False, None)], "whole faces: the probe above, cached"
    crop_epoch = preview.epoch_estimate(0.2, 140, 32, 35, 0.1)
    assert {m.label: m.value for m in at.metric}["Time per epoch"] == f"≈ {runs_fmt(expected)}"
    caption = next(c.value for c in at.caption if "training images →" in c.value)
    assert f"3 epochs ≈ {runs_fmt(crop_epoch + 2 * expected)}." in caption
    assert "The first epoch trains on 40×40 crops: 0.200 s per step." in caption


def runs_fmt(seconds: float) -> str:
    from fercore import runs

    return runs.fmt_duration(seconds)


EPOCHS = "time,kind,epoch,step,loss,accuracy,val_loss,val_accuracy,lr\n" + "".join(
    f"{e}.0,batch,{e},{e * 10 - 5},2.0,0.3,,,0.01\n"
    f"{e}.5,epoch,{e},{e * 10},1.5,0.4,{1.6 - e / 10},{0.3 + e / 20},0.01\n"
    for e in (1, 2, 3)
)


def test_train_page_overlays_the_curves_of_selected_runs(tmp_path):
    runs_dir = tmp_path / "runs"
    done = {"state": "finished", "started": 1.0, "finished": 2.0}
    _fake_run(runs_dir, "run-a", done, metrics=EPOCHS.encode())
    _fake_run(runs_dir, "run-b", done, metrics=EPOCHS.replace(",0.01\n", ",0.02\n").encode())
    _fake_run(runs_dir, "run-broken", done, metrics=b"\xff\xfe,epoch,zz\n1.0,batch,1,2,2.5,0.3,,,0.01\n")
    at = open_page("train")
    at.multiselect(key="train_compare").set_value(["run-a", "run-b", "run-broken"]).run()
    assert_ok(at)
    overlays = [json.loads(c.proto.spec) for c in plotly_charts(at) if "val. accuracy per epoch" in c.proto.spec]
    assert len(overlays) == 1, "one accuracy chart for all selected runs"
    traces = overlays[0]["data"]
    assert sorted(t["name"] for t in traces) == ["run-a", "run-b"]
    assert len({t["line"]["color"] for t in traces}) == 2, "one colour per run"
    assert any("val. loss per epoch" in c.proto.spec for c in plotly_charts(at))
    assert "run-broken" in texts(at), "the damaged run is skipped with a note"


def test_train_page_fine_tune_prefills_start_from(tmp_path):
    from fercore import runs

    config = {"model": "coursera", "model_params": {"dropout": 0.3}, "epochs": 3, "data": "x"}
    run = _fake_run(tmp_path / "runs", "run-done", {"state": "finished", "started": 1.0}, config=config)
    _fake_run(tmp_path / "runs", "run-empty", {"state": "failed", "started": 1.0})  # no model yet
    (run / runs.LAST).parent.mkdir()
    (run / runs.LAST).write_bytes(b"checkpoint")
    at = open_page("train")
    at.selectbox(key="train_pick").set_value("run-empty").run()
    assert at.button(key="finetune_hist_run-empty").disabled
    at.selectbox(key="train_pick").set_value("run-done").run()
    at.button(key="finetune_hist_run-done").click().run()
    assert_ok(at)
    assert at.selectbox(key="train_init").value == "run run-done (last.keras)"
    assert any("Starts from run run-done (last.keras)" in i.value for i in at.info)
    assert at.selectbox(key="train_model").value == "coursera"
    assert json.loads(at.text_input(key="train_params").value) == {"dropout": 0.3}


# ----------------------------------------------------------------------------------------------
# Evaluate


def test_evaluate_bad_dataset_path(tmp_path, monkeypatch):
    """Inside the data roots a missing path is named; outside them, existing or not, the same refusal."""
    monkeypatch.setenv("FER_DATA_ROOTS", str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    at = open_page("evaluate")
    if not at.get("selectbox"):
        pytest.skip("no model to evaluate (the page shows a warning)")
    at.text_input(key="eval_data").set_value(str(tmp_path / "root" / "missing")).run()
    assert_ok(at)
    assert errors(at) and "missing" in errors(at)[0]
    refusals = []
    for outside in (tmp_path / "elsewhere", tmp_path):  # missing, then existing
        at.text_input(key="eval_data").set_value(str(outside)).run()
        assert_ok(at)
        refusals.append(errors(at)[0].replace(str(outside), "PATH"))
    assert refusals[0] == refusals[1], refusals


def _common():
    import sys

    sys.path.insert(0, str(APP.parent))
    try:
        import common
    finally:
        sys.path.remove(str(APP.parent))
    return common


@requires_default_model
def test_evaluate_compares_two_models_and_shows_calibration(class_folder, tiny_model_dir, tmp_path, monkeypatch):
    """Shipped model (a) against a run's export (b) on the same split: the page matches fercore.evaluation.evaluate,
    shows a reliability diagram, the comparison table with deltas and the faces the two disagree on."""
    import shutil

    from fercore.data.loader import load_dataset
    from fercore.evaluation.evaluate import evaluate

    run = tmp_path / "runs" / "run-tiny"
    shutil.copytree(tiny_model_dir, run / "export")
    (run / "config.json").write_text("{}")
    monkeypatch.setenv("FER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("FER_DATA", str(class_folder))
    at = open_page("evaluate")
    other = [o for o in at.selectbox(key="eval_other").options if "run-tiny" in o]
    at.selectbox(key="eval_other").set_value(other[0]).run()
    at.button(key="eval_go").click().run()
    assert_ok(at)
    assert not errors(at)
    test = load_dataset(class_folder).split("test")
    ref = evaluate(default_model_path(), test).to_dict()
    acc = [m.value for m in at.metric if m.label == "Accuracy"]
    assert acc == [f"{ref['accuracy']:.2%}"]
    assert any("Reliability" in (c.proto.spec or "") for c in plotly_charts(at))
    summary = next(d.value for d in at.dataframe if "b − a" in d.value.columns)
    assert list(summary["metric"][:2]) == ["accuracy", "macro F1"]
    assert summary["a"][0] == pytest.approx(ref["accuracy"])
    assert summary["b − a"][0] == pytest.approx(summary["b"][0] - summary["a"][0])
    assert "Faces the two models label differently" in texts(at)
    # the download caption explains only the formats it offers
    offered = {d.label for d in at.get("download_button")}
    caption = next(c.value for c in at.caption if "load_model" in c.value or "LiteRT" in c.value)
    assert ("model_from_json" in caption) == ("model.json" in offered)
    assert ("LiteRT" in caption) == (".tflite" in offered)


@requires_default_model
@pytest.mark.data
def test_evaluate_shipped_model_on_test_split(fer_dir, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(fer_dir))
    at = open_page("evaluate", timeout=180)
    assert at.selectbox(key="eval_split").value == "test"
    at.number_input(key="eval_limit").set_value(300).run()
    at.button(key="eval_go").click().run()
    assert_ok(at)
    assert not errors(at)
    acc = [m.value for m in at.metric if m.label == "Accuracy"]
    assert acc and float(acc[0].rstrip("%")) > 30
    assert len(plotly_charts(at)) >= 1  # confusion matrix
    assert len(at.dataframe[0].value) == 7  # per-class table
    assert at.image, "misclassified gallery"
    labels = [d.label for d in at.get("download_button")]
    assert "Results (JSON)" in labels and ".tflite" in labels


# ----------------------------------------------------------------------------------------------
# Photo


def test_photo_non_image_upload_is_a_clear_error(photos_dir):
    at = open_page("photo")
    if not at.get("file_uploader"):
        pytest.fail("photo uploader missing")
    if not Path(default_model_path()).exists():
        pytest.skip("no trained model: the page asks for one before reading photos")
    at.file_uploader(key="photo_upload").set_value([("notes.png", b"this is text", "image/png")]).run()
    assert_ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images analysed"] == "0" and metrics["Skipped or unreadable"] == "1"
    (problems,) = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert problems["file"].tolist() == ["notes.png"] and "not an image" in problems["reason"][0]
    # the app keeps working: a good photo next to the bad one is analysed
    at.selectbox(key="photo_sample").set_value("grace_hopper.jpg").run()
    assert_ok(at)
    assert {m.label: m.value for m in at.metric}["Images analysed"] == "1"
    assert any("face_id" in d.value.columns for d in at.dataframe), "faces table of the good photo"


@requires_default_model
def test_photo_astronaut_is_happy(photos_dir):
    at = open_page("photo")
    at.selectbox(key="photo_sample").set_value("astronaut.png").run()
    assert_ok(at)
    assert not errors(at)
    faces = at.dataframe[0].value  # one photo: its faces table, no batch table
    assert len(faces) == 1 and faces["label"][0] == "happy" and faces["face_id"][0] == 1, faces
    assert faces["happy"][0] > 50  # shown in percent
    assert len(plotly_charts(at)) == 1  # the 7 probabilities
    assert len(at.image) >= 2  # annotated image + face crop
    assert {"Annotated PNG", "CSV (all faces)", "JSON (all images)"} <= {d.label for d in at.get("download_button")}


@requires_default_model
def test_photo_several_images_same_name_and_group_photo(photos_dir):
    at = open_page("photo")
    astro = (photos_dir / "astronaut.png").read_bytes()
    at.file_uploader(key="photo_upload").set_value(
        [
            ("astronaut.png", astro, "image/png"),
            ("t1.jpg", (photos_dir / "t1.jpg").read_bytes(), "image/jpeg"),
        ]
    )
    at.selectbox(key="photo_sample").set_value("astronaut.png").run()
    assert_ok(at)
    assert not errors(at)
    assert [s.value for s in at.subheader] == ["astronaut.png", "t1.jpg", "astronaut.png"]
    assert len(at.dataframe) == 4, "the batch table + a faces table per photo"
    assert at.dataframe[0].value["faces"].tolist() == [1, 6, 1]


@requires_default_model
def test_photo_zip_batch_one_table_csv_gallery_and_whole_image(photos_dir):
    """A zip of 50 images (3 corrupt, a text file) + a photo: one table, one CSV, a gallery, bad ones listed."""
    import cv2
    import pandas as pd

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(50):
            crop = cv2.imencode(".png", rng.integers(0, 255, (48, 48), dtype=np.uint8))[1].tobytes()
            zf.writestr(f"crops/{i:02d}.png", b"not a png" if i in (7, 21, 42) else crop)
        zf.writestr("crops/readme.txt", "hello")
    at = open_page("photo")
    at.file_uploader(key="photo_upload").set_value(
        [
            ("crops.zip", buf.getvalue(), "application/zip"),
            ("astronaut.png", (photos_dir / "astronaut.png").read_bytes(), "image/png"),
        ]
    ).run()
    assert_ok(at)
    assert not errors(at) and not at.get("progress"), "the progress bar is gone when done"
    assert any("each image up to 50 MB" in c.value for c in at.caption), "limits shown"
    (table,) = [d.value for d in at.dataframe if "labels" in d.value.columns]
    assert len(table) == 48 and table["faces"].sum() == 1  # 47 readable crops + the astronaut, who has a face
    (problems,) = [d.value for d in at.dataframe if "reason" in d.value.columns]
    reasons = problems.set_index("file")["reason"]
    assert set(reasons.index) == {"crops.zip/crops/readme.txt", *(f"crops.zip/crops/{i:02d}.png" for i in (7, 21, 42))}
    assert "not an image file" in reasons["crops.zip/crops/readme.txt"]
    assert "not an image" in reasons["crops.zip/crops/07.png"] and not set(reasons.index) & set(table["file"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images analysed"] == "48" and metrics["Without a face"] == "47"
    assert metrics["Skipped or unreadable"] == "4"
    assert "Gallery" in [s.value for s in at.subheader] and len(at.image) == 40  # 40 a page
    at.number_input(key="photo_page").set_value(2).run()
    assert len(at.image) == 8  # the last 8 (the astronaut last)
    at.selectbox(key="photo_open").set_value("astronaut.png").run()  # a gallery photo opened in detail
    assert_ok(at)
    assert "astronaut.png" in [s.value for s in at.subheader]
    assert any(c.startswith("face 1: ") for img in at.image for c in img.captions)
    csv = next(d for d in at.get("download_button") if d.label == "CSV (all faces)")
    assert csv.proto.url, "the CSV download is served"

    at.toggle(key="photo_whole").set_value(True).run()  # the crops are classified as whole images
    assert_ok(at)
    (table,) = [d.value for d in at.dataframe if "labels" in d.value.columns]
    assert table["faces"].sum() == 48 and table["labels"].str.contains("whole image").sum() == 47
    assert {m.label: m.value for m in at.metric}["Without a face"] == "0"
    from fercore.inference.batch import to_table

    rows = to_table(at.session_state["photo_batch"]["report"].analysed)
    assert isinstance(rows, pd.DataFrame) and rows["whole_image"].sum() == 47


@requires_default_model
@pytest.mark.slow
def test_photo_gradcam(photos_dir):
    if not (Path(default_model_path()).parent / "model.keras").exists():
        pytest.skip("Grad-CAM needs model.keras beside the model")
    at = open_page("photo", timeout=180)
    at.selectbox(key="photo_sample").set_value("astronaut.png")
    at.toggle(key="photo_gradcam").set_value(True).run()
    assert_ok(at)
    assert not errors(at)
    captions = [c for img in at.image for c in img.captions]
    assert "Grad-CAM" in captions


# ----------------------------------------------------------------------------------------------
# Video


@requires_default_model
def test_video_corrupt_upload_is_a_clear_error_then_a_good_one_works(photos_dir, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    at = open_page("video", timeout=120)
    at.file_uploader(key="video_upload").set_value(("clip.mp4", os.urandom(4096), "video/mp4")).run()
    assert_ok(at)
    assert errors(at) and "clip.mp4" in errors(at)[0]
    assert not list((tmp_path / "tmp").iterdir()), "nothing left on disk after an error"
    clip = make_video(tmp_path / "face.mp4", photos_dir / "astronaut.png")
    at.file_uploader(key="video_upload").set_value(("face.mp4", clip.read_bytes(), "video/mp4")).run()
    assert_ok(at)
    assert not errors(at) and not at.get("progress") and not any(b.label == "Cancel" for b in at.button)
    assert [m.value for m in at.metric if m.label == "Frames"] == ["12"]
    assert at.get("video"), "the annotated video plays in the page"
    assert len(plotly_charts(at)) == 2  # share per face + timeline
    assert {"Annotated video", "Per-frame CSV"} <= {d.label for d in at.get("download_button")}
    assert "Highlights" in [s.value for s in at.subheader]
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith("happy ") and " · 0:" in c for c in captions), captions  # the astronaut smiles
    assert not list((tmp_path / "tmp").iterdir()), "nothing left on disk"


@requires_default_model
def test_video_cancel_leaves_nothing_on_disk_and_can_restart(photos_dir, tmp_path, monkeypatch):
    """Cancel = Streamlit interrupting the script inside a progress update (as a rerun request does)."""
    import tempfile

    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    import fercore.inference.video

    real = fercore.inference.video.process_video
    calls = []

    def interrupted(*args, progress=None, **kwargs):
        def stop_midway(fraction):
            progress(fraction)
            if fraction > 0.3:
                raise StopException()

        calls.append(args[1])
        return real(*args, progress=stop_midway, **kwargs)

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(fercore.inference.video, "process_video", interrupted)
    at = open_page("video", timeout=120)
    clip = make_video(tmp_path / "face.mp4", photos_dir / "astronaut.png", frames=20)
    at.file_uploader(key="video_upload").set_value(("face.mp4", clip.read_bytes(), "video/mp4")).run()
    assert_ok(at)
    assert calls and not list((tmp_path / "tmp").iterdir()), "temporary files removed on interruption"
    assert "%" in at.get("progress")[0].proto.text, "progress text"
    button(at, "Cancel").click().run()
    assert any("cancelled" in i.value for i in at.info) and not at.get("video")
    monkeypatch.setattr(fercore.inference.video, "process_video", real)
    button(at, "Analyse again").click().run()
    assert_ok(at)
    assert [m.value for m in at.metric if m.label == "Frames"] == ["20"] and not errors(at)
    assert not list((tmp_path / "tmp").iterdir())


# ----------------------------------------------------------------------------------------------
# Webcam


def test_webcam_without_model_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_MODEL", str(tmp_path / "none.tflite"))
    at = open_page("webcam")
    assert any("No trained model found" in w.value for w in at.warning)


@requires_default_model
def test_webcam_page_and_bad_ice_config():
    at = open_page("webcam")
    assert "frames processed: 0" in texts(at)
    assert at.selectbox(key="webcam_detector").options == ["blaze", "haar", "mtcnn"]
    n_elements = len(at.main.children)
    at.text_area(key="webcam_ice").set_value("[{not json").run()
    assert_ok(at)
    assert errors(at) and "ICE servers ignored" in errors(at)[0]
    assert "frames processed: 0" in texts(at), "the page keeps working"
    at.text_area(key="webcam_ice").set_value(json.dumps([{"urls": ["stun:127.0.0.1:3478"]}])).run()
    assert not errors(at)
    assert len(at.main.children) == n_elements


@requires_default_model
def test_webcam_calibration_toggle_changes_the_shown_scores(photos_dir):
    """Calibrating on the (happy) astronaut makes the page show it neutral; the toggle brings raw scores back."""
    from fercore.inference.image import load_image
    from fercore.inference.personal import fit_baseline
    from fercore.labels import EMOTIONS

    at = open_page("webcam")
    live = at.session_state["webcam_live"]
    rgb = load_image(photos_dir / "astronaut.png")
    for _ in range(4):
        live.process(rgb)
    raw = live.drain()[-1][2][0]["scores"]
    live.personal.baselines = {1: fit_baseline(np.array([[raw[e] for e in EMOTIONS]]))}
    live.process(rgb)
    at.run()
    assert "face 1: **neutral**" in texts(at) and "Baselines: face 1" in texts(at)
    at.toggle(key="webcam_calibrated").set_value(False).run()
    live.process(rgb)
    at.run()
    assert "face 1: **happy**" in texts(at)


@requires_default_model
def test_webcam_frame_callback_draws_and_reports(photos_dir):
    """The callback streamlit-webrtc calls per frame: pipeline → track → draw, results on the queue."""
    import av

    from fercore.inference.classify import EmotionClassifier
    from fercore.inference.image import load_image
    from fercore.inference.live import LiveSession

    rgb = load_image(photos_dir / "astronaut.png")
    live = LiveSession(EmotionClassifier(), "haar")
    callback = live.frame_callback()
    for _ in range(3):
        out = callback(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
    drawn = out.to_ndarray(format="rgb24")
    assert drawn.shape == rgb.shape and (drawn != rgb).any()
    assert live.frames == 3
    items = live.drain()
    t, latency, faces = items[-1]
    assert len(items) == 3 and latency > 0 and faces[0]["face_id"] == 1 and faces[0]["label"] == "happy"


# ----------------------------------------------------------------------------------------------
# Import cost


def test_prediction_pages_do_not_import_tensorflow(class_folder, tmp_path):
    """Home, Photo, Video and Webcam run on LiteRT: rendering them must not import tensorflow
    (about 6 s). Checked in a fresh interpreter, since other tests in this one may import it."""
    import subprocess
    import sys

    script = f"""
import sys, os
import streamlit_webrtc.component as c
c.get_this_session_info = lambda: None
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(APP)!r}, default_timeout=120)
at.run()
for page in ("photo", "video", "webcam", "home"):
    at.switch_page(f"app_pages/{{page}}.py").run()
    assert not at.exception, (page, [e.value for e in at.exception])
if {Path(default_model_path()).exists() and (shared_data_dir() / "photos" / "astronaut.png").exists()!r}:
    at.switch_page("app_pages/photo.py").run()
    at.selectbox(key="photo_sample").set_value("astronaut.png").run()
    assert not at.exception
print("TF" if "tensorflow" in sys.modules else "NO-TF")
"""
    env = {**os.environ, "FER_DATA": str(class_folder), "FER_RUNS": str(tmp_path / "runs")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "NO-TF", out.stdout
