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
# # 07 · GenCA: text-conditioned generative avatars, drivable through an expression latent space
#
# **Paper.** K. Sun, S. Saito, ... (Meta Reality Labs / CUHK), *GenCA: A Text-conditioned
# Generative Model for Realistic and Drivable Codec Avatars*, 2024
# ([arXiv 2408.13674](https://arxiv.org/abs/2408.13674)). No official code; the open analogue of
# its codec is Meta's `ava-256` (identity / expression encoders, geometry and RGB decoders, a
# volumetric-primitive ray marcher).
#
# **The idea.** Split a codec avatar into an *identity* part (a neutral geometry map and a
# neutral texture, both UV-aligned images with their own latents) and an *expression* part (one
# code from a shared, non-parametric expression space, decoded by an expression decoder whose
# biases a hyper-network computes from the identity). Then a text-conditioned latent diffusion
# model generates the **geometry latent** from a description (GM), a second one generates the
# **texture latent** from the description *and the generated geometry* through a ControlNet
# branch (GCTM), and any expression code (from another person or from a video) drives the
# generated avatar.
#
# ```
#  text ──MiniLM──► GM (LDM) ──► z_G ──VAE_G dec──► G_neu (UV position map) ──► normal map N(G)
#    │                                                                            │ ControlNet
#    └──────────────────────────────────────────► GCTM (LDM) ◄───────────────────┘
#                                                     └──► z_T ──VAE_T dec──► T_neu (UV texture)
#  (G_exp - G_neu, T_exp - T_neu) ──E_exp──► z_exp ──► D_exp( · ; biases = H(z_G, z_T)) ──► ΔG, ΔT
#  G_neu + ΔG, T_neu + ΔT ──► rasteriser ──► image
# ```
#
# What follows the paper [S] and what is our reconstruction [R] is marked in each section.
#
# | profile | data | networks | budget |
# |---|---|---|---|
# | `smoke` | 192 + 48 described `facelab.synth` identities × (neutral + 2 expressions), 32 px UV maps, CPU | 4×8×8 latents, UNets (16, 32); CAAE 250, GM 200, GCTM 200 + 60 per condition steps | < 3 min |
# | `demo` | 1024 + 128 identities × 4 expressions, 128 px UV maps, one GPU | 4×32×32 latents, UNets (64, 128, 128) | minutes |
# | `paper` | registered multi-view captures (1024 px UV maps, not public); their open analogue, ava-256 captures, is read by `facelab.data.ava256.AVA256Captures` (UV position maps + textures through `ava_topology`), but **training on them is not wired** (no captions; `data_root` checks the layout, then stops saying so) | the paper's AdamW 1e-5 and batch 12 (GM) / 4 (GCTM) are in the table; the training loops here are single-device, the multi-GPU path through `facelab.train` is **not written** | — |

# %% tags=["parameters"]
profile = "auto"
data_root = None      # paper: ava-256 captures (<root>/<mcd>--<mct>--<SID>/decoder/...); smoke/demo: facelab.synth
ava_topology = None   # paper: ava-256's assets/face_topology.obj (triangles + UV layout of the captures)
seed = 0
out_dir = None
uv_res = None         # UV map resolution (None: the profile's; 16..1024, a multiple of 8)
n_train = None        # training identities (None: the profile's)
n_test = None         # held-out identities / captions (None: the profile's)
steps = None          # diffusion training steps of GM and the text-only GCTM (None: the profile's)
caae_steps = None     # CAAE training steps (None: the profile's)
ctrl_steps = None     # GCTM steps per condition after the text-only stage (None: the profile's)
lr = None             # learning rate of GM / GCTM (None: the profile's; a short capped run wants a larger one)
clip_path = None      # a video to drive an avatar; None: the first FACELAB_DATA/video/*.mp4
clip_frames = None    # frames read from the clip (None: the profile's)
threads = None        # CPU threads for torch (None: 1 in smoke)

# %%
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import facelab
from facelab import config, metrics_gen, viz
from facelab.nn import diffusion as DF
from facelab.nn import text as TX
from facelab.nn.ema import EMA
from facelab.results import Report
from facelab.synth import describe as DS
from facelab.synth import expressions as EX
from facelab.synth import geometry as GEO
from facelab.synth import texture as TEX
from facelab.synth import uvmaps as UV
from facelab.widgets import avatar_editor as AE

# %% [markdown]
# One dict per profile (printed below); the parameters cell's knobs override its entries. Then the
# threads, the seed, the device, the output folder and the report that writes metrics.json.

# %%
NB = "07_genca"
T0 = time.time()
PROFILE = config.resolve_profile(profile)
CFG = config.pick(PROFILE, {
    "smoke": {"uv_res": 32, "n_train": 192, "n_test": 48, "n_expr": 2, "vae_ch": (16, 32), "z_ch": 4, "exp_dim": 16,
              "caae_steps": 250, "caae_batch": 16, "unet": (16, 32), "steps": 200, "ctrl_steps": 60, "batch": 16,
              "lr": 2e-3, "ddim": 20, "cfg": 2.0, "render": 32, "cls_steps": 250, "clip_frames": 6, "threads": 1},
    "demo": {"uv_res": 128, "n_train": 1024, "n_test": 128, "n_expr": 4, "vae_ch": (64, 128, 128), "z_ch": 4,
             "exp_dim": 32, "caae_steps": 3000, "caae_batch": 32, "unet": (64, 128, 128), "steps": 6000,
             "ctrl_steps": 2000, "batch": 32, "lr": 5e-4, "ddim": 50, "cfg": 2.0, "render": 96, "cls_steps": 1500,
             "clip_frames": 24, "threads": None},
    "paper": {"uv_res": 1024, "n_train": 4096, "n_test": 256, "n_expr": 8, "vae_ch": (64, 128, 256, 256, 512),
              "z_ch": 4, "exp_dim": 256, "caae_steps": 200000, "caae_batch": 8, "unet": (320, 640, 1280, 1280),
              "steps": 200000, "ctrl_steps": 100000, "batch": 12, "batch_tex": 4, "lr": 1e-5, "ddim": 50, "cfg": 7.5,
              "render": 512, "cls_steps": 5000, "clip_frames": 64, "threads": None},
}, uv_res=uv_res, n_train=n_train, n_test=n_test, steps=steps, caae_steps=caae_steps, ctrl_steps=ctrl_steps,
   lr=lr, clip_frames=clip_frames, threads=threads)
if CFG["threads"]:
    torch.set_num_threads(CFG["threads"])   # one thread beats two fighting on a small shared CPU
rng = config.seed_everything(seed)
DEVICE = config.device()
OUT = config.out_dir(NB, out_dir)
print(f"profile {PROFILE} | device {DEVICE} | facelab from {facelab.__file__} | figures -> {OUT}")
print(CFG)
report = Report(NB, profile=PROFILE, dataset="facelab.synth described identities", out_dir=OUT)
report.record_caps(uv_res=uv_res, n_train=n_train, n_test=n_test, steps=steps, caae_steps=caae_steps, ctrl_steps=ctrl_steps,
                   lr=lr, clip_frames=clip_frames, threads=threads)
RES = int(CFG["uv_res"])
if RES % 8 or not 16 <= RES <= 1024:
    raise config.ConfigError(f"uv_res={RES}: expected a multiple of 8 in 16..1024")
if data_root is not None:
    from facelab.data.ava256 import AVA256Captures

    AVA = AVA256Captures(data_root, topology=ava_topology)          # checks the layout (and says what it expected)
    found = f"data_root: {len(AVA)} ava-256 captures, {sum(map(len, AVA.frames.values()))} frames"
    if ava_topology is not None:
        m = AVA.identity_maps(RES, CFG["n_expr"], captures=AVA.captures[:1], seed=seed)
        found += f"; UV maps of {m['captures'][0]}: G {tuple(m['g'].shape)}, G_exp {tuple(m['g_exp'].shape)}"
    raise config.ConfigError(found + ". Training on captures is not wired into this notebook yet (ava-256 has no "
                             "captions; GenCA captions its captures with a VLM); run smoke or demo on facelab.synth")

# %% [markdown]
# ## 1. Data: UV geometry and texture maps of described identities
#
# The paper registers multi-view captures of many people to one topology and stores, per
# person, a neutral and several expressive **UV geometry maps** `G` (a 3-D position per texel)
# and **UV textures** `T` (§3.1 [S]); captions come from the identities' attributes [S/R].
# Here [R] each identity of `facelab.synth` gets four attributes read off its parameters
# (`facelab.synth.describe`: age, skin tone, hair, face width; age also shapes the face) and a
# one-sentence caption. The engine's mesh is rasterised into UV space once
# (`facelab.synth.uvmaps.uv_raster`: per texel the triangle and barycentric weights, as
# `ava-256`'s `generate_geomap`); a position map is then one interpolation per face. Textures are the
# engine's own UV atlases (`facelab.synth.texture.compose`), expressive ones with the AU cues
# (wrinkles, folds) of their expression.

# %%
TOPO = GEO.topology()
RASTER = UV.engine_raster(RES)
G_SCALE, D_SCALE = 100.0, 10.0          # model units -> network units (face ~ ±1; displacements ~ ±1)


def make_maps(ident, n_expr, rng_):
    """Neutral and expressive position maps / textures for every identity."""
    n = len(ident["age"])
    zero = np.zeros((n, 20), np.float32)
    g_neu = UV.position_map(GEO.add_inner_parts(GEO.face_meshes(zero, zero, ident["shape"])), TOPO.tris, RASTER)
    t_neu = TEX.compose(ident, RES).permute(0, 3, 1, 2)
    labels = rng_.integers(1, 8, (n, n_expr))                   # the seven non-neutral basic expressions
    g_exp, t_exp, aus = [], [], []
    for k in range(n_expr):
        r, l, a, _ = EX.sample_aus(labels[:, k], rng_)
        g_exp.append(UV.position_map(GEO.add_inner_parts(GEO.face_meshes(r, l, ident["shape"])), TOPO.tris, RASTER))
        t_exp.append(TEX.compose(ident, RES, aus_right=r, aus_left=l).permute(0, 3, 1, 2))
        aus.append((r, l))
    return {"g": g_neu / G_SCALE, "t": t_neu * 2 - 1, "g_exp": torch.stack(g_exp, 1) / G_SCALE,
            "t_exp": torch.stack(t_exp, 1) * 2 - 1, "aus": aus, "labels": labels}


t_data = time.time()
ID_TR, ATTR_TR, CAP_TR = DS.sample_described(CFG["n_train"], rng)
ID_TE, ATTR_TE, CAP_TE = DS.sample_described(CFG["n_test"], rng)
TR, TE = make_maps(ID_TR, CFG["n_expr"], rng), make_maps(ID_TE, CFG["n_expr"], rng)
MASK = torch.as_tensor(RASTER.mask, dtype=torch.float32)        # texels the mesh covers
print(f"UV raster {RES}x{RES}: coverage {RASTER.coverage:.2f}; maps {tuple(TR['g'].shape)} + "
      f"{tuple(TR['g_exp'].shape)} expressive ({time.time() - t_data:.1f} s)")
for a, k in zip(ATTR_TR.T, DS.ATTRIBUTES):
    print(f"  {k:5s}", dict(zip(DS.ATTRIBUTES[k], np.bincount(a, minlength=len(DS.ATTRIBUTES[k])).tolist())))
print("e.g.", CAP_TR[:2])

# %%
plt = viz.pyplot()
show = lambda x: ((x + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()        # noqa: E731
gvis = lambda g: ((g - g.amin((1, 2), keepdim=True)) / (g.amax((1, 2), keepdim=True) - g.amin((1, 2), keepdim=True))).permute(1, 2, 0).numpy()  # noqa: E731
panels = [gvis(TR["g"][0]), show(TR["t"][0]), gvis((TR["g_exp"][0, 0] - TR["g"][0]) * MASK),
          show(TR["t_exp"][0, 0]), UV.normal_map(TR["g"][:1])[0].permute(1, 2, 0).mul(0.5).add(0.5).numpy()]
viz.savefig(viz.image_grid(panels, ["G_neu (xyz)", "T_neu", "G_exp - G_neu", "T_exp", "normal map N(G)"], ncols=5, size=1.8),
            OUT, "uv_maps")

# %% [markdown]
# ## 2. Text
#
# The paper encodes captions with a frozen CLIP text encoder [S/R]. Here the MiniLM sentence
# encoder shipped with `facelab.assets` gives per-token states (for cross-attention) and a pooled
# embedding (added to the UNet's time embedding, as Stable Diffusion XL's pooled text) [R]; the
# paper profile would take a CLIP text encoder from a local path. The **empty caption** is the
# null condition of classifier-free guidance (10 % of training captions are replaced by it, [S]).

# %%
def encode_text(texts):
    tok, _, pooled = TX.encode(list(texts), max_length=24).torch()
    return torch.cat([tok, pooled[:, None]], 1)            # (n, L + 1, 384): tokens, then the pooled vector


TXT_TR, TXT_TE, NULL_TXT = encode_text(CAP_TR), encode_text(CAP_TE), encode_text([""])
print("text conditioning", tuple(TXT_TR.shape), "| null", tuple(NULL_TXT.shape))

# %% [markdown]
# ## 3. The Codec Avatar Auto-Encoder (CAAE)
#
# > "identity encoders map the neutral geometry and texture to UV-aligned latent maps; an
# > expression encoder maps the expressive minus neutral geometry and texture to an expression
# > code; the expression decoder is modulated by a hyper-network of the identity" [S, §3.1, paraphrased]
#
# * **Identity VAEs** `E_G, D_G` and `E_T, D_T` [S]: a map → a 4-channel latent map at 1/4 of the
#   UV side, trained with L1 + KL: $\mathcal L_{id} = |D(z) - X|_1 + \beta\,\mathrm{KL}(q(z|X)\,\|\,\mathcal N(0, I))$.
# * **Expression encoder** `E_exp(G_exp - G_neu, T_exp - T_neu) → z_exp` (a vector, KL-regularised) [S].
# * **Hyper-network** `H(z_G, z_T)` → one bias map per decoder resolution [S, as UPM, Cao et al. 2022];
#   **expression decoder** `D_exp(z_exp; H)` → UV displacement ΔG and texture delta ΔT [S].
#   Layer sizes, β and the loss weights are ours [R]. Losses are taken on the covered texels.

# %% tags=["export"]
import torch
import torch.nn.functional as F
from torch import nn


def conv_block(i, o, stride=1):
    return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1), nn.GroupNorm(8, o), nn.SiLU())


class MapVAE(nn.Module):
    """A UV map (3, R, R) <-> a latent map (z_ch, R/4, R/4) (one per identity, for G or for T)."""

    def __init__(self, ch=(32, 64), z_ch=4, in_ch=3):
        super().__init__()
        c0, c1 = ch[0], ch[-1]
        self.enc = nn.Sequential(conv_block(in_ch, c0, 2), conv_block(c0, c1, 2), conv_block(c1, c1),
                                 nn.Conv2d(c1, 2 * z_ch, 3, 1, 1))
        self.dec = nn.Sequential(nn.Conv2d(z_ch, c1, 3, 1, 1), nn.SiLU(), conv_block(c1, c1), nn.Upsample(scale_factor=2),
                                 conv_block(c1, c0), nn.Upsample(scale_factor=2), nn.Conv2d(c0, in_ch, 3, 1, 1))

    def encode(self, x):
        mu, logvar = self.enc(x).chunk(2, 1)
        return mu, logvar.clamp(-10, 5)

    def decode(self, z):
        return self.dec(z)


def kl(mu, logvar):
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean()

# %% [markdown]
# The expression branch [S, §3.1]: an encoder from the expressive-minus-neutral maps (ΔG, ΔT) to the
# mean and log-variance of `z_exp`, and the hyper-network `H(z_G, z_T)` that turns the identity
# latents into one bias map per decoder resolution (R/4, R/2, R).

# %% tags=["export"]
class ExpressionEncoder(nn.Module):
    """(ΔG, ΔT) (6, R, R) -> (mu, logvar) of z_exp."""

    def __init__(self, ch=(32, 64), dim=16, res=32):
        super().__init__()
        c0, c1 = ch[0], ch[-1]
        self.conv = nn.Sequential(conv_block(6, c0, 2), conv_block(c0, c1, 2), conv_block(c1, c1, 2))
        self.head = nn.Linear(c1 * (res // 8) ** 2, 2 * dim)

    def forward(self, d):
        mu, logvar = self.head(self.conv(d).flatten(1)).chunk(2, 1)
        return mu, logvar.clamp(-10, 5)


class HyperNet(nn.Module):
    """Identity latents (z_G, z_T) -> bias maps for the expression decoder at R/4, R/2 and R."""

    def __init__(self, z_ch=4, ch=(32, 64)):
        super().__init__()
        c0, c1 = ch[0], ch[-1]
        self.b4 = nn.Sequential(conv_block(2 * z_ch, c1), nn.Conv2d(c1, c1, 3, 1, 1))
        self.b2 = nn.Sequential(nn.Upsample(scale_factor=2), conv_block(c1, c0), nn.Conv2d(c0, c0, 3, 1, 1))
        self.b1 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c0, c0, 3, 1, 1))

    def forward(self, z_g, z_t):
        h4 = self.b4(torch.cat([z_g, z_t], 1))
        h2 = self.b2(h4)
        return h4, h2, self.b1(h2)

# %% [markdown]
# The expression decoder adds the identity's bias maps at each resolution,
# $x_{l+1} = \mathrm{conv}(\mathrm{up}(x_l)) + b_{l+1}$, so one expression code moves each identity's
# own face; `CAAE` holds the two identity VAEs and the expression branch together.

# %% tags=["export"]
class ExpressionDecoder(nn.Module):
    """z_exp and the identity's bias maps -> (ΔG, ΔT) (6, R, R): x_{l+1} = conv(up(x_l)) + b_{l+1}."""

    def __init__(self, ch=(32, 64), dim=16, res=32):
        super().__init__()
        c0, c1 = ch[0], ch[-1]
        self.side = res // 4
        self.fc = nn.Linear(dim, c1 * self.side ** 2)
        self.c4, self.c2, self.c1 = conv_block(c1, c1), conv_block(c1, c0), nn.Sequential(nn.Conv2d(c0, c0, 3, 1, 1), nn.SiLU())
        self.out = nn.Conv2d(c0, 6, 3, 1, 1)

    def forward(self, z, biases):
        b4, b2, b1 = biases
        x = self.c4(self.fc(z).view(len(z), -1, self.side, self.side) + b4)
        x = self.c2(F.interpolate(x, scale_factor=2.0)) + b2
        x = self.c1(F.interpolate(x, scale_factor=2.0)) + b1
        return self.out(x)


class CAAE(nn.Module):
    def __init__(self, ch=(32, 64), z_ch=4, exp_dim=16, res=32, d_scale=10.0):
        super().__init__()
        self.d_scale = d_scale                       # ΔG is encoded / decoded in units of 1/d_scale
        self.vae_g, self.vae_t = MapVAE(ch, z_ch), MapVAE(ch, z_ch)
        self.enc_exp = ExpressionEncoder(ch, exp_dim, res)
        self.hyper = HyperNet(z_ch, ch)
        self.dec_exp = ExpressionDecoder(ch, exp_dim, res)

    def identity_latents(self, g, t):
        return self.vae_g.encode(g)[0], self.vae_t.encode(t)[0]

    def expression_code(self, dg, dt):
        return self.enc_exp(torch.cat([dg * self.d_scale, dt], 1))[0]

    def deltas(self, z_exp, z_g, z_t):
        """(ΔG, ΔT) of expression code z_exp on the identity (z_G, z_T), in map units."""
        d = self.dec_exp(z_exp, self.hyper(z_g, z_t))
        return d[:, :3] / self.d_scale, d[:, 3:]

# %% [markdown]
# Training [R]: one Adam loop over the three parts. The expression branch sees the identity
# latents (means, gradient stopped, so the expression path cannot reshape the identity space)
# and regresses ΔG and ΔT of a random expression of each identity:
#
# $$\mathcal L = \sum_{X\in\{G,T\}} \big(|D_X(z_X) - X|_1 + \beta\,\mathrm{KL}_X\big)
#   + |\Delta\hat G - \Delta G|_1 + |\Delta\hat T - \Delta T|_1 + \beta_e\,\mathrm{KL}_{exp},
# \quad \beta = 10^{-4},\ \beta_e = 10^{-3}$$
#
# (ΔG is compared in units of 1/10 of the face scale so that it weighs like the texture.)

# %%
def masked_l1(a, b, mask=MASK):
    return ((a - b).abs() * mask).sum() / (mask.sum() * a.shape[0] * a.shape[1])


def caae_loss(model, data, idx, gen):
    g, t = data["g"][idx], data["t"][idx]
    k = torch.randint(0, data["g_exp"].shape[1], (len(idx),), generator=gen)
    ge, te = data["g_exp"][idx, k], data["t_exp"][idx, k]
    L = {}
    for name, vae, x in (("g", model.vae_g, g), ("t", model.vae_t, t)):
        mu, lv = vae.encode(x)
        z = mu + (0.5 * lv).exp() * torch.randn(mu.shape, generator=gen)
        L[f"rec_{name}"] = masked_l1(vae.decode(z), x)
        L[f"kl_{name}"] = 1e-4 * kl(mu, lv)
    with torch.no_grad():
        zg, zt = model.identity_latents(g, t)
    mu, lv = model.enc_exp(torch.cat([(ge - g) * D_SCALE, te - t], 1))
    z = mu + (0.5 * lv).exp() * torch.randn(mu.shape, generator=gen)
    dg, dt = model.deltas(z, zg, zt)
    L["exp_g"] = masked_l1(dg * D_SCALE, (ge - g) * D_SCALE)
    L["exp_t"] = masked_l1(dt, te - t)
    L["kl_exp"] = 1e-3 * kl(mu, lv)
    return sum(L.values()), {k: float(v.detach()) for k, v in L.items()}


# %% [markdown]
# The loop: Adam with a one-cycle learning rate, a random batch of identities per step (one
# generator drives the batches, the expression picks and the VAE samples), then the loss curves.

# %%
def train_caae(steps_, batch_):
    config.seed_everything(seed)
    model = CAAE(CFG["vae_ch"], CFG["z_ch"], CFG["exp_dim"], RES, d_scale=D_SCALE)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps_, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    hist = {}
    for _ in tqdm(range(steps_), desc="CAAE", mininterval=5):
        idx = torch.randint(0, len(TR["g"]), (batch_,), generator=gen)
        loss, parts = caae_loss(model, TR, idx, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        for k, v in parts.items():
            hist.setdefault(k, []).append(v)
    return model.eval(), hist


t_caae = time.time()
CA, CA_HIST = train_caae(CFG["caae_steps"], CFG["caae_batch"])
print(f"CAAE: {CFG['caae_steps']} steps in {time.time() - t_caae:.0f} s; last losses",
      {k: round(float(np.mean(v[-20:])), 4) for k, v in CA_HIST.items()})
viz.savefig(viz.curves({k: v for k, v in CA_HIST.items() if k.startswith(("rec", "exp"))}, "CAAE training (L1)"),
            OUT, "caae_loss")

# %% [markdown]
# Held-out identities: reconstruction error of the identity VAEs in model units (the face is
# ~190 units tall) and in texture levels, and the latent statistics the diffusion models use
# (each latent is standardised by its training mean and standard deviation [R], as Stable
# Diffusion scales its VAE latent).

# %%
with torch.no_grad():
    ZG_TR, ZT_TR = CA.identity_latents(TR["g"], TR["t"])
    ZG_TE, ZT_TE = CA.identity_latents(TE["g"], TE["t"])
    rec_g = CA.vae_g.decode(ZG_TE)
    rec_t = CA.vae_t.decode(ZT_TE)
LAT = {k: (z.mean((0, 2, 3), keepdim=True), z.std((0, 2, 3), keepdim=True)) for k, z in (("g", ZG_TR), ("t", ZT_TR))}
norm_lat = lambda z, k: (z - LAT[k][0]) / LAT[k][1]          # noqa: E731
denorm_lat = lambda z, k: z * LAT[k][1] + LAT[k][0]          # noqa: E731
err_g = float(((rec_g - TE["g"]).norm(dim=1) * MASK).sum() / (MASK.sum() * len(rec_g))) * G_SCALE
err_t = float(((rec_t - TE["t"]).abs() * MASK).sum() / (MASK.sum() * len(rec_t) * 3)) / 2 * 255
print(f"held-out reconstruction: geometry {err_g:.2f} units (face ~190), texture {err_t:.1f} / 255 levels; "
      f"latent {tuple(ZG_TE.shape[1:])}")
report.metric("caae_geometry_rec_units_heldout", err_g)
report.metric("caae_texture_rec_levels_heldout", err_t)

# %% [markdown]
# ## 4. Geometry Generation Module (GM) and Geometry-Conditioned Texture Module (GCTM)
#
# > "we generate the geometry latent from text with a latent diffusion model, then the texture
# > latent conditioned on the text and the generated geometry through a ControlNet" [S, §3.2, paraphrased]
#
# Both are `diffusers.UNet2DConditionModel`s over the standardised latents, trained with the
# DDPM loss [S] (here in the v-parameterisation with an EMA of the weights, which short
# from-scratch runs need [R]) and sampled with DDIM + classifier-free guidance
# $\hat\epsilon = \epsilon_\varnothing + w(\epsilon_c - \epsilon_\varnothing)$ [S]. The texture
# module's geometry condition is the **normal map of the geometry** computed by finite
# differences in UV, $N = \mathrm{normalize}(\partial_u G \times \partial_v G)$, fed to a
# `diffusers.ControlNetModel` whose residuals are added to the UNet's skip connections [S/R].
# The Table 3 ablation swaps the condition for **none** or the **displacement** from the mean
# neutral geometry [S].

# %% tags=["export"]
from torch import nn


class TextUNet(nn.Module):
    """A UNet2DConditionModel (+ optional ControlNet) behind the call signature of
    ``facelab.nn.diffusion``: ``encoder_hidden_states`` packs the caption's token states and, as
    its last token, the pooled embedding (added to the time embedding). ``self.control`` is the
    ControlNet's condition image for the current batch (repeated for the CFG double batch)."""

    def __init__(self, unet, controlnet=None):
        super().__init__()
        self.unet, self.controlnet, self.control = unet, controlnet, None

    def forward(self, x, t, encoder_hidden_states=None, **kw):
        tok, pooled = encoder_hidden_states[:, :-1], encoder_hidden_states[:, -1]
        extra = {}
        if self.controlnet is not None:
            c = self.control.repeat(len(x) // len(self.control), 1, 1, 1)
            down, mid = self.controlnet(x, t, encoder_hidden_states=tok, controlnet_cond=c, class_labels=pooled,
                                        return_dict=False)
            extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        return self.unet(x, t, encoder_hidden_states=tok, class_labels=pooled, **extra)

# %% [markdown]
# The builders: the UNet (cross-attention to the caption's tokens in all but the first level, the
# pooled caption added to the time embedding), the ControlNet copied from it [S/R], and the
# geometry condition of the Table 3 ablation: the normal map $N(G)$ or the displacement from the
# mean neutral geometry.

# %% tags=["export"]
import numpy as np

from facelab.synth import uvmaps as UV


def make_unet(side, channels=(32, 64), text_dim=384, z_ch=4):
    from diffusers import UNet2DConditionModel

    n = len(channels)
    return UNet2DConditionModel(
        sample_size=side, in_channels=z_ch, out_channels=z_ch, block_out_channels=tuple(channels), layers_per_block=1,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",), cross_attention_dim=text_dim,
        attention_head_dim=8, norm_num_groups=8, class_embed_type="projection",
        projection_class_embeddings_input_dim=text_dim)


def make_controlnet(unet, uv_res, side):
    """A ControlNet copied from the UNet; its condition encoder takes the UV-resolution map down to the latent side."""
    from diffusers import ControlNetModel

    downs = int(np.log2(uv_res // side))
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16,) + (32,) * downs,
                                     conditioning_channels=3)


def geometry_condition(g, kind, mean_g, mask):
    """The GCTM's condition from (n, 3, R, R) position maps on the covered texels ``mask``:
    'normal' (N(G) by finite differences in UV), 'displacement' (G - mean neutral geometry, x10)."""
    if kind == "normal":
        return UV.normal_map(g) * mask
    if kind == "displacement":
        return (g - mean_g) * 10 * mask
    raise ValueError(f"geometry condition {kind!r}: expected 'none', 'displacement' or 'normal'")

# %%
SCHED = DF.noise_scheduler()
SIDE = RES // 4
MEAN_G = TR["g"].mean(0, keepdim=True)


def train_ldm(model, z0, text, steps_, control=None, params=None, desc="LDM", ema_decay=0.99, batch=None):
    """DDPM training (v-prediction, 10 % empty captions) of a TextUNet on latents z0; returns the loss curve."""
    gen = torch.Generator().manual_seed(seed)
    groups = params if params is not None else [{"params": list(model.parameters()), "lr": CFG["lr"]}]
    opt = torch.optim.AdamW(groups, lr=CFG["lr"], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [g["lr"] for g in groups], total_steps=steps_, pct_start=0.1)
    ema = EMA(model, ema_decay)
    losses = []
    for _ in tqdm(range(steps_), desc=desc, mininterval=5):
        idx = torch.randint(0, len(z0), (batch or CFG["batch"],), generator=gen)
        if control is not None:
            model.control = control[idx]
        loss = DF.ddpm_loss(model, SCHED, z0[idx], text[idx], null_cond=NULL_TXT[0], cond_drop=0.1, generator=gen,
                            prediction="v_prediction", timestep_sampling="logit_normal", uniform_frac=0.3)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update(model)
        losses.append(float(loss.detach()))
    ema.copy_to(model)
    return model.eval(), losses


# %% [markdown]
# Sampling [S]: DDIM with classifier-free guidance, $\hat\epsilon = \epsilon_\varnothing + w(\epsilon_c -
# \epsilon_\varnothing)$ with $w$ = `cfg`, from a seeded generator; then GM is trained on the
# standardised geometry latents of the training identities.

# %%
def sample_ldm(model, text, control=None, seed_=0, guidance=None, **kw):
    """DDIM + classifier-free guidance; returns standardised latents."""
    model.control = control
    eps_model = DF.EpsView(model, SCHED, "v_prediction")
    gen = torch.Generator().manual_seed(seed_)
    return DF.ddim_sample(eps_model, SCHED, text, steps=CFG["ddim"], guidance_scale=guidance or CFG["cfg"],
                          uncond=NULL_TXT, shape=(CFG["z_ch"], SIDE, SIDE), generator=gen, **kw)


t_gm = time.time()
config.seed_everything(seed)
GM, GM_LOSS = train_ldm(TextUNet(make_unet(SIDE, CFG["unet"])), norm_lat(ZG_TR, "g"), TXT_TR, CFG["steps"], desc="GM")
print(f"GM: {CFG['steps']} steps in {time.time() - t_gm:.0f} s, loss {np.mean(GM_LOSS[:20]):.3f} -> {np.mean(GM_LOSS[-20:]):.3f}")

# %% [markdown]
# The GCTM is trained in two stages, as a ControlNet is [S/R]: a text-only texture UNet first,
# then, per condition, a copy of it together with a ControlNet branch for `ctrl_steps` more steps
# (the "none" row continues the text-only UNet for the same number of steps, so every row of
# the ablation has seen the same number of updates). Training conditions come from the
# ground-truth neutral geometry; at test time from the **generated** geometry.

# %%
t_tex = time.time()
ZT_N = norm_lat(ZT_TR, "t")
config.seed_everything(seed)
BATCH_TEX = CFG.get("batch_tex", CFG["batch"])        # the paper trains the GCTM with a smaller batch (4 vs 12)
TEX_BASE, TEX_BASE_LOSS = train_ldm(TextUNet(make_unet(SIDE, CFG["unet"])), ZT_N, TXT_TR, CFG["steps"], desc="GCTM text-only",
                                    batch=BATCH_TEX)
CONDITIONS = ("none", "displacement", "normal")
CTRL_LR_MULT = 5
GCTM, GCTM_LOSS = {}, {}
for kind in CONDITIONS:
    config.seed_everything(seed)
    m = copy.deepcopy(TEX_BASE).train()
    ctrl, groups = None, [{"params": list(m.unet.parameters()), "lr": CFG["lr"]}]
    if kind != "none":
        m.controlnet = make_controlnet(m.unet, RES, SIDE)
        ctrl = geometry_condition(TR["g"], kind, MEAN_G, MASK)
        # the branch starts from zero convolutions: it gets CTRL_LR_MULT x the learning rate to grow in a short run
        groups.append({"params": list(m.controlnet.parameters()), "lr": CFG["lr"] * CTRL_LR_MULT})
    GCTM[kind], GCTM_LOSS[kind] = train_ldm(m, ZT_N, TXT_TR, CFG["ctrl_steps"], control=ctrl, params=groups,
                                            desc=f"GCTM {kind}", batch=BATCH_TEX)
print(f"GCTM: text-only {CFG['steps']} steps + 3 x {CFG['ctrl_steps']} in {time.time() - t_tex:.0f} s; last losses",
      {k: round(float(np.mean(v[-20:])), 3) for k, v in GCTM_LOSS.items()})
viz.savefig(viz.curves({"GM": GM_LOSS, "GCTM text-only": TEX_BASE_LOSS}, "diffusion training (v-loss)"), OUT, "ldm_loss")

# %% [markdown]
# ## 5. Generating avatars from the held-out descriptions
#
# For every held-out caption: GM samples `z_G`, `D_G` decodes the neutral geometry, its normal
# map conditions the GCTM, which samples `z_T` (the same noise for every ablation row), and `D_T`
# decodes the texture. The renderer is a z-buffered rasteriser of the engine's mesh whose
# vertices are read back from the position map (`facelab.synth.uvmaps.render_maps`) [R]: the
# paper renders volumetric primitives with a ray marcher (`ava-256`'s `mvpraymarch` CUDA
# extension), which needs a GPU build and multi-view training data; a mesh with a UV texture
# is what our engine's data determines exactly, and the rasteriser runs on a CPU.

# %%
def decode_geometry(zg_n):
    with torch.no_grad():
        return CA.vae_g.decode(denorm_lat(zg_n, "g"))


def decode_texture(zt_n):
    with torch.no_grad():
        return CA.vae_t.decode(denorm_lat(zt_n, "t")).clamp(-1, 1)


def generate(text, kind="normal", seed_=0, zg_n=None):
    """(standardised z_G, z_T, G, T) for captions encoded by encode_text; z_G is sampled unless given."""
    if zg_n is None:
        zg_n = sample_ldm(GM, text, seed_=seed_)
    g = decode_geometry(zg_n)
    ctrl = None if kind == "none" else geometry_condition(g, kind, MEAN_G, MASK)
    zt_n = sample_ldm(GCTM[kind], text, control=ctrl, seed_=seed_ + 1)
    return zg_n, zt_n, g, decode_texture(zt_n)


def render(g, t, yaw=0.0, res=None):
    with torch.no_grad():
        return UV.render_maps(g * G_SCALE, (t + 1) / 2, yaw=yaw, res=res or CFG["render"]).clamp(0, 1)


t_gen = time.time()
GEN = {kind: generate(TXT_TE, kind, seed_=seed) for kind in CONDITIONS}
ZG_GEN = GEN["normal"][0]
print(f"generated {len(TXT_TE)} avatars x {len(CONDITIONS)} texture conditions in {time.time() - t_gen:.0f} s")
FIVE = list(range(5))
imgs = [render(GEN["normal"][2][i:i + 1], GEN["normal"][3][i:i + 1], yaw=15)[0].numpy() for i in FIVE]
imgs += [render(TE["g"][i:i + 1], TE["t"][i:i + 1], yaw=15)[0].numpy() for i in FIVE]
viz.savefig(viz.image_grid(imgs, [f"gen: {CAP_TE[i][:38]}" for i in FIVE] + ["engine identity it describes"] * 5,
                           ncols=5, size=2.2), OUT, "generated_five")

# %% [markdown]
# ## 6. Metrics: text-avatar agreement, a contrastive text-render score, Fréchet distance
#
# The paper scores text alignment with CLIP score (and image quality with Aesthetic score and
# HPS v2) on its renders [S]. Those need pretrained CLIP weights (a local path in the paper
# profile; not shipped here), so the smoke and demo numbers use stand-ins trained here [R]:
#
# * **attribute agreement**: a small CNN trained on the engine's renders of the training
#   identities predicts the four attributes; agreement is the fraction of (avatar, attribute)
#   pairs where the prediction on the generated avatar's render equals its caption's value.
#   *Chance* is the agreement the same predictions would have with captions drawn independently,
#   $\sum_k \hat p_{pred}(k)\,\hat p_{cap}(k)$ per attribute (what shuffling the captions gives on average).
# * **text-render score**: 100 × cosine between a render and its caption in a small contrastive
#   (CLIP-style, InfoNCE) model trained here on training renders and captions.
# * **FD**: Fréchet distance between generated and held-out engine renders in the attribute
#   classifier's feature space (an FID stand-in).

# %%
def engine_renders(data, yaws):
    return torch.cat([render(data["g"], data["t"], yaw=y) for y in yaws]).permute(0, 3, 1, 2)


class SmallCNN(nn.Module):
    def __init__(self, outs, width=32):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.SiLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.SiLU(),
                                      nn.Conv2d(32, width, 3, 2, 1), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleList([nn.Linear(width, k) for k in outs])

    def forward(self, x):
        f = self.features(x * 2 - 1)
        return f, [h(f) for h in self.heads]


YAWS = (-15.0, 0.0, 15.0)
X_CLS = engine_renders(TR, YAWS)
Y_CLS = torch.as_tensor(np.tile(ATTR_TR, (len(YAWS), 1)))
config.seed_everything(seed)
CLS = SmallCNN([len(v) for v in DS.ATTRIBUTES.values()])
opt = torch.optim.Adam(CLS.parameters(), lr=3e-3)
gen_ = torch.Generator().manual_seed(seed)
for _ in tqdm(range(CFG["cls_steps"]), desc="attribute classifier", mininterval=5):
    idx = torch.randint(0, len(X_CLS), (32,), generator=gen_)
    loss = sum(F.cross_entropy(o, Y_CLS[idx, k]) for k, o in enumerate(CLS(X_CLS[idx])[1]))
    opt.zero_grad()
    loss.backward()
    opt.step()
CLS.eval()


# %% [markdown]
# Attribute agreement and its chance level, $\sum_k \hat p_{pred}(k)\,\hat p_{cap}(k)$ per
# attribute; first on held-out engine renders, the ceiling a generated avatar can reach here.

# %%
def predict_attrs(images):
    with torch.no_grad():
        f, outs = CLS(images)
    return f, np.stack([o.argmax(1).numpy() for o in outs], 1)


def agreement(pred, attrs):
    acc = (pred == attrs).mean(0)
    chance = [sum(np.mean(pred[:, k] == c) * np.mean(attrs[:, k] == c) for c in range(len(v)))
              for k, v in enumerate(DS.ATTRIBUTES.values())]
    return float(acc.mean()), float(np.mean(chance)), acc


X_TE = render(TE["g"], TE["t"]).permute(0, 3, 1, 2)
F_REAL, P_REAL = predict_attrs(X_TE)
AGR_REAL = agreement(P_REAL, ATTR_TE)
print(f"attribute classifier on held-out engine renders: agreement {AGR_REAL[0]:.3f} (chance {AGR_REAL[1]:.3f}); "
      "per attribute", dict(zip(DS.ATTRIBUTES, AGR_REAL[2].round(2))))
report.metric("attr_agreement_engine_heldout", AGR_REAL[0])

# %%
class ContrastiveTextRender(nn.Module):
    def __init__(self, dim=32, text_dim=384):
        super().__init__()
        self.image = SmallCNN([dim])
        self.text = nn.Linear(text_dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))

    def embed(self, x, pooled):
        return F.normalize(self.image(x)[1][0], dim=-1), F.normalize(self.text(pooled), dim=-1)


config.seed_everything(seed)
CLIPISH = ContrastiveTextRender()
opt = torch.optim.Adam(CLIPISH.parameters(), lr=3e-3)
POOL_TR = TXT_TR[:, -1].repeat(len(YAWS), 1)
for _ in tqdm(range(CFG["cls_steps"]), desc="contrastive text-render", mininterval=5):
    idx = torch.randint(0, len(X_CLS), (64,), generator=gen_)
    ei, et = CLIPISH.embed(X_CLS[idx], POOL_TR[idx])
    logits = CLIPISH.logit_scale.exp() * ei @ et.T
    same = torch.as_tensor(ATTR_TR[idx.numpy() % len(ATTR_TR)])
    target = (same[:, None] == same[None]).all(-1).float()            # identical captions' attributes are positives
    target = target / target.sum(1, keepdim=True)
    loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    opt.zero_grad()
    loss.backward()
    opt.step()
CLIPISH.eval()


def text_render_score(images, text):
    with torch.no_grad():
        ei, et = CLIPISH.embed(images, text[:, -1])
    return float(100 * (ei * et).sum(-1).clamp_min(0).mean())


print(f"text-render score: engine renders with their captions {text_render_score(X_TE, TXT_TE):.2f}, "
      f"with shuffled captions {text_render_score(X_TE, TXT_TE.roll(1, 0)):.2f}")

# %% [markdown]
# ### Table 3's ablation: the texture module's geometry condition
#
# Same generated geometries, same noise, three GCTMs. The paper reports that the normal-map
# condition gives the best texture-geometry consistency [S]; here the measure is the attribute
# agreement of the rendered avatar (and the text-render score and FD).

# %%
ROWS = {}
for kind in CONDITIONS:
    _, _, g, t = GEN[kind]
    x = render(g, t).permute(0, 3, 1, 2)
    f, p = predict_attrs(x)
    agr, chance, per = agreement(p, ATTR_TE)
    ROWS[kind] = {"agreement": agr, "chance": chance, "text_render": text_render_score(x, TXT_TE),
                  "fd": metrics_gen.frechet_distance(f, F_REAL), **{f"agree_{k}": float(a) for k, a in zip(DS.ATTRIBUTES, per)}}
    for k, v in ROWS[kind].items():
        report.metric(f"{k}_{kind}", v, headline=(k, kind) == ("agreement", "normal"))
print(f"{'condition':13s} " + " ".join(f"{k:>12s}" for k in ROWS["normal"]))
for kind, r in ROWS.items():
    print(f"{kind:13s} " + " ".join(f"{v:12.3f}" for v in r.values()))

# %% [markdown]
# ## 7. Driving: expression transfer through the expression latent space
#
# > "an expression code encoded from any driving image or video drives any generated identity" [S]
#
# **Transfer error** [R]: for a held-out identity B and another identity A showing an
# expression with AUs `a`, encode `z_exp = E_exp(G_exp^A - G_neu^A, T_exp^A - T_neu^A)`, decode
# it on B's identity latents and compare `G_neu^B + ΔĜ` with the engine's ground truth (B with
# the same AUs): mean 3-D distance over the covered texels, in model units. **Baseline:**
# copying B's neutral face. A second number is restricted to the texels the expression moves by
# more than 1 unit.

# %%
def transfer(src, dst, k=0):
    """Expression k of each identity of src (rolled by one: A != B) onto the identities of dst."""
    a = torch.arange(len(src["g"])).roll(1)
    with torch.no_grad():
        z = CA.expression_code(src["g_exp"][a, k] - src["g"][a], src["t_exp"][a, k] - src["t"][a])
        zg, zt = CA.identity_latents(dst["g"], dst["t"])
        dg, dt = CA.deltas(z, zg, zt)
    return dst["g"] + dg, dst["t"] + dt


def vertex_error(pred, truth, moving=None):
    d = (pred - truth).norm(dim=1) * G_SCALE * MASK
    m = MASK.expand_as(d) if moving is None else MASK * moving
    return float((d * m).sum() / m.sum())


# the same AU pattern on B: re-render B with A's AUs through the engine (ground truth)
def engine_with_aus(ident, aus_pairs, a_idx):
    r, l = aus_pairs
    zero_shape = ident["shape"]
    g = UV.position_map(GEO.add_inner_parts(GEO.face_meshes(r[a_idx], l[a_idx], zero_shape)), TOPO.tris, RASTER)
    t = TEX.compose(ident, RES, aus_right=r[a_idx], aus_left=l[a_idx]).permute(0, 3, 1, 2)
    return g / G_SCALE, t * 2 - 1


A_IDX = np.roll(np.arange(len(TE["g"])), 1)
GT_G, GT_T = engine_with_aus(ID_TE, TE["aus"][0], A_IDX)
PRED_G, PRED_T = transfer(TE, TE, 0)
MOVING = ((GT_G - TE["g"]).norm(dim=1) * G_SCALE > 1.0).float()
XFER = {"transfer": vertex_error(PRED_G, GT_G), "copy_neutral": vertex_error(TE["g"], GT_G),
        "transfer_moving": vertex_error(PRED_G, GT_G, MOVING), "copy_neutral_moving": vertex_error(TE["g"], GT_G, MOVING)}
print("expression transfer onto held-out identities, mean vertex error (model units):",
      {k: round(v, 3) for k, v in XFER.items()})
for k, v in XFER.items():
    report.metric(f"expr_transfer_err_{k}", v)

# %% [markdown]
# ### Driving a generated avatar, from another identity and from a real clip
#
# A real clip drives the avatar through the engine [R]: `facelab.faces` finds the face and its
# 468 landmarks in each frame, `facelab.faces.au_estimate` inverts the AU-to-mesh model to 20
# AU intensities (an estimate), the engine turns them into an expression of a reference
# identity, and the expression encoder maps that to `z_exp`, decoded on the generated avatar.
# The clip is decoded by `facelab.data.read_clip` (PyAV) at 8 frames per second. Without
# `FACELAB_DATA` (and no `clip_path`) the cell is skipped (no check depends on it).

# %%
def drive(zg_n, zt_n, z_exp):
    """Expressive maps of a generated avatar (standardised latents) under expression codes (m, dim)."""
    zg, zt = denorm_lat(zg_n, "g").expand(len(z_exp), -1, -1, -1), denorm_lat(zt_n, "t").expand(len(z_exp), -1, -1, -1)
    with torch.no_grad():
        g, t = CA.vae_g.decode(zg), CA.vae_t.decode(zt).clamp(-1, 1)
        dg, dt = CA.deltas(z_exp, zg, zt)
    return g + dg, (t + dt).clamp(-1, 1)


REF = {k: v[:1] for k, v in TR.items() if torch.is_tensor(v)}             # the reference identity of the engine
REF_IDENT = {k: v[:1] for k, v in ID_TR.items()}


def expression_codes_from_aus(aus):
    """(m, 20) AUs -> (m, dim) expression codes, through the engine on the reference identity."""
    aus = np.asarray(aus, np.float32)
    shape = np.repeat(REF_IDENT["shape"], len(aus), 0)
    g = UV.position_map(GEO.add_inner_parts(GEO.face_meshes(aus, aus, shape)), TOPO.tris, RASTER) / G_SCALE
    ident = {k: np.repeat(v, len(aus), 0) for k, v in REF_IDENT.items()}
    t = TEX.compose(ident, RES, aus_right=aus, aus_left=aus).permute(0, 3, 1, 2) * 2 - 1
    with torch.no_grad():
        return CA.expression_code(g - REF["g"], t - REF["t"])


def aus_from_frames(frames, where="clip"):
    """(m, 20) AU estimates, one per RGB frame (H, W, 3) uint8 (faces detected on every frame)."""
    from facelab.faces import clip_meshes, estimate_aus

    return np.stack([estimate_aus(m[:, :2]) for m in clip_meshes(np.asarray(frames), where=where)])


# %% [markdown]
# Driving the first generated avatar three ways: with the code of the engine's happy AUs, with the
# expression of a training identity, and with the code of no change (the neutral face).

# %%
happy = np.zeros((1, 20), np.float32)
happy[0, [4, 9, 16]] = [2.0, 2.6, 1.0]                     # AU06, AU12, AU25: the engine's happy prototype
ZE_HAPPY = expression_codes_from_aus(happy)
zg0, zt0 = GEN["normal"][0][:1], GEN["normal"][1][:1]
dg_, dt_ = drive(zg0, zt0, ZE_HAPPY)
A_CODE = CA.expression_code(TR["g_exp"][1:2, 0] - TR["g"][1:2], TR["t_exp"][1:2, 0] - TR["t"][1:2]).detach()
dg2, dt2 = drive(zg0, zt0, A_CODE)
g0, t0 = drive(zg0, zt0, CA.expression_code(torch.zeros_like(REF["g"]), torch.zeros_like(REF["t"])).detach())
viz.savefig(viz.image_grid([render(x, y, yaw=15)[0].numpy() for x, y in ((g0, t0), (dg_, dt_), (dg2, dt2))],
                           ["generated, neutral code", "driven: AU6+12+25", f"driven: training id's {EX.ALL_EXPRESSIONS[TR['labels'][1, 0]]}"],
                           ncols=3, size=2.2), OUT, "driven")

# %%
from PIL import Image  # noqa: E402

from facelab.data import read_clip

clip_file, CLIP_AUS, CLIP_SOURCE = None, None, None
if clip_path:
    clip_file = clip_path
else:
    clip_file = next(iter(config.data_files("video", "*.mp4")), None)
if clip_file is None:
    print("skipping the real clip: FACELAB_DATA is not set (and no clip_path given)")
else:
    t_clip = time.time()
    # ~8 frames per second of the clip's start, decoded by facelab.data.read_clip (PyAV)
    frames = list(read_clip(clip_file, fps=8, max_frames=CFG["clip_frames"], audio_rate=None).frames)
    CLIP_SOURCE = f"clip {getattr(clip_file, 'name', clip_file)}"
    if frames:
        CLIP_AUS = aus_from_frames(frames, str(clip_file))
        dg_c, dt_c = drive(zg0, zt0, expression_codes_from_aus(CLIP_AUS))
        shots = [render(dg_c[i:i + 1], dt_c[i:i + 1], yaw=10)[0].numpy() for i in range(len(CLIP_AUS))]
        thumbs = [np.asarray(Image.fromarray(np.asarray(f, np.uint8)).resize((64, 64))) / 255.0 for f in frames]
        print(f"{CLIP_SOURCE}: {len(CLIP_AUS)} frames -> AUs (mean AU12 {CLIP_AUS[:, 9].mean():.2f}, AU25 "
              f"{CLIP_AUS[:, 16].mean():.2f}) -> driven avatar in {time.time() - t_clip:.0f} s")
        viz.savefig(viz.image_grid(thumbs + shots, [f"driver {i}" for i in range(len(frames))]
                                   + [f"avatar {i}" for i in range(len(shots))], ncols=len(shots), size=1.6),
                    OUT, "driven_by_real_faces")
        report.metric("real_frames_driven", len(shots))

# %% [markdown]
# ### Five descriptions, one avatar driven by the real clip
#
# The figure the issue asks for: the avatars generated (normal-map GCTM) from the first five
# held-out descriptions, then five frames of the real clip spread over what was read, and below
# them the first avatar driven by each frame's expression code. The number printed with it is the
# mean displacement of the driven geometry from the same avatar under the neutral code (model
# units over the covered texels): how far the real expressions move the generated face. Skipped,
# with the reason, when no real clip was read.

# %%
import textwrap  # noqa: E402


def square(frame):
    """The centre square of an (H, W, 3) frame."""
    m = min(frame.shape[:2])
    y, x = (frame.shape[0] - m) // 2, (frame.shape[1] - m) // 2
    return frame[y:y + m, x:x + m]


if CLIP_AUS is None:
    print("skipping the five-descriptions figure with a real driver: no real clip was read "
          "(FACELAB_DATA unset or its video/ has no .mp4, and no clip_path)")
else:
    pick = np.unique(np.linspace(0, len(CLIP_AUS) - 1, 5).round().astype(int))
    disp = ((dg_c - g0).norm(dim=1) * G_SCALE * MASK).sum((1, 2)) / MASK.sum()      # per driven frame
    side_px = shots[0].shape[0]
    big = [np.asarray(Image.fromarray(square(np.asarray(frames[j], np.uint8))).resize((side_px, side_px))) / 255.0 for j in pick]
    row_gen = [render(GEN["normal"][2][i:i + 1], GEN["normal"][3][i:i + 1], yaw=15)[0].numpy() for i in FIVE]
    titles = [f"avatar {i + 1}:\n" + "\n".join(textwrap.wrap(CAP_TE[i], 30)) for i in FIVE]
    titles += [f"{CLIP_SOURCE}\nframe {j} (t = {j / 8:.2f} s)" for j in pick]
    titles += [f"avatar 1 driven by frame {j}\nAU12 {CLIP_AUS[j, 9]:.1f}, disp {float(disp[j]):.2f}" for j in pick]
    viz.savefig(viz.image_grid(row_gen + big + [shots[j] for j in pick], titles, ncols=5, size=2.4,
                               suptitle=f"GenCA ({PROFILE}, {DEVICE}): five descriptions; avatar 1 driven by a real clip"),
                OUT, "five_descriptions_real_driver")
    print(f"avatar 1 driven by {len(CLIP_AUS)} real frames: mean displacement from its neutral-code face "
          f"{float(disp.mean()):.2f} units (max {float(disp.max()):.2f}; face ~190 units tall)")
    report.metric("real_clip_driven_disp_units", float(disp.mean()))

# %% [markdown]
# ## 8. Editing
#
# **Global** [S]: a new caption with the geometry latent fixed: the GCTM resamples the texture on
# the same geometry. **Local** [S/R]: RePaint (Lugmayr et al. 2022) in UV space inside a mask.
# The user marks the region to change, `R`; the kept mask is `M = 1 - R`, and after every DDIM
# step the latent outside `R` is replaced by the original avatar's latent noised to the same
# level: $F = (1 - M)\,F_{edit} + M\,F_{gen}$; the decoded texture is composited the same way
# at UV resolution, so texels outside the region stay exactly as generated.

# %% tags=["export"]
import torch


def check_mask(mask, res):
    m = torch.as_tensor(mask, dtype=torch.float32)
    if m.shape != (res, res):
        raise ValueError(f"inpaint mask: expected a ({res}, {res}) UV mask (the UV map resolution), got {tuple(m.shape)}")
    if m.min() < 0 or m.max() > 1:
        raise ValueError("inpaint mask: values must lie in [0, 1] (1 = region to change)")
    return m


def repaint_latent(model, sched, text, z_gen, region_lat, uncond, steps, guidance, control=None, generator=None):
    """DDIM sampling where, after each step, the kept part M = 1 - region takes the generated latent noised to t."""
    from facelab.nn import diffusion as DF

    keep = 1 - region_lat
    eps_model = DF.EpsView(model, sched, "v_prediction")
    model.control = control
    ts = DF.timesteps(sched, steps)
    noise = torch.randn(z_gen.shape, generator=generator)
    ab0 = sched.alphas_cumprod[ts[0]]
    x = ab0.sqrt() * z_gen + (1 - ab0).sqrt() * noise
    for i, t in enumerate(ts):
        t_next = ts[i + 1] if i + 1 < len(ts) else -1
        eps = DF.cfg_eps(eps_model, x, t, text, uncond, guidance)
        x = DF.ddim_step(sched, x, eps, t, t_next)
        ab = sched.alphas_cumprod[t_next] if t_next >= 0 else torch.tensor(1.0)
        known = ab.sqrt() * z_gen + (1 - ab).sqrt() * noise
        x = (1 - keep) * x + keep * known                        # F = (1 - M) F_edit + M F_gen
    return x

# %%
def edit_global(i, new_caption):
    txt = encode_text([DS.check_caption(new_caption)])
    return generate(txt, "normal", seed_=seed + 7, zg_n=GEN["normal"][0][i:i + 1])


def edit_local(i, region_uv, new_caption):
    region = check_mask(region_uv, RES)
    txt = encode_text([DS.check_caption(new_caption)])
    g = GEN["normal"][2][i:i + 1]
    lat_region = (F.adaptive_avg_pool2d(region[None, None], SIDE) > 0.25).float()
    with torch.no_grad():
        z = repaint_latent(GCTM["normal"], SCHED, txt, GEN["normal"][1][i:i + 1], lat_region, NULL_TXT, CFG["ddim"],
                           CFG["cfg"], control=geometry_condition(g, "normal", MEAN_G, MASK),
                           generator=torch.Generator().manual_seed(seed + 9))
    t_edit = decode_texture(z)
    return g, (1 - region) * GEN["normal"][3][i:i + 1] + region * t_edit    # exact outside the region


# %% [markdown]
# Both edits on the first held-out avatar: a global edit to another skin tone (read back by the
# attribute classifier), and a local edit of a forehead band towards another hair colour, where the
# texels outside the band must not move.

# %%
I_EDIT = 0
old_attrs = ATTR_TE[I_EDIT].copy()
new_attrs = old_attrs.copy()
new_attrs[1] = 2 if old_attrs[1] < 2 else 0                          # change the skin tone
NEW_CAP = DS.caption(new_attrs)
_, _, g_glob, t_glob = edit_global(I_EDIT, NEW_CAP)
REGION = torch.zeros(RES, RES)
REGION[int(0.05 * RES):int(0.3 * RES), int(0.2 * RES):int(0.8 * RES)] = 1          # forehead / hair band
HAIR_CAP = DS.caption(np.r_[old_attrs[:2], [2 if old_attrs[2] != 2 else 0], old_attrs[3:]])
g_loc, t_loc = edit_local(I_EDIT, REGION, HAIR_CAP)
t_orig = GEN["normal"][3][I_EDIT:I_EDIT + 1]
outside = float(((t_loc - t_orig).abs() * (1 - REGION)).sum() / ((1 - REGION).sum() * 3))
inside = float(((t_loc - t_orig).abs() * REGION).sum() / (REGION.sum() * 3))
_, p_glob = predict_attrs(render(g_glob, t_glob).permute(0, 3, 1, 2))
print(f"global edit to {NEW_CAP!r}: predicted skin {DS.ATTRIBUTES['skin'][p_glob[0, 1]]} "
      f"(was asked {DS.ATTRIBUTES['skin'][new_attrs[1]]}, original {DS.ATTRIBUTES['skin'][old_attrs[1]]})")
print(f"local edit ({HAIR_CAP!r}) in the forehead band: mean texel change inside {inside:.3f}, outside {outside:.3f}")
report.metric("local_edit_change_inside", inside)
report.metric("local_edit_change_outside", outside)
viz.savefig(viz.image_grid([render(GEN["normal"][2][I_EDIT:I_EDIT + 1], t_orig, yaw=15)[0].numpy(),
                            render(g_glob, t_glob, yaw=15)[0].numpy(), render(g_loc, t_loc, yaw=15)[0].numpy(),
                            show(t_orig[0]), show(t_loc[0])],
                           ["generated", "global edit: skin", "local edit: hair band", "T before", "T after (local)"],
                           ncols=5, size=2.0), OUT, "editing")

# %% [markdown]
# ## 9. The avatar editor, extended
#
# Notebook 06's editor (`facelab.widgets.avatar_editor`) drives any object with `codes`,
# `texture` and `render`. Here the identity codes are the generated latents, the expression
# code comes from the AU sliders through the engine and the expression encoder, and the
# extended widget adds a description box (*generate*), a UV-rectangle *inpaint region* (RePaint
# with the description) and a driving-clip frame slider. The brush paints on the decoded texture.

# %%
class GenAvatar:
    """What the editor needs, on the notebook's models."""

    uv_res = RES

    def __init__(self, i=0):
        self.zg, self.zt = GEN["normal"][0][i:i + 1], GEN["normal"][1][i:i + 1]
        self.t_override = None
        self.clip_aus = CLIP_AUS

    def generate(self, text):
        self.zg, self.zt, _, _ = generate(encode_text([DS.check_caption(text)]), "normal", seed_=seed)
        self.t_override = None

    def inpaint(self, mask, text):
        m = check_mask(mask, RES)
        txt = encode_text([DS.check_caption(text)])
        g = decode_geometry(self.zg)
        lat = (F.adaptive_avg_pool2d(m[None, None], SIDE) > 0.25).float()
        with torch.no_grad():
            z = repaint_latent(GCTM["normal"], SCHED, txt, self.zt, lat, NULL_TXT, CFG["ddim"], CFG["cfg"],
                               control=geometry_condition(g, "normal", MEAN_G, MASK), generator=torch.Generator().manual_seed(seed))
        self.t_override = (1 - m) * self.neutral_texture() + m * decode_texture(z)

    def neutral_texture(self):
        return decode_texture(self.zt) if self.t_override is None else self.t_override

    def codes(self, aus, identity, colour):
        return self.zg, expression_codes_from_aus(np.asarray(aus)[None]), colour

    def texture(self, colour):
        return ((self.neutral_texture()[0] + 1) / 2 * (1 + 0.1 * colour)).clamp(0, 1)

    def render(self, zg, ze, tex, yaw, res):
        zgd, ztd = denorm_lat(zg, "g"), denorm_lat(self.zt, "t")
        with torch.no_grad():
            dg, dt = CA.deltas(ze, zgd, ztd)
            g = CA.vae_g.decode(zgd) + dg
        return render(g, (tex[None] * 2 - 1 + dt).clamp(-1, 1), yaw=yaw, res=res)[0].numpy()


# %% [markdown]
# The widget on the first generated avatar, exercised once as a test would: raising the AU12 slider
# must change the render, a valid description generates a new avatar, an empty one is refused with
# a message in the status line.

# %%
AVATAR = GenAvatar(0)
EDITOR = AE.GenerativeAvatarEditorWidget(AVATAR, size=CFG["render"], description=CAP_TE[0])
before = EDITOR.refresh()
EDITOR.au_sliders["AU12"].value = 4.0
smiling = EDITOR.refresh()
ok_gen = EDITOR.generate(DS.caption_from_attributes({"skin": "dark", "hair": "grey", "age": "older"}))
bad_gen = EDITOR.generate("")
print(f"AU12 slider changes {np.mean(np.abs(smiling.astype(int) - before.astype(int)) > 0):.2f} of the pixels; "
      f"generate ok: {ok_gen}; empty description -> {EDITOR.status.value!r}")
EDITOR

# %% [markdown]
# ## 10. Bad input
#
# One clear message each: an empty or over-long description, a mask of the wrong size, a clip
# without a face, an unknown attribute.

# %%
BLANK_CLIP = [np.full((96, 96, 3), 128, np.uint8)] * 2          # a "clip" of grey frames: no face
for bad in (lambda: edit_global(0, ""), lambda: edit_global(0, "a face " * 30),
            lambda: edit_local(0, torch.zeros(RES + 4, RES), HAIR_CAP), lambda: aus_from_frames(BLANK_CLIP, "blank clip"),
            lambda: DS.caption_from_attributes({"eye_colour": "green"})):
    try:
        bad()
        print("bad input accepted?!")
    except ValueError as e:
        print("bad input ->", e)

# %% [markdown]
# ## 11. Results beside the paper
#
# The paper's text-to-avatar comparison reports CLIP score 17.82, Aesthetic score 4.799 and HPS v2
# 0.1731 for GenCA [S, as quoted in the issue]; its Table 3 ablates the GCTM's condition (none /
# displacement / normal) [S] (the row values are not in our notes, so no paper column there).
# **Our metrics are different ones** (marked ≠): a contrastive text-render score trained here
# stands in for CLIP score, attribute agreement for text alignment, an FD in a classifier's
# feature space for image quality; there is no aesthetic or human-preference model.

# %%
report.metric("text_render_score_normal", ROWS["normal"]["text_render"], paper=17.82)
report.metric("aesthetic_score_not_measured", None, paper=4.799)
report.metric("hps_v2_not_measured", None, paper=0.1731)
report.save()
report.table()

# %% [markdown]
# ### What the ablation shows here
#
# Measured on the smoke profile (CPU, 48 held-out captions × 4 attributes = 192 decisions per row):
#
# | seed | agreement none | displacement | normal | chance | FD none | FD normal |
# |---|---|---|---|---|---|---|
# | 0 | 0.635 | 0.635 | 0.641 | 0.484 | 4.09 | 3.67 |
# | 1 | 0.693 | 0.693 | 0.688 | 0.492 | 23.2 | 17.8 |
# | 2 | 0.646 | 0.672 | 0.672 | 0.460 | 5.73 | 7.86 |
# | 0, larger (`n_train=384, n_test=128, steps=400, caae_steps=400, ctrl_steps=150`; 512 decisions) | 0.650 | 0.654 | 0.652 | 0.462 | 1.13 | 0.59 |
#
# The normal-map row is ahead of the no-condition row on two seeds of three, by −0.005 to +0.026,
# i.e. within one to five decisions out of 192: **no measurable effect**. The reason is in the
# data, not in the sampler: every caption states each attribute the texture carries (skin,
# hair, age), so the geometry adds nothing to what the text already says; only age shows in
# both (`facelab.synth.describe.AGE_SHAPE`), and the attribute classifier reads age from a 32 px
# render at 0.44-0.52 accuracy even on the engine's own faces. The paper's gain comes from
# texture-geometry *consistency* beyond the caption, which this metric cannot see. The FD of
# the renders (a consistency-sensitive quality measure) does drop with a geometry condition on
# seeds 0 and 1 and in the larger run (1.13 -> 0.59 normal, 0.49 displacement), but rises on
# seed 2, so it is no check either. So the difference is recorded in `metrics.json` as the metric
# `agreement_normal_minus_none` for every run, and is **not** a check (asserting a coin flip would
# make CI flaky: `facelab run` fails a run on any False check).

# %% [markdown]
# ### CPU demo (capped; not a reproduction)
#
# Two runs of the `demo` profile on this project's CPU machine (2 cores shared with other jobs, load
# 4-10 during the runs; 1 torch thread), capped to finish in about half an hour, 2026-12-06; seed 0
# below, and seed 1 with `-p seed=1` added:
#
# ```
# FACELAB_DATA=/work/shared/data python -m facelab run 07 --profile demo -p threads=1 -p uv_res=32 \
#     -p n_train=384 -p n_test=96 -p caae_steps=120 -p steps=200 -p ctrl_steps=60 -p lr=0.001 -p clip_frames=12
# ```
#
# **Caps** (demo profile's value in brackets): UV maps 32 px (128), 384 training + 96 held-out
# identities (1024 + 128), CAAE 120 steps (3000), GM and text-only GCTM 200 steps each (6000), 60
# steps per ControlNet condition (2000), learning rate 1e-3 (5e-4), 12 clip frames (24). Kept
# from the demo profile: VAE / UNet widths (64, 128, 128), 4 expressions per identity, expression
# code 32-d, batch 32, DDIM 50 steps with CFG 2.0, 96 px renders, 1500 classifier steps.
# **Wall time 31 min 44 s** for seed 0 (notebook 1889 s: CAAE 197 s, GM 232 s, GCTM 448 s, sampling
# the 96 × 3 avatars 637 s) and 19 min 44 s for seed 1 (a less loaded machine). Dataset:
# `facelab.synth` described identities; the real clip `WDA_KatieHill_000.mp4` (`FACELAB_DATA/video`)
# only drives an avatar.
#
# | metric (held-out, 96 captions) | ours, CPU demo seed 0 | seed 1 | paper (GenCA) |
# |---|---|---|---|
# | text-render score, normal-map GCTM (≠ CLIP score: a contrastive model trained here) | 42.06 | 45.52 | CLIP score 17.82 |
# | Aesthetic score / HPS v2 | not measured | not measured | 4.799 / 0.1731 |
# | attribute agreement, normal-map GCTM (chance) | 0.628 (0.464) | 0.672 (0.457) | — |
# | attribute agreement of the engine's own held-out renders (the ceiling) | 0.773 (0.461) | 0.781 (0.450) | — |
# | expression transfer vertex error (copying the neutral face), model units | 2.32 (9.95) | 2.11 (9.58) | — |
# | CAAE held-out reconstruction: geometry units / texture levels of 255 | 4.97 / 13.3 | 5.42 / 10.0 | — |
# | real clip: 12 frames drive avatar 1, mean displacement from its neutral-code face (face ~190 units) | 9.20 | 9.18 | — |
#
# Table 3's ablation on the same runs (same generated geometries and noise for every row; 96
# captions × 4 attributes = 384 decisions per row; the paper's row values are not in our notes, it
# reports the normal map best [S]):
#
# | seed | GCTM condition | agreement | chance | text-render | FD | age | skin | hair | face width |
# |---|---|---|---|---|---|---|---|---|---|
# | 0 | none | **0.654** | 0.477 | **43.49** | 19.72 | **0.448** | **1.000** | **0.771** | 0.396 |
# | 0 | displacement | 0.641 | 0.472 | 42.29 | **19.16** | 0.427 | 0.990 | 0.740 | **0.406** |
# | 0 | normal | 0.628 | 0.464 | 42.06 | 26.28 | 0.427 | 0.979 | 0.698 | **0.406** |
# | 1 | none | 0.659 | 0.461 | 43.63 | **16.43** | 0.510 | **0.906** | 0.729 | 0.490 |
# | 1 | displacement | 0.659 | 0.459 | 42.91 | 23.14 | 0.500 | 0.854 | **0.760** | **0.521** |
# | 1 | normal | **0.672** | 0.457 | **45.52** | 18.60 | **0.542** | 0.896 | 0.750 | 0.500 |
#
# Here the geometry condition **shows no measurable effect**, as in smoke: the normal map is 0.026
# below no condition on seed 0 (10 of 384 decisions) and 0.013 above it on seed 1 (5 decisions),
# and the FD is higher with the normal map on both seeds (26.3 vs 19.7; 18.6 vs 16.4). The caption names every
# attribute the texture carries, and the two ControlNet branches, which start from zero
# convolutions, got 60 steps. (These runs still recorded the difference as a check,
# `normal_condition_beats_none`, so `facelab run` reported the seed-0 run FAILED on it; it is now the
# metric `agreement_normal_minus_none`.) Every check holds on both seeds. The figure `figures/07_genca/five_descriptions_real_driver.png` (five
# descriptions, avatar 1 driven by the real clip; seed 0) is made from real frames and stays out of git.
# A GPU run of the uncapped demo profile is still to do.

# %% [markdown]
# ## Checks
#
# Measured on smoke over seeds 0-4 × `ATEN_CPU_CAPABILITY` default / avx2 / avx512 (15 runs,
# `env -u FACELAB_DATA python scripts/seed_sweep.py 07 --seeds 0 1 2 3 4 --caps default avx2 avx512`,
# 2026-12-06); both checks held in all 15:
#
# * generated avatars (normal-map GCTM) agree with their held-out captions' attributes more than
#   chance does: agreement 0.583-0.693 vs chance 0.421-0.495, a margin of 0.152-0.212;
# * expression transfer beats copying the neutral face: mean vertex error 2.10-2.49 vs 9.03-10.42
#   model units;
# * recorded, not asserted: `agreement_normal_minus_none` (above): −0.026 to +0.026 over the same
#   15 runs, positive in 10 of them.
#
# That sweep ran on the synth-3 engine. On the current one (synth-4: AU25 parts the lips, the
# negative expressions refitted), seeds 0-4 × default / avx2 (10 runs, 2026-12-07), both checks
# held in all 10: agreement 0.583-0.693 vs chance 0.421-0.495 (margin 0.152-0.214); transfer
# error 1.95-2.22 vs 8.28-9.92 for copying the neutral face; normal minus none −0.031 to +0.021,
# positive in 6 of 10. On synth-8 (session 14: sad, fear and disgust refitted over a wide AU set,
# deeper wrinkle and fold cues; seeds 0-2, `--caps default`, 3 runs, 2026-12-07): both held;
# agreement 0.604-0.688 vs chance 0.485-0.502 (margin 0.102-0.203); transfer error 2.17-2.55 vs
# 10.08-11.17; normal minus none 0.000 to +0.021.

# %%
report.check("generated_attributes_above_chance", ROWS["normal"]["agreement"] > ROWS["normal"]["chance"])
report.metric("agreement_normal_minus_none", ROWS["normal"]["agreement"] - ROWS["none"]["agreement"])
report.check("expression_transfer_beats_copy_neutral", XFER["transfer"] < XFER["copy_neutral"])
report.metric("wall_s_notebook", time.time() - T0)
report.save()
print(f"notebook wall time {time.time() - T0:.0f} s")

# %%
# NBVAL_CHECK_OUTPUT
CHECKS = ["generated_attributes_above_chance", "expression_transfer_beats_copy_neutral"]
report.print_checks(CHECKS)
