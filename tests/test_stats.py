"""fercore.data.stats on small hand-made data sets whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from fercore.data import stats
from fercore.data.dataset import Dataset, LoadReport
from fercore.labels import EMOTIONS
from fercore.types import DataError


def make_dataset(images: np.ndarray, labels: list[int], splits: list[str], ids: list[str] | None = None) -> Dataset:
    n = len(labels)
    return Dataset(
        images.astype(np.uint8),
        np.array(labels, np.int64),
        np.array(splits),
        np.array(ids or [str(i) for i in range(n)]),
        LoadReport(source="test", kind="csv", loaded=n),
    )


@pytest.fixture
def ds() -> Dataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 48, 48))
    images[5] = images[0]  # duplicate across splits with the same label
    images[6] = images[1]  # duplicate within train with another label
    images[7] = 128  # blank
    labels = [3, 0, 3, 4, 6, 3, 2, 3]
    splits = ["train", "train", "train", "test", "test", "test", "train", "private"]
    return make_dataset(images, labels, splits)


def test_split_class_counts(ds):
    counts = stats.split_class_counts(ds)
    assert list(counts.index) == ["train", "test", "private"] and list(counts.columns) == list(EMOTIONS)
    assert counts.loc["train", "happy"] == 2 and counts.loc["test", "happy"] == 1
    assert counts.loc["private", "happy"] == 1 and int(counts.to_numpy().sum()) == len(ds)


def test_class_mean_faces(ds):
    means = stats.class_mean_faces(ds)
    assert set(means) == {"angry", "fear", "happy", "sad", "neutral"}
    happy = ds.images[ds.labels == 3].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(means["happy"], happy, rtol=1e-6)
    assert set(stats.class_mean_faces(ds, "test")) == {"happy", "sad", "neutral"}
    with pytest.raises(DataError, match="no split 'validation2'"):
        stats.class_mean_faces(ds, "validation2")


def test_intensity_histogram_shares_sum_to_one(ds):
    hist = stats.intensity_histogram(ds, bins=64)
    assert set(hist["split"]) == {"train", "test", "private"}
    for _, part in hist.groupby("split"):
        assert len(part) == 64 and part["share"].sum() == pytest.approx(1.0)
    private = hist[hist["split"] == "private"]
    assert private.loc[private["share"].idxmax(), "intensity"] == 128.0  # the blank image is all 128
    odd = stats.intensity_histogram(ds, bins=10)  # 256 is not a multiple of 10: numpy's histogram
    assert odd.groupby("split")["share"].sum().tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_find_duplicates(ds):
    report = stats.find_duplicates(ds)
    groups = sorted(sorted(g.tolist()) for g in report.groups)
    assert groups == [[0, 5], [1, 6]]
    assert report.across_splits == 1 and report.within_split == 1 and report.conflicting == 1
    assert set(report.table.columns) == {"group", "index", "id", "split", "label"} and len(report.table) == 4


def test_no_duplicates_gives_an_empty_table():
    images = np.arange(3 * 48 * 48).reshape(3, 48, 48) % 251
    report = stats.find_duplicates(make_dataset(images, [0, 1, 2], ["train"] * 3))
    assert report.groups == [] and report.table.empty and "label" in report.table.columns


def test_blank_images(ds):
    assert stats.blank_images(ds).tolist() == [7]


def test_ferplus_agreement(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (3, 48, 48))
    ds = make_dataset(images, [3, 3, 0], ["train"] * 3, ids=["0", "1", "2"])
    votes = tmp_path / "votes.csv"
    votes.write_text(
        "row,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
        "0,0,9,1,0,0,0,0,0,0,0\n"  # happy: agrees
        "1,7,3,0,0,0,0,0,0,0,0\n"  # neutral: disagrees
    )
    table = stats.ferplus_agreement(ds, votes).set_index("emotion")
    assert table.loc["happy", "n"] == 2 and table.loc["happy", "agree"] == pytest.approx(0.5)
    assert table.loc["happy", "mean_votes_for_label"] == pytest.approx(6.0)
    assert table.loc["angry", "n"] == 0 and np.isnan(table.loc["angry", "agree"])
