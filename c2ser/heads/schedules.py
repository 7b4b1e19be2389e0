"""Mean and standard-deviation schedules of the Gen-SER perturbation path (pure tensor functions).

Path (t = 1 source, t = 0 target): ``x_t = (1 − m(t))·x0 + m(t)·x1 + σ(t)·ε`` with m(0)=0, m(1)=1.
Logistic mean (normalised sigmoid, k steepness, t_c centre), linear mean m(t)=t, and the bridge standard
deviation σ(t) = 2·σmax·sqrt(t(1−t)) (0 at both ends, σmax at t = 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def logistic_mean(t: Tensor, k: float = 10.0, t_c: float = 0.5) -> Tensor:
    s = torch.sigmoid
    lo = s(torch.tensor(-k * t_c, dtype=t.dtype, device=t.device))
    hi = s(torch.tensor(k * (1.0 - t_c), dtype=t.dtype, device=t.device))
    return (s(k * (t - t_c)) - lo) / (hi - lo)


def linear_mean(t: Tensor, k: float = 0.0, t_c: float = 0.0) -> Tensor:
    return t.clone()


def bridge_std(t: Tensor, sigma_max: float = 0.5) -> Tensor:
    return 2.0 * sigma_max * torch.sqrt((t * (1.0 - t)).clamp(min=0.0))


MEANS = {"logistic": logistic_mean, "linear": linear_mean}


@dataclass(frozen=True)
class Schedule:
    """A (mean, std) pair; ``mu(t, x0, x1)`` is the path mean."""

    kind: str = "logistic"
    k: float = 10.0
    t_c: float = 0.5
    sigma_max: float = 0.5

    def __post_init__(self):
        if self.kind not in MEANS:
            raise ValueError(f"unknown mean schedule {self.kind!r} (expected one of {sorted(MEANS)})")

    def mean(self, t: Tensor) -> Tensor:
        return MEANS[self.kind](t, self.k, self.t_c)

    def std(self, t: Tensor) -> Tensor:
        return bridge_std(t, self.sigma_max)

    def mu(self, t: Tensor, x0: Tensor, x1: Tensor) -> Tensor:
        m = self.mean(t).reshape(-1, *([1] * (x0.dim() - 1))) if t.dim() else self.mean(t)
        return (1.0 - m) * x0 + m * x1
