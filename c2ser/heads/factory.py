"""``HeadConfig`` and ``build_head``: pick the output head (``kind: gen_ser | ce``) from configuration."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from torch import nn

from c2ser.heads.ce_head import CEHead, CEHeadConfig
from c2ser.heads.gen_ser import GenSERConfig, GenSERHead


@dataclass
class HeadConfig:
    kind: str = "gen_ser"        # gen_ser | ce
    gen_ser: GenSERConfig = field(default_factory=GenSERConfig)
    ce: CEHeadConfig = field(default_factory=CEHeadConfig)


HEADS = {
    "gen_ser": lambda cfg, label_sets, cond_dim: GenSERHead(cfg.gen_ser, label_sets, cond_dim),
    "ce": lambda cfg, label_sets, cond_dim: CEHead(cfg.ce, label_sets, cond_dim),
}


def build_head(cfg: HeadConfig, labels: Sequence[str] | Sequence[Sequence[str]], cond_dim: int) -> nn.Module:
    """``labels``: one label list (single task) or a list of label lists (one per slot, e.g. emotion, gender)."""
    if cfg.kind not in HEADS:
        raise ValueError(f"unknown head kind {cfg.kind!r} (expected one of {sorted(HEADS)})")
    label_sets = [list(labels)] if labels and isinstance(labels[0], str) else [list(s) for s in labels]
    return HEADS[cfg.kind](cfg, label_sets, cond_dim)
