"""Exact-integration bridge sampler (spec gen_ser.md §4): x̂0 is frozen over each step t → s and
``x_s = μ_s(x̂0, x1) + (σ(s)/σ(t))·(x_t − μ_t(x̂0, x1))``. The first ("boot") step starts at σ(1) = 0 and
uses ``x_s = μ_s(x̂0, x1) + σ(s)·z`` (z ~ N(0, I), or z = 0 when ``boot_noise`` is False); the last step
lands at t = 0 where x = x̂0. With ``rho`` ∈ [0, 1] a fraction ρ·σ(s) of fresh noise is re-injected.

Noise comes from ``generator`` (one stream for the whole batch) or from a ``noise`` callable; :class:`ClipNoise`
gives every clip its own stream seeded from its key, so a clip's answer does not depend on its batch.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import torch
from torch import Tensor

from c2ser.heads.schedules import Schedule

Denoiser = Callable[[Tensor, Tensor], Tensor]  # (x_t (B, D), t (B,)) -> x̂0 (B, D)
Noise = Callable[[tuple, torch.dtype], Tensor]  # (shape (B, D), dtype) -> standard normal draws on the CPU


def clip_seed(key: str, seed: int) -> int:
    """A stable 63-bit seed for one clip: blake2b of (sampler seed, key) — not Python's per-process salted hash()."""
    digest = hashlib.blake2b(f"{int(seed)}\x00{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2 ** 63 - 1)


class ClipNoise:
    """Per-clip noise: row i always draws from its own generator seeded by ``clip_seed(keys[i], seed)``, in the
    same order (x1, then the boot z, then re-injected noise), whatever the other rows of the batch are."""

    def __init__(self, keys: Sequence[str], seed: int):
        self.gens = [torch.Generator().manual_seed(clip_seed(str(k), seed)) for k in keys]

    def __call__(self, shape: tuple, dtype: torch.dtype = torch.float32) -> Tensor:
        if shape[0] != len(self.gens):
            raise ValueError(f"noise for {shape[0]} rows requested, but {len(self.gens)} clip keys were given")
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g, dtype=dtype) for g in self.gens])


def exact_step(x_t: Tensor, t: Tensor, s: Tensor, x0_hat: Tensor, x1: Tensor, schedule: Schedule,
               noise: Tensor | None = None, rho: float = 0.0) -> Tensor:
    """One step t → s (σ(t) > 0) of the ODE ``dx/dt = μ_t' + (σ'/σ)(x − μ_t)`` with x̂0 frozen, solved exactly;
    with ``rho`` > 0 and ``noise``, ρ·σ(s) of the deviation is replaced by fresh noise."""
    sig_s, sig_t = schedule.std(s), schedule.std(t)
    eps = (x_t - schedule.mu(t, x0_hat, x1)) / sig_t
    r = rho * sig_s
    x_s = schedule.mu(s, x0_hat, x1) + torch.sqrt(sig_s ** 2 - r ** 2) * eps
    return x_s + r * noise if (rho > 0 and noise is not None) else x_s


def bridge_sample(denoise: Denoiser, x1: Tensor, schedule: Schedule, steps: int = 1,
                  generator: torch.Generator | None = None, boot_noise: bool = True,
                  rho: float = 0.0, noise_fn: Noise | None = None) -> Tensor:
    """Integrate from x1 at t = 1 to t = 0 in ``steps`` uniform steps; returns the final sample x ≈ x̂0.
    Fresh noise comes from ``noise_fn`` when given (e.g. :class:`ClipNoise`), else from ``generator``."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    B = x1.shape[0]
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=x1.dtype, device=x1.device)

    def noise():
        if noise_fn is not None:
            return noise_fn(tuple(x1.shape), x1.dtype).to(x1.device)
        return torch.randn(x1.shape, generator=generator, dtype=x1.dtype, device="cpu").to(x1.device)

    x = x1
    for i in range(steps):
        t, s = grid[i], grid[i + 1]
        x0_hat = denoise(x, t.expand(B))
        if i == 0:
            z = noise() if boot_noise else torch.zeros_like(x1)
            x = schedule.mu(s, x0_hat, x1) + schedule.std(s) * z
        else:
            x = exact_step(x, t, s, x0_hat, x1, schedule, noise() if rho > 0 else None, rho)
    return x
