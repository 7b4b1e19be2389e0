"""Benchmark: our batched Emotion2Vec-S extraction vs FunASR's per-clip ``extract_features``, same weights.

Clips of mixed length (1–15 s); ours runs length-sorted batches with padding (equal to one clip at a time, see
the tests), FunASR one clip at a time (its own batching with padding is not exact). Reports clips/s, the
real-time factor (processing time / audio duration) and the speed-up, and checks the outputs agree.

    python bench/emotion2vec.py --device cpu --size tiny
    python bench/emotion2vec.py --device cuda --size full       # 768-d, 4 + 8 blocks (Emotion2Vec-S size)
"""
from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_time, parser, table  # noqa: E402


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    sys.modules.setdefault("funasr.utils.load_utils", types.SimpleNamespace(load_audio_text_image_video=None))
    from funasr.models.emotion2vec.model import Emotion2vec

    from c2ser.encoders.emotion2vec_loading import load_emotion2vec
    from c2ser.testing import TINY_E2V_CFG, build_tiny_emotion2vec, emotion2vec_model_cfg
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_emotion2vec import _funasr_conf

    dims = TINY_E2V_CFG if args.size == "tiny" else dict(embed_dim=768, depth=8, num_heads=12, mlp_ratio=4.0,
                                                         norm_eps=1e-5, prenet_depth=4, conv_channels=512)
    with tempfile.TemporaryDirectory() as tmp:
        ours = load_emotion2vec(build_tiny_emotion2vec(Path(tmp) / "c.pt", **dims), verbose=False).to(args.device)
    ref = Emotion2vec(model_conf=_funasr_conf(emotion2vec_model_cfg(**dims), dims["depth"]), vocab_size=-1)
    ref.load_state_dict(ours.state_dict())
    ref = ref.to(args.device).eval()
    rng = np.random.default_rng(0)
    wavs = [(0.1 * rng.standard_normal(int(16000 * rng.uniform(1, 15)))).astype(np.float32) for _ in range(args.clips)]
    order = sorted(range(len(wavs)), key=lambda i: len(wavs[i]))
    audio_s = sum(len(w) for w in wavs) / 16000

    def run_ours():
        return [ours.extract([wavs[i] for i in order[j: j + args.batch]]) for j in range(0, len(order), args.batch)]

    @torch.no_grad()
    def run_ref():
        return [ref.extract_features(torch.from_numpy(w)[None].to(args.device), padding_mask=None)["x"] for w in wavs]

    ref_out = run_ref()
    diff = 0.0
    for j, (frames, lengths, _) in zip(range(0, len(order), args.batch), run_ours()):
        for k, i in enumerate(order[j: j + args.batch]):
            diff = max(diff, float((frames[k, : lengths[k]] - ref_out[i][0]).abs().max()))
    t_ours = median_time(run_ours, args.repeats, args.device)
    t_ref = median_time(run_ref, args.repeats, args.device)
    print(f"\nEmotion2Vec-S, size={args.size}, device={args.device}, {args.clips} clips ({audio_s:.0f} s of audio), "
          f"median of {args.repeats}; max |ours − FunASR| = {diff:.1e}\n")
    print(table(["extractor", "clips/s", "real-time factor", "speed-up"],
                [["FunASR, one clip at a time", f"{args.clips / t_ref:.1f}", f"{t_ref / audio_s:.4f}", "1.0×"],
                 [f"ours, batches of {args.batch}", f"{args.clips / t_ours:.1f}", f"{t_ours / audio_s:.4f}",
                  f"{t_ref / t_ours:.2f}×"]]))


if __name__ == "__main__":
    main()
