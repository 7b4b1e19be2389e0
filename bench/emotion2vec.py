"""Benchmark: our Emotion2Vec-S extraction (one clip at a time, and length-bucketed batches as
``c2ser extract-features --batch-size N`` forms them) vs FunASR's per-clip ``extract_features``, same weights.

16 clips of 1–15 s. Ours batched uses :func:`c2ser.features.length_buckets` (sorted by length, neighbours batched
while padding ≤ 10 %); FunASR runs one clip at a time (its own padded batching is not exact). The three are timed
in alternation in one run (medians); clips/s, real-time factor (processing time / audio duration), speed-ups, and
the largest difference between our batched output and FunASR's.

    python bench/emotion2vec.py --device cpu --size tiny
    python bench/emotion2vec.py --device cpu --size small --repeats 3      # full width (768-d, 4 + 8 blocks)
    python bench/emotion2vec.py --device cuda --size full
"""
from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import (bench_model_config, build_emotion2vec_checkpoint, dtype_name, emit,  # noqa: E402
                     interleaved_medians, load_average, parser)


def funasr_conf(cfg: dict, depth: int) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_emotion2vec import _funasr_conf

    return _funasr_conf(cfg, depth)


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--batch", type=int, default=8, help="largest batch (extract-features --batch-size)")
    p.add_argument("--max-padding", type=float, default=0.1)
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="float32",
                   help="weights' dtype of both extractors (auto: bf16 when the device has fast bf16, sizes > tiny)")
    args = p.parse_args()
    sys.modules.setdefault("funasr.utils.load_utils", types.SimpleNamespace(load_audio_text_image_video=None))
    from funasr.models.emotion2vec.model import Emotion2vec

    from c2ser.encoders.emotion2vec_loading import load_emotion2vec
    from c2ser.features import length_buckets
    from c2ser.testing import emotion2vec_model_cfg

    dtype = bench_model_config(args.size, args.device)["dtype"] if args.dtype == "auto" else getattr(torch, args.dtype)
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        path, dims = build_emotion2vec_checkpoint(args.size, Path(tmp) / "c.pt")
        ours = load_emotion2vec(path, verbose=False).to(args.device).eval()
    ref = Emotion2vec(model_conf=funasr_conf(emotion2vec_model_cfg(**dims), dims["depth"]), vocab_size=-1)
    ref.load_state_dict(ours.state_dict())
    ref = ref.to(args.device).eval()
    ours, ref = ours.to(dtype), ref.to(dtype)
    rng = np.random.default_rng(0)
    wavs = [(0.1 * rng.standard_normal(int(16000 * rng.uniform(1, 15)))).astype(np.float32) for _ in range(args.clips)]
    audio_s = sum(len(w) for w in wavs) / 16000
    batches = length_buckets([len(w) for w in wavs], args.batch, args.max_padding)

    def run_single():
        return [ours.extract([w]) for w in wavs]

    def run_batched():
        return [ours.extract([wavs[i] for i in b]) for b in batches]

    @torch.no_grad()
    def run_ref():
        return [ref.extract_features(torch.from_numpy(w)[None].to(args.device, dtype), padding_mask=None)["x"]
                for w in wavs]

    ref_out = run_ref()
    diff = 0.0
    for b, (frames, lengths, _) in zip(batches, run_batched()):
        for k, i in enumerate(b):
            diff = max(diff, float((frames[k, : lengths[k]].float() - ref_out[i][0].float()).abs().max()))
    t = interleaved_medians({"funasr": run_ref, "single": run_single, "batched": run_batched}, args.repeats,
                            args.device)
    sizes = sorted(len(b) for b in batches)
    title = (f"Emotion2Vec-S, size={args.size} ({dims['embed_dim']}-d, {dims['prenet_depth']} + {dims['depth']} "
             f"blocks), device={args.device}, {dtype_name(dtype)}, {args.clips} clips ({audio_s:.0f} s of audio), "
             f"median of {args.repeats} (interleaved); batches of ≤ {args.batch} with ≤ {100 * args.max_padding:g} % "
             f"padding → {len(batches)} batches of sizes {sizes}; max |ours batched − FunASR| = {diff:.1e}; "
             f"load average before {load_before}, after {load_average()}")

    def row(name, key):
        return [name, f"{args.clips / t[key]:.2f}", f"{t[key] / audio_s:.4f}", f"{t['funasr'] / t[key]:.2f}×",
                f"{t['single'] / t[key]:.2f}×"]

    emit(args, title, ["extractor", "clips/s", "real-time factor", "vs FunASR", "vs ours per clip"],
         [row("FunASR, one clip at a time", "funasr"), row("ours, one clip at a time", "single"),
          row(f"ours, length-bucketed batches (≤ {args.batch})", "batched")],
         dtype=dtype_name(dtype), max_abs_diff=diff, batch_sizes=sizes,
         batched_vs_single=t["single"] / t["batched"], batched_vs_funasr=t["funasr"] / t["batched"])


if __name__ == "__main__":
    main()
