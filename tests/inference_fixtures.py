"""Shared by the inference tests: a tiny saved checkpoint, wav clips and their precomputed SSL features."""
from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from c2ser.checkpoint import save_checkpoint
from c2ser.models.build import build_model
from c2ser.testing import tiny_model_config


def make_checkpoint_and_clips(tiny_models, root, n=3):
    torch.manual_seed(0)
    m = build_model(tiny_model_config(tiny_models)).eval()
    with torch.no_grad():
        for name, p in m.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    ckpt = save_checkpoint(m, root / "ckpt")
    feats = root / "feats"
    feats.mkdir()
    rng = np.random.default_rng(0)
    clips = []
    for i in range(n):
        path = root / f"clip{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(16000 * (0.8 + 0.4 * i)))).astype(np.float32), 16000)
        np.save(feats / f"clip{i}.npy", rng.standard_normal((10, 48)).astype(np.float32))
        clips.append(path)
    return ckpt, feats, clips
