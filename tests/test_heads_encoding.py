"""Taxonomy encodings: equal norms, distinctness, the spec's max-cosine table, orthogonal tones, slots."""
import math

import numpy as np
import pytest
import torch

from c2ser.heads.encoding import (TaxonomyEncoding, masked_scores, max_inter_class_cosine, sinusoidal_codes,
                                  tone_codes)


def numpy_codes(K, D, s, base=10000.0):  # independent reference implementation
    e = np.zeros((K, D))
    for k in range(K):
        for i in range(D // 2):
            w = base ** (-2 * i / D)
            e[k, 2 * i], e[k, 2 * i + 1] = math.sin(s * k * w), math.cos(s * k * w)
    return e


def test_sinusoidal_codes_match_reference_equal_norm_distinct():
    c = sinusoidal_codes(9, 256, 1000.0)
    assert np.allclose(c.numpy(), numpy_codes(9, 256, 1000.0), atol=1e-5)
    assert torch.allclose(c.norm(dim=-1), torch.full((9,), math.sqrt(128.0)), atol=1e-4)
    assert torch.cdist(c, c).add(torch.eye(9) * 1e9).min() > 1.0


@pytest.mark.parametrize("D,s,expected", [(256, 1000.0, 0.193), (256, 1.0, 0.972), (256, 100.0, 0.456),
                                          (128, 1000.0, 0.159), (128, 10.0, 0.669)])
def test_max_inter_class_cosine_matches_spec_table(D, s, expected):
    assert max_inter_class_cosine(sinusoidal_codes(9, D, s)) == pytest.approx(expected, abs=1e-3)


def test_tone_codes_are_orthogonal_equal_norm():
    c = tone_codes(7, 256).double()
    gram = c @ c.T
    assert torch.allclose(gram, torch.eye(7, dtype=torch.float64) * 128.0, atol=1e-3)
    with pytest.raises(ValueError):
        tone_codes(128, 256)


def test_multi_slot_encode_split_and_decide():
    enc = TaxonomyEncoding([["neutral", "happy", "sad"], ["male", "female"]], dim=16, scale=1000.0)
    labels = torch.tensor([[0, 1], [2, -1]])
    x = enc.encode(labels)
    assert x.shape == (2, 32)
    assert torch.allclose(x[0, :16], enc.codes[0][0]) and torch.allclose(x[0, 16:], enc.codes[1][1])
    assert torch.all(x[1, 16:] == 0)  # missing slot
    assert enc.slot_mask(labels)[1].tolist() == [1.0] * 16 + [0.0] * 16
    (p_emo, s_emo), (p_gen, s_gen) = enc.decide(enc.encode(torch.tensor([[2, 0], [1, 1]])))
    assert p_emo.tolist() == [2, 1] and p_gen.tolist() == [0, 1]
    assert torch.allclose(s_emo.sum(-1), torch.ones(2))


def test_masked_scores_respects_allowed_classes():
    codes = sinusoidal_codes(4, 32)
    x = codes[[3, 3]]
    allowed = torch.tensor([[True, True, True, True], [True, True, False, False]])
    pred, scores = masked_scores(x, codes, allowed, tau=0.1)
    assert pred[0] == 3 and pred[1] in (0, 1)
    assert scores[1, 2:].sum() == 0
    with pytest.raises(ValueError, match="excludes every class"):
        masked_scores(x, codes, torch.zeros(4, dtype=torch.bool), 0.1)
