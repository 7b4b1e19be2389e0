"""Benchmark: dynamic (length-bucketed, frame/token-capped) batching vs fixed-size random batches.

Same data, same model, same number of clips per run; whole training steps (forward + backward + AdamW).
Reports samples/s, the padded-frame fraction (mel frames that are padding) and peak memory per step,
medians over repeats, and the ratio dynamic / fixed.

    python bench/training.py --device cpu --size tiny [--repeats 3] [--clips 96]
    python bench/training.py --device cpu --size small --clips 24 --repeats 1   # Qwen2-0.5B + Whisper-base dims
    python bench/training.py --device cuda --size full      # Whisper-medium dims + Qwen2-7B dims (random init)

Beyond tiny: stage-1 settings (official caps 3900 mel frames / 1900 tokens per batch, LoRA on the LLM, adapter +
encoder trained, gradient checkpointing), weights in the size's dtype (bf16 where supported).
"""
from __future__ import annotations

import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bench_model_config, build_c2ser, dtype_name, emit, load_average, parser  # noqa: E402

from c2ser.models.processor import C2SERProcessor, to_device  # noqa: E402
from c2ser.training.sampler import DynamicBatchSampler  # noqa: E402


def make_items(n: int, ssl_dim: int, seed: int = 0) -> list[dict]:
    """Clips of 1–12 s (a typical SER length spread), random audio, random SSL tokens, short targets."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        sec = float(rng.choice([1.5, 2, 3, 4, 6, 9, 12], p=[.2, .2, .2, .15, .1, .1, .05]))
        items.append({"key": f"clip{i}", "wav": (0.1 * rng.standard_normal(int(sec * 16000))).astype(np.float32),
                      "ssl": rng.standard_normal((10, ssl_dim)).astype(np.float32), "prompt": "emotion:",
                      "target": "The emotion of this speech is happy."})
    return items


def run(model, proc, items, batches, device) -> dict:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0, real, padded = time.perf_counter(), 0, 0
    for b in batches:
        batch = to_device(proc.collate([items[i] for i in b]), device)
        real += int(batch["mel_lengths"].sum())
        padded += batch["mel"].shape[0] * batch["mel"].shape[-1]
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            loss = model(batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS, GiB
    dt = time.perf_counter() - t0
    return {"samples_per_s": len(items) / dt, "pad_fraction": 1 - real / padded, "peak_gib": peak, "steps": len(batches)}


def main():
    ap = parser(__doc__.splitlines()[0])
    ap.set_defaults(repeats=3)
    ap.add_argument("--clips", type=int, default=96)
    args = ap.parse_args()
    load_before = load_average()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_c2ser(args.size, args.device, tmp, gradient_checkpointing=args.size != "tiny").train()
        proc = C2SERProcessor(model.tokenizer)
        items = make_items(args.clips, model.cfg.ssl.dim)
        for it in items:
            it["mel"] = proc.mel(it.pop("wav"))
        frames = [it["mel"].shape[-1] for it in items]
        tokens = [10 + f // 8 + 20 for f in frames]
        # Fixed-size baseline: the batch size whose mean padded frames match the dynamic cap on average
        dyn = DynamicBatchSampler(frames, tokens, max_frames=3900, max_tokens=1900, seed=0)
        fixed_bs = max(1, round(len(items) / len(dyn.all_batches(0))))
        order = list(range(len(items)))
        random.Random(0).shuffle(order)
        strategies = {"dynamic (capped, bucketed)": dyn.all_batches(0),
                      f"fixed random (batch {fixed_bs})": [order[i:i + fixed_bs] for i in range(0, len(order), fixed_bs)]}
        run(model, proc, items, strategies[next(iter(strategies))][:2], args.device)  # warm-up
        results = {}
        for name, batches in strategies.items():
            reps = [run(model, proc, items, batches, args.device) for _ in range(args.repeats)]
            results[name] = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
    d, f = results.values()
    dtype = dtype_name(bench_model_config(args.size, args.device)["dtype"])
    emit(args, f"{args.clips} clips (1.5–12 s), size={args.size}, device={args.device}, {dtype}, median of "
         f"{args.repeats}; load average before {load_before}, after {load_average()}",
         ["batching", "steps", "samples/s", "padded frames", "peak memory (GiB)"],
         [[name, f"{r['steps']:.0f}", f"{r['samples_per_s']:.1f}", f"{100 * r['pad_fraction']:.1f} %",
           f"{r['peak_gib']:.2f}"] for name, r in results.items()],
         dtype=dtype, speed_ratio=d["samples_per_s"] / f["samples_per_s"], results=results)
    print(f"\nspeed ratio dynamic / fixed: {d['samples_per_s'] / f['samples_per_s']:.2f}×")


if __name__ == "__main__":
    main()
