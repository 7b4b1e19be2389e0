"""Shared model-loading flags of the inference commands (predict, chat, web) and ``c2ser eval``."""
from __future__ import annotations

LONG_AUDIO_HELP = ("clips over 30 s: crop = use the first 30 s and say so (a warning, cropped: true), "
                   "error = reject the clip (sets model.whisper.long_audio)")


def add_loading_arguments(p) -> None:
    """Flags shared by every command that loads a c2ser model for inference (eval included)."""
    p.add_argument("--qwen2-dir", help="local Qwen2-7B directory (official checkpoint only)")
    p.add_argument("--ssl-checkpoint", help="Emotion2Vec-S checkpoint: compute SSL features online")
    p.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda, cuda:1 ...")
    p.add_argument("--long-audio", choices=("crop", "error"), default="crop", help=LONG_AUDIO_HELP)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="model config override (repeatable), e.g. --set llm.dtype=float32")


def add_model_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True,
                   help="c2ser checkpoint directory, or 'official' (with --official-path) / official:PATH")
    p.add_argument("--official-path", help="the released C2SER_llm.pt (with --checkpoint official)")
    p.add_argument("--ssl-features", help="directory of precomputed <file stem>.npy SSL features")
    p.add_argument("--decoding", choices=("greedy", "parity"), default="greedy",
                   help="parity = the official release's beam-sample settings with a fixed seed")
    p.add_argument("--max-new-tokens", type=int,
                   help="answer length limit (default: 400 for explicit answers and --decoding parity, as the "
                        "release; 128 for implicit ones and chat turns)")
    add_loading_arguments(p)


def model_overrides(args) -> list[str]:
    """``--set`` overrides plus ``--long-audio`` (the explicit --set wins when both are given)."""
    return [f"whisper.long_audio={args.long_audio}", *args.overrides]


def load_from_args(args):
    from c2ser.inference.loading import load_for_inference

    ckpt = args.checkpoint
    if ckpt == "official":
        if not args.official_path:
            raise ValueError("--checkpoint official needs --official-path PATH/C2SER_llm.pt")
        ckpt = "official:" + args.official_path
    return load_for_inference(ckpt, args.ssl_checkpoint, args.device, model_overrides(args), args.qwen2_dir)


def max_new_tokens(args, mode: str) -> int:
    """``--max-new-tokens``, else the evaluation default for answers in ``mode`` (400 explicit, 128 otherwise)."""
    from c2ser.evaluation.inference import MODE_MAX_NEW_TOKENS

    return args.max_new_tokens if args.max_new_tokens is not None else MODE_MAX_NEW_TOKENS.get(mode, 128)


def decoding_kwargs(args) -> dict:
    if args.decoding == "parity":
        import torch

        from c2ser.inference.official import PARITY_DECODING, PARITY_SEED
        torch.manual_seed(PARITY_SEED)
        return dict(PARITY_DECODING)
    return dict(max_new_tokens=max_new_tokens(args, getattr(args, "mode", "implicit")))
