"""Emotion2Vec-S (= emotion2vec / data2vec 2.0 audio encoder) in plain PyTorch, eval mode, SDPA attention.

    wav (B, N) 16 kHz ─ 7 conv layers (stride 320, fp32 channel LayerNorm, GELU) ─ (B, 512, T)
      ─ LayerNorm + Linear → D ─ + conv positional encoding (5 grouped convs, masked per layer)
      ─ prepend 10 learned extra tokens ─ LayerNorm ─ prenet blocks ─ main blocks (post-LN, ALiBi bias with a
        learned per-head scale clamped ≥ 0, padded keys masked) ─ frames x = h[:, 10:], tokens = h[:, :10]
    T = floor((N − 400) / 320) + 1 frames at 50 Hz.

Module and parameter names equal the official checkpoint's keys (``modality_encoders.AUDIO.*``, ``blocks.*``),
so loading is a strict ``load_state_dict`` (see :mod:`c2ser.encoders.emotion2vec_loading`).

Batches with padding give the same frames as one clip at a time: the positional convs read only valid frames
(their input is re-masked before each of the 5 convs) and attention never sees padded keys.

Utterance features (``mode``): ``official`` = the first 10 frames (the released C2SER behaviour),
``tokens`` = the 10 learned extra-token outputs, ``mean`` = mean of the valid frames (1 × D).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MODES = ("official", "tokens", "mean")


@dataclass
class Emotion2VecConfig:
    embed_dim: int = 768
    depth: int = 8                     # main blocks
    prenet_depth: int = 4              # context-encoder blocks
    num_heads: int = 12
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-5
    num_extra_tokens: int = 10
    conv_channels: int = 512
    conv_spec: tuple = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))   # (kernel, stride)
    conv_pos_width: int = 95
    conv_pos_groups: int = 16
    conv_pos_depth: int = 5
    alibi_per_layer: bool = False      # learned_alibi_scale_per_layer
    normalize: bool = False            # layer-norm the waveform (emotion2vec pre-training; C2SER did not)

    @property
    def pos_kernel(self) -> int:
        return max(3, self.conv_pos_width // self.conv_pos_depth)

    @property
    def receptive_field(self) -> int:
        rf, jump = 1, 1
        for k, s in self.conv_spec:
            rf, jump = rf + (k - 1) * jump, jump * s
        return rf

    @property
    def hop(self) -> int:
        return math.prod(s for _, s in self.conv_spec)

    def num_frames(self, n_samples: int) -> int:
        return max(0, (n_samples - self.receptive_field) // self.hop + 1)


class Transpose(nn.Module):
    def forward(self, x):
        return x.transpose(-2, -1)


class Fp32LayerNorm(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps).type_as(x)


class _Holder(nn.Module):
    """An empty module used to reproduce the official key hierarchy (``local_encoder.conv_layers`` …)."""


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=bias)
        return self.proj(a.to(x.dtype).transpose(1, 2).reshape(B, L, D))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class AltBlock(nn.Module):
    """Post-LN block: x = norm1(x + attn(x)); x = norm2(x + mlp(x))."""

    def __init__(self, cfg: Emotion2VecConfig):
        super().__init__()
        d = cfg.embed_dim
        self.norm1, self.norm2 = nn.LayerNorm(d, eps=cfg.norm_eps), nn.LayerNorm(d, eps=cfg.norm_eps)
        self.attn = Attention(d, cfg.num_heads)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio))

    def forward(self, x, bias):
        x = self.norm1(x + self.attn(x, bias))
        return self.norm2(x + self.mlp(x))


def alibi_slopes(n: int) -> list[float]:
    """ALiBi head slopes (Press et al.), including the interleaving for non-powers of two."""
    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + power_of_2(2 * closest)[0::2][: n - closest]


class AudioModalityEncoder(nn.Module):
    """``modality_encoders.AUDIO``: feature extractor, projection, positional convs, extra tokens, prenet."""

    def __init__(self, cfg: Emotion2VecConfig):
        super().__init__()
        c, d = cfg.conv_channels, cfg.embed_dim
        self.local_encoder = _Holder()
        layers, in_ch = [], 1
        for k, s in cfg.conv_spec:
            layers.append(nn.Sequential(nn.Conv1d(in_ch, c, k, stride=s, bias=False), nn.Dropout(0.0),
                                        nn.Sequential(Transpose(), Fp32LayerNorm(c, eps=1e-5), Transpose()),
                                        nn.GELU()))
            in_ch = c
        self.local_encoder.conv_layers = nn.ModuleList(layers)
        self.project_features = nn.Sequential(Transpose(), nn.LayerNorm(c, eps=1e-5), nn.Linear(c, d))
        k = cfg.pos_kernel
        self.relative_positional_encoder = nn.Sequential(Transpose(), *[
            nn.Sequential(nn.Conv1d(d, d, k, padding=k // 2, groups=cfg.conv_pos_groups), nn.Identity(),
                          Transpose(), nn.LayerNorm(d, elementwise_affine=False, eps=1e-5), Transpose(), nn.GELU())
            for _ in range(cfg.conv_pos_depth)], Transpose())
        self.extra_tokens = nn.Parameter(torch.zeros(1, cfg.num_extra_tokens, d))
        n_scales = cfg.prenet_depth + cfg.depth if cfg.alibi_per_layer else 1
        self.alibi_scale = nn.Parameter(torch.ones(n_scales, 1, cfg.num_heads, 1, 1))
        self.context_encoder = _Holder()
        self.context_encoder.norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.context_encoder.blocks = nn.ModuleList(AltBlock(cfg) for _ in range(cfg.prenet_depth))


class Emotion2VecS(nn.Module):
    def __init__(self, cfg: Emotion2VecConfig):
        super().__init__()
        self.cfg = cfg
        self.modality_encoders = nn.ModuleDict({"AUDIO": AudioModalityEncoder(cfg)})
        self.blocks = nn.ModuleList(AltBlock(cfg) for _ in range(cfg.depth))
        self.register_buffer("slopes", torch.tensor(alibi_slopes(cfg.num_heads)), persistent=False)

    @classmethod
    def from_pretrained(cls, path: str, **kw) -> "Emotion2VecS":
        from c2ser.encoders.emotion2vec_loading import load_emotion2vec

        return load_emotion2vec(path, **kw)

    @property
    def device(self) -> torch.device:
        return self.blocks[0].norm1.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.blocks[0].norm1.weight.dtype

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, N) waveforms (zero-padded) + sample lengths → frames (B, T, D), frame lengths, tokens (B, 10, D)."""
        cfg, enc = self.cfg, self.modality_encoders["AUDIO"]
        B, N = wav.shape
        lengths = torch.full((B,), N, device=wav.device) if lengths is None else lengths.to(wav.device)
        if int(lengths.min()) < cfg.receptive_field:
            raise ValueError(f"clip of {int(lengths.min())} samples is shorter than the encoder's minimum "
                             f"{cfg.receptive_field} (25 ms)")
        wav = wav.float()
        valid_s = torch.arange(N, device=wav.device)[None] < lengths[:, None]
        if cfg.normalize:  # per clip, over its valid samples only
            n = lengths[:, None].float()
            mu = (wav * valid_s).sum(1, keepdim=True) / n
            var = (((wav - mu) * valid_s) ** 2).sum(1, keepdim=True) / n
            wav = ((wav - mu) / torch.sqrt(var + 1e-5)) * valid_s
        x = wav[:, None, :].to(self.dtype)  # normalised in fp32; the convs run in the weights' dtype (bf16 too)
        for layer in enc.local_encoder.conv_layers:
            x = layer(x)
        x = enc.project_features(x)                                        # (B, T, D)
        T = x.shape[1]
        frame_lengths = torch.tensor([cfg.num_frames(int(n)) for n in lengths], device=x.device)
        valid = torch.arange(T, device=x.device)[None] < frame_lengths[:, None]
        p = x.transpose(1, 2)
        m = valid[:, None, :].to(x.dtype)
        for block in enc.relative_positional_encoder[1:-1]:               # masked before each conv
            p = block(p * m)
        x = x + p.transpose(1, 2)
        E = cfg.num_extra_tokens
        x = torch.cat([enc.extra_tokens.expand(B, -1, -1), x], dim=1)
        dist = (torch.arange(T, device=x.device)[None] - torch.arange(T, device=x.device)[:, None]).abs()
        base = -dist.float()[None] * self.slopes[:, None, None]             # (H, T, T)
        keys_valid = torch.cat([torch.ones(B, E, dtype=torch.bool, device=x.device), valid], 1)
        pad_bias = torch.zeros(B, 1, 1, E + T, device=x.device).masked_fill(~keys_valid[:, None, None, :], -math.inf)
        x = enc.context_encoder.norm(x)
        blocks = list(enc.context_encoder.blocks) + list(self.blocks)
        bias = None
        for i, block in enumerate(blocks):
            if bias is None or cfg.alibi_per_layer:  # one bias for all blocks unless scales are per layer
                scale = enc.alibi_scale[i if cfg.alibi_per_layer else 0].clamp(min=0)   # (1, H, 1, 1)
                bias = F.pad(base[None] * scale, (E, 0, E, 0)) + pad_bias
            x = block(x, bias)
        return x[:, E:], frame_lengths, x[:, :E]

    @torch.no_grad()
    def extract(self, wavs: list[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch of 16-kHz clips → (frames (B, T, D), frame lengths, tokens (B, 10, D)), eval mode."""
        self.eval()
        ts = [torch.as_tensor(np.asarray(w), dtype=torch.float32) for w in wavs]
        lengths = torch.tensor([t.numel() for t in ts])
        batch = torch.zeros(len(ts), int(lengths.max()))
        for i, t in enumerate(ts):
            batch[i, : t.numel()] = t
        return self(batch.to(self.device), lengths.to(self.device))

    @torch.no_grad()
    def utterance_features(self, wavs: list, mode: str = "tokens") -> torch.Tensor:
        """(B, 10, D) for ``official`` / ``tokens``, (B, 1, D) for ``mean``."""
        if mode not in MODES:
            raise ValueError(f"unknown utterance-feature mode {mode!r} (choose from {', '.join(MODES)})")
        frames, lengths, tokens = self.extract(wavs)
        if mode == "tokens":
            return tokens
        if mode == "official":
            need = self.cfg.num_extra_tokens
            if int(lengths.min()) < need:
                raise ValueError(f"'official' mode needs ≥ {need} frames ({self.cfg.receptive_field + (need - 1) * self.cfg.hop} "
                                 f"samples); a clip has {int(lengths.min())}")
            return frames[:, :need]
        m = (torch.arange(frames.shape[1], device=frames.device)[None] < lengths[:, None]).unsqueeze(-1)
        return ((frames * m).sum(1) / lengths[:, None]).unsqueeze(1)
