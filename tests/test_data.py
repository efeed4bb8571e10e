"""facelab.data: every reader on a tiny generated copy of its official layout, plus real FER2013.

No real data is copied here: each test writes small images and label files into tmp_path.
"""
from __future__ import annotations

import csv
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from facelab.config import BASIC7, EXPRESSIONS, ConfigError
from facelab.data import (AFFECTNET_TO_CANONICAL, CK48_FOLDERS, CKPLUS_TO_CANONICAL, FER2013_FOLDERS,
                          FER2013_TO_CANONICAL, FERPLUS_COLUMNS, RAFDB_TO_CANONICAL, SFEW,
                          SFEW_FOLDERS, SFEW_YOLO_TO_CANONICAL, AffectNet, AffectNetCSV,
                          CK48Folder, CKPlus, CorruptImageError, DataWarning, DatasetLayoutError,
                          FER2013CSV, FER2013Folder, FERPlus, ImageFolder, Landmarks300W, RAFDB,
                          RAFDBDetection, SFEWDetection, common_classes, common_subset,
                          ferplus_target, read_detection_list, read_facs, read_pts, write_pts)


# -- generated files --------------------------------------------------------------------------------

def write_image(path: Path, value: int = 128, size=(8, 8), mode: str = "L") -> Path:
    """A small solid image whose pixel value identifies it in assertions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fill = value if mode == "L" else (value, 255 - value, 7)
    Image.new(mode, size, fill).save(path)
    return path


def write_garbage(path: Path, data: bytes = b"this is not an image at all") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_truncated_jpeg(path: Path) -> Path:
    """Valid JPEG signature and header, body cut off: only a full decode notices."""
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def quiet(fn, *args, **kwargs):
    """Construct a dataset whose skipped-file warning is expected elsewhere."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return fn(*args, **kwargs)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Keep every as_arrays() cache of these tests out of the user's real cache."""
    cache = tmp_path / "_cache"
    monkeypatch.setenv("FACELAB_CACHE", str(cache))
    return cache


# -- the explicit label mappings ---------------------------------------------------------------------
# Written out from the publishers' documentation, independently of the module's dicts.

PUBLISHED_NAMES = {
    "rafdb": {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "anger", 7: "neutral"},
    "affectnet": {0: "neutral", 1: "happy", 2: "sad", 3: "surprise", 4: "fear", 5: "disgust",
                  6: "anger", 7: "contempt"},
    "fer2013": {0: "anger", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"},
    "ckplus": {0: "neutral", 1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy",
               6: "sad", 7: "surprise"},
    "sfew_yolo": {0: "anger", 1: "disgust", 2: "fear", 3: "happy", 4: "neutral", 5: "sad",
                  6: "surprise"},
}


@pytest.mark.parametrize("key, table", [
    ("rafdb", RAFDB_TO_CANONICAL), ("affectnet", AFFECTNET_TO_CANONICAL),
    ("fer2013", FER2013_TO_CANONICAL), ("ckplus", CKPLUS_TO_CANONICAL),
    ("sfew_yolo", SFEW_YOLO_TO_CANONICAL)])
def test_id_mappings_match_published_names(key, table):
    expected = PUBLISHED_NAMES[key]
    assert {k: EXPRESSIONS[v] for k, v in table.items()} == expected
    assert len(set(table.values())) == len(table)  # one canonical class per dataset id


def test_name_mappings_cover_each_datasets_classes():
    assert FER2013_FOLDERS == {"angry": "anger", "disgust": "disgust", "fear": "fear",
                               "happy": "happy", "neutral": "neutral", "sad": "sad",
                               "surprise": "surprise"}
    assert {k: v for k, v in SFEW_FOLDERS.items()} == {
        "Angry": "anger", "Disgust": "disgust", "Fear": "fear", "Happy": "happy",
        "Neutral": "neutral", "Sad": "sad", "Surprise": "surprise"}
    assert CK48_FOLDERS["sadness"] == "sad" and CK48_FOLDERS["contempt"] == "contempt"
    assert set(FERPLUS_COLUMNS.values()) == set(EXPRESSIONS)
    for table in (FER2013_FOLDERS, SFEW_FOLDERS, CK48_FOLDERS, FERPLUS_COLUMNS):
        assert set(table.values()) <= set(EXPRESSIONS)


# -- FER2013 image folders -----------------------------------------------------------------------------

FER_COUNTS = {"angry": 3, "disgust": 1, "fear": 2, "happy": 4, "neutral": 2, "sad": 1, "surprise": 2}


def make_fer_folder(root: Path, split: str = "train", counts=FER_COUNTS) -> Path:
    for k, (cls, n) in enumerate(counts.items()):
        for i in range(n):
            write_image(root / split / cls / f"Training_{k}{i:03d}.jpg", value=10 * k + i, size=(48, 48))
    return root


def test_fer_folder_labels_counts_and_items(tmp_path):
    root = make_fer_folder(tmp_path / "fer")
    ds = FER2013Folder(root, "train")
    assert len(ds) == sum(FER_COUNTS.values())
    assert ds.classes == BASIC7 and ds.labels.dtype == np.int64
    want = {FER2013_FOLDERS[k]: v for k, v in FER_COUNTS.items()}
    assert ds.class_counts() == {name: want[name] for name in BASIC7}
    for i, path in enumerate(ds.files):
        assert ds.classes[ds.labels[i]] == FER2013_FOLDERS[path.parent.name]
    image, label = ds[0]
    assert isinstance(image, Image.Image) and image.mode == "L" and image.size == (48, 48)
    assert isinstance(label, int)
    rgb = FER2013Folder(root, "train", mode="RGB", transform=lambda im: torch.from_numpy(np.array(im)))
    x, _ = rgb[0]
    assert x.shape == (48, 48, 3)
    report = ds.report()
    assert (report.n_listed, report.n_kept, report.n_missing, report.n_corrupt) == (15, 15, 0, 0)


def test_fer_folder_batches_through_a_dataloader(tmp_path):
    ds = FER2013Folder(make_fer_folder(tmp_path / "fer"), "train",
                       transform=lambda im: torch.from_numpy(np.array(im, dtype=np.float32) / 255)[None])
    x, y = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert x.shape == (4, 1, 48, 48) and y.dtype == torch.int64


def test_fer_folder_layout_errors_print_the_expected_tree(tmp_path):
    root = make_fer_folder(tmp_path / "fer")
    with pytest.raises(DatasetLayoutError, match="root folder does not exist") as err:
        FER2013Folder(tmp_path / "nowhere", "train")
    assert "Expected layout:" in str(err.value) and "angry/" in str(err.value)
    assert isinstance(err.value, ConfigError)
    with pytest.raises(DatasetLayoutError, match=r"no split folder 'val' \(found \['train'\]\)"):
        FER2013Folder(root, "val")
    with pytest.raises(DatasetLayoutError, match="looks like a split folder"):
        FER2013Folder(root / "train", "train")
    (root / "train" / "angy").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"class folders \['angy'\]"):
        FER2013Folder(root, "train")


def test_corrupt_and_missing_images_are_counted_skipped_and_warned(tmp_path):
    root = make_fer_folder(tmp_path / "fer")
    write_garbage(root / "train" / "happy" / "garbage.jpg")
    write_garbage(root / "train" / "happy" / "empty.jpg", b"")
    trunc = write_truncated_jpeg(root / "train" / "sad" / "truncated.jpg")
    with pytest.warns(DataWarning, match="2 corrupt"):
        ds = FER2013Folder(root, "train")
    assert ds.report().n_corrupt == 2 and len(ds) == 16  # 15 good + the truncated one
    assert ds.class_counts()["happy"] == FER_COUNTS["happy"]
    # The quick check cannot see a body cut short: reading it says how to skip it.
    with pytest.raises(CorruptImageError, match="verify='full'"):
        ds[[str(f) for f in ds.files].index(str(trunc))]
    with pytest.warns(DataWarning, match="3 corrupt"):
        full = FER2013Folder(root, "train", verify="full")
    assert len(full) == 15 and str(trunc) in full.report().corrupt
    assert "3 corrupt" in str(full.report())


def test_in_memory_split_is_cached_by_content_and_written_atomically(tmp_path, private_cache):
    root = make_fer_folder(tmp_path / "fer")
    ds = FER2013Folder(root, "train", in_memory=True)
    images, labels = ds.as_arrays()
    assert images.shape == (15, 48, 48) and images.dtype == np.uint8
    assert np.array_equal(labels, ds.labels)
    for i, path in enumerate(ds.files):
        assert np.array_equal(images[i], np.asarray(Image.open(path)))
    assert np.array_equal(np.asarray(ds[3][0]), images[3])  # items now come from memory
    entries = sorted((private_cache / "data").iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".npz"  # no temp file left behind

    # Same bytes elsewhere (another clone) -> same entry; new bytes -> a new entry.
    copy = make_fer_folder(tmp_path / "copy")
    FER2013Folder(copy, "train").as_arrays()
    assert len(list((private_cache / "data").iterdir())) == 1
    write_image(copy / "train" / "angry" / "Training_0000.jpg", value=250, size=(48, 48))
    FER2013Folder(copy, "train").as_arrays()
    assert len(list((private_cache / "data").iterdir())) == 2

    # A damaged entry is rebuilt, never trusted.
    entries[0].write_bytes(b"garbage")
    again, _ = FER2013Folder(root, "train").as_arrays()
    assert np.array_equal(again, images)


def test_in_memory_drops_images_that_fail_to_decode(tmp_path):
    root = make_fer_folder(tmp_path / "fer")
    write_truncated_jpeg(root / "train" / "sad" / "truncated.jpg")
    with pytest.warns(DataWarning, match="1 corrupt"):
        ds = FER2013Folder(root, "train", in_memory=True)
    assert len(ds) == 15 and ds.as_arrays()[0].shape[0] == 15


# -- FER2013 csv and FERPlus ----------------------------------------------------------------------------

def fer_pixels(value: int) -> str:
    return " ".join([str(value)] * 48 * 48)


def make_fer_csv(path: Path) -> list[tuple[int, str]]:
    """Rows: every FER id in Training, two PublicTest, one PrivateTest, one broken row."""
    rows = [(fer_id, "Training") for fer_id in range(7)] + [(3, "PublicTest"), (0, "PublicTest"),
                                                             (6, "PrivateTest")]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for i, (fer_id, usage) in enumerate(rows):
            w.writerow([fer_id, fer_pixels(i), usage])
        w.writerow([2, "1 2 3", "Training"])  # too few pixels
    return rows


def test_fer_csv_maps_ids_splits_and_counts_bad_rows(tmp_path):
    rows = make_fer_csv(tmp_path / "fer2013.csv")
    with pytest.warns(DataWarning, match="1 corrupt"):
        train = FER2013CSV(tmp_path, "train")  # a folder holding fer2013.csv works too
    assert [train.classes[v] for v in train.labels] == [PUBLISHED_NAMES["fer2013"][i] for i in range(7)]
    assert train.images.shape == (7, 48, 48) and train.images[4, 0, 0] == 4
    image, label = train[4]
    assert image.mode == "L" and np.asarray(image)[0, 0] == 4 and label == EXPRESSIONS.index("sad")
    assert train.report().n_corrupt == 1 and "line 12" in train.report().corrupt[0]
    pub = quiet(FER2013CSV, tmp_path / "fer2013.csv", "publictest")
    assert pub.labels.tolist() == [1, 6] and pub.rows.tolist() == [7, 8]
    assert quiet(FER2013CSV, tmp_path / "fer2013.csv", "test").labels.tolist() == [0]
    assert len(quiet(FER2013CSV, tmp_path / "fer2013.csv", None)) == len(rows)
    with pytest.raises(ConfigError, match="unknown split"):
        FER2013CSV(tmp_path / "fer2013.csv", "holdout")
    with pytest.raises(DatasetLayoutError, match="missing file"):
        FER2013CSV(tmp_path / "elsewhere.csv")


def test_fer_csv_with_wrong_columns_is_a_layout_error(tmp_path):
    (tmp_path / "fer2013.csv").write_text("label,image\n1,2\n")
    with pytest.raises(DatasetLayoutError, match=r"columns \['emotion', 'pixels'\] missing"):
        FER2013CSV(tmp_path / "fer2013.csv", cache=False)


FERPLUS_HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger",
                  "disgust", "fear", "contempt", "unknown", "NF"]


def test_ferplus_target_rules():
    votes = np.array([0, 8, 1, 0, 0, 0, 0, 1, 0, 0])
    assert np.argmax(ferplus_target(votes, "majority")) == 1
    assert ferplus_target(np.array([4, 4, 2, 0, 0, 0, 0, 0, 0, 0]), "majority") == "no majority"
    assert ferplus_target(np.array([0, 0, 0, 0, 0, 0, 0, 0, 3, 7]), "majority") == \
        "voted unknown or not a face"
    assert ferplus_target(np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0]), "majority") == "no votes left"
    p = ferplus_target(np.array([6, 3, 1, 0, 0, 0, 0, 0, 0, 0]), "probability")
    assert np.allclose(p, [6 / 9, 3 / 9, 0, 0, 0, 0, 0, 0])  # the single vote is dropped
    p = ferplus_target(np.array([6, 3, 1, 0, 0, 0, 0, 0, 0, 0]), "probability", drop_single_votes=False)
    assert np.isclose(p[2], 0.1)


def make_ferplus(tmp_path: Path) -> Path:
    make_fer_csv(tmp_path / "fer2013.csv")
    votes = [
        [0, 9, 1, 0, 0, 0, 0, 0, 0, 0],   # happy
        [0, 0, 0, 0, 0, 0, 0, 10, 0, 0],  # contempt
        [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],   # no majority (probability mode keeps it)
        [0, 0, 0, 0, 0, 0, 0, 0, 2, 8],   # not a face
        [0, 0, 0, 8, 2, 0, 0, 0, 0, 0],   # sad, but its image was removed by FERPlus
        [0, 0, 0, 0, 0, 0, 7, 3, 0, 0],   # fear
        [0, 0, 8, 0, 0, 0, 0, 0, 2, 0],   # surprise
    ]
    usage = ["Training"] * 7 + ["PublicTest", "PublicTest", "PrivateTest", "Training"]
    path = tmp_path / "fer2013new.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FERPLUS_HEADER)
        for i, u in enumerate(usage):
            v = votes[i] if i < len(votes) else [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            name = "" if i == 4 else f"fer{i:07d}.png"
            w.writerow([u, name, *v])
    return path


def test_ferplus_majority_and_probability_labels(tmp_path):
    labels_csv = make_ferplus(tmp_path)
    # The last row's fer2013.csv pixels are broken: FERPlus counts it as corrupt.
    with pytest.warns(DataWarning, match="1 corrupt"):
        ds = FERPlus(labels_csv, fer2013_csv=tmp_path / "fer2013.csv", split="train")
    assert ds.classes == EXPRESSIONS
    assert [EXPRESSIONS[v] for v in ds.labels] == ["happy", "contempt", "fear", "surprise"]
    excluded = ds.report().excluded
    assert excluded["no majority"] == 1 and excluded["voted unknown or not a face"] == 1
    assert excluded["no image (removed by FERPlus)"] == 1 and excluded["other splits"] == 3
    image, label = ds[0]
    assert np.asarray(image)[0, 0] == 0 and label == 1  # row 0 of fer2013.csv
    assert np.asarray(ds[3][0])[0, 0] == 6  # rows stay aligned past the excluded ones

    prob = quiet(FERPlus, labels_csv, fer2013_csv=tmp_path / "fer2013.csv", split="train",
                 label_mode="probability")
    assert len(prob) == 5 and prob.probs.shape == (5, 8)
    _, target = prob[2]  # the 5/5 tie: neutral and happy at one half each
    assert target.dtype == np.float32 and np.allclose(target[[0, 1]], 0.5) and target.sum() == 1
    assert prob.probs[3, EXPRESSIONS.index("fear")] == pytest.approx(0.7)

    images = tmp_path / "ferplus_png" / "FER2013Train"
    for i in (0, 1, 2, 5):  # the kept rows 6 and 10 have no PNG
        write_image(images / f"fer{i:07d}.png", value=i, size=(48, 48))
    with pytest.warns(DataWarning, match="2 missing"):
        from_png = FERPlus(labels_csv, image_dir=tmp_path / "ferplus_png", split="train")
    assert [EXPRESSIONS[v] for v in from_png.labels] == ["happy", "contempt", "fear"]
    with pytest.raises(ConfigError, match="exactly one image source"):
        FERPlus(labels_csv, split="train")


# -- RAF-DB ---------------------------------------------------------------------------------------------

RAF_ROWS = [("train_00001.jpg", 1), ("train_00002.jpg", 2), ("train_00003.jpg", 3),
            ("train_00004.jpg", 4), ("train_00005.jpg", 5), ("train_00006.jpg", 6),
            ("train_00007.jpg", 7), ("test_0001.jpg", 4), ("test_0002.jpg", 7)]


def make_rafdb(root: Path) -> Path:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text(
        "".join(f"{name} {label}\n" for name, label in RAF_ROWS))
    for i, (name, _) in enumerate(RAF_ROWS):
        stem = Path(name).stem
        write_image(root / "Image" / "aligned" / f"{stem}_aligned.jpg", value=20 * i, size=(100, 100),
                    mode="RGB")
        write_image(root / "Image" / "original" / name, value=20 * i, size=(64, 48), mode="RGB")
        box = root / "Annotation" / "boundingbox" / f"{stem}_boundingbox.txt"
        box.parent.mkdir(parents=True, exist_ok=True)
        box.write_text(f"{i}.5 2.0 {30 + i}.0 40.25\n")
        auto = root / "Annotation" / "auto" / f"{stem}_auto_ldmk.txt"
        auto.parent.mkdir(parents=True, exist_ok=True)
        auto.write_text("".join(f"{j}.0\t{j + 1}.0\n" for j in range(37)))
        manu = root / "Annotation" / "manual" / f"{stem}_manu_attri.txt"
        manu.parent.mkdir(parents=True, exist_ok=True)
        manu.write_text("".join(f"{j}.0\t{j}.0\n" for j in range(5)) + "0\n1\n2\n")
    return root


def test_rafdb_aligned_labels_follow_the_published_ids(tmp_path):
    root = make_rafdb(tmp_path / "basic")
    train = RAFDB(root, "train")
    assert len(train) == 7 and train.classes == BASIC7
    assert [train.classes[v] for v in train.labels] == [PUBLISHED_NAMES["rafdb"][k] for k in range(1, 8)]
    assert all(f.name.endswith("_aligned.jpg") for f in train.files)
    image, label = train[3]
    assert image.size == (100, 100) and image.mode == "RGB" and label == EXPRESSIONS.index("happy")
    assert train.report().excluded == {"other split": 2}
    test = RAFDB(tmp_path, "test")  # the parent of basic/ is accepted too
    assert [test.classes[v] for v in test.labels] == ["happy", "neutral"]
    assert len(RAFDB(root, None)) == 9


def test_rafdb_missing_label_file_and_missing_images(tmp_path):
    root = make_rafdb(tmp_path / "basic")
    (root / "Image" / "aligned" / "train_00002_aligned.jpg").unlink()
    with pytest.warns(DataWarning, match="1 missing"):
        ds = RAFDB(root, "train")
    assert len(ds) == 6 and ds.report().missing[0].endswith("train_00002_aligned.jpg")
    (root / "EmoLabel" / "list_patition_label.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="list_patition_label.txt") as err:
        RAFDB(root, "train")
    assert "Image/aligned/train_00001_aligned.jpg" in str(err.value)


def test_rafdb_detection_returns_original_images_boxes_and_landmarks(tmp_path):
    root = make_rafdb(tmp_path / "basic")
    (root / "Annotation" / "boundingbox" / "train_00003_boundingbox.txt").unlink()
    with pytest.warns(DataWarning, match="1 missing"):
        ds = RAFDBDetection(root, "train", landmarks="auto")
    assert len(ds) == 6
    image, boxes, labels = ds[0]
    assert image.size == (64, 48)  # the original image, never the aligned crop
    assert boxes.dtype == np.float32 and boxes.tolist() == [[0.5, 2.0, 30.0, 40.25]]
    assert labels.tolist() == [EXPRESSIONS.index("surprise")]
    assert ds.landmarks[0].shape == (37, 2) and ds.landmarks[0][1].tolist() == [1.0, 2.0]
    manual = RAFDBDetection(root, "test", landmarks="manual")
    assert manual.landmarks[0].shape == (5, 2)  # attribute lines are not points
    assert manual.class_counts()["neutral"] == 1

    def flip(img, b, lab):
        w = img.size[0]
        mirrored = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1)
        return img.transpose(Image.FLIP_LEFT_RIGHT), mirrored, lab
    flipped = quiet(RAFDBDetection, root, "train", joint_transform=flip)
    assert flipped[0][1].tolist() == [[34.0, 2.0, 63.5, 40.25]]


# -- AffectNet --------------------------------------------------------------------------------------------

def make_affectnet(root: Path, split_dir="train_set") -> Path:
    ann = root / split_dir / "annotations"
    ann.mkdir(parents=True)
    for sid in range(11):  # one image per AffectNet id, 0..10
        write_image(root / split_dir / "images" / f"{sid}.jpg", value=sid, mode="RGB")
        np.save(ann / f"{sid}_exp.npy", np.array(str(sid)))  # stored as strings, like the release
        np.save(ann / f"{sid}_val.npy", np.array(f"{sid / 10 - 0.5}"))
        np.save(ann / f"{sid}_aro.npy", np.array("0.25"))
        np.save(ann / f"{sid}_lnd.npy", np.arange(136, dtype=np.float64))
    write_image(root / split_dir / "images" / "99.jpg", mode="RGB")  # no annotation
    return root


def test_affectnet_folder_excludes_non_expressions_and_counts_them(tmp_path):
    root = make_affectnet(tmp_path / "affectnet")
    ds = AffectNet(root, "train")
    assert ds.classes == EXPRESSIONS and len(ds) == 8
    assert sorted(ds.labels.tolist()) == list(range(8))
    for sid, label in zip(ds.ids, ds.labels):
        assert EXPRESSIONS[label] == PUBLISHED_NAMES["affectnet"][int(sid)]
    assert ds.report().excluded == {"none (8)": 1, "uncertain (9)": 1, "non-face (10)": 1,
                                    "image without _exp.npy": 1}
    i = ds.ids.index("3")
    ann = ds.annotation(i)
    assert ann["valence"] == pytest.approx(-0.2) and ann["arousal"] == 0.25
    assert ann["landmarks"].shape == (68, 2) and ann["landmarks"][1].tolist() == [2.0, 3.0]
    seven = AffectNet(root, "train", num_classes=7)
    assert seven.classes == BASIC7 and len(seven) == 7
    assert seven.report().excluded["contempt (7-class reader)"] == 1
    with pytest.raises(DatasetLayoutError, match="val_set") as err:
        AffectNet(root, "val")
    assert "annotations/0_exp.npy" in str(err.value)


def make_affectnet_csv(root: Path, header: bool = True) -> Path:
    rows = []
    for k, expr in enumerate([0, 1, 7, 8, 9, 10, 6]):
        rel = f"{100 + k}/img{k}.jpg"
        write_image(root / "Manually_Annotated_Images" / rel, value=30 * k, size=(40, 30), mode="RGB")
        lmk = ";".join(str(float(v)) for v in range(136))
        rows.append([rel, 5, 4, 20, 16, lmk, expr, 0.5 - k / 10, 0.1])
    with open(root / "training.csv", "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                        "facial_landmarks", "expression", "valence", "arousal"])
        w.writerows(rows)
    return root


@pytest.mark.parametrize("header", [True, False])
def test_affectnet_csv_reads_boxes_labels_and_exclusions(tmp_path, header):
    root = make_affectnet_csv(tmp_path, header=header)
    ds = AffectNetCSV(root, "train")
    assert [EXPRESSIONS[v] for v in ds.labels] == ["neutral", "happy", "contempt", "anger"]
    assert ds.report().excluded == {"none (8)": 1, "uncertain (9)": 1, "non-face (10)": 1}
    assert ds.boxes[0].tolist() == [5.0, 4.0, 25.0, 20.0]
    assert ds[0][0].size == (40, 30)
    ann = ds.annotation(3)
    assert ann["valence"] == pytest.approx(-0.1) and ann["landmarks"].shape == (68, 2)
    cropped = AffectNetCSV(root, "train", crop_face=True)
    assert cropped[0][0].size == (20, 16)
    with pytest.raises(DatasetLayoutError, match="validation.csv"):
        AffectNetCSV(root, "val")


# -- SFEW -------------------------------------------------------------------------------------------------

def test_sfew_folders_and_split_errors(tmp_path):
    for k, folder in enumerate(SFEW_FOLDERS):
        for i in range(k + 1):
            write_image(tmp_path / "sfew" / "Train" / folder / f"{folder}_{i}.png", mode="RGB")
    ds = SFEW(tmp_path / "sfew", "train")  # any case
    assert len(ds) == 28 and ds.classes == BASIC7
    counts = ds.class_counts()
    assert counts["anger"] == 1 and counts["surprise"] == 7 and counts["neutral"] == 5
    with pytest.raises(DatasetLayoutError, match="missing folder") as err:
        SFEW(tmp_path / "sfew", "Val")
    assert "Surprise/" in str(err.value)


def test_sfew_detection_list_multi_box_empty_lines_and_reroot(tmp_path):
    images = tmp_path / "JPEGImages"
    for name in ("a.jpg", "b.jpg", "c d.jpg", "e.jpg"):
        write_image(images / name, size=(72, 57), mode="RGB")
    remote = "/workspace/yolox/VOCdevkit/VOC2007/JPEGImages"
    lst = tmp_path / "train.txt"
    lst.write_text(f"{remote}/a.jpg 1,2,30,40,0\n"
                   f"{remote}/b.jpg 1,2,30,40,3 35,5,70,50,6\n"
                   f"{remote}/e.jpg\n"
                   "c d.jpg 0,0,10,10,4\n"
                   f"{remote}/a.jpg 1,2,x,40,0\n"
                   f"{remote}/zzz.jpg 1,2,3,4,5\n")
    parsed = read_detection_list(lst)
    assert parsed[1][1].shape == (2, 4) and parsed[2][1].shape == (0, 4) and parsed[3][0] == "c d.jpg"
    with pytest.warns(DataWarning) as caught:
        ds = SFEWDetection(lst, image_root=images)
    assert "1 missing" in str(caught[0].message) and "1 corrupt" in str(caught[0].message)
    assert len(ds) == 3 and ds.report().excluded == {"line without a box": 1}
    image, boxes, labels = ds[1]
    assert image.size == (72, 57) and boxes.shape == (2, 4)
    assert [EXPRESSIONS[v] for v in labels] == ["happy", "surprise"]
    assert [EXPRESSIONS[v] for v in ds[0][2]] == ["anger"] and ds[2][2].tolist() == [0]
    assert ds.class_counts()["happy"] == 1 and sum(ds.class_counts().values()) == 4
    with_empty = quiet(SFEWDetection, lst, image_root=images, keep_empty=True)
    assert len(with_empty) == 4 and with_empty[2][1].shape == (0, 4)
    with pytest.raises(DatasetLayoutError, match="missing list file"):
        SFEWDetection(tmp_path / "nope.txt")


# -- CK+ --------------------------------------------------------------------------------------------------

CK_SEQUENCES = {("S005", "001"): (6, 3.0), ("S010", "002"): (4, 5.0), ("S011", "004"): (5, 2.0),
                ("S011", "005"): (3, None)}  # (frames, emotion code); None: no label


def make_ckplus(root: Path) -> Path:
    for (subject, seq), (n, code) in CK_SEQUENCES.items():
        for f in range(1, n + 1):
            write_image(root / "cohn-kanade-images" / subject / seq / f"{subject}_{seq}_{f:08d}.png",
                        value=f * 10)
        if code is not None:
            emo = root / "Emotion" / subject / seq / f"{subject}_{seq}_{n:08d}_emotion.txt"
            emo.parent.mkdir(parents=True, exist_ok=True)
            emo.write_text(f"   {code:.7e}\n")
            facs = root / "FACS" / subject / seq / f"{subject}_{seq}_{n:08d}_facs.txt"
            facs.parent.mkdir(parents=True, exist_ok=True)
            facs.write_text("   1.0000000e+00   3.0000000e+00\n   2.5000000e+01   0.0000000e+00\n")
    return root


def test_ckplus_peak_frames_neutral_and_facs(tmp_path):
    root = make_ckplus(tmp_path / "ck")
    ds = CKPlus(root)
    assert ds.classes == EXPRESSIONS and len(ds) == 3
    assert [EXPRESSIONS[v] for v in ds.labels] == ["disgust", "happy", "contempt"]
    assert [f.name for f in ds.files][0] == "S005_001_00000006.png"  # the labelled (last) frame
    assert ds.report().excluded == {"sequence without an emotion label": 1}
    assert ds.subjects.tolist() == ["S005", "S010", "S011"]
    more = CKPlus(root, peak_frames=3, include_neutral=True, facs=True)
    assert len(more) == 3 * 4
    assert more.class_counts()["neutral"] == 3 and more.class_counts()["disgust"] == 3
    assert more.files[0].name == "S005_001_00000001.png" and more.labels[0] == 0
    assert more.facs[0] == {} and more.facs[1] == {"AU01": 3.0, "AU25": 0.0}
    assert read_facs(root / "FACS/S005/001/S005_001_00000006_facs.txt")["AU01"] == 3.0

    # An image that only fails when decoded is dropped with its per-sample extras in step.
    write_truncated_jpeg(root / "cohn-kanade-images/S010/002/S010_002_00000004.png")
    with pytest.warns(DataWarning, match="1 corrupt"):
        mem = CKPlus(root, facs=True, in_memory=True)
    assert len(mem) == 2 and mem.as_arrays()[0].shape == (2, 8, 8, 3)  # RGB by default
    assert mem.subjects.tolist() == ["S005", "S011"] and len(mem.facs) == 2
    assert mem.sequences == ["S005/001", "S011/004"]

    with pytest.raises(DatasetLayoutError, match="Expected layout"):
        CKPlus(root / "cohn-kanade-images")  # one level too deep
    shutil.rmtree(root / "Emotion")
    with pytest.raises(DatasetLayoutError, match="missing folder .*Emotion") as err:
        CKPlus(root)
    assert "_emotion.txt" in str(err.value)


def make_ck48(root: Path, folders=("anger", "contempt", "happy", "sadness")) -> Path:
    for k, folder in enumerate(folders):
        for i in range(2):
            write_image(root / folder / f"S{k:03d}_{i}.png", size=(48, 48))
    return root


def test_ck48_folders_and_cross_dataset_subset(tmp_path):
    ck = CK48Folder(make_ck48(tmp_path / "ck48"))
    assert ck.classes == EXPRESSIONS and ck.class_counts()["contempt"] == 2
    assert ck.class_counts()["sad"] == 2 and ck.class_counts()["neutral"] == 0
    fer = FER2013Folder(make_fer_folder(tmp_path / "fer"), "train")
    assert common_classes(fer, ck) == ("happy", "sad", "anger")
    fer_sub, ck_sub = common_subset(fer, ck)
    assert len(ck_sub) == 6 and set(ck_sub.labels.tolist()) == {1, 2, 6}  # canonical ids kept
    assert len(fer_sub) == FER_COUNTS["happy"] + FER_COUNTS["sad"] + FER_COUNTS["angry"]
    assert fer_sub.class_counts() == {"happy": 4, "sad": 1, "anger": 3}
    assert ck_sub.report().excluded == {"class outside the subset": 2}
    _, ck_remap = common_subset(fer, ck, remap=True)
    assert ck_remap.classes == ("happy", "sad", "anger") and set(ck_remap.labels.tolist()) == {0, 1, 2}
    image, label = ck_remap[0]
    assert ck_remap.classes[label] == EXPRESSIONS[ck.labels[ck_remap.indices[0]]]
    assert common_classes(fer, ck, classes=["happy", "fear"]) == ("happy",)
    with pytest.raises(ConfigError, match="share no class"):
        common_subset(fer, ck, classes=["fear"])


# -- 300-W landmarks and the generic folder ---------------------------------------------------------------

def test_pts_round_trip_and_malformed_files(tmp_path):
    pts = np.random.default_rng(1).uniform(0, 255, (68, 2)).astype(np.float32)
    path = write_pts(tmp_path / "a.pts", pts)
    assert path.read_text().startswith("version: 1\nn_points:  68\n{\n")
    assert np.allclose(read_pts(path), pts, atol=1e-3)
    (tmp_path / "bad.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(ValueError, match="n_points is '68' but 1 points follow"):
        read_pts(tmp_path / "bad.pts")
    (tmp_path / "open.pts").write_text("version: 1\nn_points: 1\n{\n1 2\n")
    with pytest.raises(ValueError, match="between"):
        read_pts(tmp_path / "open.pts")


def test_landmark_folder_pairs_images_with_points(tmp_path):
    rng = np.random.default_rng(2)
    for k in range(3):
        write_image(tmp_path / f"face{k}.jpg", size=(32, 32), mode="RGB")
        write_pts(tmp_path / f"face{k}.pts", rng.uniform(0, 32, (68, 2)))
    write_image(tmp_path / "lonely.jpg", mode="RGB")
    write_pts(tmp_path / "nopic.pts", rng.uniform(0, 32, (68, 2)))
    (tmp_path / "broken.pts").write_text("version: 1\n{\n")
    write_image(tmp_path / "broken.jpg", mode="RGB")
    with pytest.warns(DataWarning, match="2 missing.*1 corrupt"):
        ds = Landmarks300W(tmp_path)
    assert len(ds) == 3 and ds.landmarks.shape == (3, 68, 2) and ds.ids == ["face0", "face1", "face2"]
    image, points = ds[1]
    assert image.size == (32, 32) and np.allclose(points, read_pts(tmp_path / "face1.pts"))
    assert ds.class_counts() == {}
    half = quiet(Landmarks300W, tmp_path, joint_transform=lambda im, p: (im.resize((16, 16)), p / 2))
    assert half[1][0].size == (16, 16) and np.allclose(half[1][1], points / 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="no .pts files"):
        Landmarks300W(tmp_path / "empty")


def test_image_folder_needs_an_explicit_mapping(tmp_path):
    for folder in ("Happy", "Mad", "Other"):
        for i in range(2):
            write_image(tmp_path / "kdef" / folder / f"{i}.png", mode="RGB")
    ds = ImageFolder(tmp_path / "kdef", {"happy": "happy", "mad": 6, "other": None})
    assert ds.classes == BASIC7 and ds.class_counts()["anger"] == 2 and len(ds) == 4
    assert ds.report().excluded == {"folder Other not used": 2}
    with pytest.raises(DatasetLayoutError, match=r"class folders \['Other'\]") as err:
        ImageFolder(tmp_path / "kdef", {"happy": "happy", "mad": "anger"})
    assert "happy/  -> happy" in str(err.value)
    with pytest.raises(ConfigError, match="unknown expression 'furious'"):
        ImageFolder(tmp_path / "kdef", {"happy": "happy", "mad": "furious", "other": None})
    eight = ImageFolder(tmp_path / "kdef", {"happy": "happy", "mad": "contempt", "other": None})
    assert eight.classes == EXPRESSIONS


# -- real data ---------------------------------------------------------------------------------------------

OFFICIAL_FER2013 = {
    "train": {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965,
              "sad": 4830, "surprise": 3171},
    "publictest": {"angry": 467, "disgust": 56, "fear": 496, "happy": 895, "neutral": 607,
                   "sad": 653, "surprise": 415},
}


def _real_root(name: str) -> Path:
    base = os.environ.get("FACELAB_DATA")
    if not base:
        pytest.skip("FACELAB_DATA is not set: it should point at the real-data folder "
                    "(e.g. ../shared/data) to read the real FER2013 copy")
    root = Path(base) / name
    if not root.is_dir():
        pytest.skip(f"FACELAB_DATA={base} has no {name}/ folder")
    return root


@pytest.mark.realdata
@pytest.mark.parametrize("split", ["train", "publictest"])
def test_real_fer2013_folder_has_the_official_class_counts(split):
    ds = FER2013Folder(_real_root("fer2013"), split)
    want = {FER2013_FOLDERS[k]: v for k, v in OFFICIAL_FER2013[split].items()}
    assert ds.class_counts() == {name: want[name] for name in BASIC7}
    assert ds.report().n_skipped == 0
    image, label = ds[0]
    assert image.size == (48, 48) and image.mode == "L" and 0 <= label < 7


@pytest.mark.realdata
def test_real_fer2013_publictest_in_memory():
    ds = FER2013Folder(_real_root("fer2013"), "publictest", in_memory=True)
    images, labels = ds.as_arrays()
    assert images.shape == (3589, 48, 48) and images.dtype == np.uint8 and len(labels) == 3589


@pytest.mark.realdata
def test_real_300w_afw_folder():
    ds = Landmarks300W(_real_root("landmarks300w") / "afw")
    assert len(ds) == 337 and ds.landmarks.shape == (337, 68, 2) and ds.report().n_skipped == 0


def test_full_ck48_shares_six_classes_with_fer2013(tmp_path):
    # The cross-dataset path of the FER notebooks (eval_dataset="ck48"): CK+48's seven folders
    # (with contempt, without neutral) against FER2013's seven classes leave six shared classes.
    ck = CK48Folder(make_ck48(tmp_path / "ck48", folders=("anger", "contempt", "disgust", "fear", "happy",
                                                          "sadness", "surprise")))
    fer = FER2013Folder(make_fer_folder(tmp_path / "fer"), "train")
    shared = common_classes(fer, ck)
    assert set(shared) == {"happy", "sad", "surprise", "fear", "disgust", "anger"}
    _, ck_sub = common_subset(fer, ck)
    assert len(ck_sub) == 12 and ck_sub.report().excluded == {"class outside the subset": 2}  # contempt out
