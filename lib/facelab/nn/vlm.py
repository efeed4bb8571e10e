"""Small building blocks for video-language models that run on a CPU.

* :class:`WordVocab` - a word-level vocabulary built from captions (lower-cased words, with
  "." and "," as tokens), with ``<pad>``, ``<bos>``, ``<eos>`` and ``<unk>``;
* :class:`TinyViT` - a patch-embedding vision transformer returning a grid of patch tokens;
* :class:`TinyCausalLM` - a pre-norm causal transformer LM with the interface of a
  ``transformers`` causal LM that a multimodal model needs: ``get_input_embeddings()``,
  ``forward(inputs_embeds=..., attention_mask=...)`` returning an object with ``.logits``, and
  ``config.hidden_size`` / ``config.vocab_size``; so the same wrapper can drive a real LM;
* :func:`greedy_decode` - batched greedy decoding from a prefix of embeddings, for any LM with
  that interface (no KV cache: the sequences here are short).
"""
from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WordVocab", "TinyViT", "TinyCausalLM", "greedy_decode"]

_TOKEN = re.compile(r"[a-z0-9'-]+|[.,]")


class WordVocab:
    """Word-level vocabulary. ``encode`` lower-cases and splits words and "." / ","; unknown words
    map to ``<unk>``. ``decode`` joins words back into sentences (capitalised after a full stop)."""

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, words: Sequence[str]):
        words = [w for w in words if w not in self.SPECIALS]
        if len(set(words)) != len(words):
            raise ValueError("WordVocab: words must be unique")
        self.itos = list(self.SPECIALS) + list(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @staticmethod
    def split(text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"expected a string, got {type(text).__name__}")
        return _TOKEN.findall(text.lower())

    @classmethod
    def build(cls, texts: Sequence[str], min_count: int = 1) -> "WordVocab":
        counts = Counter(w for t in texts for w in cls.split(t))
        return cls(sorted(w for w, c in counts.items() if c >= min_count))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        ids = [self.stoi.get(w, self.UNK) for w in self.split(text)]
        return ([self.BOS] if bos else []) + ids + ([self.EOS] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        words = []
        for i in ids:
            i = int(i)
            if i == self.EOS:
                break
            if i in (self.PAD, self.BOS):
                continue
            words.append(self.itos[i] if 0 <= i < len(self.itos) else "<unk>")
        out, cap = "", True
        for w in words:
            if w in ".,":
                out += w
                cap = w == "."
                continue
            out += (" " if out else "") + (w[0].upper() + w[1:] if cap and w else w)
            cap = False
        return out


class _Block(nn.Module):
    """Pre-norm transformer block (self-attention + MLP), optional causal / padding masks."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, x, attn_mask=None, key_padding_mask=None):
        h = self.n1(x)
        x = x + self.attn(h, h, h, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False)[0]
        return x + self.mlp(self.n2(x))


class TinyViT(nn.Module):
    """A small ViT: ``patch`` x ``patch`` patch embedding, learned positions, ``depth`` blocks.

    ``conv_stem``: embed patches with a small convolutional stem instead of one linear patch
    projection (Xiao et al. 2021, "Early convolutions help transformers see better"): far fewer
    steps to train from scratch, which a CPU budget needs. ``forward(images)`` takes (B, in_ch, H, W) floats in [0, 1] (normalised as (x - 0.5) / 0.25)
    and returns patch tokens (B, H / patch, W / patch, dim)."""

    def __init__(self, image_size: int = 32, patch: int = 8, dim: int = 64, depth: int = 2, heads: int = 4,
                 in_ch: int = 3, conv_stem: bool = False):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not a multiple of patch {patch}")
        self.image_size, self.patch, self.dim = image_size, patch, dim
        self.grid = image_size // patch
        self.in_ch = in_ch
        if conv_stem:   # two stride-2 3x3 convolutions, then (patch / 4)-sized patches: a ViT that trains faster
            if patch % 4:
                raise ValueError(f"conv_stem needs a patch size divisible by 4, got {patch}")
            self.embed = nn.Sequential(nn.Conv2d(in_ch, dim // 2, 3, 2, 1), nn.GELU(), nn.Conv2d(dim // 2, dim, 3, 2, 1),
                                       nn.GELU(), nn.Conv2d(dim, dim, patch // 4, patch // 4))
        else:
            self.embed = nn.Conv2d(in_ch, dim, patch, patch)
        self.pos = nn.Parameter(torch.randn(1, self.grid * self.grid, dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != self.in_ch or images.shape[-1] != self.image_size:
            raise ValueError(f"TinyViT expects (B, {self.in_ch}, {self.image_size}, {self.image_size}) images, "
                             f"got {tuple(images.shape)}")
        x = self.embed((images - 0.5) / 0.25).flatten(2).transpose(1, 2) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.norm(x).view(len(images), self.grid, self.grid, self.dim)


class TinyCausalLM(nn.Module):
    """A small causal transformer LM with the ``transformers`` interface a multimodal wrapper uses."""

    def __init__(self, vocab_size: int, dim: int = 128, depth: int = 2, heads: int = 4, max_len: int = 512,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.config = SimpleNamespace(hidden_size=dim, vocab_size=vocab_size, max_position_embeddings=max_len)
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.head.weight = self.embed.weight          # tied input / output embeddings
        nn.init.normal_(self.embed.weight, std=0.02)  # GPT-2's scale: initial logits near 0

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, **_):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        L = x.shape[1]
        if L > self.pos.shape[1]:
            raise ValueError(f"sequence of {L} tokens exceeds max_len {self.pos.shape[1]}")
        x = x + self.pos[:, :L]
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool, device=x.device), 1)
        pad = None if attention_mask is None else ~attention_mask.bool()
        if pad is not None:
            # a float mask for both, so that padded keys and the future are treated alike
            causal = torch.zeros(L, L, device=x.device).masked_fill(causal, float("-inf"))
            pad = torch.zeros(pad.shape, device=x.device).masked_fill(pad, float("-inf"))
        for b in self.blocks:
            x = b(x, attn_mask=causal, key_padding_mask=pad)
        return SimpleNamespace(logits=self.head(self.norm(x)))


@torch.no_grad()
def greedy_decode(lm: nn.Module, prefix: torch.Tensor, prefix_mask: torch.Tensor | None, *, bos_id: int,
                  eos_id: int, max_new_tokens: int = 64,
                  embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  use_cache: bool = False) -> list[list[int]]:
    """Greedy continuation of a batch of embedding prefixes (B, L, d) (left-padded: ``prefix_mask``
    False on the left). Starts from ``bos_id``; stops each row at ``eos_id``. Returns token ids.

    ``use_cache=True`` (a transformers LM) feeds the prefix once and then one token per step with
    its key/value cache, instead of the whole sequence again each step; the tokens are the same."""
    embed = embed or lm.get_input_embeddings()
    B = prefix.shape[0]
    mask = torch.ones(prefix.shape[:2], dtype=torch.bool, device=prefix.device) if prefix_mask is None \
        else prefix_mask.bool()
    tok = torch.full((B, 1), bos_id, dtype=torch.long, device=prefix.device)
    x = torch.cat([prefix, embed(tok).to(prefix.dtype)], 1)
    mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.bool, device=prefix.device)], 1)
    out = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=prefix.device)
    past, step_in = None, x
    for _ in range(max_new_tokens):
        if use_cache:
            res = lm(inputs_embeds=step_in, attention_mask=mask.long(), past_key_values=past, use_cache=True)
            past = res.past_key_values
        else:
            res = lm(inputs_embeds=x, attention_mask=mask.long())
        nxt = res.logits[:, -1].float().argmax(-1)
        for b in range(B):
            if not done[b]:
                if int(nxt[b]) == eos_id:
                    done[b] = True
                else:
                    out[b].append(int(nxt[b]))
        if bool(done.all()):
            break
        step_in = embed(nxt[:, None]).to(x.dtype)
        x = x if use_cache else torch.cat([x, step_in], 1)
        mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.bool, device=prefix.device)], 1)
    return out


def caption_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy where ``labels`` != -100 (labels aligned with the inputs)."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1),
                           ignore_index=-100)


__all__.append("caption_loss")
