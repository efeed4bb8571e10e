import numpy as np
import pytest

from facelab import assets

ok, why = assets.available("sentence_encoder")
pytestmark = pytest.mark.skipif(not ok, reason=f"sentence encoder asset unavailable: {why}")


def test_shapes_mask_and_normalised_pooling():
    from facelab.nn import text

    emb = text.encode(["a happy face", "a sad face", ""], max_length=12, cache=False)
    assert emb.tokens.shape == (3, 12, text.DIM) and emb.mask.shape == (3, 12) and emb.pooled.shape == (3, text.DIM)
    assert emb.mask[0].sum() == 5 and emb.mask[2].sum() == 2          # [CLS] a happy face [SEP]; [CLS] [SEP]
    assert np.allclose(np.linalg.norm(emb.pooled, axis=1), 1.0, atol=1e-5)


def test_meaning_is_encoded_and_duplicates_and_cache_agree():
    from facelab.nn import text

    emb = text.encode(["a smiling happy face", "a joyful grinning person", "a car parked on the street",
                       "a smiling happy face"], cache=True)
    sim = emb.pooled @ emb.pooled.T
    assert sim[0, 1] > sim[0, 2] + 0.1
    assert np.array_equal(emb.tokens[0], emb.tokens[3])
    again = text.encode(["a smiling happy face"], cache=True)
    assert np.allclose(again.tokens[0], emb.tokens[0])


def test_bad_input():
    from facelab.nn import text

    with pytest.raises(TypeError, match="list of strings"):
        text.encode("one string")
    with pytest.raises(ValueError, match="max_length"):
        text.encode(["x"], max_length=1)
