# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Open-set FER: unknown expressions detected as noisy labels
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/<owner>/facelab/blob/main/notebooks/04_open_set_fer.ipynb)
#
# **Paper.** Yuhang Zhang, Yue Yao, Xuannan Liu, Lixiong Qin, Wenjing Wang, Weihong Deng,
# *Open-Set Facial Expression Recognition*, AAAI 2024 ([arXiv 2401.12507](https://arxiv.org/abs/2401.12507);
# official code `zyh-uaiaaaa/Open-Set-FER`).
#
# **The idea.** A FER model trained on the basic classes meets expressions it was never taught
# (a compound such as *happily surprised*, or a basic class left out of training). Classic
# open-set scores such as the maximum softmax probability (MSP) fail here, because all faces look
# alike: "FER data are all human faces with very small inter-class distances, which makes the
# open-set samples very similar to close-set samples" (abstract). The paper turns this weakness
# around: "small inter-class distance allows for sparsely distributed pseudo labels of open-set
# samples, which can be viewed as symmetric noisy labels. Based on this novel observation, we
# convert the open-set FER to a noisy label detection problem."
#
# The pipeline (paper Fig. 3):
# 1. a **close-set model** (ResNet-18) is trained on the known classes;
# 2. it gives **pseudo-labels** to a pool of unlabelled images, closed and open ones mixed;
# 3. a fresh **detector** (ResNet-50) learns the pool's pseudo-labels with cross-entropy plus an
#    **attention-map consistency** loss that keeps it from memorising noisy labels;
# 4. two detectors are trained by **cycle training** (each picks small-loss samples for the
#    other, with a cyclical learning rate that yields an ensemble of snapshots);
# 5. each sample's **cross-entropy against its pseudo-label** is the open-set score: an open-set
#    sample carries a pseudo-label that its face does not support, so its loss stays high.

# %% tags=["parameters"]
profile = "auto"
data_root = None
seed = 0
out_dir = None
eval_split = "auto"
open_classes = "auto"
max_per_class = None
close_epochs = None
cycles = None
cycle_epochs = None
close_weights = None
detector_weights = None
oracle = None
oracle_epochs = None
arch = None
width = None
threads = None

# %% [markdown]
# `eval_split` is the split whose images form the unlabelled pool with the held-out class's
# training images (`"auto"`: `test` for synthetic faces and RAF-DB, `publictest` for the FER2013
# folder; `val` for synthetic faces draws another seed). `open_classes` lists the held-out basic
# classes (`"auto"`: in smoke the one class chosen by AU overlap below, all seven otherwise). `max_per_class` caps the images
# per class and split, and `close_epochs`, `cycles`, `cycle_epochs` override the schedule: they are
# for quick tries of the demo path on a CPU. `close_weights` / `detector_weights` may point at local
# torchvision ResNet-18 / ResNet-50 state dicts (the paper starts from MS-Celeb / VGGFace2 weights;
# nothing is downloaded here). `oracle` (`None`: on in every profile; its check shows that the scoring
# works; `oracle=False` saves two detector trainings and then that check reads False) adds
# a diagnostic that is not part of the method: the same two detectors trained for `oracle_epochs` on
# the pool's *truly closed* images only, with the classification loss alone (`oracle_lam` 0: with clean
# labels the consistency term, a guard against noisy ones, only slows the fit), i.e. training with a perfect selection, to separate "the
# selection failed" from "the detector cannot learn" (see the results). `arch` and `width` replace
# both networks (e.g. `arch="small", width=16` for the demo path on a CPU) and `threads` sets torch's
# CPU threads (1 in smoke).

# %% tags=["export"]
# What the model cells below need. Cells tagged `export` are also written to
# `facelab.papers.open_set_fer` (`python -m facelab export`), which tests import.
import torch
import torch.nn.functional as F
from torch import nn

from facelab.nn.cams import normalize_maps

# %%
import time

import numpy as np
from torch.utils.data import Subset, TensorDataset

from facelab import config, viz
from facelab.nn import ood
from facelab.nn.backbones import fer_classifier
from facelab.nn.augment import flip_erase, random_erase
from facelab.nn.cams import resize_maps
from facelab.results import Report
from facelab.train import TrainConfig, fit, predict_arrays


# %% [markdown]
# One dict per profile (printed below); the parameters cell's knobs override its entries. Its
# `"train"` entry holds the close-set model's `facelab.train.TrainConfig` fields (the `close_epochs`
# knob lands there: `config.pick` merges a dict override into a sub-dict); the detector's are `det_*`.

# %%
PROFILE = config.resolve_profile(profile)
CFG = config.pick(PROFILE, {
    # CPU, synthetic faces: one held-out basic class plus compound expressions as extra unknowns.
    # 32 px faces on plain backgrounds, narrower pose, intensity 0.7-1, the face filling 85-95 % of
    # the frame (a tight crop like RAF-DB's aligned faces); smoke only: an easier synthetic task so
    # that a small CNN learns the 6 known classes within the CPU budget. 400 training and 200
    # evaluation faces per class and 100 compounds give the pool the paper's open share (~37 %).
    "smoke": {"size": 32, "input": 32, "n_train": 2800, "n_eval": 1400, "n_compound": 100,
              "synth": {"backgrounds": "plain", "pose_range": (0.15, 0.25, 0.1), "intensity": (0.7, 1.0),
                        "face_scale": (0.85, 0.95)},
              "close_arch": "small", "det_arch": "small", "close_width": 12, "det_width": 12,
              "train": {"epochs": 10, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4,
                        "optimizer": "adam", "scheduler": "exponential", "gamma": 0.9},
              "det_lr": 2e-3, "det_batch": 64, "cycles": 3, "cycle_epochs": 3,
              "lam": 6.0, "keep_ratio": 0.7, "threads": 1, "oracle": True, "oracle_epochs": 10, "oracle_lam": 0.0},
    # one GPU, FER2013 48 px grey (x3 channels), ResNet-18 with the small-input stem for both models.
    "demo": {"size": 48, "input": 48, "n_train": 2000, "n_eval": 600, "n_compound": 300,
             "close_arch": "resnet18", "det_arch": "resnet18", "close_width": 64, "det_width": 64,
             "train": {"epochs": 8, "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-4,
                       "optimizer": "adam", "scheduler": "exponential", "gamma": 0.9},
             "det_lr": 1e-3, "det_batch": 256, "cycles": 3, "cycle_epochs": 3,
             "lam": 6.0, "keep_ratio": 0.7, "threads": None, "oracle": True, "oracle_epochs": 9, "oracle_lam": 0.0},
    # the paper's recipe: 224 px, ResNet-18 close-set (60 epochs, batch 512), ResNet-50 detector
    # (Adam 1e-4, 30 epochs = 3 cycles x 10, batch 128); RAF-DB / FER2013 from data_root.
    "paper": {"size": 100, "input": 224, "n_train": 12000, "n_eval": 3000, "n_compound": 1000,
              "close_arch": "resnet18", "det_arch": "resnet50", "close_width": 64, "det_width": 64,
              "train": {"epochs": 60, "batch_size": 512, "lr": 1e-3, "weight_decay": 1e-4,
                        "optimizer": "adam", "scheduler": "exponential", "gamma": 0.9},
              "det_lr": 1e-4, "det_batch": 128, "cycles": 3, "cycle_epochs": 10,
              "lam": 6.0, "keep_ratio": 0.7, "threads": None, "oracle": True, "oracle_epochs": 30, "oracle_lam": 0.0},
}, train={"epochs": close_epochs}, cycles=cycles, cycle_epochs=cycle_epochs, oracle=oracle, oracle_epochs=oracle_epochs,
   close_arch=arch, det_arch=arch, close_width=width, det_width=width, threads=threads)


# %% [markdown]
# Output folder, seed, device, the dataset root and the held-out classes, each checked.

# %%
OUT = config.out_dir("04_open_set_fer", out_dir)
rng = config.seed_everything(seed)
DEVICE = config.device()
ROOT = config.dataset_root(data_root, "FER2013 <root>/<split>/<class>/*.jpg", "RAF-DB basic")
if open_classes == "auto":
    OPEN_CLASSES = [None] if PROFILE == "smoke" else list(config.BASIC7)   # smoke: chosen below by AU overlap
else:
    OPEN_CLASSES = [open_classes] if isinstance(open_classes, str) else list(open_classes)
bad = [c for c in OPEN_CLASSES if c is not None and c not in config.BASIC7]
if bad or not OPEN_CLASSES:
    raise config.ConfigError(f"open_classes {open_classes!r}: expected 'auto' or names from {config.BASIC7}")
if max_per_class is not None and (not isinstance(max_per_class, int) or max_per_class < 2):
    raise config.ConfigError(f"max_per_class must be None or an int >= 2, got {max_per_class!r}")
print(f"profile {PROFILE} | device {DEVICE} | held-out classes {OPEN_CLASSES} | figures -> {OUT}")
print(CFG)
T0 = time.time()

# %% [markdown]
# ### Which class to hold out in smoke (chosen before any result)
#
# The paper's premise needs open-set pseudo-labels that *scatter*. A held-out class that shares most
# of its action units with one known class does not scatter: it is pseudo-labelled as that class,
# consistently, and a fresh detector learns that mapping as easily as a true one. On our faces
# **surprise** is such a class (AU1, AU2, AU5, AU25, AU26, all in fear; exploratory runs of this
# pipeline pseudo-labelled 50 % (48 px, mixed backgrounds) and 98 % (40 px, the smoke rendering) of
# held-out surprise images *fear*, and the detector's AUROC was 0.37 and 0.26, below MSP's 0.44 and
# 0.27). The paper repeats the protocol for every class (demo and paper profiles do all seven); the
# smoke run has budget for one, so it takes the class whose AU set overlaps **least** with any other
# basic class, the maximum Jaccard index over the other classes, computed from the synthetic engine's
# expression table (`facelab.synth.expressions.BASIC`) and checked against `facelab.faces.AU_CODEBOOK`.
# Neutral is not a candidate: it has no AUs, so its overlap is 0 by definition, but a neutral face is
# the zero-intensity end of *every* expression and thus next to all of them in appearance.
#
# **What we found afterwards (not used to choose).** The rule picks **happy**, and happy does not
# scatter either. We trained the smoke close-set model (seed 0) once per held-out class and measured
# where that class's pool images go, with MSP's AUROC on the same pool:
#
# | held out | its pseudo-labels (largest shares) | MSP AUROC |
# |---|---|---|
# | happy | neutral 64 %, disgust 34 % | 0.738 |
# | sad | disgust 55 %, neutral 42 % | 0.828 |
# | disgust | neutral 47 %, sad 46 % | 0.846 |
# | anger | neutral 43 %, disgust 29 %, sad 11 %, surprise 8 %, fear 8 % | 0.903 |
# | fear | surprise 91 % | 0.684 |
# | surprise | fear 97 % | 0.460 |
# | neutral | sad 89 % | 0.733 |
#
# Only anger scatters the way the paper describes, and there MSP is already 0.90 (scattered labels
# come with low close-set confidence, which is what MSP measures). The classes where MSP is weak
# are the ones that concentrate. Rendering with more variety (mixed backgrounds, the default pose
# range, intensity 0.6-1 or 0.3-1 with AU jitter 0.3) did not change this: happy still split between
# neutral and disgust (45/54 %, 30/63 %) and surprise still went 83 % to fear.

# %%
from facelab.faces import AU_CODEBOOK
from facelab.synth.expressions import BASIC as SYNTH_AUS


def max_jaccard(table: dict) -> dict:
    sets = {c: set(table[c]) for c in config.BASIC7}
    return {a: max((len(sets[a] & sets[b]) / len(sets[a] | sets[b]), b) for b in config.BASIC7 if b != a)
            for a in config.BASIC7 if sets[a]}


OVERLAP = {"synth table": max_jaccard(SYNTH_AUS), "AU_CODEBOOK": max_jaccard(AU_CODEBOOK)}
for src, ov in OVERLAP.items():
    print(f"{src:12s} max Jaccard with another class: " + ", ".join(f"{a} {v:.2f} ({b})" for a, (v, b) in ov.items()))
LEAST_OVERLAP = min(OVERLAP["synth table"], key=lambda a: OVERLAP["synth table"][a][0])
assert LEAST_OVERLAP == min(OVERLAP["AU_CODEBOOK"], key=lambda a: OVERLAP["AU_CODEBOOK"][a][0]), "tables disagree"
OPEN_CLASSES = [LEAST_OVERLAP if c is None else c for c in OPEN_CLASSES]
print("held-out classes:", OPEN_CLASSES)

# %% [markdown]
# ## Data: known classes, unknown expressions
#
# **The paper** uses RAF-DB, FERPlus and AffectNet (7 basic classes). One class *k* is held out: the
# close-set model never sees it; the protocol is repeated for every *k* (paper Table 1).
#
# **This notebook.** Without `data_root` it renders faces with `facelab.synth`: 7 basic classes for
# training and for the evaluation split, plus the 10 **compound expressions** (Du et al. 2014) as
# extra unknowns in the evaluation split, the kind of expression the paper's introduction
# motivates. In smoke the held-out class is the one chosen above by AU overlap. With `data_root` it reads a FER2013 folder (`<root>/<split>/<class>/*.jpg`) or RAF-DB basic
# in their official layouts; real datasets have no compound images, so there the unknowns are the
# held-out class only, as in the paper.
#
# **The pool's proportions follow the paper's Surprise pool** (official pseudo-label files: 4358
# images, 1619 open, i.e. 37 %). With balanced classes, *t* training and *e* evaluation faces per
# class and *c* compounds, the pool holds 6*e* closed and *e* + *t* + *c* open images; smoke renders
# 2800 training faces (~400 per class), 1400 evaluation faces (~200 per class) and 100 compounds,
# so about 700 of 1880 pool images (37 %) are open. (An earlier version used 200 evaluation and 200
# compound faces: 56 % open, so the held-out class outnumbered the real members of the pseudo-classes
# it fell into.)
#
# **A guard against a degraded copy of FER2013.** A copy we once used had a heavily blurred
# `train` split: the median variance of the Laplacian was ~6 there against ~2000 in `publictest`
# (the sharp official split: ~1,600, measured by the cell below on the loaded images). Adding class *k*'s training images to a `publictest` pool
# would make every open image blurred and every closed one sharp, a shortcut that has nothing to do
# with expressions, and a close-set model trained on blurred faces fails on sharp ones (measured on an
# H200: close-set accuracy 0.17-0.31, every AUROC within 0.05 of chance). The cell below measures the
# two splits and, when they differ more than tenfold, sets the train split aside and cuts the
# evaluation split into two stratified halves: one trains the close-set model (and gives class *k*'s
# "training" images to the pool, as in the paper), the other is the pool's evaluation part. Fewer
# training images (FER2013 publictest: ~1,800) than the paper's, so expect a weaker close-set model.
# Synthetic splits are rendered alike and are used as they are.

# %%
from facelab import data as readers, synth


def synthetic_splits(eval_split_):
    """Rendered faces: the 7 basic classes for training and evaluation, plus compound expressions
    (extra unknowns) in the evaluation split. Returns (eval split name, train images/labels, eval images/labels)."""
    eval_split_ = "test" if eval_split_ == "auto" else eval_split_
    if eval_split_ not in ("test", "val"):
        raise config.ConfigError(f"eval_split {eval_split_!r}: synthetic faces have 'test' and 'val'")
    offsets = {"train": 0, "test": 1, "val": 2}

    def render(n, expressions, split, salt):
        ds = synth.SynthFaces(n, CFG["size"], expressions=list(expressions), seed=seed * 1000 + 10 * offsets[split] + salt,
                              cache=True, **CFG.get("synth", {}))
        return ds.arrays["images"], ds.arrays["label"].astype(np.int64)

    cap = (lambda n: n if max_per_class is None else min(n, 7 * max_per_class))
    tr_img, tr_lab = render(cap(CFG["n_train"]), config.BASIC7, "train", 0)
    ev_img, ev_lab = render(cap(CFG["n_eval"]), config.BASIC7, eval_split_, 0)
    cp_img, cp_lab = render(cap(CFG["n_compound"]), synth.COMPOUND, eval_split_, 5)
    return eval_split_, tr_img, tr_lab, np.concatenate([ev_img, cp_img]), np.concatenate([ev_lab, cp_lab])


def real_split(name, split):
    """A real split as RGB uint8 faces; with max_per_class, the first that many of every class (file order)."""
    ds = readers.open("rafdb", ROOT, split) if name == "RAF-DB" else readers.open("fer2013", ROOT, split, mode="RGB")
    img, lab = ds.as_arrays()
    img, lab = np.asarray(img), np.asarray(lab, np.int64)
    if img.ndim == 3:
        img = np.repeat(img[..., None], 3, -1)
    if max_per_class is not None:
        keep = readers.per_class_subset(lab, max_per_class)
        img, lab = img[keep], lab[keep]
    return img, lab


# %%
if ROOT is None:
    DATASET = "synth"
    EVAL_SPLIT, tr_img, tr_lab, ev_img, ev_lab = synthetic_splits(eval_split)
else:
    is_raf = (ROOT / "EmoLabel").is_dir() or (ROOT / "basic" / "EmoLabel").is_dir()
    DATASET = "RAF-DB" if is_raf else "FER2013"
    EVAL_SPLIT = ("test" if is_raf else "publictest") if eval_split == "auto" else eval_split
    tr_img, tr_lab = real_split(DATASET, "train")
    ev_img, ev_lab = real_split(DATASET, EVAL_SPLIT)
NAMES = synth.ALL_EXPRESSIONS
to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
TR_X, EV_X = to_t(tr_img), to_t(ev_img)
print(f"{DATASET}: train {len(tr_lab)} images, {EVAL_SPLIT} {len(ev_lab)} images "
      f"({int((ev_lab >= 8).sum())} compound), {tuple(TR_X.shape[1:])} uint8")
report = Report("04_open_set_fer", profile=PROFILE, dataset=DATASET, out_dir=OUT)
report.record_caps(max_per_class=max_per_class, close_epochs=close_epochs, cycles=cycles, cycle_epochs=cycle_epochs,
                   oracle_epochs=oracle_epochs, arch=arch, width=width, threads=threads)


# %% [markdown]
# The guard against a degraded training split (see above), then a look at one face per class.

# %%
from facelab.data import resplit_if_degraded

# The paper's pool adds class k's *training* images to the evaluation split, so the two splits must
# hold the same kind of image: a close-set model trained on blurred faces fails on sharp ones (on an
# H200, session 3, our FER2013 copy's blurred train split gave close-set accuracies of 0.17-0.31 on
# the pool and every AUROC within 0.05 of chance), and split membership alone would give the open
# images away. When the splits differ more than 10x in sharpness, the train split is set aside and
# the evaluation split is cut into stratified seeded halves (facelab.data.resplit_if_degraded).
tr_img, tr_lab, ev_img, ev_lab, SPLIT_INFO = resplit_if_degraded(tr_img, tr_lab, ev_img, ev_lab, seed=seed)
RESPLIT = SPLIT_INFO["resplit"]
print("median Laplacian variance (sharpness):", {k: round(v, 1) for k, v in SPLIT_INFO["sharpness"].items()})
if RESPLIT:
    TR_X, EV_X = to_t(tr_img), to_t(ev_img)
    print(f"-> the splits differ more than 10x in sharpness: the train split is set aside; {EVAL_SPLIT} is cut "
          f"into a training half ({len(tr_lab)} images) and an evaluation half ({len(ev_lab)} images)")
report.metric("train_split_resplit_from_eval", float(RESPLIT))

show = [int(np.flatnonzero(ev_lab == c)[0]) for c in np.unique(ev_lab)][:16]
fig = viz.image_grid([ev_img[i] for i in show], [NAMES[ev_lab[i]] for i in show], ncols=8, size=1.3,
                     suptitle=f"{DATASET} {EVAL_SPLIT}: one face per class (compounds = extra unknowns)")
viz.savefig(fig, OUT, "samples")

# %% [markdown]
# Two helpers used by every model below: `prep` turns a uint8 batch into the network input
# (resize to the profile's input size, scale to [-1, 1]); `augment` is the close-set training's
# augmentation (paper: flip, RandomErasing with area 0.02-0.25), done on the device for speed.

# %%
def prep(x: torch.Tensor) -> torch.Tensor:
    x = x.float() / 255.0
    if x.shape[-1] != CFG["input"]:
        x = F.interpolate(x, size=CFG["input"], mode="bilinear", align_corners=False)
    return (x - 0.5) / 0.5


def augment(x: torch.Tensor) -> torch.Tensor:
    return flip_erase(x)            # facelab.nn.augment: mirror a random half, erase a random box


def logits_of(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Logits of every image of X (uint8 NCHW), no augmentation."""
    return predict_arrays(model, X, prep, batch_size=512, output=lambda o: o[0] if isinstance(o, tuple) else o)


def backbone(arch: str, num_classes: int, weights: str | None, width: int) -> nn.Module:
    if arch == "small":
        return fer_classifier("small", num_classes, width=width)
    return fer_classifier(arch, num_classes, small_input=CFG["input"] <= 64, weights_path=weights)

# %% [markdown]
# ## Step 1: the close-set model and its pseudo-labels
#
# Paper, *Method*: "Given the input of both close-set and open-set samples, we utilize the trained
# close-set model to generate pseudo labels for them. Open-set samples will get noisy close-set
# labels." The close-set model is a ResNet-18 with a 6-way head trained on the training split
# without class *k* (paper: Adam 1e-3, weight decay 1e-4, exponential decay 0.9, batch 512,
# 60 epochs). Its pool is **all evaluation images plus class k's training images**: the official
# code's Surprise pool holds 4358 images, 1619 open and 2739 closed.
#
# `run_close_set(k)` does this for one held-out class; it returns the model's logits on the pool,
# from which the pseudo-labels (argmax) and the three post-hoc baselines come.

# %%
def split_for(k: str):
    kid = config.BASIC7.index(k)
    closed_ids = [c for c in range(7) if c != kid]
    remap = torch.full((len(NAMES),), -1, dtype=torch.long)
    remap[closed_ids] = torch.arange(6)
    tr_mask = torch.from_numpy(tr_lab != kid)
    k_train = ~tr_mask
    pool_x = torch.cat([EV_X, TR_X[k_train]])
    pool_lab = np.concatenate([ev_lab, tr_lab[k_train.numpy()]])
    is_closed = np.isin(pool_lab, closed_ids)
    return closed_ids, TR_X[tr_mask], remap[torch.from_numpy(tr_lab[tr_mask.numpy()])], pool_x, pool_lab, is_closed


def close_step(model, batch):
    x, y = augment(prep(batch[0])), batch[1]
    logits = model(x)
    return F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean().item()}


def run_close_set(k: str, i: int):
    closed_ids, x, y, pool_x, pool_lab, is_closed = split_for(k)
    torch.manual_seed(seed + 101 * i)
    model = backbone(CFG["close_arch"], 6, close_weights, CFG["close_width"])
    cfg = TrainConfig(**CFG["train"], seed=seed + 101 * i, desc=f"close-set (k={k})")
    hist = fit(model, TensorDataset(x, y), cfg, step=close_step)
    z = logits_of(model, pool_x)
    return {"model": model, "hist": hist, "logits": z, "pseudo": z.argmax(1), "pool_x": pool_x,
            "pool_lab": pool_lab, "is_closed": is_closed, "closed_ids": closed_ids}

# %% [markdown]
# ## Step 2: the detector's loss, attention-map consistency
#
# Why a new model at all? The close-set model agrees with its own pseudo-labels on every sample
# (they are its argmax), so its loss says nothing. A **fresh** model trained on the pseudo-labels
# learns the *consistent* part first (closed faces whose pseudo-label matches what the face shows)
# and the *inconsistent* part (open faces, whose pseudo-labels scatter over the known classes like
# symmetric label noise) only late, by memorising. Memorisation is what must be prevented.
#
# Paper, *Method*: "we ... utilize attention map consistency loss (Cons.) to prevent the model from
# memorizing the noisy close-set labels." A class activation map (CAM) of class *j* is the fc weight
# row of *j* times the last feature map, $M_j(x) = \sum_c w_{jc} F_c(x)$. A face and its mirror image
# show the same expression, so the maps should be mirror images too. With $T$ the horizontal flip,
# the loss (EAC-style, Zhang et al. ECCV 2022, as in the official `loss.py`) is
#
# $$\mathcal{L} = \underbrace{\frac1N \sum_i \mathrm{CE}\big(f(x_i), \hat y_i\big)}_{\mathcal L_{cls}}
#  \; + \; \lambda \underbrace{\frac{1}{NKhw}\sum_{i,j} \big\| M_j(x_i) - T\big(M_j(T(x_i))\big)\big\|_2^2}_{\mathcal L_{cons}},
#  \qquad \lambda = 6,$$
#
# over all *K* = 6 classes' maps, with $\hat y_i$ the pseudo-label. Memorising a noisy label means
# attending to something idiosyncratic in one image, which a flip moves; the consistency term keeps
# the attention on the face's real evidence. As in EAC and the official code, the image is randomly
# erased first, then flipped.
#
# **Our change: normalised maps.** EAC and the official `loss.py` compare *raw* CAMs. Trained from
# scratch, a network can drive that term to zero by shrinking the feature maps and fc weights
# (the logits' scale comes back through BatchNorm), and the previous version of this notebook saw
# exactly that: raw-map MSE near 0 within one epoch, with no effect on what the maps show. We
# min-max normalise every map to [0, 1] (`facelab.nn.cams.normalize_maps`) before the MSE, so the
# loss compares *where* the model looks, not how strongly, and cannot be met by scaling.

# %% tags=["export"]
class CAMNet(nn.Module):
    """A backbone whose forward returns (logits, CAMs of all K classes), so the loss sees both."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        feats = self.net.forward_features(x)                               # (B, C, h, w)
        logits = self.net.fc(self.net.pool(feats).flatten(1))              # (B, K)
        cams = torch.einsum("kc,bchw->bkhw", self.net.fc.weight, feats)   # (B, K, h, w): M_j(x)
        return logits, cams


def attention_consistency(cams: torch.Tensor, cams_of_flipped: torch.Tensor) -> torch.Tensor:
    """L_cons: MSE between M(x) and T(M(T(x))), T = horizontal flip, over all classes' maps,
    each map min-max normalised to [0, 1] first (our change: raw maps can shrink to zero)."""
    return F.mse_loss(normalize_maps(cams.float()), normalize_maps(cams_of_flipped.float().flip(-1)))


# %%
def detector_step_with(lam: float):
    """The detector's training step, L = L_cls + lam * L_cons."""
    def step(model, batch):
        x, y = random_erase(prep(batch[0])), batch[1]       # erase, then flip (EAC)
        logits, cams = model(torch.cat([x, x.flip(-1)]))    # one pass over x and T(x)
        n = y.shape[0]
        l_cls = F.cross_entropy(logits[:n], y)
        l_cons = attention_consistency(cams[:n], cams[n:])
        return l_cls + lam * l_cons, {"cls": l_cls.item(), "cons": l_cons.item()}
    return step


detector_step = detector_step_with(CFG["lam"])

# %% [markdown]
# ## Step 3: cycle training
#
# Paper, *Method*: "We then cyclically train two FER models from scratch with the pseudo labels ...
# Each model selects clean samples for another model and teaches each other cyclically. We also
# utilize a cyclical learning rate (lr) to create an ensemble of models for better separation of
# close-set and open-set samples. After training, the open-set samples have large classification
# (Cls.) loss while close-set samples have small Cls. loss." The official code has no cycle training
# (`fer-papers.md` §2e); this is our implementation of that description, step by step:
#
# 1. **Two detectors from scratch** (A and B, different seeds): not initialised from the close-set
#    model, whose weights already encode the pseudo-labels. Two networks make different mistakes,
#    so each one's choice of clean samples is an independent check on the other (co-teaching,
#    Han et al. 2018).
# 2. **One cycle** = `cycle_epochs` epochs with a learning rate that restarts at its maximum and
#    anneals to zero (cosine; SGDR / snapshot ensembles). Late in a cycle, with a small lr, the
#    model sits in a minimum where easy (closed) samples are fit and hard (open) ones are not;
#    the restart then kicks it out before it memorises them.
# 3. **Snapshot**: at the end of each cycle, both models score every pool image by its CE against
#    the pseudo-label (no augmentation).
# 4. **Exchange**: each model keeps, per pseudo-class, the `keep_ratio` fraction of pool images
#    with its smallest loss and hands that set to the **other** model for the next cycle. Open
#    samples, mostly high-loss, drop out of the other model's training set, so it never memorises them.
#    (`keep_ratio` = 0.7 is our choice; the paper's selection rate is not in the notes.)
# 5. **Open-set score** = the mean CE over all snapshots of both models (the ensemble); high = open.
#    The first snapshot of model A (one model, attention consistency, one cycle, no exchange) is
#    reported as the single-model ablation, the part the official code covers.
#
# *Diagnostic, not the method* (`oracle`): the same function with `fixed` = the pool's truly closed
# images trains both detectors on those only, every cycle: a perfect selection. Its AUROC bounds
# what the exchange could reach with this detector and schedule.

# %%
def per_sample_ce(model, pool_x, pseudo):
    return F.cross_entropy(logits_of(model, pool_x), pseudo, reduction="none")


def small_loss_subset(loss: torch.Tensor, pseudo: torch.Tensor, keep_ratio: float) -> list[int]:
    keep = []
    for c in pseudo.unique():
        idx = torch.nonzero(pseudo == c).flatten()
        n = max(1, int(round(keep_ratio * len(idx))))
        keep += idx[loss[idx].argsort()[:n]].tolist()
    return sorted(keep)


oracle_step = detector_step_with(CFG["oracle_lam"])


# %% [markdown]
# **Cycle training** (Sec. 3.3): two detectors, each trained on the small-loss subset the *other*
# one picked in the previous cycle (co-teaching's exchange), so neither fits its own mistakes.

# %%
def cycle_train(pool_x: torch.Tensor, pseudo: torch.Tensor, i: int, k: str, fixed: np.ndarray | None = None):
    """Two detectors, CFG["cycles"] cycles with exchange of small-loss subsets. ``fixed``: train both
    once, for CFG["oracle_epochs"] epochs, on these pool indices (the oracle diagnostic), no exchange."""
    data = TensorDataset(pool_x, pseudo)
    models = []
    subsets = [list(range(len(pseudo)))] * 2 if fixed is None else [fixed.tolist()] * 2
    for m in range(2):
        torch.manual_seed(seed + 7919 * (i + 1) + m)
        models.append(CAMNet(backbone(CFG["det_arch"], 6, detector_weights, CFG["det_width"])))
    snapshots, hists = [], [[], []]
    tag = "" if fixed is None else "oracle "
    for c in range(CFG["cycles"] if fixed is None else 1):
        for m, model in enumerate(models):
            cfg = TrainConfig(epochs=CFG["cycle_epochs"] if fixed is None else CFG["oracle_epochs"], batch_size=CFG["det_batch"], lr=CFG["det_lr"],
                              weight_decay=1e-4, optimizer="adam", scheduler="cosine",
                              seed=seed + 31 * c + m + 1000 * i, desc=f"{tag}detector {'AB'[m]} cycle {c + 1} (k={k})")
            hists[m].append(fit(model, Subset(data, subsets[m]), cfg,
                                step=detector_step if fixed is None else oracle_step))
        losses = [per_sample_ce(model, pool_x, pseudo) for model in models]
        snapshots.append(torch.stack(losses))                                  # (2, N)
        if fixed is None:
            subsets = [small_loss_subset(losses[1], pseudo, CFG["keep_ratio"]),   # B picks for A
                       small_loss_subset(losses[0], pseudo, CFG["keep_ratio"])]   # A picks for B
    snaps = torch.stack(snapshots)                                             # (cycles, 2, N)
    return {"models": models, "snapshots": snaps, "score": snaps.mean((0, 1)), "hists": hists,
            "last_subsets": subsets}

# %% [markdown]
# ## Running the protocol
#
# For every held-out class *k*: train the close-set model, pseudo-label the pool, score it with the
# baselines (MSP, max-logit, energy; `facelab.nn.ood`, all on the same close-set model), then cycle
# train the two detectors and score it with ours. The **closed set is the positive class** for AUROC
# and FPR@95%TPR, as in the paper; every score is oriented "high = closed" (ours is minus the loss).
# PROSER and DIAS are not rebuilt here (each is a training method of its own; we could not do them
# faithfully in this notebook's budget): their published numbers stay in the table as the paper's.

# %%
METHODS = ["msp", "max_logit", "energy", "ours_single", "ours"]
RESULTS, RUNS = {}, {}
for i, k in enumerate(OPEN_CLASSES):
    t = time.time()
    with config.torch_threads(CFG["threads"]):   # smoke: 1 thread (small convs; 2 threads on 2 shared cores are slower)
        cs = run_close_set(k, i)
        pseudo = cs["pseudo"]
        scores = {name: fn(cs["logits"]) for name, fn in ood.SCORES.items()}
        det = cycle_train(cs["pool_x"], pseudo, i, k)
        oracle = cycle_train(cs["pool_x"], pseudo, i, k, fixed=np.flatnonzero(cs["is_closed"])) if CFG["oracle"] else None
    scores["ours_single"] = -det["snapshots"][0, 0]
    scores["ours"] = -det["score"]
    if oracle is not None:
        scores["oracle_selection"] = -oracle["score"]
    closed = cs["is_closed"]
    known = np.isin(cs["pool_lab"], cs["closed_ids"])
    truth6 = np.searchsorted(cs["closed_ids"], cs["pool_lab"][known])
    close_acc = float((pseudo.numpy()[known] == truth6).mean())
    RESULTS[k] = {m: ood.evaluate(scores[m], closed) for m in scores}
    RESULTS[k]["close_acc"] = close_acc
    # AUROC of each open group separately against all closed images: the held-out class, the compounds
    kid = config.BASIC7.index(k)
    GROUPS = {f"held-out {k}": cs["pool_lab"] == kid, "compounds": cs["pool_lab"] >= 8}
    RESULTS[k]["groups"] = {g: {m: ood.evaluate(scores[m].numpy()[closed | msk], closed[closed | msk])["auroc"] for m in scores}
                            for g, msk in GROUPS.items() if msk.any()}
    RUNS[k] = {"close": cs, "det": det, "oracle": oracle, "scores": scores}
    print(f"held-out {k:9s} | close-set acc on the pool's closed images {close_acc:.3f} | pool {len(closed)} "
          f"({int((~closed).sum())} open, {float((~closed).mean()):.2f}) | "
          + " ".join(f"{m} {RESULTS[k][m]['auroc']:.3f}" for m in scores) + f" | {time.time() - t:.0f} s")
    for g, r in RESULTS[k]["groups"].items():
        print(f"    AUROC closed vs {g:18s}: " + " ".join(f"{m} {v:.3f}" for m, v in r.items()))
WALL_PROTOCOL = time.time() - T0

# %% [markdown]
# ### The observation the method rests on: open-set pseudo-labels scatter
#
# Paper, *Introduction*: for FER, the pseudo-labels of open-set samples are "sparsely distributed"
# over the known classes, "symmetric noisy labels", whereas on datasets with large inter-class
# distances (CIFAR) they concentrate on the most similar class. Below: how the pool's open samples
# (the held-out class; compounds separately) are pseudo-labelled, next to the close-set training curve.
#
# **What "scatter" means on the paper's own data.** The official repository ships the pseudo-labels
# of its RAF-DB Surprise pool (`predicted_labels_open0.txt` with the open-set index file; we counted
# them, nothing is computed from them here). Its 1619 open images go to happy 36 %, neutral 30 %,
# sad 14 %, fear 7 %, disgust 7 %, anger 6 %: the largest share is 0.36, and every pseudo-class gets
# some. Yet the open images are not a minority everywhere: they are 66 % of pseudo-class *fear*
# and 32-45 % of the others. So the paper's method copes with open-heavy pseudo-classes; what it
# needs is that the open images' labels are spread and hard to predict. Compare the "largest share"
# printed below (`pseudo_top_share_<k>` in the metrics) with 0.36.

# %%
k0 = OPEN_CLASSES[0]
cs0 = RUNS[k0]["close"]
plt = viz.pyplot()
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
h = cs0["hist"].epochs
axes[0].plot(range(1, len(h["loss"]) + 1), h["loss"], label="train loss")
axes[0].plot(range(1, len(h["acc"]) + 1), h["acc"], label="train acc")
axes[0].set_xlabel("epoch"); axes[0].set_title(f"close-set model (k = {k0})"); axes[0].legend(fontsize=7); axes[0].grid(alpha=0.3)
cls6 = [config.BASIC7[c] for c in cs0["closed_ids"]]
kid0 = config.BASIC7.index(k0)
groups = {f"held-out {k0}": cs0["pool_lab"] == kid0, "compounds": cs0["pool_lab"] >= 8}
wd = 0.8 / len(groups)
for g, (name, mask) in enumerate(groups.items()):
    if mask.any():
        frac = np.bincount(cs0["pseudo"].numpy()[mask], minlength=6) / mask.sum()
        axes[1].bar(np.arange(6) + g * wd, frac, wd, label=f"{name} (n={int(mask.sum())})")
axes[1].set_xticks(np.arange(6) + wd / 2 * (len(groups) - 1)); axes[1].set_xticklabels(cls6, fontsize=8)
axes[1].set_ylabel("fraction of pseudo-labels"); axes[1].set_title("pseudo-labels of open-set images"); axes[1].legend(fontsize=7)
viz.savefig(fig, OUT, "pseudo_labels")
for name, m in groups.items():
    if m.any():
        frac = np.bincount(cs0["pseudo"].numpy()[m], minlength=6) / m.sum()
        print(f"pseudo-labels of {name:18s}: " + ", ".join(f"{c} {f:.2f}" for c, f in zip(cls6, frac))
              + f" | largest share {frac.max():.3f}")
# how much of each pseudo-class is open: the detector learns a pseudo-class's majority as "the class"
pc = cs0["pseudo"].numpy()
print("open share of each pseudo-class: " + ", ".join(f"{c} {(~cs0['is_closed'][pc == j]).mean():.2f}" for j, c in enumerate(cls6) if (pc == j).any()))

# %% [markdown]
# ### Attention-map consistency, seen on the trained detector
#
# For a few pool images: the CAM of the pseudo-label on the image, and the flipped-back CAM of its
# mirror image. Consistent maps look alike; the loss drove them together.

# %%
det0 = RUNS[k0]["det"]["models"][0].eval()
idx = np.r_[np.flatnonzero(cs0["is_closed"])[:4], np.flatnonzero(~cs0["is_closed"])[:4]]
with torch.no_grad():
    dev = next(det0.parameters()).device
    xb = prep(cs0["pool_x"][idx].to(dev))
    _, cams = det0(xb)
    _, cams_f = det0(xb.flip(-1))
    yb = cs0["pseudo"][idx].to(dev)
    m1 = normalize_maps(cams[torch.arange(len(idx)), yb]).float()
    m2 = normalize_maps(cams_f[torch.arange(len(idx)), yb].flip(-1)).float()
    m1, m2 = resize_maps(m1, xb.shape[-1]).cpu(), resize_maps(m2, xb.shape[-1]).cpu()
imgs = [cs0["pool_x"][j] for j in idx]
titles = [f"{'closed' if cs0['is_closed'][j] else 'OPEN'}: {NAMES[cs0['pool_lab'][j]][:10]}\n-> {cls6[int(cs0['pseudo'][j])]}" for j in idx]
fig = viz.image_grid(imgs + imgs, titles + ["T(M(T(x)))"] * len(idx), ncols=len(idx), size=1.3,
                     overlays=list(m1) + list(m2), suptitle="top: M(x) of the pseudo-label; bottom: flipped map of the flipped image")
viz.savefig(fig, OUT, "cam_consistency")

# %% [markdown]
# ### Cycle training at work
#
# Left: the detectors' loss terms over all cycles (the cosine restarts are visible). Right: the mean
# per-sample CE of closed and open pool images at each snapshot; the gap between them is what the
# score uses.

# %%
det = RUNS[k0]["det"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for m in range(2):
    cls_curve = sum((hh.epochs["cls"] for hh in det["hists"][m]), [])
    cons_curve = sum((hh.epochs["cons"] for hh in det["hists"][m]), [])
    axes[0].plot(range(1, len(cls_curve) + 1), cls_curve, label=f"{'AB'[m]}: L_cls")
    axes[0].plot(range(1, len(cons_curve) + 1), [CFG["lam"] * v for v in cons_curve], "--", label=f"{'AB'[m]}: 6 L_cons")
axes[0].set_xlabel("epoch"); axes[0].set_title("detector losses"); axes[0].legend(fontsize=7); axes[0].grid(alpha=0.3)
sn = det["snapshots"].numpy()
cyc = range(1, CFG["cycles"] + 1)
for m in range(2):
    alpha_m = 0.5 + 0.5 * m
    axes[1].plot(cyc, sn[:, m, cs0["is_closed"]].mean(1), "o-", c="tab:green", alpha=alpha_m, label=f"{'AB'[m]}: closed")
    for (g, msk), col in zip(groups.items(), ("tab:red", "tab:purple")):
        if msk.any():
            axes[1].plot(cyc, sn[:, m, msk].mean(1), "s-", c=col, alpha=alpha_m, label=f"{'AB'[m]}: {g}")
axes[1].set_xlabel("cycle (snapshot)"); axes[1].set_ylabel("mean CE vs pseudo-label"); axes[1].set_title("per-sample loss")
axes[1].legend(fontsize=6); axes[1].grid(alpha=0.3)
viz.savefig(fig, OUT, "cycle_training")
open_kept = float(np.mean([(~cs0["is_closed"][s]).mean() for s in det["last_subsets"]]))
print(f"open share of the pool {float((~cs0['is_closed']).mean()):.3f}; of the last small-loss selections {open_kept:.3f}")

# %% [markdown]
# ### Where the exchange decides: losses inside each pseudo-class
#
# Step 4 ranks images *within* a pseudo-class, so the question that decides cycle training is:
# inside one pseudo-class, do the open images have larger losses than the closed ones? For every
# pseudo-class: its size, its open share, the mean loss (the ensemble score) of its closed and its
# open images, and the AUROC of ours and of MSP computed inside it (below 0.5: the open images are
# the *lower*-loss ones, the ones the exchange keeps). A diagnostic that reads the true labels after
# the fact; nothing here feeds back into training.

# %%
import pandas as pd

pc0, closed0 = cs0["pseudo"].numpy(), cs0["is_closed"]
loss0, msp0 = det["score"].numpy(), RUNS[k0]["scores"]["msp"].numpy()
rows = []
for j, c in enumerate(cls6):
    m = pc0 == j
    n_open, n_closed = int((m & ~closed0).sum()), int((m & closed0).sum())
    both = n_open >= 5 and n_closed >= 5
    rows.append({"pseudo-class": c, "n": int(m.sum()), "open share": n_open / max(1, int(m.sum())),
                 "CE closed": loss0[m & closed0].mean() if n_closed else np.nan,
                 "CE open": loss0[m & ~closed0].mean() if n_open else np.nan,
                 "ours AUROC inside": ood.evaluate(-loss0[m], closed0[m])["auroc"] if both else np.nan,
                 "MSP AUROC inside": ood.evaluate(msp0[m], closed0[m])["auroc"] if both else np.nan})
WITHIN = pd.DataFrame(rows)
print(WITHIN.round(3).to_string(index=False))
fig, ax = plt.subplots(figsize=(6.5, 3))
xs = np.arange(len(cls6))
ax.bar(xs - 0.2, WITHIN["CE closed"], 0.4, color="mediumseagreen", label="closed images")
ax.bar(xs + 0.2, WITHIN["CE open"], 0.4, color="crimson", label="open images")
for x, s in zip(xs, WITHIN["open share"]):
    ax.text(x, 0.02, f"{s:.0%}\nopen", ha="center", va="bottom", fontsize=7, color="white")
ax.set_xticks(xs); ax.set_xticklabels(cls6, fontsize=8); ax.set_ylabel("mean CE vs pseudo-label")
ax.set_title(f"inside each pseudo-class (k = {k0}): the exchange keeps the low bars", fontsize=9); ax.legend(fontsize=7)
viz.savefig(fig, OUT, "within_pseudo_class")
top = int(WITHIN["n"].where(WITHIN["open share"] > 0).mul(WITHIN["open share"]).idxmax())   # most open images
if np.isfinite(WITHIN.loc[top, "ours AUROC inside"]):
    report.metric(f"ours_auroc_inside_{cls6[top]}_pseudo_class_{k0}", float(WITHIN.loc[top, "ours AUROC inside"]))

# %% [markdown]
# ## Score distributions, closed vs open (paper Fig. 5 style)
#
# Each panel is one method on the first held-out class; scores are min-max scaled to [0, 1]
# (orientation: high = closed), AUROC in the title.

# %%
sc = RUNS[k0]["scores"]
fig, axes = plt.subplots(1, len(METHODS), figsize=(3.0 * len(METHODS), 2.6))
for ax, m in zip(axes, METHODS):
    s = sc[m].numpy().astype(float)
    s = (s - s.min()) / (s.max() - s.min() + 1e-12)
    bins = np.linspace(0, 1, 31)
    ax.hist(s[cs0["is_closed"]], bins, density=True, alpha=0.6, color="mediumseagreen", label="close-set")
    ax.hist(s[~cs0["is_closed"]], bins, density=True, alpha=0.6, color="crimson", label="open-set")
    ax.set_title(f"{m}: {RESULTS[k0][m]['auroc']:.3f}", fontsize=9); ax.set_xlabel("score (high = closed)", fontsize=8)
axes[0].legend(fontsize=7)
fig.tight_layout()
viz.savefig(fig, OUT, "score_distributions")

# %% [markdown]
# ## Results
#
# Mean over the held-out classes run here (one in smoke), beside the paper's RAF-DB means over the
# 7 open classes (paper Table 1; its "Baseline" column is MSP, which the official code computes as
# the max logit; its FERPlus mean AUROC is .882 for ours). Closed set = positive class. A smoke row
# is a check that the pipeline learns on synthetic faces, never a reproduction.

# %%
PAPER = {"msp": (0.497, 0.917), "proser": (0.749, 0.811), "dias": (0.714, 0.858), "ours": (0.909, 0.547)}
SHOWN = METHODS + (["oracle_selection"] if CFG["oracle"] else [])   # the oracle is a diagnostic, not a method
mean = {m: {q: float(np.mean([RESULTS[k][m][q] for k in OPEN_CLASSES])) for q in ("auroc", "fpr95")} for m in SHOWN}
for m in SHOWN:
    for q, j in (("auroc", 0), ("fpr95", 1)):
        p = PAPER.get(m)
        report.metric(f"{m}_{q}_mean", mean[m][q], paper=p[j] if p else None,
                      paper_dataset="RAF-DB (mean of 7 open classes)" if p else None,
                      headline=(m, q) == ("ours", "auroc"))
for m in ("proser", "dias"):
    for q, j in (("auroc", 0), ("fpr95", 1)):
        report.metric(f"{m}_{q}_mean", None, paper=PAPER[m][j], paper_dataset="RAF-DB (mean of 7 open classes)")
report.metric("ours_auroc_mean_ferplus", None, paper=0.882, paper_dataset="FERPlus (mean of 7 open classes)")
report.metric("close_set_acc_mean", float(np.mean([RESULTS[k]["close_acc"] for k in OPEN_CLASSES])))
for k in OPEN_CLASSES:
    for m in ("msp", "energy", "ours") + (("oracle_selection",) if CFG["oracle"] else ()):
        report.metric(f"{m}_auroc_{k}", RESULTS[k][m]["auroc"])
    for g, r in RESULTS[k]["groups"].items():
        for m in ("msp", "ours"):
            report.metric(f"{m}_auroc_{k}_vs_{g.replace(' ', '_')}", r[m])
    cs_k = RUNS[k]["close"]
    report.metric(f"open_share_{k}", float((~cs_k["is_closed"]).mean()))
    report.metric(f"pseudo_top_share_{k}", float(np.bincount(cs_k["pseudo"].numpy()[cs_k["pool_lab"] == config.BASIC7.index(k)],
                                                             minlength=6).max() / max(1, (cs_k["pool_lab"] == config.BASIC7.index(k)).sum())))
report.metric("n_open_classes", len(OPEN_CLASSES))
report.metric("protocol_wall_s", WALL_PROTOCOL)

per_class = pd.DataFrame({k: {f"{m} {q}": RESULTS[k][m][q] for m in SHOWN for q in ("auroc", "fpr95")} for k in OPEN_CLASSES}).T
per_class.loc["mean"] = per_class.mean()
print(f"{DATASET} ({EVAL_SPLIT} pool), profile {PROFILE}, device {DEVICE}, protocol wall time {WALL_PROTOCOL:.0f} s")
print(per_class.T.round(3).to_string())

# %% [markdown]
# ### The smoke checks, measured over seeds (2026-12-06)
#
# **On the current engine (synth-4)**, seeds 0-4 with `ATEN_CPU_CAPABILITY` default and avx2
# (`env -u FACELAB_DATA python scripts/seed_sweep.py 04 --seeds 0 1 2 3 4 --caps default avx2`;
# session 12, 2-core AMD EPYC with AVX-512, two sweeps and a test run at a time, hence the wall
# times; seed 0 with native kernels is CI's run): all three checks True in all 10 runs.
#
# | kernels | seed | close-set acc | MSP | ours | oracle selection | share of MSP's error removed | wall |
# |---|---|---|---|---|---|---|---|
# | default | 0 | 0.984 | 0.908 | 0.354 | 0.951 | 47 % | 158 s |
# | default | 1 | 0.984 | 0.862 | 0.233 | 0.975 | 82 % | 149 s |
# | default | 2 | 0.977 | 0.899 | 0.286 | 0.959 | 60 % | 157 s |
# | default | 3 | 0.947 | 0.867 | 0.390 | 0.944 | 58 % | 173 s |
# | default | 4 | 0.982 | 0.926 | 0.470 | 0.945 | **26 %** | 176 s |
# | avx2 | 0 | 0.980 | 0.904 | 0.320 | 0.949 | 46 % | 126 s |
# | avx2 | 1 | 0.974 | 0.896 | 0.344 | 0.976 | 77 % | 134 s |
# | avx2 | 2 | 0.924 | 0.799 | 0.191 | **0.928** | 64 % | 128 s |
# | avx2 | 3 | 0.912 | 0.887 | 0.523 | 0.942 | 49 % | 124 s |
# | avx2 | 4 | 0.983 | 0.914 | 0.399 | 0.956 | 49 % | 116 s |
#
# avx512, seeds 1-4 (`--seeds 1 2 3 4 --caps avx512`): the same numbers as avx2 on every seed.
#
# On synth-8 (session 14: sad, fear and disgust refitted over a wide AU set, deeper wrinkle and fold
# cues; seeds 0-2, `--caps default`, 3 runs, 2026-12-07): all three checks True; close-set accuracy
# 0.993-0.998, MSP 0.758-0.922, ours 0.108-0.276, oracle selection 0.940-0.982 (bar 0.85), share of
# MSP's error removed 34-76 %.
#
# Why the oracle check changed with this engine. Until synth-3 it asked the oracle to remove at
# least 30 % of MSP's remaining ranking error. With synth-4 (the lips part in happy's smile) the
# held-out happy faces are easier for MSP (0.80-0.93, synth-3 0.70-0.89), and a share of a small
# remainder is noisy: 26 % at default seed 4, and 3 % in an earlier native run of a candidate
# engine where MSP reached 0.970 and the oracle 0.971. What the check is for, that the detectors'
# CE score ranks open faces when the selection is right, does not depend on MSP: it now asks for
# an oracle AUROC of at least **0.85**. Measured: 0.928-0.976 here, 0.896-0.971 over synth-3's 15
# runs (table below); a broken CE score ranks near chance (0.5). The share and the difference to
# MSP stay reported (`oracle_share_of_msp_error_removed`, `oracle_minus_msp_auroc`).
#
# On the previous engine (synth-3), seeds 0-4 × default / avx2 (avx512 gave the same numbers as
# avx2 on every seed; sessions 9 and 10), all checks True in all 15 runs:
#
# | kernels | seed | close-set acc | MSP | ours | oracle selection | share of MSP's error removed | wall |
# |---|---|---|---|---|---|---|---|
# | default | 0 | 0.984 | 0.856 | 0.170 | 0.953 | 68 % | 173 s |
# | default | 1 | 0.993 | 0.750 | 0.153 | 0.971 | 88 % | 176 s |
# | default | 2 | 0.981 | 0.837 | 0.265 | 0.957 | 73 % | 179 s |
# | default | 3 | 0.979 | 0.767 | 0.184 | 0.896 | 55 % | 177 s |
# | default | 4 | 0.992 | 0.864 | 0.200 | 0.942 | 57 % | 180 s |
# | avx2 | 0 | 0.992 | 0.803 | 0.163 | 0.951 | 75 % | 184 s |
# | avx2 | 1 | 0.984 | 0.700 | 0.139 | 0.964 | 88 % | 163 s |
# | avx2 | 2 | 0.977 | 0.887 | 0.369 | 0.962 | 66 % | 149 s |
# | avx2 | 3 | 0.982 | 0.807 | 0.192 | 0.935 | 66 % | 168 s |
# | avx2 | 4 | 0.972 | 0.840 | 0.246 | 0.913 | 46 % | 148 s |
#
# The table below is an earlier measurement, on the engine before its issue-21 changes.
#
# The smoke run checks what the synthetic protocol can show honestly (see *Checks* at the end):
# the close-set model learns, the detectors' CE score separates closed from open once the selection
# is right (the oracle diagnostic), and cycle training runs and exchanges subsets. Whether ours
# beats MSP, the paper's claim, is reported and decided on real faces (FER2013 demo below). Seeds
# 0-4, held-out happy, `python scripts/seed_sweep.py 04 --seeds 0 1 2 3 4` (papermill-free runs of
# this twin on the 2-core CPU under load 4-6 from other jobs, hence the wall times; rendered by the
# face engine as it was before its issue-21 recalibration of the same day; seed 0 with
# ATEN_CPU_CAPABILITY avx2 and avx512 gave close-set 0.848, MSP 0.701, oracle 0.912, all checks True):
#
# | seed | close-set acc | MSP | energy | ours | oracle selection | oracle - MSP | all checks | wall |
# |---|---|---|---|---|---|---|---|---|
# | 0 | 0.887 | 0.759 | 0.768 | 0.277 | 0.930 | +0.171 | True | 251 s |
# | 1 | 0.930 | 0.730 | 0.752 | 0.265 | 0.926 | +0.196 | True | 284 s |
# | 2 | 0.901 | 0.584 | 0.585 | 0.148 | 0.864 | +0.280 | True | 232 s |
# | 3 | 0.863 | 0.734 | 0.747 | 0.258 | 0.892 | +0.158 | True | 253 s |
# | 4 | 0.936 | 0.773 | 0.769 | 0.253 | 0.939 | +0.166 | True | 258 s |
#
# The smallest margins: close-set accuracy 0.863 against the bar 1/6 + 0.3 = 0.467; oracle - MSP
# +0.158, i.e. 59-75 % of MSP's remaining error removed, against the bar of the time, 40 %.
#
# With the recalibrated engine (seeds 0 / 1 / 2, same day): close-set 0.976 / 0.981 / 0.984, MSP 0.681 /
# 0.874 / 0.766, oracle 0.916 / 0.968 / 0.935, ours 0.116 / 0.267 / 0.142. MSP got stronger: on seed 1
# the oracle is +0.094 over it, under an absolute +0.1 bar that would need 0.974, near the ceiling.
# The check is therefore relative: the oracle removed 74 / 75 / 72 % of MSP's remaining error (all eight
# runs: 59-75 %); the absolute difference stays reported (`oracle_minus_msp_auroc`). The oracle is trained with the classification loss alone
# (`oracle_lam` 0): with the paper's λ = 6 and the same 10 epochs it reached only +0.107 (seed 0)
# and +0.096 (seed 1), a margin too thin to assert. Ours stays far below MSP on every seed, for the
# reasons below.
#
# ### The paper's claim on synthetic faces (measured 2026-11-27)
#
# This configuration, held-out happy, three seeds (papermill wall time on the 2-core CPU shared with
# other jobs, load 3-5; ~100 s of CPU time each):
#
# | seed | close-set acc | open share | happy's pseudo-labels | MSP | max-logit | energy | ours (single) | ours | FPR95 MSP / ours | wall |
# |---|---|---|---|---|---|---|---|---|---|---|
# | 0 | 0.879 | 0.371 | neutral 64 %, disgust 34 % | 0.738 | 0.719 | 0.713 | 0.195 | 0.227 | 0.880 / 0.951 | 115 s (158 s at load 5) |
# | 1 | 0.928 | 0.369 | neutral 82 %, disgust 16 % | 0.661 | 0.673 | 0.670 | 0.165 | 0.196 | 0.887 / 0.946 | 152 s |
# | 2 | 0.911 | 0.370 | neutral 77 %, disgust 23 % | 0.728 | 0.661 | 0.647 | 0.228 | 0.245 | 0.899 / 0.966 | 127 s |
#
# The close-set model is now accurate (0.88-0.93 on the pool's known faces, was 0.75) and the pool
# has the paper's proportions (37 % open, was 56 %), as the first diagnosis asked. Ours is still far
# **below chance** on every seed, and the per-group AUROCs printed above say where: the held-out
# happy faces get the *lowest* losses of the pool (ours 0.12-0.19 against the closed images), the
# compounds are at chance or a little above (0.59-0.64, MSP 0.74-0.77).
#
# Why, in the paper's own terms: its score needs the open samples' pseudo-labels to behave like
# *symmetric noise*, labels that a fresh model cannot predict from the face. Held-out happy is the
# opposite. It goes to two classes (neutral and disgust; the pseudo-class neutral is then 68 % open
# images, disgust 47 %), and which of the two is a function of the face that a fresh detector learns
# *faster* than the true classes: the smile is the most salient thing in these renders. The
# cycle-training figure shows it (seed 0): at every snapshot the detectors' loss on the happy faces
# (0.62-0.96; a 64/34 split has an entropy of 0.65 nats) is far below their loss on the closed faces
# (1.19-1.76), so the small-loss exchange keeps the happy faces (the last selections are 39-41 % open
# against 37 % in the pool) and drops closed ones. Second, within this budget the from-scratch
# detectors do not fit the closed classes (closed CE 1.2-1.5 after 9 epochs), while the paper's
# pretrained ResNet-50 ends with the closed samples' losses piled up near zero (its Fig. 5).
#
# So the claim fails on this protocol, and the smoke checks no longer assert it. The exploration below (seed 0) did not
# find a detector schedule, width, λ or selection rule that passes; of the other held-out classes we
# ran anger and surprise through the detectors (both fail), and the pseudo-label table in the
# hold-out section predicts the same for the rest. With a perfect selection and a longer-trained
# detector the score would pass (0.906 vs MSP 0.738). A second round (face-recognition-style
# pretraining of the detectors, early-epoch scores, other close-set models, other pools, held-out
# anger on seeds 0-2) did not pass either; both tables follow.

# %% [markdown]
# ### What we tried (exploration, seed 0, not tuned into the run above)
#
# All with the smoke data above and the same pipeline code (copied into a script with knobs), held-out
# happy unless stated; "ours" is the two-detector ensemble, CE = mean loss against the pseudo-label at
# the end (closed / held-out / compounds).
#
# | change | ours AUROC | CE closed / held-out / compounds | reading |
# |---|---|---|---|
# | close-set width 8 instead of 12 | (MSP 0.669, acc 0.833) | | width 12 kept |
# | faces at 62-80 % of the frame (before) instead of 85-95 % | (MSP 0.683, acc 0.826 at width 12) | | tight crop kept |
# | detector λ 6, width 8, one cycle of 12 epochs | 0.327 | 0.96 / 0.54 / 1.24 | happy learned first |
# | λ 0 (no consistency loss), width 8, 8 epochs | 0.418 | 0.66 / 0.47 / 0.97 | faster, same order |
# | λ 0, width 16, 14 epochs | 0.511 | 0.08 / 0.07 / 0.17 | memorises everything |
# | co-teaching per mini-batch (Han et al. 2018), λ 0, width 12, 2 × 5 epochs, keep 60 % | 0.312 | 2.38 / 0.46 / 2.81 | selection keeps happy, drops closed |
# | this notebook: λ 6, width 12, 3 cycles × 3 epochs, exchange, keep 70 % | 0.227 | 1.19-1.49 / 0.62-0.70 / 1.44-1.78 | |
# | **oracle selection** (train on the truly closed pool images only), λ 0, width 12, 10 epochs | **0.906** (happy 0.903, compounds 0.927) | 0.30 / 0.92 / 1.30 | the score works if selection works |
# | oracle selection, this notebook's λ 6, width 12, 3 × 3 epochs | 0.745 (happy 0.745, compounds 0.741) | | budget limits the detector too |
# | held out **anger** (the class that scatters), λ 6, width 12, 10 epochs | 0.637 | 0.83 / 1.02 / 1.14 | right order, MSP 0.903 |
# | held out anger, λ 0 | 0.682 | 0.36 / 0.57 / 0.62 | MSP 0.903 |
# | held out **surprise** (97 % to fear), λ 6, width 12, 10 epochs | 0.153 | 0.73 / 0.09 / 1.00 | MSP 0.460 |
#
# Two readings. (1) The mechanism is sound in this code: trained on the right samples, the detectors'
# loss separates closed from open far better than MSP (0.91 vs 0.74). What fails is getting there
# without labels: the paper's premise (scattered, unlearnable open-set labels) does not hold for a
# basic class held out of these synthetic faces, where pseudo-labels are a near-deterministic
# function of the rendered expression. (2) On these faces the premise and a weak MSP exclude each
# other: the class whose labels scatter (anger) is the one MSP already detects (0.90, so "+0.1"
# would need 1.0); the classes where MSP is weak (surprise, fear, neutral, happy) concentrate.
#
# Speed: the small CNNs run on one torch thread in smoke (`threads`). Measured on this machine under
# load, a width-12 SmallCNN at 32 px trains at ~850 images/s on one thread and at ~50 images/s on
# two (the second OpenMP thread spin-waits against the other jobs).

# %% [markdown]
# ### Second round: face-recognition pretraining, early learning, other protocols (all fail)
#
# Measured 2026-11-27 with the same data and code (a script with knobs around this notebook's
# functions; nothing of it is kept in the run above). Held-out happy unless stated. "1 det." = one
# detector trained on the whole pool and scored after every epoch, the regime of the first cycle.
#
# | change | seed 0 | seed 1 | seed 2 | reading |
# |---|---|---|---|---|
# | **identity pretraining of both detectors** (the paper's detectors start from face-recognition weights): the width-12 SmallCNN first classifies 60 synthetic identities (`facelab.synth.identity`, 40 renders each with random expressions, 10 epochs, 74 % train acc, ~30 s), fc dropped, then this notebook's cycle training | ours 0.277, FPR95 0.963 (MSP 0.738) | 0.228, 0.989 (0.661) | 0.237, 0.972 (0.728) | happy still below closed at every snapshot (seed 0: CE 1.10 / 0.92 / 0.89 against 1.76 / 1.64 / 1.48) |
# | weaker identity pretraining (200 identities × 15, 6 epochs, 6 % train acc), 1 det., 10 epochs | 0.22-0.32 | | | |
# | **early learning**: 1 det. from scratch, AUROC after epochs 1 … 8 | 0.195 → 0.299 (best 0.318) | 0.146 → 0.251 | 0.176 → 0.285 | happy's CE is below the closed CE from epoch 1 (seed 0: 1.15 vs 1.84; seed 1: 1.08 vs 1.81): there is no early regime to score in |
# | mixup (Beta(0.4, 0.4)) / label smoothing 0.3 in the detector's CE, 1 det., 6 epochs | ≤ 0.22 / ≤ 0.21 | | | slow every class alike |
# | detector input standardised per image (removes the brightness that splits happy, see below), 1 det., 8 epochs | ≤ 0.32 | ≤ 0.28 | | the smile → neutral majority alone keeps happy's loss low |
# | close-set model that memorises (width 16, 20 epochs, flip only, train acc 1.00), 1 det. 6 epochs | ≤ 0.19 (MSP 0.869, acc 0.97) | | | happy → neutral 52 %, disgust 45 % |
# | close-set width 16, 20 epochs, flip + erasing | ≤ 0.16 (MSP 0.716) | | | |
# | close-set trained on 20 % symmetric label noise (real FER labels are noisy), width 12 / width 16 memorising | ≤ 0.28 / ≤ 0.31 (MSP 0.700 / 0.672) | | | |
# | twice the identity shape variation, intensity 0.5-1 (smaller inter-class distance) | ≤ 0.25 (MSP 0.475, acc 0.70) | | | happy → disgust 89 % |
# | pool without class *k*'s training images (21 % open), 1 det. 8 epochs | ≤ 0.41 (MSP 0.740); anger ≤ 0.71 (MSP 0.889) | | | fewer open images do not change the order |
# | **held out anger**, this notebook's pipeline | ours 0.441, FPR95 0.907 (MSP 0.903, energy 0.946) | 0.557, 0.915 (0.912, 0.951) | 0.339, 0.964 (0.843, 0.891) | anger scatters (largest share 0.43 / **0.26** / 0.59) and ours still loses; compounds: ours 0.56 / 0.59 / 0.50, MSP 0.83 / 0.82 / 0.76 |
#
# Inside the pseudo-classes (the cell "Where the exchange decides"; seeds 0 / 1 / 2 of the run
# above): in pseudo-class neutral (68 / 71 / 68 % open, nearly all of it happy) the open images have
# the *lower* mean loss, 0.56 / 0.32 / 0.55 against 1.47 / 1.11 / 0.94 for the true neutral faces
# (AUROC inside 0.13 / 0.09 / 0.23; MSP inside 0.51 / 0.43 / 0.52); in disgust (47 / 34 / 44 % open)
# ours is near chance inside (0.39 / 0.52 / 0.61; MSP 0.78-0.81). In the pseudo-classes where the
# open images are a small, mixed minority (2-18 %, mostly compounds) they do have the higher losses,
# as the paper describes (AUROC inside 0.52-0.86), though not more so than MSP sees them (0.71-0.92).
# It is the held-out class, a large cluster with a consistent label, that defeats the selection.
#
# What decides neutral vs disgust for a happy face (seed 0, the 215 held-out test faces): not the
# smile's strength (mean AU6 / AU12 / AU25 intensities 1.88 / 2.46 / 0.97 for those sent to neutral,
# 1.93 / 2.44 / 0.97 for those sent to disgust, and head pose is alike too) but brightness: the face
# centre averages 95 of 255 in the first group and 122 in the second, so lighter skin or stronger
# light tips a smile into "disgust". That is a label driven by a nuisance, as the paper's premise
# wants, but by the easiest nuisance of all for a CNN to pick up.
#
# Readings. (1) Pretraining is not what is missing: the held-out faces carry the most salient
# evidence in these renders (the smile), and "smile → neutral, or disgust when bright" is learned
# first from any start, so the small-loss exchange keeps it. (2) No training length
# helps: the order is wrong from the first epoch, so early snapshots, mixup or label smoothing
# (which slow all classes alike) do not turn it around; we kept none of them.
# (3) Scatter alone is not enough either: held-out anger on seed 1 scatters more than Surprise in
# the paper's own pool (largest share 0.26 vs 0.36) and ours is 0.56, because anger faces are far
# from every known class, which is also why MSP already finds them (0.91). We found no held-out basic
# class, rendering or pool on these synthetic faces where the premise holds *and* MSP is weak, so
# the class is still chosen by the rule stated before the results (least AU overlap, happy).
# The claim is not asserted on synthetic faces; the FER2013 demo (all seven classes)
# is where the premise can be tested on real faces.

# %% [markdown]
# ### The FER2013 demo on a CPU (2026-12-06): caps too small, nothing to decide yet
#
# `profile="demo"`, FER2013 `train` -> `publictest` (the sharp train split, no re-split), all seven
# held-out classes, with CPU caps recorded in metrics.json: `arch="small", width=12,
# max_per_class=500, close_epochs=5, cycles=3, cycle_epochs=1, oracle_epochs=4, threads=1`.
# 57 min on 2 cores shared with other jobs. The caps were too small for real faces: the close-set
# model reached only **0.250** accuracy on the pool's known faces (chance 0.167; the smoke bar is
# 0.467), so no score had a model to work with:
#
# | mean of 7 held-out classes | MSP | max-logit | energy | ours (1 snapshot) | ours | oracle selection | paper RAF-DB ours / MSP |
# |---|---|---|---|---|---|---|---|
# | AUROC | 0.524 | 0.516 | 0.491 | 0.508 | 0.498 | 0.511 | 0.909 / 0.497 |
# | FPR@95%TPR | 0.955 | 0.954 | 0.960 | 0.933 | 0.948 | 0.934 | 0.547 / 0.917 |
#
# Every method is at chance, the oracle included: this run says nothing for or against the paper.
# What it needs, measured by notebook 05 on the same data and CPU: a SmallCNN of width 16 reaches
# 58 % on FER2013 after 8 epochs over the full 25,841 training faces (206k sample-steps); this run's
# close-set model saw 14.5k (5 epochs over 6 x 500 faces), and its detectors fewer. The demo as
# configured (ResNet-18 on the full splits) is for a GPU; a CPU run needs `max_per_class` of
# ~3,000 and 8 close-set epochs, a few hours for seven classes here.
#
# **A second CPU run, one held-out class with larger caps** (session 6, 2026-12-06): `profile="demo"`,
# FER2013 `train` -> `publictest`, `open_classes="surprise"` (the paper's own example pool),
# `arch="small", width=16, max_per_class=3000, close_epochs=8, cycles=3, cycle_epochs=2,
# oracle_epochs=6, threads=1`; 50 min on 2 cores shared with four other jobs. The close-set model now
# learns (**0.444** on the pool's known faces, chance 0.167), and every score is *below* chance:
#
# | held-out surprise, FER2013 publictest pool | MSP | max-logit | energy | ours (1 snapshot) | ours | oracle selection | paper RAF-DB ours / MSP |
# |---|---|---|---|---|---|---|---|
# | AUROC | 0.288 | 0.278 | 0.283 | 0.252 | 0.265 | 0.376 | 0.909 / 0.497 |
# | FPR@95%TPR | 0.987 | 0.988 | 0.987 | 0.984 | 0.978 | 0.975 | 0.547 / 0.917 |
#
# Why below chance: surprised faces are *confidently* taken for fear (87 % of them fall into the
# fear pseudo-class; wide eyes and a raised brow are fear's cues too), so the unknown class looks
# more certain than the known faces, many of which the 0.44-accurate model gets wrong. Inside the
# fear pseudo-class, ours separates the surprised faces from the real fearful ones at AUROC
# 0.346: the attention-consistency loss did not make the open images the ones it fits last, and
# even oracle selection (trained only on the true members) reaches 0.376. On this data and at
# these caps the paper's claim is **not reproduced**; with a close-set model this weak the pool's
# closed images are noisy too, which the method's premise (clean known classes, noisy open ones)
# does not allow for. The full demo (ResNet-18, all seven classes) waits for a GPU.
#
# **A third CPU run, all seven classes again** (session 7, 2026-12-06, after the face-engine
# change, which does not touch real-data runs): `arch="small", width=16, max_per_class=600,
# close_epochs=6, cycles=2, cycle_epochs=1, oracle_epochs=2, threads=1`; 53 min on 2 cores
# shared with two to three other jobs. The close-set model reaches **0.324** on the pool's known
# faces (chance 0.167; the smoke bar 0.467 is not met, so `close_set_model_learned` reads False):
#
# | mean of 7 held-out classes | MSP | max-logit | energy | ours (1 snapshot) | ours | oracle selection | paper RAF-DB ours / MSP |
# |---|---|---|---|---|---|---|---|
# | AUROC | 0.538 | 0.540 | 0.539 | 0.521 | 0.511 | 0.513 | 0.909 / 0.497 |
# | FPR@95%TPR | 0.936 | 0.935 | 0.943 | 0.935 | 0.953 | 0.944 | 0.547 / 0.917 |
#
# Per held-out class, MSP / ours AUROC: neutral 0.598 / 0.480, happy 0.607 / 0.563, sad 0.548 /
# 0.505, surprise 0.450 / 0.527, fear 0.522 / 0.548, disgust 0.500 / 0.476, anger 0.538 / 0.480.
# Ours beats MSP only where MSP is below chance (surprise, fear); the mean is 0.026 below MSP, and
# oracle selection is no better, so with a close-set model this weak the detectors have nothing to
# learn from. Same conclusion as the first run: a CPU run that could decide needs
# `max_per_class` ~3,000 and 8 close-set epochs per class (hours for seven), or the GPU demo.

# %% [markdown]
# ## Checks
#
# The smoke checks catch a broken pipeline and still pass honestly on synthetic faces, where the
# paper's premise fails (above): (1) the close-set model learned (pool accuracy on known classes well
# above the 1/6 chance); (2) with a perfect selection (the oracle diagnostic) the detectors' CE score
# ranks the open faces with an AUROC of at least 0.85, i.e. the scoring itself works (smallest over
# 10 seed x vector-unit runs on synth-4: 0.928; a broken score sits near 0.5); (3) both cycle-trained detectors
# ran every cycle, exchanged small-loss subsets of the expected size (not identical, not the whole
# pool) and gave finite scores. Whether ours beats MSP is the paper's claim: it is reported
# (`ours_minus_msp_auroc`), and decided on real faces by the FER2013 demo, not asserted on synthetic
# faces. Margins over seeds are in the status table above.

# %%
def exchanged_and_finished(det, n_pool: int) -> bool:
    """Every cycle ran for both detectors, each picked a proper subset for the other, scores are finite."""
    every_cycle = all(len(h) == CFG["cycles"] for h in det["hists"])
    sizes = [len(sub) for sub in det["last_subsets"]]
    proper = all(0.5 * CFG["keep_ratio"] * n_pool <= n < n_pool for n in sizes)
    different = det["last_subsets"][0] != det["last_subsets"][1]
    return every_cycle and proper and different and bool(torch.isfinite(det["snapshots"]).all())


report.metric("ours_minus_msp_auroc", mean["ours"]["auroc"] - mean["msp"]["auroc"])
report.check("close_set_model_learned", float(np.mean([RESULTS[k]["close_acc"] for k in OPEN_CLASSES])) > 1 / 6 + 0.3)
if CFG["oracle"]:
    # the share of MSP's remaining ranking error (1 - AUROC) that the oracle-selected detectors remove
    oracle_gain = (mean["oracle_selection"]["auroc"] - mean["msp"]["auroc"]) / max(1e-9, 1 - mean["msp"]["auroc"])
    report.metric("oracle_minus_msp_auroc", mean["oracle_selection"]["auroc"] - mean["msp"]["auroc"])
    report.metric("oracle_share_of_msp_error_removed", oracle_gain)
    # the scoring works when the selection is right: a broken CE score ranks near chance (0.5)
    report.check("oracle_selection_auroc_over_85pct", mean["oracle_selection"]["auroc"] >= 0.85)
report.check("cycle_training_exchanged_and_finished",
             all(exchanged_and_finished(RUNS[k]["det"], len(RUNS[k]["close"]["pseudo"])) for k in OPEN_CLASSES))
report.save()
report.table()

# %%
# NBVAL_CHECK_OUTPUT
CHECKS = ["close_set_model_learned", "oracle_selection_auroc_over_85pct", "cycle_training_exchanged_and_finished"]
report.print_checks(CHECKS)
