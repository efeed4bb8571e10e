"""Readers for real face datasets, exactly as their publishers ship them.

Every reader is a ``torch.utils.data.Dataset`` whose labels are canonical ids
(:data:`facelab.config.EXPRESSIONS`: 0 neutral, 1 happy, 2 sad, 3 surprise, 4 fear, 5 disgust,
6 anger, 7 contempt); each module holds its dataset's mapping as an explicit dict.

==================  =========================================================  ======================
reader              layout                                                     item
==================  =========================================================  ======================
FER2013Folder       ``<root>/<split>/<class>/*.jpg``                            (image, label)
FER2013CSV          ``fer2013.csv`` (emotion, pixels, Usage)                    (image, label)
FERPlus             ``fer2013new.csv`` votes + fer2013.csv or the PNGs          (image, label | probs)
RAFDB               ``EmoLabel/list_patition_label.txt`` + ``Image/aligned``    (image, label)
RAFDBDetection      ``Image/original`` + ``Annotation/boundingbox``             (image, boxes, labels)
AffectNet           ``{train,val}_set/images`` + ``annotations/*_exp.npy``       (image, label)
AffectNetCSV        ``training.csv`` / ``validation.csv`` + images               (image, label)
SFEW                ``{Train,Val}/<Emotion>/*.png``                             (image, label)
SFEWDetection       list file ``path x1,y1,x2,y2,cls ...``                      (image, boxes, labels)
CKPlus              ``cohn-kanade-images`` + ``Emotion`` (+ ``FACS``)            (image, label)
CK48Folder          ``<root>/<class>/*.png``                                    (image, label)
Landmarks300W       ``<id>.jpg`` + ``<id>.pts``                                 (image, points)
FaceScapeTU         ``<id>/models_reg/<k>_<expression>.obj`` + texture          TexturedMesh (.load)
ImageFolder         ``<root>/<folder>/*`` with a user mapping                   (image, label)
==================  =========================================================  ======================

``image`` is a ``PIL.Image`` in the reader's ``mode`` ("RGB"; "L" for the FER2013 family), passed
through ``transform`` when given. Every reader has ``.labels`` (int64 array), ``.classes``,
``.class_counts()`` and ``.report()``; a wrong folder raises one :class:`DatasetLayoutError`
that prints the expected tree; skipped images are counted and warned about (:class:`DataWarning`).
:func:`common_subset` restricts datasets to their shared classes for cross-dataset evaluation;
:func:`open` (``facelab.data.open("fer2013", root, "train")``) picks a reader by name,
:func:`load_arrays` reads a split into arrays, :func:`stratified_split` and
:func:`per_class_subset` cut labelled sets; :func:`read_clip` / :func:`read_audio` read real
clips (frames, frame-rate resampling, the audio track); :func:`resplit_if_degraded` guards a protocol against a degraded (e.g. blurred) training split.
"""
from .affectnet import AFFECTNET_EXCLUDED, AFFECTNET_TO_CANONICAL, AffectNet, AffectNetCSV
from .base import (ClassSubset, CorruptImageError, DataWarning, DatasetLayoutError,
                   DetectionDataset, FaceDataset, FileImageDataset, LoadReport, common_classes,
                   common_subset)
from .ckplus import CK48_FOLDERS, CKPLUS_TO_CANONICAL, CK48Folder, CKPlus, read_emotion, read_facs
from .facescape import FACESCAPE_EXPRESSIONS, FACESCAPE_TO_CANONICAL, FaceScapeTU, TexturedMesh, read_textured_obj
from .fer2013 import (FER2013_FOLDERS, FER2013_TO_CANONICAL, FER2013_USAGE, FERPLUS_COLUMNS,
                      FER2013CSV, FER2013Folder, FERPlus, ferplus_target)
from .folder import ImageFolder
from .landmarks import Landmarks300W, read_pts, write_pts
from .rafdb import RAFDB, RAFDB_TO_CANONICAL, RAFDBDetection
from .registry import READERS, load_arrays, open, per_class_subset, stratified_split
from .splits import median_sharpness, resplit_if_degraded
from .video import Clip, VideoError, read_audio, read_clip
from .sfew import SFEW, SFEW_FOLDERS, SFEW_YOLO_TO_CANONICAL, SFEWDetection, read_detection_list

__all__ = [
    "AFFECTNET_EXCLUDED", "AFFECTNET_TO_CANONICAL", "CK48_FOLDERS", "CKPLUS_TO_CANONICAL",
    "FER2013_FOLDERS", "FER2013_TO_CANONICAL", "FER2013_USAGE", "FERPLUS_COLUMNS",
    "RAFDB_TO_CANONICAL", "SFEW_FOLDERS", "SFEW_YOLO_TO_CANONICAL",
    "AffectNet", "AffectNetCSV", "CK48Folder", "CKPlus", "ClassSubset", "CorruptImageError",
    "DataWarning", "DatasetLayoutError", "DetectionDataset", "FER2013CSV", "FER2013Folder",
    "FERPlus", "FaceDataset", "FileImageDataset", "ImageFolder", "Landmarks300W", "LoadReport",
    "RAFDB", "RAFDBDetection", "SFEW", "SFEWDetection", "common_classes", "common_subset",
    "ferplus_target", "median_sharpness", "read_detection_list", "read_emotion", "read_facs", "read_pts",
    "resplit_if_degraded", "write_pts", "READERS", "open", "load_arrays", "stratified_split", "per_class_subset",
    "Clip", "VideoError", "read_audio", "read_clip",
    "FACESCAPE_EXPRESSIONS", "FACESCAPE_TO_CANONICAL", "FaceScapeTU", "TexturedMesh", "read_textured_obj",
]
