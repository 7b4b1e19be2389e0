"""Chat turn latency: ChatSession (speech encoded once, KV-cached greedy) vs a naive turn (re-encode the clip and
re-run the whole sequence for every new token). Medians over repeats, ratio naive / cached.

    python bench/bench_chat.py --device cpu --size tiny
    python bench/bench_chat.py --device cpu --size small --repeats 3     # Qwen2-0.5B dims, random weights, bf16
    python bench/bench_chat.py --device cuda --size full --checkpoint exp/stage2/final --audio clip.wav --ssl-features F
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def naive_turn(chat, path, new_tokens):
    """Re-encode the clip, then greedy without KV cache (full forward per token)."""
    chat.load_audio(path)  # encodes again (and clears the history)
    embeds = chat._embeds([(chat._ids("why do you think so?"), None)])
    for _ in range(new_tokens):
        nxt = int(chat.model.llm(inputs_embeds=embeds).logits[0, -1].argmax())
        embeds = torch.cat([embeds, chat.model.embed_ids(torch.tensor([[nxt]], device=embeds.device))], dim=1)


def main():
    sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
    from _common import SIZES, build_c2ser, dtype_name, emit, load_average

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", choices=SIZES, default="tiny")
    ap.add_argument("--checkpoint"), ap.add_argument("--audio"), ap.add_argument("--ssl-features")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--json", help="also write the result to this JSON file")
    args = ap.parse_args()
    from c2ser.inference.chat import ChatSession
    from c2ser.inference.loading import load_for_inference
    from c2ser.models.processor import C2SERProcessor

    load_before = load_average()
    root = Path(tempfile.mkdtemp())
    if args.size == "tiny" and not args.checkpoint:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from inference_fixtures import make_checkpoint_and_clips

        from c2ser.testing import build_tiny_models
        ckpt, feats, clips = make_checkpoint_and_clips(build_tiny_models(root / "models"), root, n=1)
        args.checkpoint, args.audio, args.ssl_features = str(ckpt), str(clips[0]), str(feats)
    if args.checkpoint:
        if not args.audio:
            ap.error("--checkpoint needs --audio")
        model, proc = load_for_inference(args.checkpoint, device=args.device)
    else:  # small / full without a checkpoint: random weights, one 3-s clip and its SSL tokens
        import numpy as np
        import soundfile as sf

        model = build_c2ser(args.size, args.device, root / "models").eval()
        proc = C2SERProcessor(model.tokenizer)
        (root / "feats").mkdir()
        rng = np.random.default_rng(0)
        sf.write(root / "clip.wav", (0.1 * rng.standard_normal(48000)).astype(np.float32), 16000)
        np.save(root / "feats" / "clip.npy", rng.standard_normal((10, model.cfg.ssl.dim)).astype(np.float32))
        args.audio, args.ssl_features = str(root / "clip.wav"), str(root / "feats")
    chat = ChatSession(model, proc, max_new_tokens=args.new_tokens, ssl_features=args.ssl_features)
    chat.eos_id = -1  # decode exactly new_tokens in both paths
    chat.load_audio(args.audio)
    chat.ask("")
    cached, naive = [], []
    with torch.no_grad():
        for _ in range(args.repeats):
            t = time.perf_counter()
            chat.turns = chat.turns[:1]
            chat.ask("why do you think so?")
            cached.append(time.perf_counter() - t)
            t = time.perf_counter()
            naive_turn(chat, args.audio, args.new_tokens)
            naive.append(time.perf_counter() - t)
            chat.ask("")
    c, n = statistics.median(cached), statistics.median(naive)
    dtype = dtype_name(next(model.llm.parameters()).dtype)
    emit(args, f"Chat turns, size={args.size}, device={args.device}, {dtype}, median of {args.repeats}; load average "
         f"before {load_before}, after {load_average()}",
         ["size", "device", "new tokens", "cached turn (s)", "naive turn (s)", "naive / cached"],
         [[args.size, args.device, args.new_tokens, f"{c:.4f}", f"{n:.4f}", f"{n / c:.2f}x"]], dtype=dtype)


if __name__ == "__main__":
    main()
