"""Class weights and the class-balanced sampler."""
import torch
import pytest

from c2ser.heads.balanced import ClassBalancedSampler, class_weights


def test_class_weights_inverse_frequency():
    w = class_weights([0] * 6 + [1] * 3 + [2] * 1, num_classes=4)
    expected = torch.tensor([1 / 6, 1 / 3, 1.0])
    expected = expected / expected.mean()
    assert torch.allclose(w[:3], expected) and w[3] == 0
    assert torch.allclose(class_weights([0, 0, 1], 2, power=0.0), torch.ones(2))


def test_balanced_sampler_is_balanced_and_deterministic():
    labels = [0] * 900 + [1] * 90 + [2] * 10
    s = ClassBalancedSampler(labels, num_samples=6000, seed=1)
    idx = list(s)
    assert len(idx) == len(s) == 6000
    counts = torch.bincount(torch.tensor([labels[i] for i in idx]), minlength=3).float() / 6000
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.03)
    assert len({i for i in idx if labels[i] == 2}) == 10  # every minority item is drawn
    assert idx == list(ClassBalancedSampler(labels, num_samples=6000, seed=1))
    s.set_epoch(1)
    assert idx != list(s)
    with pytest.raises(ValueError):
        ClassBalancedSampler([])
