"""Semantic perception: the openai-whisper ``AudioEncoder`` run on each clip's actual length.

openai-whisper pads every clip to 30 s (3000 mel frames) and asserts that length. Here the encoder runs on
the unpadded log-mel: the sinusoidal positional embedding is sliced to the clip's length and a key-padding
mask keeps padded frames of shorter clips in a batch out of attention, so a padded batch gives the same
features as each clip run alone (and a 30-s clip gives exactly ``AudioEncoder.forward``)::

    wav (16 kHz) → log-mel (n_mels × T, 100 fps, T = len // 160) → conv1 (k3) → GELU → conv2 (k3, s2) → GELU
                 → + positional_embedding[:T']  (T' = ceil(T / 2), 50 fps, ≤ 1500 = 30 s)
                 → n_layer × [x + attn(attn_ln(x), key_padding_mask); x + mlp(mlp_ln(x))] → ln_post
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

HOP = 160
MAX_FRAMES = 3000  # 30 s of mel frames: the positional embedding's length × 2
MAX_SECONDS = MAX_FRAMES * HOP / 16000  # 30 s: the longest clip the encoder sees (longer ones error or are cropped)


def log_mel(wav: np.ndarray | torch.Tensor, n_mels: int = 80, max_seconds: float = MAX_SECONDS,
            long_audio: str = "error", name: str = "audio") -> torch.Tensor:
    """``whisper.log_mel_spectrogram`` of the *unpadded* clip: (n_mels, len // 160).

    ``long_audio`` says what to do with clips over ``max_seconds``: ``"error"`` (default) or ``"crop"``
    (keep the first ``max_seconds``; the rest of the clip is not seen by the semantic encoder).
    """
    import whisper

    wav = torch.as_tensor(wav, dtype=torch.float32)
    limit = int(max_seconds * 16000)
    if wav.numel() > limit:
        if long_audio == "crop":
            wav = wav[:limit]
        else:
            raise ValueError(f"{name}: {wav.numel() / 16000:.1f} s is longer than the Whisper encoder's "
                             f"{max_seconds:g} s (use long_audio='crop' to keep the first {max_seconds:g} s)")
    if wav.numel() < HOP * 2:
        raise ValueError(f"{name}: {wav.numel()} samples is too short (at least {HOP * 2} needed)")
    return whisper.log_mel_spectrogram(wav, n_mels=n_mels)


def pad_mels(mels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad a list of (n_mels, T_i) to (B, n_mels, T_max); returns (mel, lengths)."""
    lengths = torch.tensor([m.shape[-1] for m in mels], dtype=torch.long)
    out = mels[0].new_zeros(len(mels), mels[0].shape[0], int(lengths.max()))
    for i, m in enumerate(mels):
        out[i, :, : m.shape[-1]] = m
    return out, lengths


def encoder_lengths(mel_lengths: torch.Tensor) -> torch.Tensor:
    """Frames after the stride-2 conv: T' = ceil(T / 2)."""
    return (mel_lengths + 1) // 2


@dataclasses.dataclass
class WhisperDims:
    n_mels: int = 80
    n_audio_ctx: int = 1500
    n_audio_state: int = 1024
    n_audio_head: int = 16
    n_audio_layer: int = 24


def _resolve_checkpoint(name_or_path: str, download_root: str | None) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    import whisper

    if name_or_path in whisper._MODELS:
        root = download_root or str(Path("~/.cache/whisper").expanduser())
        try:
            return Path(whisper._download(whisper._MODELS[name_or_path], root, in_memory=False))
        except Exception as e:  # noqa: BLE001 - offline machine, proxy, disk: one clear line
            raise FileNotFoundError(f"Whisper {name_or_path!r}: not in {root} and the download failed "
                                    f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                                    "give a local checkpoint file (model.whisper.name_or_path=PATH)") from None
    raise FileNotFoundError(f"{name_or_path}: not a Whisper checkpoint file nor a model name "
                            f"({', '.join(sorted(whisper._MODELS))})")


class WhisperEncoder(nn.Module):
    """Variable-length wrapper around ``whisper.model.AudioEncoder`` (its weights and key names unchanged)."""

    def __init__(self, dims: WhisperDims, gradient_checkpointing: bool = False):
        super().__init__()
        from whisper.model import AudioEncoder

        self.dims = dims
        self.encoder = AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head,
                                    dims.n_audio_layer)
        _use_fp32_layer_norms(self.encoder)
        self.gradient_checkpointing = gradient_checkpointing

    @property
    def dim(self) -> int:
        return self.dims.n_audio_state

    @classmethod
    def from_pretrained(cls, name_or_path: str, download_root: str | None = None, **kw) -> "WhisperEncoder":
        """Load from an openai-whisper checkpoint file or model name (``medium``, ``large-v3``, …)."""
        path = _resolve_checkpoint(name_or_path, download_root)
        from c2ser.safe_io import load_torch_file

        ckpt = load_torch_file(path, "Whisper checkpoint")
        if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
            raise ValueError(f"{path}: not an openai-whisper checkpoint (expected keys 'dims', 'model_state_dict')")
        d = ckpt["dims"]
        dims = WhisperDims(**{f.name: d[f.name] for f in dataclasses.fields(WhisperDims)})
        model = cls(dims, **kw)
        state = {k[len("encoder."):]: v for k, v in ckpt["model_state_dict"].items() if k.startswith("encoder.")}
        missing, unexpected = model.encoder.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: encoder keys do not match (missing {missing[:5]}, unexpected {unexpected[:5]})")
        return model

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n_mels, T) zero-padded log-mel + lengths → (B, T', D) features + lengths T' = ceil(T / 2)."""
        enc = self.encoder
        B, _, T = mel.shape
        if T > 2 * enc.positional_embedding.shape[0]:
            raise ValueError(f"{T} mel frames exceed the encoder's {2 * enc.positional_embedding.shape[0]} (30 s)")
        if mel_lengths is None:
            mel_lengths = torch.full((B,), T, dtype=torch.long, device=mel.device)
        mel_lengths = mel_lengths.to(mel.device)
        mel = mel.to(enc.conv1.weight.dtype)  # speech follows the encoder's dtype (bf16 under DeepSpeed / llm.dtype)
        x = F.gelu(enc.conv1(mel))
        # conv2 (stride 2) reads one frame past an odd-length clip's end: that frame must be zero, as in a solo run
        frame_valid = torch.arange(T, device=mel.device)[None, :] < mel_lengths[:, None]
        x = x * frame_valid[:, None, :].to(x.dtype)
        x = F.gelu(enc.conv2(x)).permute(0, 2, 1)
        T2 = x.shape[1]
        x = (x + enc.positional_embedding[:T2]).to(x.dtype)
        out_lengths = encoder_lengths(mel_lengths)
        valid = torch.arange(T2, device=mel.device)[None, :] < out_lengths[:, None]
        attn_mask = valid[:, None, None, :]  # (B, 1, 1, T'): True = attend
        for block in enc.blocks:
            if self.gradient_checkpointing and self.training:
                x = checkpoint(_block_forward, block, x, attn_mask, use_reentrant=False)
            else:
                x = _block_forward(block, x, attn_mask)
        return enc.ln_post(x), out_lengths


class Fp32LayerNorm(nn.LayerNorm):
    """openai-whisper's LayerNorm computes in fp32 but calls it with the module's own (maybe bf16) weights, which
    fails on CPU ("mixed dtype"); this one upcasts the weights too and returns the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


def _use_fp32_layer_norms(module: nn.Module) -> None:
    """Swap every LayerNorm of an (unloaded) AudioEncoder for :class:`Fp32LayerNorm`: same parameter names."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.LayerNorm):
            setattr(module, name, Fp32LayerNorm(child.normalized_shape, eps=child.eps))
        else:
            _use_fp32_layer_norms(child)


def _block_forward(block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
    """One whisper ``ResidualAttentionBlock`` with a key-padding mask (its own modules, SDPA attention)."""
    attn = block.attn
    h = block.attn_ln(x)
    B, T, D = h.shape
    H = attn.n_head
    q, k, v = (lin(h).view(B, T, H, D // H).transpose(1, 2) for lin in (attn.query, attn.key, attn.value))
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    x = x + attn.out(a.transpose(1, 2).reshape(B, T, D))
    return x + block.mlp(block.mlp_ln(x))
