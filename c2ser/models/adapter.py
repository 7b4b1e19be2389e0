"""The "link" between the speech encoders and the LLM, as in the official C2SER ("gxl" adapter).

    Whisper features (B, T', D) ── CausalDownsampler ×4 ──► W (B, T'', D)        T'' = ceil(ceil(T'/2)/2), 12.5 fps
    Emotion2Vec-S tokens (B, 10, D_ssl) ── zero-pad features to D ──► S (B, 10, D)
    [S ; W] ── GxlAdapter (Linear+LN input layer, sinusoidal positions, 4 pre-LN blocks, final LN) ──► Linear → LLM dim

Module names mirror the official checkpoint (``down_sample_2.conv.{1,4,7}``, ``speech_transformer.embed.out.{0,1}``,
``encoders.i.self_attn.linear_q/k/v/out``, ``feed_forward.w_1/w_2``, ``norm1/2``, ``after_norm``) so its weights
map one-to-one.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CausalDownsampler(nn.Module):
    """Three [left pad 2 → Conv1d(k3) → GELU] blocks with strides 1, 2, 2: 4× fewer frames, causal."""

    def __init__(self, dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        for stride in (1, 2, 2):
            layers += [nn.ConstantPad1d((2, 0), 0.0), nn.Conv1d(dim, dim, 3, stride=stride), nn.GELU()]
        self.conv = nn.Sequential(*layers)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        return (((lengths + 1) // 2) + 1) // 2

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) + lengths → (B, ceil(ceil(T/2)/2), D) + lengths (causal: padding never leaks backwards)."""
        return self.conv(x.transpose(1, 2)).transpose(1, 2), self.output_lengths(lengths)


class SinusoidalPositions(nn.Module):
    """wenet ``PositionalEncoding``: x·√d + sinusoid (buffer ``pe`` of shape (1, max_len, d))."""

    def __init__(self, dim: int, max_len: int = 5000, dropout: float = 0.1):
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe[None], persistent=True)
        self.scale = math.sqrt(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"adapter input of {x.shape[1]} tokens exceeds the {self.pe.shape[1]} positions")
        return self.dropout(x * self.scale + self.pe[:, : x.shape[1]].to(x.dtype))


class InputLayer(nn.Module):
    """``embed``: out = [Linear, LayerNorm, Dropout], then positions."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.out = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim, eps=1e-5), nn.Dropout(dropout))
        self.pos_enc = SinusoidalPositions(dim, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos_enc(self.out(x))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.linear_q, self.linear_k = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.linear_v, self.linear_out = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = (lin(x).view(B, T, self.heads, D // self.heads).transpose(1, 2)
                   for lin in (self.linear_q, self.linear_k, self.linear_v))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.linear_out(a.transpose(1, 2).reshape(B, T, D))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.w_1, self.w_2, self.dropout = nn.Linear(dim, hidden), nn.Linear(hidden, dim), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


class AdapterBlock(nn.Module):
    """Pre-LN transformer block: x + attn(norm1(x)); x + ffn(norm2(x))."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.self_attn = SelfAttention(dim, heads)
        self.feed_forward = FeedForward(dim, ffn, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-5), nn.LayerNorm(dim, eps=1e-5)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.norm1(x), attn_mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class GxlAdapter(nn.Module):
    """wenet ``TransformerEncoder`` with a linear input layer, as the official ``speech_transformer``."""

    def __init__(self, dim: int, num_blocks: int = 4, heads: int = 4, ffn: int = 2560, dropout: float = 0.1):
        super().__init__()
        self.embed = InputLayer(dim, dropout)
        self.encoders = nn.ModuleList(AdapterBlock(dim, heads, ffn, dropout) for _ in range(num_blocks))
        self.after_norm = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
        attn_mask = valid[:, None, None, :]
        x = self.embed(x)
        for block in self.encoders:
            x = block(x, attn_mask)
        return self.after_norm(x)
