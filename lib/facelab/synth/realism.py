"""How real do the synthetic expressions look? Cross-domain recognition against FER2013.

Two directions, both with the same small CNN (``facelab.nn.backbones.fer_classifier("small",
7, in_chans=1)``) on 48 x 48 grey images and the seven basic classes in canonical order
(:data:`facelab.config.BASIC7`; :class:`facelab.data.FER2013Folder` already returns canonical
ids, and the synthetic labels 0-6 are the same names):

* real -> synthetic: train on (a class-balanced subset of) FER2013 ``train``, test on freshly
  rendered synthetic faces;
* synthetic -> real: train on synthetic faces, test on FER2013 ``publictest``.

Per-class accuracy (recall) well above chance (1/7) in both directions means the engine's
expressions carry the cues that real faces carry, not just a style of their own.

Synthetic faces are rendered grey at 48 px, framed like FER2013's crops (the face fills the
width, forehead and chin touch the border). Each image is average-pooled to 24 px (:data:`POOL`) and standardised (zero mean, unit
std) before the network, which removes global brightness/contrast differences between the
domains; training uses flips and small shifts.

``python -m facelab.synth.realism [--real N] [--synth N] [--epochs E] [--width W]`` prints
both tables (needs ``FACELAB_DATA``); :func:`run` returns them.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import BASIC7, torch_threads

#: FER2013-like framing: face width as a fraction of the image width.
FER_FACE_SCALE = (0.82, 0.98)


def synthetic_fer(n: int, seed: int = 0, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) uint8 grey synthetic faces of the 7 basic classes and labels (n,)."""
    from .generators import faces
    b = faces(n, size, expressions=list(BASIC7), seed=seed, face_scale=FER_FACE_SCALE)
    grey = b.images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, as PIL "L"
    return np.clip(grey + 0.5, 0, 255).astype(np.uint8), b.label.astype(np.int64)


def fer2013_arrays(root: str | os.PathLike, split: str, per_class: int | None = None,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """FER2013 ``split`` as (N, 48, 48) uint8 and canonical labels, optionally at most
    ``per_class`` images of each class (a seeded random subset)."""
    from ..data import FER2013Folder
    x, y = FER2013Folder(Path(root) / "fer2013", split, in_memory=True).as_arrays()
    x = np.asarray(x)
    if x.ndim == 4:
        x = x[..., 0]
    y = np.asarray(y, np.int64)
    if per_class is not None:
        rng = np.random.default_rng(seed)
        keep = np.concatenate([rng.permutation(np.nonzero(y == c)[0])[:per_class] for c in range(len(BASIC7))])
        keep.sort()
        x, y = x[keep], y[keep]
    return x, y


#: The networks see 48 px images average-pooled by this factor (24 px): 4x cheaper to train,
#: and FER2013's soft 48 px crops lose little (expressions stay legible at 24 px).
POOL = 2


def _standardise(x: np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float32)[:, None] / 255.0
    if POOL > 1:
        t = F.avg_pool2d(t, POOL)
    m = t.mean((2, 3), keepdim=True)
    s = t.std((2, 3), keepdim=True).clamp(min=1e-3)
    return (t - m) / s


def _augment(x: torch.Tensor, g: torch.Generator, shift: int = 2) -> torch.Tensor:
    n = len(x)
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = F.pad(x, (shift,) * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * shift + 1, (2,), generator=g).tolist()  # one shift per batch: cheap
    return pad[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]


def train_classifier(x: np.ndarray, y: np.ndarray, epochs: int = 4, width: int = 8, batch: int = 32,
                     lr: float = 3e-3, seed: int = 0) -> torch.nn.Module:
    """A SmallCNN trained on (N, 48, 48) uint8 grey images; class-weighted cross-entropy."""
    from ..nn.backbones import fer_classifier
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = fer_classifier("small", len(BASIC7), in_chans=1, width=width)
    g = torch.Generator().manual_seed(seed)
    xt, yt = _standardise(x), torch.as_tensor(y)
    counts = torch.bincount(yt, minlength=len(BASIC7)).float()
    weight = (counts.sum() / (len(BASIC7) * counts.clamp(min=1))).clamp(max=10)
    steps = epochs * ((len(xt) + batch - 1) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=g)
        for a in range(0, len(xt), batch):
            idx = order[a:a + batch]
            loss = F.cross_entropy(model(_augment(xt[idx], g)), yt[idx], weight=weight, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 512) -> dict:
    """Overall accuracy, mean per-class accuracy (balanced) and per-class accuracy (recall)."""
    xt = _standardise(x)
    pred = torch.cat([model(xt[a:a + batch]).argmax(1) for a in range(0, len(xt), batch)]).numpy()
    per = {c: float((pred[y == k] == k).mean()) if (y == k).any() else float("nan") for k, c in enumerate(BASIC7)}
    conf = np.zeros((len(BASIC7), len(BASIC7)), np.int64)
    np.add.at(conf, (y, pred), 1)
    return {"accuracy": float((pred == y).mean()), "balanced_accuracy": float(np.nanmean(list(per.values()))),
            "per_class": per, "confusion": conf, "n": int(len(y))}


def run(data_root: str | os.PathLike | None = None, real_per_class: int = 500, n_synth: int = 3500,
        n_synth_test: int = 700, epochs: int = 4, width: int = 8, seed: int = 0,
        shuffle_labels: bool = False, threads: int | None = 1) -> dict:
    """Both directions; returns ``{"real_to_synth": evaluate(...), "synth_to_real": ..., "seconds": ...}``.

    ``shuffle_labels`` permutes the training labels (a control: both directions fall to chance).
    ``threads`` sets torch's threads for the run (1 is fastest on a small shared machine).
    """
    root = data_root or os.environ.get("FACELAB_DATA")
    if not root:
        raise RuntimeError("set FACELAB_DATA (or pass data_root) to the folder holding fer2013/")
    with torch_threads(threads or None):
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        xr, yr = fer2013_arrays(root, "train", real_per_class, seed)
        xp, yp = fer2013_arrays(root, "publictest")
        xs, ys = synthetic_fer(n_synth, seed=seed + 1)
        xst, yst = synthetic_fer(n_synth_test, seed=seed + 2)
        if shuffle_labels:
            yr, ys = rng.permutation(yr), rng.permutation(ys)
        t1 = time.perf_counter()
        m_real = train_classifier(xr, yr, epochs, width, seed=seed)
        r2s = evaluate(m_real, xst, yst)
        r2r = evaluate(m_real, xp, yp)  # in-domain reference
        t2 = time.perf_counter()
        m_syn = train_classifier(xs, ys, epochs, width, seed=seed)
        s2r = evaluate(m_syn, xp, yp)
        s2s = evaluate(m_syn, xst, yst)  # in-domain reference
        t3 = time.perf_counter()
    return {"real_to_synth": r2s, "real_to_real": r2r, "synth_to_real": s2r, "synth_to_synth": s2s,
            "seconds": {"data": t1 - t0, "real_model": t2 - t1, "synth_model": t3 - t2},
            "config": {"real_train": len(yr), "synth_train": len(ys), "synth_test": len(yst),
                       "real_test": len(yp), "epochs": epochs, "width": width, "seed": seed,
                       "shuffle_labels": shuffle_labels}}


def format_table(res: dict) -> str:
    cols = [("real->synth", "real_to_synth"), ("synth->real", "synth_to_real"),
            ("real->real", "real_to_real"), ("synth->synth", "synth_to_synth")]
    lines = [f"{'class':<10}" + "".join(f"{h:>14}" for h, _ in cols)]
    for c in BASIC7:
        lines.append(f"{c:<10}" + "".join(f"{res[k]['per_class'][c]:>14.3f}" for _, k in cols))
    lines.append(f"{'balanced':<10}" + "".join(f"{res[k]['balanced_accuracy']:>14.3f}" for _, k in cols))
    lines.append(f"{'accuracy':<10}" + "".join(f"{res[k]['accuracy']:>14.3f}" for _, k in cols))
    lines.append(f"{'n test':<10}" + "".join(f"{res[k]['n']:>14d}" for _, k in cols))
    lines.append(f"chance = {1 / len(BASIC7):.3f}; train/test sizes {res['config']}; "
                 f"seconds {', '.join(f'{k} {v:.0f}' for k, v in res['seconds'].items())}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="folder holding fer2013/ (default: $FACELAB_DATA)")
    ap.add_argument("--real", type=int, default=1500, help="FER2013 train images per class (disgust has 436)")
    ap.add_argument("--synth", type=int, default=10000, help="synthetic training faces")
    ap.add_argument("--synth-test", type=int, default=2100)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shuffle-labels", action="store_true", help="control run: permuted training labels")
    a = ap.parse_args(argv)
    res = run(a.data, a.real, a.synth, a.synth_test, a.epochs, a.width, a.seed, a.shuffle_labels)
    print(format_table(res))
    for name in ("real_to_synth", "synth_to_real"):
        print(f"\nconfusion {name} (rows true, cols predicted; {', '.join(BASIC7)}):\n{res[name]['confusion']}")


if __name__ == "__main__":
    main()
