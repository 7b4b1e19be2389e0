"""Taxonomy encodings: fixed continuous codes for discrete label sets (the Gen-SER terminal points).

``sinusoidal_codes`` applies a transformer-style sinusoid to a class "position" ``p_k = offset + scale*k``:
``e_k[2i] = sin(p_k w_i)``, ``e_k[2i+1] = cos(p_k w_i)``, ``w_i = base^(-2i/D)``; every code has norm² D/2.
``tone_codes`` is the exactly orthogonal alternative ``e_k[n] = sin(2π f_k n / D)`` with ``f_k = k + 1``.

``TaxonomyEncoding`` holds one code table per *slot* (e.g. emotion, gender); a sample's code is the
concatenation of its per-slot codes and decisions are taken per slot by cosine similarity.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def sinusoidal_codes(num_classes: int, dim: int = 256, scale: float = 1000.0, base: float = 10000.0,
                     offset: float = 0.0) -> Tensor:
    """(K, D) float32 sinusoidal taxonomy codes; distinct and of equal norm sqrt(D/2)."""
    if dim % 2:
        raise ValueError(f"sinusoidal code dim must be even, got {dim}")
    pos = offset + scale * torch.arange(num_classes, dtype=torch.float64)
    omega = base ** (-2.0 * torch.arange(dim // 2, dtype=torch.float64) / dim)
    ang = pos[:, None] * omega[None, :]
    codes = torch.stack([torch.sin(ang), torch.cos(ang)], dim=-1).reshape(num_classes, dim)
    return codes.float()


def tone_codes(num_classes: int, dim: int = 256) -> Tensor:
    """(K, D) exactly orthogonal tone codes ``sin(2π (k+1) n / D)``; needs K < D/2."""
    if num_classes >= dim // 2:
        raise ValueError(f"tone codes need fewer than D/2={dim // 2} classes, got {num_classes}")
    n = torch.arange(dim, dtype=torch.float64)
    f = torch.arange(1, num_classes + 1, dtype=torch.float64)
    return torch.sin(2 * math.pi * f[:, None] * n[None, :] / dim).float()


CODE_KINDS = {"sinusoidal": sinusoidal_codes, "tones": lambda k, dim, **_: tone_codes(k, dim)}


def max_inter_class_cosine(codes: Tensor) -> float:
    """Largest cosine similarity between two different codes."""
    c = F.normalize(codes.double(), dim=-1)
    sim = c @ c.T
    sim.fill_diagonal_(-math.inf)
    return float(sim.max())


def masked_scores(x: Tensor, codes: Tensor, allowed: Tensor | None, tau: float) -> tuple[Tensor, Tensor]:
    """Decision by cosine similarity: (argmax index (B,), softmax(cos/τ) over allowed classes (B, K))."""
    cos = F.normalize(x.float(), dim=-1) @ F.normalize(codes.float(), dim=-1).T
    logits = cos / tau
    if allowed is not None:
        allowed = allowed.to(device=x.device, dtype=torch.bool)
        if not bool(allowed.any(-1).all()):
            raise ValueError("allowed-class mask excludes every class for some item")
        logits = logits.masked_fill(~allowed.expand_as(logits), -math.inf)
    scores = logits.softmax(-1)
    return scores.argmax(-1), scores


class TaxonomyEncoding:
    """Fixed codes for one or more label slots; ``dim`` is the per-slot code size."""

    def __init__(self, label_sets: Sequence[Sequence[str]], dim: int = 256, scale: float = 1000.0,
                 base: float = 10000.0, offset: float = 0.0, kind: str = "sinusoidal"):
        if kind not in CODE_KINDS:
            raise ValueError(f"unknown code kind {kind!r} (expected one of {sorted(CODE_KINDS)})")
        if not label_sets or any(len(s) < 2 for s in label_sets):
            raise ValueError("each label slot needs at least two labels")
        self.label_sets = [list(s) for s in label_sets]
        self.dim = dim
        self.codes = [CODE_KINDS[kind](len(s), dim=dim, scale=scale, base=base, offset=offset)
                      for s in self.label_sets]

    @property
    def num_slots(self) -> int:
        return len(self.label_sets)

    @property
    def total_dim(self) -> int:
        return self.dim * self.num_slots

    def encode(self, labels: Tensor) -> Tensor:
        """(B, S) class indices (−1 = missing, coded as zeros) → (B, S·D) concatenated codes."""
        labels = labels.reshape(labels.shape[0], self.num_slots)
        parts = []
        for s, codes in enumerate(self.codes):
            codes = codes.to(labels.device)
            idx = labels[:, s]
            parts.append(codes[idx.clamp(min=0)] * (idx >= 0).unsqueeze(-1).to(codes.dtype))
        return torch.cat(parts, dim=-1)

    def split(self, x: Tensor) -> list[Tensor]:
        """(B, S·D) → per-slot (B, D) views."""
        return list(x.split(self.dim, dim=-1))

    def slot_mask(self, labels: Tensor) -> Tensor:
        """(B, S·D) float mask: 1 on the dimensions of slots whose label is present."""
        labels = labels.reshape(labels.shape[0], self.num_slots)
        return (labels >= 0).float().repeat_interleave(self.dim, dim=1)

    def decide(self, x: Tensor, allowed=None, tau: float = 0.1) -> list[tuple[Tensor, Tensor]]:
        """Per-slot (pred (B,), scores (B, K_s)); ``allowed`` is one mask (single slot) or one per slot."""
        if allowed is None or isinstance(allowed, Tensor):
            allowed = [allowed] + [None] * (self.num_slots - 1)
        return [masked_scores(xs, codes.to(x.device), a, tau)
                for xs, codes, a in zip(self.split(x), self.codes, allowed)]
