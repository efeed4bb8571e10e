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
# # 02 · FaceTrack-MM: describing what a face does in a video
#
# **Paper.** H. Zhao, Z. Sun, Y. Chen, X. Wei (Alibaba), *Facial Dynamics in Video: Instruction
# Tuning for Improved Facial Expression Perception and Contextual Awareness*, AAAI 2026
# ([arXiv 2501.07978](https://arxiv.org/abs/2501.07978); the official repository
# `Jiaxing-star/FacialDynamic` holds only the benchmark's `test.json`, no model code).
#
# **The idea.** A video-language model sees a whole frame at a modest resolution, so the face
# of the person being described is a few dozen pixels and its expression changes (a brow
# raise, a lip press) are nearly invisible. FaceTrack-MM first **tracks the main character's
# face** through the clip and crops a face tube; the face tube gives a **small, fixed budget of
# face tokens per frame** that join the usual global video tokens before the language model.
# The model is instruction-tuned to write captions in a fixed order (appearance, then "At the
# beginning...", "As the video progresses...", "In the middle...", "Towards the end..."), and
# the paper's benchmark FEC-Bench scores them with CIDEr, ROUGE-L, AutoDQ (event recall and
# precision judged by an LLM) and a new **TEM** (temporal event matching: AutoDQ plus the order
# of the matched events).
#
# ```
#  video ─► detect faces ─► link into tracks ─► main character ─► face tube (32 px crops)
#    │                                                               │
#    └─► frames at low resolution ─► ViT ─► global tokens            └─► ViT ─► face tokens
#                                           │                                    │
#                  STC connector (Conv3d over time × space) ─► project to the LM width
#                                           │                                    │
#  instruction ─► gate  w = softmax(MLP(mean instruction embedding))  ─► w_g·global , w_f·face
#                                           └──────────────► causal LM ─► caption
# ```
#
# The paper gives the pipeline in words only; where we follow our own **reconstruction** [R]
# of a missing detail, the cell says so. What each profile runs (`profile` below):
#
# | profile | data | vision / LM | schedule |
# |---|---|---|---|
# | `smoke` | synthetic scene clips (96 px frames, a main face and a smaller distractor), CPU, < 3 min | two tiny ViTs (2 layers, 64-d) + a 2-layer causal LM over a word vocabulary | ~25 epochs AdamW |
# | `demo` | more synthetic clips, one GPU | SmolLM2-135M-Instruct (LoRA r 8 on q/k/v/o/gate/up/down) + the trained projector | more epochs |
# | `paper` | FEC-Bench `test.json` with your copies of its videos (`data_root`) | any local causal LM (`lm_path`) | the paper trains a 7B model on 5,033 clips we do not have |

# %% tags=["parameters"]
profile = "auto"
data_root = None      # paper: the folder holding FEC-Bench's test.json
seed = 0
out_dir = None
eval_split = "test"
video_root = None     # paper: the root FEC-Bench's "video" paths are relative to (default: data_root)
face_tokens = None    # face tokens per frame: 4, 6, 8, 9, 12 or 16 (None: the profile's)
judge = "rules"       # AutoDQ / TEM judge and extractor: rules, or llm with judge_model
judge_model = None    # a local transformers model folder, used when judge is llm
lm_path = None        # paper: a local causal LM folder (transformers)
lm_check = None       # run one SmolLM2 + LoRA step here (None: only in demo; it loads a 135M model)
lm_layers = None      # CPU cap: keep only the first k decoder layers of the HF LM (None: all 30 of SmolLM2)
real_clips = None     # real talking-face videos to caption, a list of paths (None: 3 from FACELAB_DATA/video)
epochs = None
batch_size = None
lr = None             # learning rate of the connectors, gate and LM (LoRA) (None: the profile's)
n_train = None
n_test = None
threads = None        # CPU threads for torch (None: 1 in smoke)

# %% tags=["export"]
# What the model cells below need. Cells tagged `export` are also written to
# `facelab.papers.facetrack_mm` (`python -m facelab export`), which tests import.
import torch
import torch.nn.functional as F
from torch import nn

from facelab.faces.track import track_faces
from facelab.nn.vlm import caption_loss

# face tokens per frame -> the (rows, columns) grid they are pooled to from the face ViT's patches
FACE_GRIDS = {4: (2, 2), 6: (2, 3), 8: (2, 4), 9: (3, 3), 12: (3, 4), 16: (4, 4)}

# %%
import time

import numpy as np

from facelab import config, metrics_fec, viz
from facelab.faces.track import Track, box_iou, clear_mot, crop_tube, main_track, tracks_to_frames
from facelab.nn.vlm import TinyCausalLM, TinyViT, WordVocab, greedy_decode
from facelab.results import Report
from facelab.synth.scene_videos import frame_action_labels, scene_videos
from facelab.train import TrainConfig, fit

NB = "02_facetrack_mm"
T0 = time.time()
PROFILE = config.resolve_profile(profile)
CFG = config.pick(PROFILE, {
    "smoke": {"n_train": 200, "n_test": 48, "frames": 17, "canvas": 96, "main_size": 48, "distractor_size": 32,
              "global_px": 32, "face_px": 32, "face_tokens": 4, "vit_dim": 64, "enc_epochs": 5, "lm": "tiny",
              "lm_dim": 96, "epochs": 16, "batch_size": 16, "lr": 3e-3, "threads": 1},
    "demo": {"n_train": 1200, "n_test": 200, "frames": 17, "canvas": 128, "main_size": 64, "distractor_size": 40,
             "global_px": 32, "face_px": 32, "face_tokens": 8, "vit_dim": 96, "enc_epochs": 6, "lm": "smollm2",
             "lm_dim": 576, "epochs": 10, "batch_size": 16, "lr": 5e-4, "threads": None},
    "paper": {"n_train": 4000, "n_test": 400, "frames": 17, "canvas": 160, "main_size": 72, "distractor_size": 48,
              "global_px": 64, "face_px": 48, "face_tokens": 16, "vit_dim": 192, "enc_epochs": 8, "lm": "local",
              "lm_dim": None, "epochs": 10, "batch_size": 8, "lr": 2e-4, "threads": None},
}, n_train=n_train, n_test=n_test, epochs=epochs, batch_size=batch_size, lr=lr, face_tokens=face_tokens,
   threads=threads)
if CFG["threads"]:
    torch.set_num_threads(CFG["threads"])   # one thread beats two fighting on a small shared CPU
rng = config.seed_everything(seed)
DEVICE = config.device()
OUT = config.out_dir(NB, out_dir)
RUN = config.run_dir(NB, PROFILE)
print(f"profile {PROFILE} | device {DEVICE} | figures -> {OUT}")
print(CFG)
report = Report(NB, profile=PROFILE, dataset="synth scene clips" if data_root is None else "FEC-Bench", out_dir=OUT)
report.record_caps(n_train=n_train, n_test=n_test, epochs=epochs, batch_size=batch_size, lr=lr,
                   face_tokens=face_tokens, threads=threads, lm_layers=lm_layers)

# %% [markdown]
# Two knobs have a fixed set of values, and a wrong one stops here with one line: the face
# token budget must tile the face grid (the paper says only "a few tokens per frame", 4-16), and
# the judge is one of `facelab.metrics_fec`'s registered judges.

# %%
def check_options(face_tokens_, judge_):
    if face_tokens_ not in FACE_GRIDS:
        raise config.ConfigError(f"face_tokens={face_tokens_!r}: expected one of {sorted(FACE_GRIDS)} "
                                 "(face tokens per frame, pooled from the face ViT's grid)")
    if judge_ not in metrics_fec.JUDGES:
        raise config.ConfigError(f"judge={judge_!r}: expected one of {', '.join(sorted(metrics_fec.JUDGES))}")
    if judge_ == "llm" and judge_model is None:
        raise config.ConfigError("judge='llm' needs judge_model: a local transformers model folder")


check_options(CFG["face_tokens"], judge)
for bad in ({"face_tokens_": 5, "judge_": "rules"}, {"face_tokens_": 4, "judge_": "gpt"}):
    try:
        check_options(**bad)
    except config.ConfigError as e:
        print("bad input ->", e)

# %% [markdown]
# ## 1. Data: faces in a wider scene, captions from exact events
#
# FEC-Bench's 800 test clips come from seven emotion datasets (CAER, RAVDESS, DFEW, MER24, MAFW,
# AFEW-VA, FERV39k); its captions average ~119 words in the fixed template above. The training
# set (5,033 clips) is unreleased. Here (`smoke`, `demo`) every clip is synthetic
# (`facelab.synth.scene_videos`): a main character whose AU-driven facial events (smile, brow
# raise, frown, lip press, ...) follow each other without overlap, a **smaller distractor face**
# with events of its own (sometimes entering part-way), both drifting across a larger frame.
# The caption is written from the main character's exact event list in FEC-Bench's template.
# Six clearly distinct facial actions at strong intensity keep the vocabulary small enough for
# a CPU-sized model. Test clips use another seed, so **every test identity is unseen in training**.

# %%
ACTIONS = ("smile", "brow_raise", "frown", "mouth_open", "lip_press", "nose_wrinkle")
GEN = dict(frames=CFG["frames"], canvas=CFG["canvas"], main_size=CFG["main_size"], actions=ACTIONS,
           distractor_size=CFG["distractor_size"], distractors=1.0, n_events=3, intensity=(0.9, 1.0))
with config.torch_threads(1):
    TRAIN = scene_videos(CFG["n_train"], seed=10_000 + seed, **GEN)
    TEST = scene_videos(CFG["n_test"], seed=20_000 + seed, **GEN)
T = CFG["frames"]
print(f"train {len(TRAIN)} clips, test {len(TEST)} clips of {T} frames at {TRAIN.fps:g} fps, "
      f"{CFG['canvas']} px; {TRAIN.has_distractor.mean():.0%} with a distractor")
print("caption:", TRAIN.captions[0])
plt = viz.pyplot()
fig, axes = plt.subplots(2, 6, figsize=(12, 4.4))
for r in range(2):
    for c, t in enumerate(np.linspace(0, T - 1, 6).astype(int)):
        ax = axes[r, c]
        ax.imshow(TRAIN.frames[r, t])
        ax.set_title(f"clip {r}, frame {t}", fontsize=8)
        ax.axis("off")
viz.savefig(fig, OUT, "scene_clips")

# %% [markdown]
# ## 2. Main-character face tracking
#
# > "a dynamic face-tracking module ... to locate and track the main character's face"
#
# The paper does not publish the tracker. Ours (`facelab.faces.track`, [R]): link per-frame
# detections by IoU with a constant-velocity prediction plus an appearance descriptor
# (Hungarian assignment), keep a track alive through short misses, then pick the main
# character. **Detections in smoke are the exact boxes with noise** (4% jitter of the box size,
# 6% missed detections, an occasional false positive): running a CNN face detector on every
# frame would not fit the CPU budget. The real-clip cell below runs MTCNN instead.

# %%
def noisy_detections(clips, i, rng_, jitter=0.04, miss=0.06, false_pos=0.03):
    """Per frame an (n, 5) array of boxes + score: exact boxes jittered, some dropped, some invented."""
    out, H = [], clips.frames.shape[2]
    for t in range(clips.frames.shape[1]):
        rows = []
        for f in range(2):
            b = clips.boxes[i, t, f]
            if clips.present[i, t, f] and rng_.random() > miss:
                s = b[2:] - b[:2]
                rows.append(np.r_[b + rng_.normal(0, jitter, 4) * np.r_[s, s], 0.95])
        if rng_.random() < false_pos:
            x, y, w = rng_.uniform(0, H - 12), rng_.uniform(0, H - 12), rng_.uniform(8, 12)
            rows.append(np.array([x, y, x + w, y + w, 0.6]))
        out.append(np.array(rows).reshape(-1, 5))
    return out


det_rng = np.random.default_rng(seed + 1)
DETS = {name: [noisy_detections(c, i, det_rng) for i in range(len(c))] for name, c in (("train", TRAIN), ("test", TEST))}
print("frame 0 of test clip 0:", np.round(DETS["test"][0][0], 1).tolist())

# %% [markdown]
# Which track is the main character? `facelab.faces.track.main_track` takes the track with the
# most detections (ties: the larger face). With a distractor present all along, detection
# counts differ only by chance misses, so we also write the rule the paper's summaries suggest
# ("present longest or largest") as one number: **screen presence**, the summed box area over
# the frames a track spans (gaps interpolated) [R].

# %% tags=["export"]
def main_character(tracks, n_frames):
    """The track with the largest screen presence: sum over frames of its (interpolated) box area."""
    best, best_score = None, 0.0
    for tr in tracks:
        area = 0.0
        for f in range(n_frames):
            b = tr.box_at(f)
            if b is not None:
                area += max(0.0, (b[2] - b[0]) * (b[3] - b[1]))
        if area > best_score:
            best, best_score = tr, area
    return best


class NoFaceError(ValueError):
    pass


def track_main(frames, dets):
    """Track all faces of a clip and return (tracks, the main character's track)."""
    tracks = track_faces(dets, frames)
    main = main_character(tracks, len(frames))
    if main is None:
        raise NoFaceError(f"no face found in any of the clip's {len(frames)} frames: "
                          "there is no main character to crop, so the clip cannot be captioned")
    return tracks, main


# %%
def picked_main(track, clips, i):
    """True when ``track`` covers the main character's exact box (IoU >= 0.5) in most frames."""
    hits = [box_iou(track.box_at(t), clips.boxes[i, t, 0])[0, 0] >= 0.5
            for t in range(track.first, track.last + 1)]
    return len(track) >= T // 2 and np.mean(hits) > 0.5


TRACKS, MOT, PICK, PICK_LIB = {}, [], [], []
for name, clips in (("train", TRAIN), ("test", TEST)):
    TRACKS[name] = [track_main(clips.frames[i], DETS[name][i]) for i in range(len(clips))]
for i, (tracks, main) in enumerate(TRACKS["test"]):
    gt = [(np.flatnonzero(TEST.present[i, t]), TEST.boxes[i, t][TEST.present[i, t]]) for t in range(T)]
    MOT.append(clear_mot(gt, tracks_to_frames(tracks, T)))
    PICK.append(picked_main(main, TEST, i))
    PICK_LIB.append(picked_main(main_track(tracks), TEST, i))
with_d = TEST.has_distractor
mota = 1 - sum(m["fn"] + m["fp"] + m["idsw"] for m in MOT) / sum(m["gt"] for m in MOT)
idsw = sum(m["idsw"] for m in MOT)
pick_rate = float(np.mean(np.array(PICK)[with_d]))
print(f"test clips: MOTA {mota:.3f}, ID switches {idsw} over {len(MOT)} clips; main character picked in "
      f"{pick_rate:.1%} of clips with a distractor (most-detections rule: {np.mean(np.array(PICK_LIB)[with_d]):.1%})")
report.metric("track_MOTA", mota)
report.metric("track_id_switches", idsw)
report.metric("main_character_pick_rate", pick_rate)
report.metric("main_character_pick_rate_most_detections", float(np.mean(np.array(PICK_LIB)[with_d])))

# %%
i = 0
tracks, main = TRACKS["test"][i]
fig, axes = plt.subplots(1, 5, figsize=(12, 2.8))
for ax, t in zip(axes, np.linspace(0, T - 1, 5).astype(int)):
    ax.imshow(TEST.frames[i, t])
    for tr in tracks:
        b = tr.box_at(int(t))
        if b is not None and len(tr) > 2:
            chosen = tr is main
            ax.add_patch(plt.Rectangle(b[:2], b[2] - b[0], b[3] - b[1], fill=False, lw=2 if chosen else 1,
                                       color="lime" if chosen else "orange"))
            ax.text(b[0], b[1] - 2, f"id {tr.id}" + (" (main)" if chosen else ""), color="w", fontsize=7)
    ax.set_title(f"frame {t}", fontsize=8)
    ax.axis("off")
viz.savefig(fig, OUT, "tracks")

# %% [markdown]
# A clip with no face at all (here: a background-only clip) has no main character; the
# pipeline says so instead of captioning noise.

# %%
try:
    track_main(np.zeros((T, 32, 32, 3), np.uint8), [np.zeros((0, 4))] * T)
except NoFaceError as e:
    print("bad input ->", e)

# %% [markdown]
# ### Real clips
# The same tracker on real talking-face videos (`FACELAB_DATA/video`), with MTCNN detections
# every frame; `facelab.data.read_clip` decodes them (PyAV), here at 8 frames per second.

# %%
real_videos = config.data_files("video", "*.mp4")
if not real_videos:
    print("skipped: FACELAB_DATA is not set or has no video/*.mp4")
else:
    from facelab.data import read_clip
    from facelab.faces.track import detect_frames

    path = real_videos[0]
    real = read_clip(path, fps=8, max_frames=16, audio_rate=None).frames
    rtracks, rmain = track_main(real, detect_frames(real))
    rtube, _ = crop_tube(real, rmain, size=64)
    print(f"{path.name}: {len(real)} frames, {len(rtracks)} tracks, main track {rmain.id} ({len(rmain)} detections)")
    viz.savefig(viz.image_grid(list(rtube[::2]), ncols=8, size=1.2), OUT, "real_face_tube")

# %% [markdown]
# ## 3. Two visual streams: global frames and the face tube
#
# The **global stream** sees each whole frame at `global_px` (32 px in smoke: a 96 px frame
# shrunk 3x, so the main face is ~12 px across). The **face stream** sees the main character's
# face tube: square crops that follow its track (`facelab.faces.track.crop_tube`, 20% margin),
# `face_px` pixels, where the same face is ~25 px across. The track's boxes are smoothed over 5
# frames first, so detector jitter does not shake the tube; frames outside the track's span
# reuse the nearest crop.

# %%
def face_tube(frames, track, size, smooth=5):
    """Crops along the track, its boxes smoothed by a ``smooth``-frame moving average (steadier tube)."""
    span = np.arange(track.first, track.last + 1)
    boxes = np.stack([track.box_at(int(f)) for f in span])
    k = min(smooth, len(span))
    padded = np.pad(boxes, ((k // 2, k - 1 - k // 2), (0, 0)), mode="edge")
    boxes = np.stack([np.convolve(padded[:, j], np.ones(k) / k, mode="valid") for j in range(4)], 1)
    crops, ids = crop_tube(frames, Track(track.id, list(span), list(boxes), [1.0] * len(span)), size=size, margin=0.2)
    idx = np.clip(np.arange(len(frames)), ids[0], ids[-1]) - ids[0]
    return crops[idx]


def stream_inputs(clips, name):
    g = F.interpolate(torch.from_numpy(clips.frames.reshape(-1, *clips.frames.shape[2:])).permute(0, 3, 1, 2).float(),
                      size=CFG["global_px"], mode="area").round().byte()
    glob = g.view(len(clips), T, 3, CFG["global_px"], CFG["global_px"])
    tubes = np.stack([face_tube(clips.frames[i], TRACKS[name][i][1], CFG["face_px"]) for i in range(len(clips))])
    return glob, torch.from_numpy(tubes).permute(0, 1, 4, 2, 3).contiguous()


GLOBAL, TUBE = {}, {}
for name, clips in (("train", TRAIN), ("test", TEST)):
    GLOBAL[name], TUBE[name] = stream_inputs(clips, name)
print("global frames", tuple(GLOBAL["train"].shape), "| face tubes", tuple(TUBE["train"].shape))
k = 1
pair = [GLOBAL["test"][k, t].permute(1, 2, 0).numpy() for t in range(0, T, 4)] + \
       [TUBE["test"][k, t].permute(1, 2, 0).numpy() for t in range(0, T, 4)]
viz.savefig(viz.image_grid(pair, [f"global t={t}" for t in range(0, T, 4)] + [f"face t={t}" for t in range(0, T, 4)],
                           ncols=len(pair) // 2, size=1.3), OUT, "streams")

# %% [markdown]
# ### Face-prior encoders
#
# The paper's face branch uses a "facial-prior" visual encoder: one already trained to see
# faces ("the same or a face-prior ViT" as the global stream). A tiny ViT learns nothing about
# faces within a CPU budget from caption loss alone, so we **pre-train one tiny ViT here** (conv
# stem, 2 layers, 64-d) on per-frame facial action recognition of face-tube crops (none / one of
# the six actions, labels from the engine's exact events) [R], freeze it, and use it for **both**
# streams: the global-only baseline gets the same encoder, only its input differs. The per-frame
# token grids (4 x 4 x 64) are cached for the caption stage. The encoder's held-out accuracy on
# frames where an action is on, fed each stream's input, shows what each stream can see.

# %%
class FrameEncoder(nn.Module):
    def __init__(self, px, dim, n_classes):
        super().__init__()
        self.vit = TinyViT(px, 8, dim, 2, conv_stem=True)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x):                                  # (B, 3, px, px) uint8 -> class logits
        return self.head(self.vit(x.float() / 255).mean((1, 2)))


def encoder_step(model, batch):
    logits = model(batch[0])
    return F.cross_entropy(logits, batch[1]), {"acc": (logits.argmax(1) == batch[1]).float().mean().item()}


LABELS = {name: torch.from_numpy(frame_action_labels(c, ACTIONS)) for name, c in (("train", TRAIN), ("test", TEST))}
config.seed_everything(seed)
ENC = FrameEncoder(CFG["face_px"], CFG["vit_dim"], 1 + len(ACTIONS))
ds = torch.utils.data.TensorDataset(TUBE["train"].flatten(0, 1), LABELS["train"].flatten())
fit(ENC, ds, TrainConfig(epochs=CFG["enc_epochs"], batch_size=64, lr=2e-3, weight_decay=0.01, scheduler="none",
                         seed=seed, desc="face-prior ViT"), step=encoder_step)
ENC.eval().requires_grad_(False)
ENC_ACC, on = {}, LABELS["test"].flatten() > 0
for stream, data in (("global", GLOBAL), ("face", TUBE)):
    pred = torch.cat([ENC(x) for x in data["test"].flatten(0, 1).split(256)]).argmax(1)
    ENC_ACC[stream] = (pred[on] == LABELS["test"].flatten()[on]).float().mean().item()
    report.metric(f"frame_action_acc_{stream}_stream", ENC_ACC[stream])
print("held-out per-frame action accuracy (frames with an action on; chance 1/7):",
      {k: round(v, 3) for k, v in ENC_ACC.items()})

# %%
@torch.no_grad()
def vit_tokens(vit, frames, chunk=512):
    """(n, T, 3, s, s) uint8 -> (n, T, g, g, c) frozen ViT tokens."""
    flat = torch.cat([vit(x.float() / 255) for x in frames.flatten(0, 1).split(chunk)])
    return flat.unflatten(0, frames.shape[:2])


TOK = {name: {"global": vit_tokens(ENC.vit, GLOBAL[name]), "face": vit_tokens(ENC.vit, TUBE[name])}
       for name in ("train", "test")}
print("cached tokens per clip:", {k: tuple(v.shape[1:]) for k, v in TOK["train"].items()})

# %% [markdown]
# ### The STC connector
#
# Video LLMs of the VideoLLaMA2 family (HumanOmni, which shares the paper's first author, builds
# on it) compress per-frame ViT tokens with a **spatial-temporal convolution** connector: a 3-D
# convolution over (time, height, width) that halves the frame rate, a pooling of the spatial
# grid to the token budget, and an MLP projection to the LM width. Ours is that shape, small, and
# pools *before* the convolution (a 3-D convolution on the full grid is the slowest op on a CPU) [R]:
#
# $$z = \mathrm{MLP}\big(\mathrm{GELU}(\mathrm{Conv3d}_{3\times3\times3,\ \text{stride}(2,1,1)}(\mathrm{Pool}_{h\times w}(x)))\big)$$

# %% tags=["export"]
class STCConnector(nn.Module):
    """(B, T, g, g, c) ViT tokens -> (B, T', h*w, d_lm) tokens: pool, Conv3d over time and space, project."""

    def __init__(self, dim_in, dim_lm, grid, t_stride=2):
        super().__init__()
        self.grid = tuple(grid)
        self.pool = nn.AdaptiveAvgPool3d((None,) + self.grid)
        self.conv = nn.Conv3d(dim_in, dim_in, kernel_size=3, stride=(t_stride, 1, 1), padding=1)
        self.proj = nn.Sequential(nn.Linear(dim_in, dim_lm), nn.GELU(), nn.Linear(dim_lm, dim_lm))

    def forward(self, tokens):
        x = self.pool(tokens.permute(0, 4, 1, 2, 3))      # (B, c, T, h, w): the token budget per frame
        x = F.gelu(self.conv(x))                          # (B, c, T', h, w): the STC step, T' = T / 2
        x = x.flatten(3).permute(0, 2, 3, 1)              # (B, T', h*w, c)
        return self.proj(x)                               # z, projected to the LM width

# %%
conn = STCConnector(64, 128, FACE_GRIDS[CFG["face_tokens"]])
print("face tokens:", tuple(conn(torch.zeros(2, T, 4, 4, 64)).shape), "= (batch, time steps, tokens per step, LM width)")


# %% [markdown]
# ### Instruction-gated mixing of the streams
#
# HumanOmni weighs its global / body / face branches with a softmax gate computed from the
# instruction (a BERT [CLS] vector): the instruction decides which branch matters. FaceTrack-MM's
# face branch is described the same way. Ours [R]: the gate reads the mean embedding $e$ of the
# instruction's tokens,
#
# $$w = \mathrm{softmax}(W_2\,\mathrm{GELU}(W_1 e)),\qquad \tilde z_s = S\,w_s\,z_s \quad (s \in \{\text{global}, \text{face}\},\ S = 2),$$
#
# and, since our streams have different token counts, each stream's tokens are scaled by its
# weight (times the number of streams, so that equal weights leave them unchanged) and the two
# are interleaved per time step: $[\tilde z_{g,1}, \tilde z_{f,1}, \tilde z_{g,2}, \tilde z_{f,2}, \dots]$.

# %% tags=["export"]
class InstructionGate(nn.Module):
    """w = softmax(MLP(mean instruction embedding)) over the visual streams."""

    def __init__(self, dim_lm, n_streams):
        super().__init__()
        self.n = n_streams
        self.mlp = nn.Sequential(nn.Linear(dim_lm, dim_lm // 4), nn.GELU(), nn.Linear(dim_lm // 4, n_streams))

    def forward(self, instr_emb, instr_mask):
        m = instr_mask.unsqueeze(-1).to(instr_emb.dtype)
        e = (instr_emb * m).sum(1) / m.sum(1).clamp(min=1)        # mean instruction embedding
        return torch.softmax(self.mlp(e.float()), -1)            # w, (B, n_streams)


def mix_streams(streams, w):
    """Scale stream s by S * w_s and interleave per time step: (B, T', k_s, d) each -> (B, T' * sum k_s, d)."""
    S = len(streams)
    scaled = [z * (S * w[:, s, None, None, None]).to(z.dtype) for s, z in enumerate(streams)]
    return torch.cat(scaled, 2).flatten(1, 2)

# %%
gate = InstructionGate(128, 2)
w = gate(torch.randn(2, 5, 128), torch.ones(2, 5, dtype=torch.bool))
print("gate weights", w.detach().numpy().round(3), "| mixed tokens",
      tuple(mix_streams([torch.zeros(2, 9, 4, 128), torch.zeros(2, 9, 4, 128)], w).shape))


# %% [markdown]
# ## 4. The model: visual prefix, instruction, caption
#
# The language model reads `[visual tokens] [instruction] <bos> caption <eos>`; the paper
# instruction-tunes with the next-token cross-entropy, and so do we, **on the caption tokens
# only** (visual and instruction positions carry label −100). The instruction is padded to a
# fixed length (masked), so the caption always starts at the same position. `face_tokens=0`
# gives the **global-only** baseline: the same model without the face stream.

# %% tags=["export"]
class FaceTrackMM(nn.Module):
    """Frozen stream ViTs' tokens -> STC connectors -> gated mix -> prefix of a causal LM."""

    def __init__(self, lm, *, vit_dim=64, face_tokens=4, global_grid=(2, 2)):
        super().__init__()
        d = lm.config.hidden_size
        self.lm, self.face_tokens = lm, face_tokens
        self.global_conn = STCConnector(vit_dim, d, global_grid)
        if face_tokens:
            self.face_conn = STCConnector(vit_dim, d, FACE_GRIDS[face_tokens])
        self.gate = InstructionGate(d, 2 if face_tokens else 1)

    def prefix(self, glob_tok, face_tok, instr, instr_mask):
        ie = self.lm.get_input_embeddings()(instr)
        streams = [self.global_conn(glob_tok)]
        if self.face_tokens:
            streams.append(self.face_conn(face_tok))
        w = self.gate(ie, instr_mask)
        vis = mix_streams(streams, w).to(ie.dtype)
        mask = torch.cat([torch.ones(vis.shape[:2], dtype=torch.bool, device=vis.device), instr_mask.bool()], 1)
        return torch.cat([vis, ie], 1), mask, w

    def forward(self, glob_tok, face_tok, instr, instr_mask, cap, cap_mask):
        pre, pmask, w = self.prefix(glob_tok, face_tok, instr, instr_mask)
        x = torch.cat([pre, self.lm.get_input_embeddings()(cap)], 1)
        mask = torch.cat([pmask, cap_mask.bool()], 1)
        labels = torch.cat([torch.full(pmask.shape, -100, device=cap.device),
                            cap.masked_fill(~cap_mask.bool(), -100)], 1)
        labels[:, pmask.shape[1]] = -100                          # <bos> is given, not predicted
        C = cap.shape[1]   # only the caption's positions have targets: the LM head runs on those alone
        logits = self.lm(inputs_embeds=x, attention_mask=mask.long(), logits_to_keep=C).logits[:, -C:]
        return caption_loss(logits, labels[:, -C:]), w


# %% [markdown]
# ### The language model
#
# * `smoke`: `facelab.nn.vlm.TinyCausalLM` (2 layers, 96-d, tied embeddings) over a word-level
#   vocabulary of the training captions and instructions.
# * `demo`: SmolLM2-135M-Instruct (from `facelab.assets`, a GGUF file loaded by `transformers`),
#   frozen, with LoRA adapters (r 8, alpha 8) on q/k/v/o/gate/up/down, plus the trained
#   vision encoders, connectors and gate. `paper`: the same with any local LM (`lm_path`).
#
# Instructions are short paraphrases of the one HumanOmni uses for this task ("Please provide a
# detailed description of the facial appearance attributes and expression changes of the
# character in the video"); training draws one per clip, evaluation uses the first.

# %%
INSTRUCTIONS = ["Describe the facial appearance and expression changes of the main character.",
                "Describe the main person's face and how their expression changes.",
                "How does the main character's facial expression change over the video?"]


class WordCodec:
    """Text <-> ids for the tiny LM (a word vocabulary)."""

    def __init__(self, texts):
        self.vocab = WordVocab.build(texts)
        self.pad, self.bos, self.eos = WordVocab.PAD, WordVocab.BOS, WordVocab.EOS

    def encode(self, text):
        return self.vocab.encode(text)

    def decode(self, ids):
        return self.vocab.decode(ids)


class HFCodec:
    """Text <-> ids for a transformers tokenizer."""

    def __init__(self, tok):
        self.tok = tok
        self.eos = tok.eos_token_id
        self.bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else self.eos

    def encode(self, text):
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids):
        return self.tok.decode(ids, skip_special_tokens=True).strip()

# %%
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
_HF_BASE = {}   # path -> (tokenizer, base LM): de-quantizing the GGUF once, not once per model


def load_hf_lm(path=None):
    """SmolLM2-135M-Instruct (facelab asset, GGUF) or a local transformers LM, wrapped with LoRA."""
    import copy

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path is None:
        from facelab import assets

        gguf = assets.path("smollm2_gguf")
        kw = {"gguf_file": gguf.name}
        path = gguf.parent
    else:
        kw = {"local_files_only": True}
    if str(path) not in _HF_BASE:
        _HF_BASE[str(path)] = (AutoTokenizer.from_pretrained(str(path), **kw),
                               AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, **kw))
    tok, lm = _HF_BASE[str(path)]
    lm = copy.deepcopy(lm)
    if lm_layers is not None:   # a CPU cap: the first k decoder layers, then the final norm and head
        n = len(lm.model.layers)
        if not 1 <= lm_layers <= n:
            raise config.ConfigError(f"lm_layers={lm_layers!r}: expected 1..{n} (the LM has {n} decoder layers)")
        lm.model.layers = lm.model.layers[:lm_layers]
        lm.config.num_hidden_layers = lm_layers
    lora = LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    return get_peft_model(lm, lora), HFCodec(tok)

# %%
def build_lm(kind):
    if kind == "tiny":
        codec = WordCodec(TRAIN.captions + INSTRUCTIONS)
        return TinyCausalLM(len(codec.vocab), dim=CFG["lm_dim"], depth=2, heads=4, max_len=256, mlp_ratio=2.0), codec
    return load_hf_lm(lm_path if kind == "local" else None)


LM_KIND = CFG["lm"]
if LM_KIND == "local" and lm_path is None:
    print("paper profile without lm_path: falling back to SmolLM2-135M-Instruct from facelab.assets")
    LM_KIND = "smollm2"
lm, CODEC = build_lm(LM_KIND)
print(f"LM {LM_KIND}: {sum(p.numel() for p in lm.parameters()) / 1e6:.2f} M parameters, "
      f"width {lm.config.hidden_size}, vocabulary {lm.config.vocab_size}")

# %% [markdown]
# The data as tensors: instruction ids padded to a fixed length, caption ids with `<bos>` and
# `<eos>`, and masks.

# %%
def pad_ids(seqs, pad, length=None):
    length = length or max(map(len, seqs))
    ids = torch.full((len(seqs), length), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.bool)
    for r, s in enumerate(seqs):
        s = s[:length]
        ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[r, :len(s)] = True
    return ids, mask


def tensors(name, clips, codec, instr_pick):
    instr = [codec.encode(INSTRUCTIONS[k]) for k in instr_pick]
    ii, im = pad_ids(instr, codec.pad, INSTR_LEN)
    cc, cm = pad_ids([[codec.bos] + codec.encode(c) + [codec.eos] for c in clips.captions], codec.pad)
    return TOK[name]["global"], TOK[name]["face"], ii, im, cc, cm


INSTR_LEN = max(len(CODEC.encode(s)) for s in INSTRUCTIONS)
TRAIN_T = tensors("train", TRAIN, CODEC, rng.integers(0, len(INSTRUCTIONS), len(TRAIN)))
TEST_T = tensors("test", TEST, CODEC, np.zeros(len(TEST), int))
print("instruction ids", tuple(TRAIN_T[2].shape), "| caption ids", tuple(TRAIN_T[4].shape),
      "| words:", " ".join(CODEC.decode(TRAIN_T[4][0, :12].tolist()).split()[:10]), "...")

# %% [markdown]
# `lm_check`: build SmolLM2-135M-Instruct with LoRA and the projector and take **one** training
# step on two clips (on by default in `demo`; loading the 135M model takes about a minute on a
# CPU, so `smoke` skips it unless asked).

# %%
def smollm_step():
    lm_, codec_ = load_hf_lm(lm_path)
    m = FaceTrackMM(lm_, vit_dim=CFG["vit_dim"], face_tokens=CFG["face_tokens"]).to(DEVICE)
    batch = [x[:2].to(DEVICE) for x in tensors("train", TRAIN, codec_, [0] * len(TRAIN))]
    trainable = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    loss, w = m(*batch)
    loss.backward()
    opt.step()
    print(f"SmolLM2 + LoRA + projector: one step, loss {loss.item():.3f}, "
          f"{sum(p.numel() for p in trainable) / 1e6:.2f} M trainable parameters")
    return loss.item()


run_check = lm_check if lm_check is not None else PROFILE == "demo"
if LM_KIND != "tiny":
    print("the main model already is the HF LM + LoRA: no separate check needed")
elif not run_check:
    print("lm_check skipped in smoke (loading SmolLM2 takes ~1 min on a CPU): pass lm_check=True to run it")
else:
    try:
        report.metric("smollm2_lora_one_step_loss", smollm_step())
    except Exception as e:  # no asset / no peft: say why, the tiny path goes on
        print(f"SmolLM2 check not run: {type(e).__name__}: {e}")

# %% [markdown]
# ## 5. Training: with face tokens, and the global-only baseline
#
# Both models share everything (frozen encoders, data, seed, schedule, LM size); the only
# difference is the face stream. `facelab.train.fit` runs AdamW with a cosine schedule over the
# connectors, the gate and the LM.

# %%
def step(model, batch):
    loss, w = model(*batch)
    return loss, {"gate_face": float(w[:, -1].mean().detach()) if w.shape[1] > 1 else 0.0}


def train_model(ftok):
    config.seed_everything(seed)
    lm_ = build_lm(LM_KIND)[0]
    model = FaceTrackMM(lm_, vit_dim=CFG["vit_dim"], face_tokens=ftok)
    cfg = TrainConfig(epochs=CFG["epochs"], batch_size=CFG["batch_size"], lr=CFG["lr"], weight_decay=0.01,
                      scheduler="cosine", warmup_steps=20, seed=seed, desc=f"face_tokens={ftok}", clip_grad=1.0)
    hist = fit(model, torch.utils.data.TensorDataset(*TRAIN_T), cfg, step=step)
    return model.eval(), hist


t0 = time.time()
MODELS, HIST = {}, {}
for key, ftok in (("face", CFG["face_tokens"]), ("global", 0)):
    MODELS[key], HIST[key] = train_model(ftok)
print(f"trained both models in {time.time() - t0:.0f} s; final losses",
      {k: round(h.epochs["loss"][-1], 3) for k, h in HIST.items()})
viz.savefig(viz.curves({f"loss ({k})": h.epochs["loss"] for k, h in HIST.items()}, "caption loss", "epoch"),
            OUT, "loss")

# %% [markdown]
# ## 6. Evaluation on held-out clips (unseen identities)
#
# Captions are decoded greedily. Two baselines beside FaceTrack-MM: the **global-only** model,
# and **template retrieval**: the caption of the training clip nearest in the global ViT's mean
# token (cosine), which shows what the caption template alone earns.

# %%
@torch.no_grad()
def generate(model, data, batch=32, max_new=80):
    out = []
    for a in range(0, len(data[0]), batch):
        gt, ft_, ii, im = (x[a:a + batch].to(DEVICE) for x in data[:4])
        pre, pmask, _ = model.to(DEVICE).prefix(gt, ft_, ii, im)
        ids = greedy_decode(model.lm, pre, pmask, bos_id=CODEC.bos, eos_id=CODEC.eos, max_new_tokens=max_new,
                            use_cache=LM_KIND != "tiny")
        out += [CODEC.decode(s) for s in ids]
    return out


PRED = {k: generate(m, TEST_T) for k, m in MODELS.items()}
ft, fq = (F.normalize(TOK[name]["global"].mean((1, 2, 3)), dim=-1) for name in ("train", "test"))
PRED["retrieval"] = [TRAIN.captions[j] for j in (fq @ ft.T).argmax(1).tolist()]
for k in PRED:
    print(f"{k:9s}: {PRED[k][0]}")
print(f"reference: {TEST.captions[0]}")

# %% [markdown]
# ### FEC-Bench metrics
#
# CIDEr (CIDEr-D), ROUGE-L, AutoDQ and TEM from `facelab.metrics_fec`. AutoDQ follows Tarsier's
# evaluation; TEM's formula is not public and is a reconstruction there (LCS over the matched,
# ordered events). The paper's extractor and judge are LLMs (GPT-3.5); **ours is the rule-based
# pair** (`judge="rules"`), deterministic and offline, so our numbers are not on the paper's
# scale even before the data differ.

# %%
judge_kw = {} if judge == "rules" else {"extractor": metrics_fec.LLMExtractor(judge_model),
                                        "judge": metrics_fec.LLMJudge(judge_model)}
SCORES = {k: metrics_fec.fec_bench_scores(TEST.captions, p, **({"judge": judge} | judge_kw)) for k, p in PRED.items()}
PAPER = {"TEM": 0.364, "AutoDQ": 0.483, "CIDEr": 0.418, "ROUGE-L": 0.473}
QWEN = {"TEM": 0.309, "AutoDQ": 0.422, "CIDEr": 0.204, "ROUGE-L": 0.233}
for name in PAPER:
    report.metric(name, SCORES["face"][name], paper=PAPER[name], paper_dataset="FEC-Bench (FaceTrack-MM 7B)",
                  headline=name == "TEM")
    report.metric(f"{name}_global_only", SCORES["global"][name], paper=QWEN[name],
                  paper_dataset="FEC-Bench (Qwen2-VL-7B, a different model)")
    report.metric(f"{name}_template_retrieval", SCORES["retrieval"][name])
print(f"{'':10s}" + "".join(f"{n:>9s}" for n in PAPER))
for k, s in SCORES.items():
    print(f"{k:10s}" + "".join(f"{s[n]:9.3f}" for n in PAPER) + f"   (scored {s['n_scored']}/{s['n_samples']})")
margin = SCORES["face"]["TEM"] - SCORES["global"]["TEM"]
report.metric("TEM_margin_face_minus_global", margin)
gate_w = MODELS["face"].prefix(*(x[:8] for x in TEST_T[:4]))[2]
print(f"TEM margin (face - global) {margin:+.3f}; gate weights (global, face) {gate_w.mean(0).detach().numpy().round(3)}")

# %% [markdown]
# The table puts our numbers beside the paper's. **Ours is not the paper's experiment**: the
# paper evaluates a 7B video LLM on 800 real FEC-Bench clips with a GPT judge; ours is a
# tiny model on synthetic clips with a rule judge. The global-only row sits beside Qwen2-VL-7B
# only as the paper's strongest generic baseline, not as the same model.

# %%
report.save()
report.table()

# %% [markdown]
# ### Results: the demo profile on a CPU (2026-12-06), not a reproduction
#
# `profile="demo"` (SmolLM2-135M-Instruct from `facelab.assets`, its GGUF de-quantized to fp32 and
# loaded offline, LoRA r 8 / alpha 8 on q/k/v/o/gate/up/down, plus the connectors and the gate),
# run on this project's CPU machine (**CPU, 2 cores shared** with three other jobs, `threads=1`),
# synthetic scene clips, 40 held-out clips of unseen identities, the rule judge. A step of the full
# 30-layer LM took ~55 s at batch 8 here, so the runs keep only the **first `lm_layers` decoder
# layers** (then SmolLM2's final norm and head): a CPU cap that cuts the model itself, recorded in
# metrics.json with the others. Paper: FEC-Bench, 800 real clips, a 7B model, a GPT judge.
#
# | FEC-Bench metric | run A: ours (face) | run A: global-only | run B: ours (face) | run B: global-only | template retrieval (A / B) | paper FaceTrack-MM 7B | paper Qwen2-VL-7B |
# |---|---|---|---|---|---|---|---|
# | TEM | 0.078 | 0.146 | **0.375** | 0.217 | 0.358 / 0.383 | 0.364 | 0.309 |
# | AutoDQ | 0.079 | 0.174 | **0.531** | 0.312 | 0.450 / 0.496 | 0.483 | 0.422 |
# | CIDEr | 0.003 | 0.000 | **2.728** | 1.334 | 2.213 / 2.744 | 0.418 | 0.204 |
# | ROUGE-L | 0.277 | 0.260 | **0.737** | 0.687 | 0.687 / 0.713 | 0.473 | 0.233 |
#
# * **Run A** (`n_train=160, n_test=40, epochs=3, batch_size=8, lm_layers=4, threads=1`, the demo's
#   lr 5e-4): 60 steps per model, 1,257 s of training, notebook 1,543 s (26 min). Final caption
#   losses 3.46 (face) / 4.41 (global): **neither model learned the captions**; both write
#   template fragments and word salad, so both checks on captions fail (TEM margin -0.07).
#   Cutting SmolLM2 to 4 layers leaves a head that no longer reads its hidden states, and 60 LoRA
#   steps at 5e-4 do not repair it.
# * **Run B** (`n_train=200, n_test=40, epochs=3, batch_size=8, lm_layers=6, lr=0.002, threads=1`,
#   the LM head on caption positions only): 75 steps per model, 1,025 s of training, notebook
#   1,278 s (21 min). Final losses 0.247 (face) / 0.271 (global): both learned the
#   template, and **face tokens beat global-only on every metric** (TEM +0.158, AutoDQ +0.219),
#   as in smoke. Ours stays just below template retrieval on TEM (0.375 vs 0.383, so that
#   check fails) and CIDEr, above it on AutoDQ and ROUGE-L. In the printed example both models
#   repeat one action in all three phrases (the reference's first event) and get the appearance
#   partly wrong. These are rule-judge scores on synthetic clips: not on the paper's scale.
#
# What the CPU runs do show: the demo path loads SmolLM2 offline, trains LoRA + projector, decodes
# (with a KV cache) and scores end to end; tracking on the demo's 128 px clips picks the main
# character in 100 % of the clips with a distractor (MOTA 0.934 / 0.913 in A / B), and the frozen
# face-prior encoder reads the per-frame action from the face tube (0.675 / 0.708) but not from
# the global frame (0.144 / 0.131, chance 1/7). The demo's own schedule (the whole 30-layer LM,
# 1,200 clips, 10 epochs, lr 5e-4) waits for a GPU; retrieval's CIDEr above the paper's says how
# much the single synthetic template helps, not that retrieval is good.

# %% [markdown]
# ### Captions of real clips (qualitative)
#
# Both trained models caption three real talking-face clips (`real_clips`, else the first three
# of `FACELAB_DATA/video`): the first 17 frames at 4 fps, MTCNN detections on every frame, the
# same tracker, main-character rule and face tube, the same frozen encoder, the first
# instruction. **Both models were trained on synthetic clips only** (rendered faces, six strong
# actions, one caption template), so real faces are out of their distribution: these captions
# show what transfers, nothing more. There is no reference caption, so there is no score. The
# figure is derived from the real clips and stays in `figures/` (git-ignored), never committed.
#
# What run B (above, CPU) wrote for `WDA_KatieHill_000`, `d0` and `d10`: with face tokens, the
# same caption for all three ("... At the beginning, the person opens their mouth wide. In the
# middle, ... opens their mouth wide. Towards the end, ... opens their mouth wide.", appearance
# "very light skin and blond hair", once "very dark skin": guessed); global-only, "presses their
# lips tightly together" throughout (once "wrinkles their nose hard" at the end). Talking mouths
# read as mouth opening is the one thing that transfers; no model trained on six synthetic
# actions can say more about real faces. The smoke model (tiny LM) varies more between clips but
# is no more right.

# %%
from pathlib import Path


def real_clip_paths():
    if real_clips is not None:
        return [Path(p) for p in real_clips]
    return config.data_files("video", "*.mp4")[:3]


def real_inputs(path):
    """A real clip -> (frames, main track, global frames (T, 3, g, g), face tube (T, 3, s, s)), uint8."""
    from facelab.data import read_clip
    from facelab.faces.track import detect_frames

    frames = read_clip(path, fps=4, max_frames=T, audio_rate=None).frames
    frames = np.concatenate([frames, np.repeat(frames[-1:], T - len(frames), 0)])   # short clip: hold the last frame
    _, main = track_main(frames, detect_frames(frames))
    h, w = frames.shape[1:3]
    m = min(h, w)
    sq = frames[:, (h - m) // 2:(h - m) // 2 + m, (w - m) // 2:(w - m) // 2 + m]   # centre square, like the canvas
    g = F.interpolate(torch.from_numpy(np.ascontiguousarray(sq)).permute(0, 3, 1, 2).float(),
                      size=CFG["global_px"], mode="area").round().byte()
    tube = torch.from_numpy(face_tube(frames, main, CFG["face_px"])).permute(0, 3, 1, 2).contiguous()
    return frames, main, g, tube


# %%
REAL = {}
for path in real_clip_paths():
    try:
        frames, rmain, g, tube = real_inputs(path)
    except (ValueError, OSError) as e:   # does not decode, no face: say so, go on with the next clip
        print(f"{path.name}: skipped: {e}")
        continue
    ii, im = pad_ids([CODEC.encode(INSTRUCTIONS[0])], CODEC.pad, INSTR_LEN)
    data = (vit_tokens(ENC.vit, g[None]), vit_tokens(ENC.vit, tube[None]), ii, im)
    REAL[path.name] = (frames, rmain, {k: generate(MODELS[k], data)[0] for k in ("face", "global")})
    for k, cap in REAL[path.name][2].items():
        print(f"{path.name} | {k:6s}: {cap}")
if not REAL:
    print("skipped: no real clips (set FACELAB_DATA to a folder with video/*.mp4, or pass real_clips)")
report.metric("real_clips_captioned", len(REAL))

# %%
import textwrap

if REAL:
    fig, axes = plt.subplots(len(REAL), 5, figsize=(15, 2.6 * len(REAL)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1, 1, 3.2]})
    for row, (name, (frames, rmain, caps)) in zip(axes, REAL.items()):
        for ax, t in zip(row[:4], np.linspace(0, T - 1, 4).astype(int)):
            ax.imshow(frames[t])
            b = rmain.box_at(int(t))
            if b is not None:
                ax.add_patch(plt.Rectangle(b[:2], b[2] - b[0], b[3] - b[1], fill=False, lw=1.5, color="lime"))
            ax.set_title(f"{name}, t={t / 4:.1f} s", fontsize=7)
            ax.axis("off")
        text = "\n\n".join(f"{k}: " + textwrap.fill(c, 75) for k, c in (("ours (face tokens)", caps["face"]),
                                                                          ("global-only", caps["global"])))
        row[4].text(0, 1, text, va="top", fontsize=7, family="monospace", transform=row[4].transAxes)
        row[4].axis("off")
    fig.suptitle(f"captions of real clips by models trained on synthetic clips only ({PROFILE})", fontsize=9)
    viz.savefig(fig, OUT, "real_captions")

# %% [markdown]
# ## 7. FEC-Bench's `test.json` (paper profile)
#
# `facelab.data.fecbench.read_fecbench` reads the list of `{id, video, caption}` and pairs each
# entry with `<video_root>/<video>`: missing videos are counted and skipped, a malformed entry
# stops with one line. With `data_root` given (the folder holding `test.json`) this cell reads
# the benchmark; the generated fixture below shows both cases either way.

# %%
import json
import tempfile

from facelab.data.fecbench import FECBenchError, read_fecbench

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    (tmp / "DFEW").mkdir()
    (tmp / "DFEW" / "1.mp4").write_bytes(b"")
    (tmp / "test.json").write_text(json.dumps([{"id": "a", "video": "DFEW/1.mp4", "caption": TEST.captions[0]},
                                               {"id": "b", "video": "DFEW/2.mp4", "caption": TEST.captions[1]}]))
    print(read_fecbench(tmp / "test.json", tmp).summary())
    (tmp / "bad.json").write_text(json.dumps([{"id": "c", "video": "DFEW/1.mp4"}]))
    try:
        read_fecbench(tmp / "bad.json", tmp)
    except FECBenchError as e:
        print("bad input ->", e)
root = config.dataset_root(data_root, "FEC-Bench folder with test.json")
if root is not None:
    bench = read_fecbench(root / "test.json", video_root or root)
    print(bench.summary())
    report.metric("fecbench_videos_found", len(bench))
    report.metric("fecbench_videos_missing", len(bench.missing))
    if decoder is None:
        print("decoding FEC-Bench videos needs PyAV or imageio-ffmpeg: not installed here, so no scores on it")

# %% [markdown]
# ## Checks
# On held-out clips, face tokens must beat the global-only model on TEM by more than 0.1, and
# template retrieval at all. Measured over seeds 0-4 of `smoke` with `ATEN_CPU_CAPABILITY`
# default and avx2 (`scripts/seed_sweep.py 02 --caps default avx2`, 10 runs, synth-4 engine): TEM
# 0.458-0.583, margin over global-only +0.181 to +0.375, over retrieval +0.097 to +0.288 (the
# per-frame action accuracy of the frozen encoder on the face tube, 0.58-0.73, against 0.06-0.19 on
# the global frames, is why). On synth-3 (15 runs, avx512 too): TEM 0.438-0.597, margins +0.168 to
# +0.479 and +0.076 to +0.278. Tracking must pick the main character in at least 90% of the clips
# with a distractor: 100% in all runs. On synth-8 (session 14: sad, fear and disgust refitted over a
# wide AU set, deeper wrinkle and fold cues; seeds 0-2, `--caps default`, 3 runs, 2026-12-07): TEM
# 0.472-0.576, margins +0.236 to +0.396 and +0.160 to +0.285, main character 100 % (the numbers
# synth-6 and synth-7 gave: this notebook draws none of the changed expressions or cues).

# %%
report.check("face_tokens_beat_global_only_TEM", margin > 0.1)
report.check("main_character_picked_90pct", pick_rate >= 0.9)
report.check("face_beats_template_retrieval_TEM", SCORES["face"]["TEM"] > SCORES["retrieval"]["TEM"])
report.metric("wall_s_notebook", time.time() - T0)
report.save()
print(f"notebook wall time {time.time() - T0:.0f} s")

# %%
# NBVAL_CHECK_OUTPUT
CHECKS = ["face_tokens_beat_global_only_TEM", "main_character_picked_90pct", "face_beats_template_retrieval_TEM"]
report.print_checks(CHECKS)
