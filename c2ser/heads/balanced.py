"""Class-imbalance tools: inverse-frequency class weights and a seeded class-balanced index sampler."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def class_weights(labels: Sequence[int], num_classes: int, power: float = 1.0) -> torch.Tensor:
    """(K,) weights ∝ count^(−power), normalised to mean 1 over the classes present; absent classes get 0."""
    counts = torch.bincount(torch.as_tensor(list(labels), dtype=torch.long), minlength=num_classes).double()
    present = counts > 0
    w = torch.zeros(num_classes, dtype=torch.float64)
    w[present] = counts[present] ** (-power)
    return (w / w[present].mean()).float()


class ClassBalancedSampler(Sampler[int]):
    """Yields ``num_samples`` dataset indices per epoch: a uniformly drawn class, then a uniformly drawn
    item of that class (with replacement). Deterministic for a (seed, epoch); call ``set_epoch`` per epoch."""

    def __init__(self, labels: Sequence[int], num_samples: int | None = None, seed: int = 0):
        labels = torch.as_tensor(list(labels), dtype=torch.long)
        if labels.numel() == 0:
            raise ValueError("ClassBalancedSampler needs at least one labelled item")
        self.groups = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels) if c >= 0]
        self.num_samples = num_samples or labels.numel()
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        cls = torch.randint(len(self.groups), (self.num_samples,), generator=g)
        u = torch.rand(self.num_samples, generator=g, dtype=torch.float64)
        for c, r in zip(cls.tolist(), u.tolist()):
            grp = self.groups[c]
            yield int(grp[min(int(r * len(grp)), len(grp) - 1)])
