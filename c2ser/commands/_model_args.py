"""Shared model-loading flags of the inference commands (predict, chat, web)."""
from __future__ import annotations


def add_model_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True,
                   help="c2ser checkpoint directory, or 'official' (with --official-path) / official:PATH")
    p.add_argument("--official-path", help="the released C2SER_llm.pt (with --checkpoint official)")
    p.add_argument("--qwen2-dir", help="local Qwen2-7B directory (official checkpoint only)")
    p.add_argument("--ssl-checkpoint", help="Emotion2Vec-S checkpoint: compute SSL features online")
    p.add_argument("--ssl-features", help="directory of precomputed <file stem>.npy SSL features")
    p.add_argument("--device", default="cpu")
    p.add_argument("--decoding", choices=("greedy", "parity"), default="greedy",
                   help="parity = the official release's beam-sample settings with a fixed seed")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="model config override (repeatable), e.g. --set llm.dtype=float32")


def load_from_args(args):
    from c2ser.inference.loading import load_for_inference

    ckpt = args.checkpoint
    if ckpt == "official":
        if not args.official_path:
            raise ValueError("--checkpoint official needs --official-path PATH/C2SER_llm.pt")
        ckpt = "official:" + args.official_path
    return load_for_inference(ckpt, args.ssl_checkpoint, args.device, args.overrides, args.qwen2_dir)


def decoding_kwargs(args) -> dict:
    if args.decoding == "parity":
        import torch

        from c2ser.inference.official import PARITY_DECODING, PARITY_SEED
        torch.manual_seed(PARITY_SEED)
        return dict(PARITY_DECODING)
    return dict(max_new_tokens=args.max_new_tokens)
