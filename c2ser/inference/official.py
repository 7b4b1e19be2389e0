"""Loads the officially released ``C2SER_llm.pt`` (official key layout, bf16, ~16 GB) into a :class:`C2SERModel`.

The file is a pickled ``OrderedDict`` of tensors; it is opened with ``torch.load(weights_only=True, mmap=True)``
(tensors stay file-backed, never a second full copy in RAM; never ``weights_only=False``). Key map (official →
ours, see ``shared/specs/c2ser_model.md`` §2 and §7):

==========================================================  ==========================================================
``encoder.embed.conv.0`` / ``.2``                            ``whisper.encoder.conv1`` / ``conv2``
``encoder.embed.pos_enc.pe`` (1, 1500, D)                    ``whisper.encoder.positional_embedding`` (1500, D)
``encoder.encoders.i.self_attn.linear_q/k/v/out``            ``whisper.encoder.blocks.i.attn.query/key/value/out``
``encoder.encoders.i.norm1`` / ``norm2``                     ``…blocks.i.attn_ln`` / ``mlp_ln``
``encoder.encoders.i.feed_forward.w_1`` / ``w_2``            ``…blocks.i.mlp.0`` / ``mlp.2``
``encoder.after_norm``                                       ``whisper.encoder.ln_post``
``down_sample_2.conv.{1,4,7}``                               ``downsampler.conv.{1,4,7}``
``speech_transformer.*``                                     ``adapter.*`` (pe buffer included)
``speech_llama_proj``                                        ``projection``
``speech_token_emded.weight`` rows 4097 / 4098               ``speech_markers.weight`` rows 0 / 1
``llama_model.base_model.model.*``                           ``llm.base_model.model.*`` (peft base_layer/lora names)
==========================================================  ==========================================================

Dropped on purpose: ``speaker_head.*``, ``ln_speech.*`` (unused) and the top-level aliases ``embed_tokens.weight``
and ``lm_head.weight`` (same tensors as the LLM's own). Every key of the file must be mapped or dropped, every model
key must be filled and shapes must match; anything else is a clear ``ValueError``.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from c2ser.models.config import AdapterConfig, LLMConfig, LoraConfig, ModelConfig, SSLConfig, WhisperConfig

DROPPED = ("speaker_head.", "ln_speech.")
ALIASES = ("embed_tokens.weight", "lm_head.weight")
BOS_ROW, EOS_ROW = 4097, 4098
OFFICIAL_SSL_MODE = "official"  # first-10-frames features (emotion2vec_s.md §5)

# Decoding of the release (§6) as a "parity" preset; default decoding stays greedy. top_p=0.0 is replaced by
# top_k=2: on transformers 4.44 top_p=0 with beams kept the top-2 tokens (min_tokens_to_keep=2), which is what
# top_k=2 does explicitly (transformers 5 rejects top_p=0).
PARITY_DECODING = dict(max_new_tokens=400, num_beams=4, do_sample=True, top_k=2, temperature=1.0,
                       repetition_penalty=1.05, length_penalty=1.0, min_length=1)
PARITY_SEED = 777

_WHISPER_RENAMES = [
    (r"embed\.conv\.0\.", "conv1."), (r"embed\.conv\.2\.", "conv2."), (r"^after_norm\.", "ln_post."),
    (r"^encoders\.", "blocks."), (r"\.self_attn\.linear_q\.", ".attn.query."),
    (r"\.self_attn\.linear_k\.", ".attn.key."), (r"\.self_attn\.linear_v\.", ".attn.value."),
    (r"\.self_attn\.linear_out\.", ".attn.out."), (r"\.norm1\.", ".attn_ln."), (r"\.norm2\.", ".mlp_ln."),
    (r"\.feed_forward\.w_1\.", ".mlp.0."), (r"\.feed_forward\.w_2\.", ".mlp.2."),
]


def map_key(key: str) -> str | None:
    """Our state-dict name for an official key; ``None`` for keys dropped on purpose; ``KeyError`` if unknown."""
    if key.startswith(DROPPED) or key in ALIASES:
        return None
    if key == "encoder.embed.pos_enc.pe":
        return "whisper.encoder.positional_embedding"
    if key.startswith("encoder."):
        k = key[len("encoder."):]
        for pat, rep in _WHISPER_RENAMES:
            k = re.sub(pat, rep, k)
        return "whisper.encoder." + k
    for old, new in (("down_sample_2.", "downsampler."), ("speech_transformer.", "adapter."),
                     ("speech_llama_proj.", "projection."), ("llama_model.base_model.model.", "llm.base_model.model.")):
        if key.startswith(old):
            return new + key[len(old):]
    if key == "speech_token_emded.weight":
        return "speech_markers.weight"
    raise KeyError(f"unknown key {key!r} in the official checkpoint")


def convert_state_dict(official: dict[str, torch.Tensor], own: dict[str, torch.Tensor], source: str = "checkpoint"
                       ) -> dict[str, torch.Tensor]:
    """Map an official state dict onto ``own`` (our model's state dict): returns tensors in our names and dtypes."""
    out, unknown, bad_shape = {}, [], []
    for key, t in official.items():
        try:
            ours = map_key(key)
        except KeyError:
            unknown.append(key)
            continue
        if ours is None:
            continue
        if ours == "speech_markers.weight":
            if t.shape[0] <= EOS_ROW:
                bad_shape.append(f"{key} {tuple(t.shape)} (needs rows {BOS_ROW} and {EOS_ROW})")
                continue
            t = t[[BOS_ROW, EOS_ROW]]
        elif ours == "whisper.encoder.positional_embedding":
            t = t.reshape(t.shape[-2:])
        if ours not in own:
            unknown.append(f"{key} (→ {ours})")
            continue
        if tuple(t.shape) != tuple(own[ours].shape):
            bad_shape.append(f"{key} {tuple(t.shape)} vs model {ours} {tuple(own[ours].shape)}")
            continue
        out[ours] = t.to(own[ours].dtype)
    missing = [k for k in own if k not in out]
    if unknown or bad_shape or missing:
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} unknown keys, e.g. {unknown[:3]}")
        if bad_shape:
            parts.append(f"{len(bad_shape)} shape mismatches, e.g. {bad_shape[:2]}")
        if missing:
            parts.append(f"{len(missing)} model keys missing from the file, e.g. {missing[:3]}")
        raise ValueError(f"{source}: does not fit the C2SER model: " + "; ".join(parts))
    for alias in ALIASES:  # the aliases must agree with the LLM's own tensors when both are present
        full = "llama_model.base_model.model." + ("model." if alias.startswith("embed") else "") + alias
        if alias in official and full in official and not torch.equal(official[alias], official[full]):
            raise ValueError(f"{source}: aliased key {alias!r} differs from {full!r}")
    return out


def official_model_config(qwen2_dir: str, whisper: str = "medium", dtype: str = "bfloat16",
                          ssl_checkpoint: str | None = None) -> ModelConfig:
    """The released system: Whisper-medium dims, Qwen2 from ``qwen2_dir``, LoRA r8/alpha32 (official targets)."""
    return ModelConfig(whisper=WhisperConfig(name_or_path=whisper), llm=LLMConfig(name_or_path=qwen2_dir, dtype=dtype),
                       ssl=SSLConfig(enabled=True, dim=768, mode=OFFICIAL_SSL_MODE, checkpoint=ssl_checkpoint),
                       adapter=AdapterConfig(num_blocks=4, heads=4, ffn=2560, dropout=0.0),
                       lora=LoraConfig(r=8, alpha=32, dropout=0.0))


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    from c2ser.safe_io import load_torch_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: official checkpoint not found")
    sd = load_torch_file(path, "C2SER checkpoint")  # weights only; memory-mapped (zip): no second 16 GB copy
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    return sd


def load_official(path: str | Path, cfg: ModelConfig, llm=None, tokenizer=None, whisper=None):
    """Build the model of ``cfg`` (Whisper built from dims, not downloaded) and fill it from the official file."""
    from c2ser.models.build import build_model
    from c2ser.models.whisper_encoder import WhisperDims, WhisperEncoder

    if whisper is None and not Path(cfg.whisper.name_or_path).is_file():
        whisper = WhisperEncoder(WhisperDims())  # Whisper-medium dims; weights come from the file
    model = build_model(cfg, llm=llm, tokenizer=tokenizer, whisper=whisper)
    weights = convert_state_dict(read_official(path), model.state_dict(), source=str(path))
    model.load_state_dict(weights, strict=True)
    return model.eval()
