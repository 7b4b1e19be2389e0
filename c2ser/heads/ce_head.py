"""Cross-entropy classification baseline on the same conditioning as the Gen-SER head (spec §7).

Pooling over C (attention pooling or masked mean) → 2-layer MLP → logits over each label slot. Same
``loss(cond, cond_mask, labels, class_weights)`` / ``predict(cond, cond_mask, allowed)`` interface.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class CEHeadConfig:
    pooling: str = "attention"   # attention | mean
    hidden: int = 512
    dropout: float = 0.1
    cond_dim: int = 0            # 0 = given by the backbone at build time
    cond_norm: bool = True


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class CEHead(nn.Module):
    def __init__(self, cfg: CEHeadConfig, label_sets: Sequence[Sequence[str]], cond_dim: int | None = None):
        super().__init__()
        cond_dim = cond_dim or cfg.cond_dim
        if not cond_dim:
            raise ValueError("CEHead needs cond_dim (config or argument)")
        if cfg.pooling not in ("attention", "mean"):
            raise ValueError(f"unknown pooling {cfg.pooling!r} (expected attention or mean)")
        self.cfg = cfg
        self.label_sets = [list(s) for s in label_sets]
        self.sizes = [len(s) for s in self.label_sets]
        self.norm = nn.LayerNorm(cond_dim) if cfg.cond_norm else nn.Identity()
        self.attn_score = nn.Linear(cond_dim, 1) if cfg.pooling == "attention" else None
        self.mlp = nn.Sequential(nn.Linear(cond_dim, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.hidden, sum(self.sizes)))

    def logits(self, cond: Tensor, cond_mask: Tensor) -> list[Tensor]:
        """Per-slot logits (B, K_s)."""
        if cond.dim() != 3 or cond_mask.shape != cond.shape[:2]:
            raise ValueError(f"expected cond (B, L, H) and cond_mask (B, L), got {tuple(cond.shape)} "
                             f"and {tuple(cond_mask.shape)}")
        mask = cond_mask.bool()
        if not bool(mask.any(-1).all()):
            raise ValueError("cond_mask has an item with no valid position")
        h = self.norm(cond.float())
        if self.attn_score is None:
            pooled = masked_mean(h, mask)
        else:
            w = self.attn_score(h).squeeze(-1).masked_fill(~mask, -math.inf).softmax(-1)
            pooled = (w.unsqueeze(-1) * h).sum(1)
        return list(self.mlp(pooled).split(self.sizes, dim=-1))

    def loss(self, cond: Tensor, cond_mask: Tensor, labels: Tensor, class_weights=None,
             generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        labels = labels.to(cond.device).reshape(labels.shape[0], len(self.sizes)).long()
        if class_weights is None or isinstance(class_weights, Tensor):
            class_weights = [class_weights] + [None] * (len(self.sizes) - 1)
        total = 0.0
        for s, lg in enumerate(self.logits(cond, cond_mask)):
            w = class_weights[s]
            total = total + F.cross_entropy(lg, labels[:, s], weight=None if w is None else w.to(lg.device),
                                            ignore_index=-1)
        return total, {"ce": total.item(), "loss": total.item()}

    @torch.no_grad()
    def predict(self, cond: Tensor, cond_mask: Tensor, allowed=None, **_unused):
        """(pred_index, scores) like ``GenSERHead.sample``; extra sampler arguments are ignored."""
        if allowed is None or isinstance(allowed, Tensor):
            allowed = [allowed] + [None] * (len(self.sizes) - 1)
        out = []
        for lg, a in zip(self.logits(cond, cond_mask), allowed):
            if a is not None:
                a = a.to(device=lg.device, dtype=torch.bool)
                if not bool(a.any(-1).all()):
                    raise ValueError("allowed-class mask excludes every class for some item")
                lg = lg.masked_fill(~a.expand_as(lg), -math.inf)
            p = lg.softmax(-1)
            out.append((p.argmax(-1), p))
        if len(out) == 1:
            return out[0]
        return [p for p, _ in out], [s for _, s in out]
