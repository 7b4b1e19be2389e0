"""Gen-SER head: a target-matching bridge model that generates a label code from conditioning C.

Training (spec gen_ser.md §1, §6): x0 = code of the label, x1 ~ N(0, I), t ~ U(0, 1) replaced by 1 with
probability ``p_t1``, ``x_t = μ_t(x0, x1) + σ(t)·ε``; loss = ‖D(x_t, t, C) − x0‖² (+ λ·CE on cos(x̂0, E)/τ).
Inference: the exact-integration bridge sampler (``bridge.py``), then cosine similarity to the class codes.
Sampling noise is drawn per clip: clip i starts from a generator seeded by its key and ``cfg.seed``
(``bridge.ClipNoise``), so its answer is the same alone, in any batch, in any order, and after a resumed run.
Callers pass ``keys`` (manifest keys; a file's stem for files); without keys a clip's position in the call
stands in for its key (then answers depend on the batching). An explicit ``generator`` draws one stream for the
whole batch.

The denoiser D is a small transformer over x_t split into tokens (256 → 8×32): time embedding → adaLN-Zero
modulating self-attention and FFN, plain pre-norm cross-attention to Linear(cond_dim→d)(C) with a
key-padding mask. Input: ``cond`` (B, L, H) hidden states and ``cond_mask`` (B, L) True = valid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from c2ser.heads.bridge import ClipNoise, bridge_sample
from c2ser.heads.encoding import TaxonomyEncoding
from c2ser.heads.schedules import Schedule


@dataclass
class GenSERConfig:
    code_dim: int = 256          # per-slot code size D
    code_kind: str = "sinusoidal"  # sinusoidal | tones
    code_scale: float = 1000.0
    code_base: float = 10000.0
    token_dim: int = 32          # x_t is split into code_dim*slots/token_dim tokens
    d_model: int = 512
    layers: int = 4
    heads: int = 8
    ffn: int = 2048
    dropout: float = 0.0
    cond_dim: int = 0            # 0 = given by the backbone at build time
    cond_norm: bool = True       # LayerNorm on C before the projection (LLM states have large outliers)
    schedule: str = "logistic"   # logistic | linear
    k: float = 10.0
    t_c: float = 0.5
    sigma_max: float = 0.5
    p_t1: float = 0.15
    ce_weight: float = 0.1       # λ; 0 = faithful target matching only
    tau: float = 0.1
    steps: int = 1               # default sampling steps
    boot_noise: bool = True      # z ~ N(0, I) in the boot step (False: z = 0)
    seed: int = 0                # sampler seed: clip noise = f(seed, clip key) when no generator is given


def timestep_embedding(t: Tensor, dim: int, scale: float = 1000.0) -> Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    ang = scale * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DenoiserBlock(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm_x = nn.LayerNorm(d)
        self.cross_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, d))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, temb: Tensor, cond: Tensor, pad: Tensor) -> Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(temb).chunk(6, dim=-1)
        h = modulate(self.norm1(x), sh1, sc1)
        x = x + g1.unsqueeze(1) * self.self_attn(h, h, h, need_weights=False)[0]
        h = self.norm_x(x)
        x = x + self.cross_attn(h, cond, cond, key_padding_mask=pad, need_weights=False)[0]
        h = modulate(self.norm2(x), sh2, sc2)
        return x + g2.unsqueeze(1) * self.ffn(h)


class GenSERHead(nn.Module):
    """Generative SER head over one or more label slots (``label_sets``)."""

    def __init__(self, cfg: GenSERConfig, label_sets: Sequence[Sequence[str]], cond_dim: int | None = None):
        super().__init__()
        cond_dim = cond_dim or cfg.cond_dim
        if not cond_dim:
            raise ValueError("GenSERHead needs cond_dim (config or argument)")
        self.cfg = cfg
        self.encoding = TaxonomyEncoding(label_sets, cfg.code_dim, cfg.code_scale, cfg.code_base,
                                         kind=cfg.code_kind)
        total = self.encoding.total_dim
        if total % cfg.token_dim:
            raise ValueError(f"code size {total} is not a multiple of token_dim {cfg.token_dim}")
        self.n_tokens = total // cfg.token_dim
        self.schedule = Schedule(cfg.schedule, cfg.k, cfg.t_c, cfg.sigma_max)
        for s, codes in enumerate(self.encoding.codes):
            self.register_buffer(f"codes_{s}", codes, persistent=False)
        d = cfg.d_model
        self.in_proj = nn.Linear(cfg.token_dim, d)
        self.pos = nn.Parameter(torch.randn(1, self.n_tokens, d) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.cond_norm = nn.LayerNorm(cond_dim) if cfg.cond_norm else nn.Identity()
        self.cond_proj = nn.Linear(cond_dim, d)
        self.blocks = nn.ModuleList(DenoiserBlock(d, cfg.heads, cfg.ffn, cfg.dropout) for _ in range(cfg.layers))
        self.out_norm = nn.LayerNorm(d)
        self.out_proj = nn.Linear(d, cfg.token_dim)

    @property
    def label_sets(self) -> list[list[str]]:
        return self.encoding.label_sets

    def code_tables(self) -> list[Tensor]:
        return [getattr(self, f"codes_{s}") for s in range(self.encoding.num_slots)]

    def encode_cond(self, cond: Tensor, cond_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Project C once (re-used by every sampling step); returns (projected C, key-padding mask)."""
        if cond.dim() != 3 or cond_mask.shape != cond.shape[:2]:
            raise ValueError(f"expected cond (B, L, H) and cond_mask (B, L), got {tuple(cond.shape)} "
                             f"and {tuple(cond_mask.shape)}")
        cond_mask = cond_mask.bool()
        if not bool(cond_mask.any(-1).all()):
            raise ValueError("cond_mask has an item with no valid position")
        return self.cond_proj(self.cond_norm(cond.float())), ~cond_mask

    def denoise(self, x_t: Tensor, t: Tensor, cond_proj: Tensor, pad: Tensor) -> Tensor:
        """x̂0 = D(x_t, t, C) for (B, S·D) x_t and (B,) t."""
        B = x_t.shape[0]
        h = self.in_proj(x_t.reshape(B, self.n_tokens, -1)) + self.pos
        temb = self.time_mlp(timestep_embedding(t, self.cfg.d_model))
        for block in self.blocks:
            h = block(h, temb, cond_proj, pad)
        return self.out_proj(self.out_norm(h)).reshape(B, -1)

    def _labels(self, labels: Tensor) -> Tensor:
        return labels.reshape(labels.shape[0], self.encoding.num_slots).long()

    def loss(self, cond: Tensor, cond_mask: Tensor, labels: Tensor, class_weights=None,
             generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        """Target-matching MSE (+ λ·CE). ``labels``: (B,) or (B, S) indices, −1 = slot missing.
        ``class_weights`` (one (K,) tensor, or one per slot) reweights the CE term only."""
        cfg = self.cfg
        cp, pad = self.encode_cond(cond, cond_mask)
        labels = self._labels(labels.to(cond.device))
        x0 = self.encoding.encode(labels).to(cp.dtype)
        B, dev = x0.shape[0], x0.device

        def rand(*shape):
            return torch.rand(*shape, generator=generator).to(dev)
        t = rand(B)
        t = torch.where(rand(B) < cfg.p_t1, torch.ones_like(t), t)
        x1 = torch.randn(x0.shape, generator=generator).to(dev)
        eps = torch.randn(x0.shape, generator=generator).to(dev)
        x_t = self.schedule.mu(t, x0, x1) + self.schedule.std(t)[:, None] * eps
        x0_hat = self.denoise(x_t, t, cp, pad)
        dim_mask = self.encoding.slot_mask(labels).to(dev)
        mse = ((x0_hat - x0) ** 2 * dim_mask).sum() / dim_mask.sum().clamp(min=1)
        stats = {"mse": mse.item()}
        total = mse
        if cfg.ce_weight > 0:
            if class_weights is None or isinstance(class_weights, Tensor):
                class_weights = [class_weights] + [None] * (self.encoding.num_slots - 1)
            ce = 0.0
            for s, (xs, codes) in enumerate(zip(self.encoding.split(x0_hat), self.code_tables())):
                logits = F.normalize(xs, dim=-1) @ F.normalize(codes, dim=-1).T / cfg.tau
                w = class_weights[s]
                ce = ce + F.cross_entropy(logits, labels[:, s], weight=None if w is None else w.to(dev),
                                          ignore_index=-1)
            stats["ce"] = ce.item()
            total = total + cfg.ce_weight * ce
        stats["loss"] = total.item()
        return total, stats

    @torch.no_grad()
    def generate(self, cond: Tensor, cond_mask: Tensor, steps: int | None = None,
                 generator: torch.Generator | None = None, boot_noise: bool | None = None,
                 rho: float = 0.0, keys: Sequence[str] | None = None) -> Tensor:
        """The generated terminal sample x̂ (B, S·D).
        ``keys``: one id per clip, seeding that clip's noise (module docstring)."""
        cp, pad = self.encode_cond(cond, cond_mask)
        B, shape = cp.shape[0], (cp.shape[0], self.encoding.total_dim)
        noise_fn = None
        if generator is None:
            if keys is not None and len(keys) != B:
                raise ValueError(f"got {len(keys)} clip keys for a batch of {B}")
            noise_fn = ClipNoise([str(i) for i in range(B)] if keys is None else keys, self.cfg.seed)
            x1 = noise_fn(shape)
        else:
            x1 = torch.randn(shape, generator=generator)
        return bridge_sample(lambda x, t: self.denoise(x, t, cp, pad), x1.to(cp.device), self.schedule,
                             steps or self.cfg.steps, generator,
                             self.cfg.boot_noise if boot_noise is None else boot_noise, rho, noise_fn)

    @torch.no_grad()
    def sample(self, cond: Tensor, cond_mask: Tensor, steps: int | None = None,
               generator: torch.Generator | None = None, allowed=None, boot_noise: bool | None = None,
               rho: float = 0.0, keys: Sequence[str] | None = None):
        """(pred_index, scores): single slot → (B,), (B, K); several slots → lists of those per slot.
        ``allowed``: (K,) or (B, K) bool mask of permitted classes (one per slot for several slots).
        ``keys``: one id per clip (its manifest key): the clip's noise, hence its answer, depends only on it."""
        x = self.generate(cond, cond_mask, steps, generator, boot_noise, rho, keys)
        out = self.encoding.decide(x, allowed, self.cfg.tau)
        if self.encoding.num_slots == 1:
            return out[0]
        return [p for p, _ in out], [s for _, s in out]

    predict = sample
