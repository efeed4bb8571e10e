"""facelab.nn.vlm: vocabulary round trip, ViT / causal LM shapes, causality, greedy decoding."""
from __future__ import annotations

import pytest
import torch

from facelab.nn.vlm import TinyCausalLM, TinyViT, WordVocab, caption_loss, greedy_decode


def test_vocab_round_trip_and_unknown_words():
    v = WordVocab.build(["At the beginning, the person smiles.", "Towards the end, the person frowns."])
    ids = v.encode("At the beginning, the person frowns.", bos=True, eos=True)
    assert ids[0] == v.BOS and ids[-1] == v.EOS
    assert v.decode(ids) == "At the beginning, the person frowns."
    assert v.encode("the zebra")[1] == v.UNK


@pytest.mark.parametrize("conv_stem", [False, True])
def test_vit_shapes_and_input_check(conv_stem):
    vit = TinyViT(32, 8, 16, 1, heads=2, conv_stem=conv_stem)
    assert vit(torch.rand(3, 3, 32, 32)).shape == (3, 4, 4, 16)
    with pytest.raises(ValueError, match="expects"):
        vit(torch.rand(3, 3, 24, 24))


def test_causal_lm_is_causal_and_masks_padding():
    torch.manual_seed(0)
    lm = TinyCausalLM(20, dim=16, depth=2, heads=2, max_len=32).eval()
    x = torch.randint(0, 20, (2, 10))
    a = lm(input_ids=x).logits
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 1) % 20            # changing the future leaves the past alone
    b = lm(input_ids=y).logits
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-5) and not torch.allclose(a[:, 6:], b[:, 6:])
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[:, 2] = 0                              # a masked key changes later positions only
    c = lm(input_ids=x, attention_mask=mask).logits
    assert torch.allclose(a[:, :2], c[:, :2], atol=1e-5) and torch.isfinite(c).all()


def test_caption_loss_ignores_unlabelled_positions_and_decoding_learns_a_sequence():
    torch.manual_seed(0)
    lm = TinyCausalLM(8, dim=32, depth=1, heads=2, max_len=16)
    seq = torch.tensor([[1, 4, 5, 6, 2]])       # <bos> 4 5 6 <eos>
    labels = seq.clone()
    labels[0, 0] = -100
    opt = torch.optim.Adam(lm.parameters(), lr=1e-2)
    for _ in range(60):
        loss = caption_loss(lm(input_ids=seq).logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
    out = greedy_decode(lm.eval(), torch.zeros(1, 0, 32), None, bos_id=1, eos_id=2, max_new_tokens=6)
    assert out == [[4, 5, 6]]


def test_greedy_decode_with_kv_cache_gives_the_uncached_tokens():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    lm = transformers.LlamaForCausalLM(cfg).eval()
    prefix = torch.randn(3, 7, 32)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False                                   # a padded instruction inside the prefix
    plain = greedy_decode(lm, prefix, mask, bos_id=1, eos_id=2, max_new_tokens=10)
    cached = greedy_decode(lm, prefix, mask, bos_id=1, eos_id=2, max_new_tokens=10, use_cache=True)
    assert cached == plain and sum(map(len, plain)) > 0
