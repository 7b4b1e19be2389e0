"""Builds a :class:`C2SERModel` from a :class:`ModelConfig`: loads Whisper, the LLM + tokenizer, applies LoRA."""
from __future__ import annotations

import torch

from c2ser.models.c2ser import C2SERModel
from c2ser.models.config import LLMConfig, LoraConfig, ModelConfig
from c2ser.models.whisper_encoder import WhisperEncoder

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_tokenizer(cfg: LLMConfig):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(cfg.name_or_path, trust_remote_code=cfg.trust_remote_code)
    except OSError as e:  # not a local directory and not downloadable (offline): one clear line
        raise FileNotFoundError(f"LLM {cfg.name_or_path!r}: cannot load its tokenizer "
                                f"({str(e).splitlines()[0]}); give a local HF directory (llm.name_or_path)") from None
    if cfg.eos_token is not None:
        if cfg.eos_token not in tok.get_vocab():
            raise ValueError(f"{cfg.name_or_path}: llm.eos_token={cfg.eos_token!r} is not a token of the tokenizer")
        tok.eos_token = cfg.eos_token
    if tok.eos_token_id is None:
        raise ValueError(f"{cfg.name_or_path}: tokenizer has no eos token")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_llm(cfg: LLMConfig):
    """The HF causal LM of ``cfg``. Its ``generation_config.json`` is *not* used: decoding is fully defined by our
    presets (an Instruct directory's sampling defaults, e.g. repetition_penalty 1.05, must not leak into greedy)."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    if cfg.dtype not in DTYPES:
        raise ValueError(f"llm.dtype={cfg.dtype!r}: expected one of {sorted(DTYPES)}")
    try:
        llm = AutoModelForCausalLM.from_pretrained(cfg.name_or_path, dtype=DTYPES[cfg.dtype],
                                                   trust_remote_code=cfg.trust_remote_code)
    except OSError as e:
        raise FileNotFoundError(f"LLM {cfg.name_or_path!r}: cannot load it ({str(e).splitlines()[0]}); "
                                "give a local HF directory (llm.name_or_path)") from None
    llm.generation_config = GenerationConfig()
    if cfg.gradient_checkpointing:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return llm


def apply_lora(llm, cfg: LoraConfig):
    if not cfg.enabled:
        return llm
    from peft import LoraConfig as PeftLoraConfig, get_peft_model

    return get_peft_model(llm, PeftLoraConfig(task_type="CAUSAL_LM", r=cfg.r, lora_alpha=cfg.alpha,
                                              lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules)))


def build_model(cfg: ModelConfig, llm=None, tokenizer=None, whisper: WhisperEncoder | None = None) -> C2SERModel:
    """Load every part named in ``cfg`` (parts passed in are used as they are, e.g. models built on ``meta``)."""
    whisper = whisper or WhisperEncoder.from_pretrained(cfg.whisper.name_or_path, cfg.whisper.download_root,
                                                        gradient_checkpointing=cfg.whisper.gradient_checkpointing)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg.llm)
    llm = apply_lora(llm if llm is not None else load_llm(cfg.llm), cfg.lora)
    model = C2SERModel(cfg, whisper, llm, tokenizer)
    if cfg.ssl.enabled and cfg.ssl.checkpoint:
        from c2ser.encoders.emotion2vec import Emotion2VecS

        model.ssl_encoder = Emotion2VecS.from_pretrained(cfg.ssl.checkpoint).eval().requires_grad_(False)
    return model
