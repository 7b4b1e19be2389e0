"""SpecAugment on the Whisper log-mel, as in the official config: 2 time masks (1–50 frames) and 2 frequency
masks (1–10 bins), zero fill. Deterministic given a generator (seeded per clip by the data pipeline)."""
from __future__ import annotations

import torch


def spec_augment(mel: torch.Tensor, gen: torch.Generator, time_masks: int = 2, max_time: int = 50,
                 freq_masks: int = 2, max_freq: int = 10) -> torch.Tensor:
    """(n_mels, T) → a masked copy."""
    mel = mel.clone()
    n_mels, T = mel.shape
    for _ in range(time_masks):
        w = int(torch.randint(1, max_time + 1, (1,), generator=gen))
        if T > w:
            s = int(torch.randint(0, T - w, (1,), generator=gen))
            mel[:, s: s + w] = 0.0
    for _ in range(freq_masks):
        w = int(torch.randint(1, max_freq + 1, (1,), generator=gen))
        s = int(torch.randint(0, n_mels - w, (1,), generator=gen))
        mel[s: s + w, :] = 0.0
    return mel
