"""SpecAugment on the Whisper log-mel, as in the official config: 2 time masks (1–50 frames) and 2 frequency
masks (1–10 bins), zero fill; and SpecSub (3 spans of 1–30 frames copied from earlier positions).
Deterministic given a generator (seeded per clip by the data pipeline)."""
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


def spec_sub(mel: torch.Tensor, gen: torch.Generator, num: int = 3, max_t: int = 30) -> torch.Tensor:
    """SpecSub (official config): ``num`` times, replace a span of 1–``max_t`` frames with an earlier span."""
    mel = mel.clone()
    T = mel.shape[1]
    for _ in range(num):
        w = int(torch.randint(1, max_t + 1, (1,), generator=gen))
        if T <= w + 1:
            continue
        start = int(torch.randint(0, T - w, (1,), generator=gen))
        if start == 0:
            continue
        src = int(torch.randint(0, start, (1,), generator=gen))
        w = min(w, start - src)
        mel[:, start: start + w] = mel[:, src: src + w].clone()
    return mel
