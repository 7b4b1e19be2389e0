"""Turns clips and texts into model batches: log-mel, SSL tokens, prompt/target token ids (right-padded).

An item is a dict with ``mel`` (n_mels, T) or ``wav`` (float32, 16 kHz), optional ``ssl`` (10, D) features,
``prompt`` (text) and optional ``target`` (text; ``<eos>`` is appended). ``collate`` returns::

    mel (B, n_mels, T_max), mel_lengths (B,), ssl (B, 10, D) | None,
    prompt_ids (B, P_max), prompt_lengths (B,), [target_ids (B, L_max), target_lengths (B,)], [wavs]
"""
from __future__ import annotations

import numpy as np
import torch

from c2ser.models.whisper_encoder import log_mel, pad_mels


class C2SERProcessor:
    def __init__(self, tokenizer, n_mels: int = 80, long_audio: str = "error"):
        self.tokenizer = tokenizer
        self.n_mels = n_mels
        self.long_audio = long_audio

    def mel(self, wav: np.ndarray | torch.Tensor, name: str = "audio") -> torch.Tensor:
        return log_mel(wav, n_mels=self.n_mels, long_audio=self.long_audio, name=name)

    def tokenize(self, texts: list[str], add_eos: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        if add_eos:
            ids = [x + [self.tokenizer.eos_token_id] for x in ids]
        lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
        out = torch.full((len(ids), max(1, int(lengths.max()))), self.tokenizer.eos_token_id, dtype=torch.long)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        return out, lengths

    def collate(self, items: list[dict]) -> dict:
        mels = [it["mel"] if "mel" in it else self.mel(it["wav"], it.get("key", "audio")) for it in items]
        batch = dict(zip(("mel", "mel_lengths"), pad_mels(mels)))
        ssl = [it.get("ssl") for it in items]
        batch["ssl"] = None if any(s is None for s in ssl) else torch.stack([torch.as_tensor(s) for s in ssl]).float()
        if batch["ssl"] is None and all("wav" in it for it in items):
            batch["wavs"] = [it["wav"] for it in items]  # for online SSL features
        batch["prompt_ids"], batch["prompt_lengths"] = self.tokenize([it["prompt"] for it in items], add_eos=False)
        if all(it.get("target") is not None for it in items):
            batch["target_ids"], batch["target_lengths"] = self.tokenize([it["target"] for it in items], True)
        return batch


def to_device(batch: dict, device: torch.device | str) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
