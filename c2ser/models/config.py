"""Configuration of the C2SER model (defaults = the official full-size system: Whisper-medium + Qwen2-7B)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WhisperConfig:
    name_or_path: str = "medium"            # openai-whisper model name or a local checkpoint file
    download_root: str | None = None        # where named models are cached (default ~/.cache/whisper)
    long_audio: str = "error"               # clips > 30 s: "error" or "crop" (first 30 s)
    gradient_checkpointing: bool = False


@dataclass
class SSLConfig:
    """Emotion2Vec-S utterance tokens (precomputed features, or computed online from ``checkpoint``)."""
    enabled: bool = True
    dim: int = 768                          # feature size; zero-padded to the adapter width (no projection)
    num_tokens: int = 10
    mode: str = "tokens"                    # official | tokens | mean  (see c2ser.encoders.emotion2vec)
    checkpoint: str | None = None           # set to compute features online instead of reading a cache


@dataclass
class AdapterConfig:
    num_blocks: int = 4
    heads: int = 4
    ffn: int = 2560
    dropout: float = 0.1


@dataclass
class LLMConfig:
    name_or_path: str = "Qwen/Qwen2-7B-Instruct"   # any HF causal-LM directory or hub id
    dtype: str = "bfloat16"                 # float32 | bfloat16 | float16
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    # End-of-answer token for training targets and for stopping generation; None = the tokenizer's eos_token.
    # The official checkpoint stops at "<|endoftext|>" (an Instruct tokenizer's eos is "<|im_end|>").
    eos_token: str | None = None


@dataclass
class LoraConfig:
    enabled: bool = True
    r: int = 8
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"])


# What trains. "adapter" = downsampler + adapter + projection + speech BOS/EOS.
TRAINABLE_POLICIES = {
    "adapter": ("adapter",),
    "adapter_encoder": ("adapter", "encoder"),
    "adapter_lora": ("adapter", "lora"),
    "adapter_encoder_lora": ("adapter", "encoder", "lora"),   # official: link_and_encoder_and_lora
    "full": ("adapter", "encoder", "lora", "llm"),
}


@dataclass
class ModelConfig:
    whisper: WhisperConfig = field(default_factory=WhisperConfig)
    ssl: SSLConfig = field(default_factory=SSLConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    trainable: str = "adapter_encoder_lora"

    def __post_init__(self):
        if self.trainable not in TRAINABLE_POLICIES:
            raise ValueError(f"trainable={self.trainable!r}: expected one of {sorted(TRAINABLE_POLICIES)}")
        if self.whisper.long_audio not in ("error", "crop"):
            raise ValueError(f"whisper.long_audio={self.whisper.long_audio!r}: expected 'error' or 'crop'")
