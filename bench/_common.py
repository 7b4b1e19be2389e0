"""Shared benchmark helpers: command-line arguments, the benchmark sizes, median timing, Markdown/JSON output.

Sizes (the one place they are defined; every script builds its models through :func:`bench_model_config`):

- ``tiny``: the test models of :mod:`c2ser.testing` (64-wide, 2 layers), fp32.
- ``small``: real architectures at a 0.5B-class width: Qwen2-0.5B dims for the LLM, Whisper-base dims for the
  encoder, Emotion2Vec-S at full width; random weights built locally; bf16 where the CPU has fast bf16.
- ``full``: the released system's architecture (Whisper-medium + Qwen2-7B), random weights, bf16 (for GPUs).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

SIZES = ("tiny", "small", "full")

E2V_FULL = dict(embed_dim=768, depth=8, num_heads=12, mlp_ratio=4.0, norm_eps=1e-5, prenet_depth=4,
                conv_channels=512)
WHISPER_BASE = dict(n_audio_state=512, n_audio_head=8, n_audio_layer=6, n_text_state=512, n_text_head=8,
                    n_text_layer=6)
WHISPER_MEDIUM = dict(n_audio_state=1024, n_audio_head=16, n_audio_layer=24, n_text_state=1024, n_text_head=16,
                      n_text_layer=24)
QWEN2_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                 tie_word_embeddings=True, rope_theta=1000000.0)
QWEN2_7B = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                tie_word_embeddings=False, rope_theta=1000000.0)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--size", choices=SIZES, default="tiny")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write the results (table rows + settings) to this JSON file")
    return p


def fast_bf16(device: str) -> bool:
    """bf16 pays: any CUDA device with bf16, or a CPU with native bf16 matmul (AVX512-BF16 / AMX via oneDNN)."""
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bench_model_config(size: str, device: str = "cpu") -> dict:
    """Dims and dtype of a benchmark size: ``whisper`` (openai-whisper dims overriding the tiny ones), ``llm``
    (Qwen2Config kwargs; None = the tiny test LLM), ``emotion2vec`` (Emotion2Vec-S dims; None = tiny) and
    ``dtype`` (torch dtype of the weights)."""
    if size not in SIZES:
        raise ValueError(f"unknown benchmark size {size!r} (choose from {', '.join(SIZES)})")
    if size == "tiny":
        return {"whisper": {}, "llm": None, "emotion2vec": None, "dtype": torch.float32}
    dtype = torch.bfloat16 if fast_bf16(device) else torch.float32
    if size == "small":
        return {"whisper": WHISPER_BASE, "llm": QWEN2_05B, "emotion2vec": E2V_FULL, "dtype": dtype}
    return {"whisper": WHISPER_MEDIUM, "llm": QWEN2_7B, "emotion2vec": E2V_FULL, "dtype": dtype}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def median_time(fn: Callable[[], object], repeats: int, device: str, warmup: int = 1) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` runs after ``warmup`` runs (CUDA synchronised)."""
    return statistics.median(times(fn, repeats, device, warmup))


def times(fn: Callable[[], object], repeats: int, device: str, warmup: int = 1) -> list[float]:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return out


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int, device: str) -> dict[str, float]:
    """Median time of each alternative, measured in alternation (A B C A B C …) so that a shared machine's load
    changes hit every alternative alike; one warm-up call each."""
    for fn in fns.values():
        fn()
    samples = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            samples[k] += times(fn, 1, device, warmup=0)
    return {k: statistics.median(v) for k, v in samples.items()}


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def emit(args, title: str, header: list[str], rows: list[list], **extra) -> None:
    """Print the title and Markdown table; with ``--json`` also write them (plus ``extra`` and the settings)."""
    print(f"\n{title}\n")
    print(table(header, rows))
    if getattr(args, "json", None):
        out = {"title": title, "header": header, "rows": rows, "size": args.size, "device": args.device,
               "repeats": getattr(args, "repeats", None), "load_average": load_average(), **extra}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))


def build_whisper_checkpoint(size: str, path) -> Path:
    """An openai-whisper checkpoint file with the size's dims (random weights)."""
    from c2ser.testing import build_tiny_whisper

    return build_tiny_whisper(path, **bench_model_config(size)["whisper"])


def build_emotion2vec_checkpoint(size: str, path) -> tuple[Path, dict]:
    """A fairseq-layout Emotion2Vec-S checkpoint with the size's dims; returns (path, dims)."""
    from c2ser.testing import TINY_E2V_CFG, build_tiny_emotion2vec

    dims = bench_model_config(size)["emotion2vec"] or TINY_E2V_CFG
    return build_tiny_emotion2vec(path, **dims), dims


def random_llm(size: str, device: str, tok):
    """The size's Qwen2 LLM (``small``/``full``) with random weights, built in memory; special ids from ``tok``."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    spec = bench_model_config(size, device)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(
            Qwen2Config(**spec["llm"], bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id), dtype=spec["dtype"])


def model_config(size: str, device: str, trainable: str = "adapter_encoder_lora"):
    """The ``ModelConfig`` of a benchmark size above tiny: its dtype, and SSL tokens as wide as the Whisper encoder
    (at most 768)."""
    from c2ser.models.config import ModelConfig

    spec = bench_model_config(size, device)
    cfg = ModelConfig(trainable=trainable)
    cfg.llm.dtype = dtype_name(spec["dtype"])
    cfg.ssl.dim = min(768, spec["whisper"]["n_audio_state"])
    return cfg


def build_c2ser(size: str, device: str, tmp, trainable: str | None = None, gradient_checkpointing: bool = False):
    """A C2SER model for a benchmark (see the module docstring for the sizes). Nothing is downloaded: the LLM is
    built from its Qwen2Config in memory, the tokenizer is the tiny test tokenizer (its ids are a subset of the
    larger vocabulary), Whisper is a locally saved random checkpoint. ``model.cfg.ssl.dim``: 48 (tiny), 512 (small:
    cached SSL tokens are zero-padded to the encoder width, which is 512 for Whisper-base), 768 (full)."""
    from c2ser.models.build import build_model, load_tokenizer
    from c2ser.testing import build_tiny_models, tiny_model_config

    models = build_tiny_models(Path(tmp))
    if size == "tiny":
        return build_model(tiny_model_config(models, trainable=trainable or "full")).to(device)
    from c2ser.models.whisper_encoder import WhisperEncoder

    spec = bench_model_config(size, device)
    tok = load_tokenizer(tiny_model_config(models).llm)
    cfg = model_config(size, device, trainable or "adapter_encoder_lora")
    llm = random_llm(size, device, tok)
    if size == "small":
        whisper = WhisperEncoder.from_pretrained(str(build_whisper_checkpoint(size, Path(tmp) / "whisper-small-bench.pt")),
                                                 gradient_checkpointing=gradient_checkpointing)
    else:
        from c2ser.models.whisper_encoder import WhisperDims
        with torch.device(device):
            whisper = WhisperEncoder(WhisperDims(), gradient_checkpointing=gradient_checkpointing)
    if gradient_checkpointing:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = build_model(cfg, llm=llm, tokenizer=tok, whisper=whisper)
    return model.to(device=device, dtype=spec["dtype"])
