"""facelab.data.open / load_arrays / stratified_split / per_class_subset."""
from __future__ import annotations

import numpy as np
import pytest

from facelab import data as D
from facelab.config import ConfigError

from test_data import make_fer_folder, make_rafdb, private_cache  # noqa: F401 (fixture)


def test_open_returns_the_named_reader(tmp_path):
    root = make_fer_folder(tmp_path / "fer")
    ds = D.open("fer2013", root, "train")
    assert isinstance(ds, D.FER2013Folder)
    assert np.array_equal(ds.labels, D.FER2013Folder(root, "train").labels)
    raf = D.open("rafdb", make_rafdb(tmp_path / "raf"), "test")
    assert isinstance(raf, D.RAFDB) and raf.split == "test"


def test_open_rejects_unknown_names_and_splits_of_splitless_sets(tmp_path):
    with pytest.raises(ConfigError, match="expected one of .*fer2013"):
        D.open("fer2014", tmp_path, "train")
    with pytest.raises(ConfigError, match="has no splits"):
        D.open("ck48", tmp_path, "train")
    with pytest.raises(ConfigError, match="no root given"):
        D.open("fer2013", None, "train")
    with pytest.raises(D.DatasetLayoutError):
        D.open("fer2013", tmp_path / "empty", "train")


def test_load_arrays_resizes_filters_classes_and_subsamples(tmp_path):
    ds = D.open("fer2013", make_fer_folder(tmp_path / "fer"), "train")
    x, y = D.load_arrays(ds, 16)
    assert x.shape == (len(ds), 16, 16, 3) and x.dtype == np.uint8 and np.array_equal(y, ds.labels)
    x1, y1 = D.load_arrays(ds, 16, classes=[1, 2], limit=3, seed=5)
    x2, y2 = D.load_arrays(ds, 16, classes=[1, 2], limit=3, seed=5)
    assert len(y1) == min(3, int(np.isin(ds.labels, [1, 2]).sum())) and set(y1) <= {1, 2}
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)


def test_stratified_split_keeps_class_shares_and_is_seeded():
    labels = np.repeat([0, 1, 2], [10, 6, 2])
    a, b = D.stratified_split(labels, 0.5, seed=3)
    assert len(np.intersect1d(a, b)) == 0 and len(a) + len(b) == len(labels)
    assert [int((labels[a] == c).sum()) for c in range(3)] == [5, 3, 1]
    assert np.array_equal(a, D.stratified_split(labels, 0.5, seed=3)[0])
    assert not np.array_equal(a, D.stratified_split(labels, 0.5, seed=4)[0])
    with pytest.raises(ValueError, match="fraction"):
        D.stratified_split(labels, 1.0, seed=0)


def test_per_class_subset_caps_each_class():
    labels = np.array([0, 0, 0, 1, 2, 2, 2, 2])
    assert D.per_class_subset(labels, 2).tolist() == [0, 1, 3, 4, 5]
    seeded = D.per_class_subset(labels, 2, seed=1)
    assert np.bincount(labels[seeded]).tolist() == [2, 1, 2]
    with pytest.raises(ValueError, match=">= 1"):
        D.per_class_subset(labels, 0)
