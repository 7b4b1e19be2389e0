"""Shared benchmark helpers: command-line arguments, median timing over repeats, Markdown tables."""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--size", choices=["tiny", "full"], default="tiny")
    p.add_argument("--repeats", type=int, default=5)
    return p


def median_time(fn: Callable[[], object], repeats: int, device: str, warmup: int = 1) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` runs after ``warmup`` runs (CUDA synchronised)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def build_c2ser(size: str, device: str, tmp, trainable: str | None = None):
    """A C2SER model for a benchmark: tiny (the tiny models, fp32) or full (Whisper-medium + Qwen2-7B
    architecture with random weights in bf16, LoRA r 8; nothing can be downloaded, so weights are random)."""
    from pathlib import Path

    from c2ser.models.build import build_model, load_tokenizer
    from c2ser.testing import build_tiny_models, tiny_model_config

    models = build_tiny_models(Path(tmp))
    if size == "tiny":
        return build_model(tiny_model_config(models, trainable=trainable or "full")).to(device)
    from transformers import AutoModelForCausalLM

    from c2ser.models.config import ModelConfig
    from c2ser.models.whisper_encoder import WhisperDims, WhisperEncoder
    from c2ser.testing import qwen2_7b_config

    cfg = ModelConfig(trainable=trainable or "adapter_encoder_lora")
    with torch.device(device):
        llm = AutoModelForCausalLM.from_config(qwen2_7b_config(), dtype=torch.bfloat16)
        whisper = WhisperEncoder(WhisperDims(), gradient_checkpointing=True)
    llm.gradient_checkpointing_enable()
    return build_model(cfg, llm=llm, tokenizer=load_tokenizer(tiny_model_config(models).llm), whisper=whisper).to(device)
