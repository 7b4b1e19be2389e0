"""Loads the officially released ``C2SER_llm.pt`` (official key layout, bf16, ~16 GB) into a :class:`C2SERModel`.

The file is a pickled ``OrderedDict`` of tensors; it is opened with ``torch.load(weights_only=True, mmap=True)``
(tensors stay file-backed; never ``weights_only=False``). The model is first built on the ``meta`` device (no
memory, nothing read: the Qwen2 directory gives only its config and tokenizer, Whisper only its dims), then every
parameter and persistent buffer is filled ONCE from the file (``load_state_dict(assign=True)``; tensors already in
the runtime dtype stay file-backed, others are cast once). A base LLM tensor absent from the file is read alone from
the Qwen2 directory's safetensors. Non-persistent buffers (rotary ``inv_freq``) are recomputed; nothing may stay on
``meta``. The online Emotion2Vec-S encoder (``ssl.checkpoint``) is loaded from its own checkpoint, outside the key
accounting. Key map (official → ours, see ``shared/specs/c2ser_model.md`` §2 and §7):

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
from itertools import chain
from pathlib import Path
from typing import Callable

import torch

from c2ser.models.config import AdapterConfig, LLMConfig, LoraConfig, ModelConfig, SSLConfig, WhisperConfig
from c2ser.prompts import EXPLICIT_PROMPT, IMPLICIT_PROMPT

DROPPED = ("speaker_head.", "ln_speech.")
ALIASES = ("embed_tokens.weight", "lm_head.weight")
BOS_ROW, EOS_ROW = 4097, 4098
OFFICIAL_SSL_MODE = "official"  # first-10-frames features (emotion2vec_s.md §5)
OFFICIAL_EOS = "<|endoftext|>"  # the release was trained to stop here (id 151643), whatever the tokenizer's eos
OFFICIAL_PROMPTS = {"explicit": EXPLICIT_PROMPT, "implicit": IMPLICIT_PROMPT}  # the strings it was trained on
OUR_LLM_PREFIX = "llm.base_model.model."

# Decoding of the release (§6), its generate() arguments as they are: beam-sample with top_p=0.0 and top_k=0.
# transformers (4.44 as 5.23, ``_get_logits_processor``) then adds TopPLogitsWarper(top_p=0.0, min_tokens_to_keep=2):
# with beams, min_tokens_to_keep = number of eos ids + 1 = 2; top_p=0.0 removes every token whose cumulative
# probability (ascending) is <= 1, i.e. all of them, but the last two of the sort are always kept: each beam samples
# among EXACTLY two tokens, even when several tie at the second score (top_k=2 would keep every tied one).
# top_k=0 must be given: transformers 5 otherwise fills an unset top_k with its default 50. The release never calls
# eval() and sets no seed (README): this reproduces its decoding rule, not its samples.
PARITY_DECODING = dict(max_new_tokens=400, num_beams=4, do_sample=True, top_p=0.0, top_k=0, temperature=1.0,
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


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when ``a`` and ``b`` view the same memory (aliases stored once in the file: no data is read)."""
    if a is b:
        return True
    if a.is_meta or b.is_meta:
        return False
    same_storage = a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    return same_storage and (a.storage_offset(), a.shape, a.stride()) == (b.storage_offset(), b.shape, b.stride())


def convert_state_dict(official: dict[str, torch.Tensor], own: dict[str, torch.Tensor], source: str = "checkpoint",
                       fill_missing: Callable[[list[str]], dict[str, torch.Tensor]] | None = None
                       ) -> dict[str, torch.Tensor]:
    """Map an official state dict onto ``own`` (our model's state dict, may be on ``meta``): tensors in our names and
    dtypes. Each tensor of ``official`` is fetched at most once; dropped keys are never fetched (aliases once, for an
    identity check). ``fill_missing(our_keys)`` may supply model keys absent from the file (our names).
    ``ssl_encoder.*`` keys of ``own`` are not counted: that encoder comes from its own checkpoint."""
    own = {k: v for k, v in own.items() if not k.startswith("ssl_encoder.")}
    out, unknown, bad_shape, kept = {}, [], [], {}
    alias_targets = {alias: "llama_model.base_model.model." + ("model." if alias.startswith("embed") else "") + alias
                     for alias in ALIASES}

    def put(key: str, ours: str, t: torch.Tensor) -> None:
        if tuple(t.shape) != tuple(own[ours].shape):
            bad_shape.append(f"{key} {tuple(t.shape)} vs model {ours} {tuple(own[ours].shape)}")
        else:
            out[ours] = t.to(own[ours].dtype)

    for key in official:
        try:
            ours = map_key(key)
        except KeyError:
            unknown.append(key)
            continue
        if ours is None:
            continue
        if ours not in own:
            unknown.append(f"{key} (→ {ours})")
            continue
        t = official[key]
        if key in alias_targets.values():
            kept[key] = t
        if ours == "speech_markers.weight":
            if t.shape[0] <= EOS_ROW:
                bad_shape.append(f"{key} {tuple(t.shape)} (needs rows {BOS_ROW} and {EOS_ROW})")
                continue
            t = t[[BOS_ROW, EOS_ROW]]
        elif ours == "whisper.encoder.positional_embedding":
            t = t.reshape(t.shape[-2:])
        put(key, ours, t)
    missing = [k for k in own if k not in out]
    if missing and fill_missing is not None:
        for ours, t in fill_missing(missing).items():
            put(f"{ours} (from the base model)", ours, t)
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
    for alias, full in alias_targets.items():  # the aliases must agree with the LLM's own tensors when both are present
        if alias in official and full in kept:
            a = official[alias]
            if not (_same_tensor(a, kept[full]) or (a.shape == kept[full].shape and torch.equal(a, kept[full]))):
                raise ValueError(f"{source}: aliased key {alias!r} differs from {full!r}")
    return out


def official_model_config(qwen2_dir: str, whisper: str = "medium", dtype: str = "bfloat16",
                          ssl_checkpoint: str | None = None) -> ModelConfig:
    """The released system: Whisper-medium dims, Qwen2 from ``qwen2_dir``, LoRA r8/alpha32 (official targets),
    answers ending at ``<|endoftext|>``."""
    return ModelConfig(whisper=WhisperConfig(name_or_path=whisper),
                       llm=LLMConfig(name_or_path=qwen2_dir, dtype=dtype, eos_token=OFFICIAL_EOS),
                       ssl=SSLConfig(enabled=True, dim=768, mode=OFFICIAL_SSL_MODE, checkpoint=ssl_checkpoint),
                       adapter=AdapterConfig(num_blocks=4, heads=4, ffn=2560, dropout=0.0),
                       lora=LoraConfig(r=8, alpha=32, dropout=0.0))


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The file's tensors, memory-mapped (nothing is read until a tensor's data is used)."""
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


def read_base_tensors(qwen2_dir: str | Path, keys: list[str]) -> dict[str, torch.Tensor]:
    """Just the LLM base tensors among ``keys`` (our names) from ``qwen2_dir``'s safetensors (LoRA keys never)."""
    from safetensors import safe_open

    wanted = {k: k[len(OUR_LLM_PREFIX):].replace(".base_layer.", ".") for k in keys
              if k.startswith(OUR_LLM_PREFIX) and ".lora_" not in k}
    out = {}
    for f in sorted(Path(qwen2_dir).glob("*.safetensors")) if wanted else []:
        with safe_open(str(f), framework="pt") as sf:  # reads the header; get_tensor reads one tensor
            names = set(sf.keys())
            for ours, hf in wanted.items():
                if hf in names and ours not in out:
                    out[ours] = sf.get_tensor(hf)
    return out


def _whisper_dims(cfg: ModelConfig):
    """Whisper-medium dims, or those of ``whisper.name_or_path`` when it is a checkpoint file (only ``dims`` read)."""
    from c2ser.models.whisper_encoder import WhisperDims

    path = Path(cfg.whisper.name_or_path).expanduser()
    if not path.is_file():
        return WhisperDims()
    try:
        d = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["dims"]
        return WhisperDims(**{k: d[k] for k in WhisperDims.__dataclass_fields__})
    except Exception as e:  # noqa: BLE001 - a bad file for the user
        raise ValueError(f"{path}: cannot read the Whisper dims ({type(e).__name__}: {e})") from None


def build_meta_model(cfg: ModelConfig, llm_config, tokenizer=None):
    """The C2SER model of ``cfg`` with every parameter and buffer on ``meta`` (no memory, nothing read)."""
    from transformers import AutoModelForCausalLM

    from c2ser.models.build import DTYPES, apply_lora
    from c2ser.models.c2ser import C2SERModel
    from c2ser.models.whisper_encoder import WhisperEncoder

    if cfg.llm.dtype not in DTYPES:
        raise ValueError(f"llm.dtype={cfg.llm.dtype!r}: expected one of {sorted(DTYPES)}")
    dims = _whisper_dims(cfg)
    with torch.device("meta"):
        llm = AutoModelForCausalLM.from_config(llm_config, dtype=DTYPES[cfg.llm.dtype],
                                               trust_remote_code=cfg.llm.trust_remote_code)
        return C2SERModel(cfg, WhisperEncoder(dims), apply_lora(llm, cfg.lora), tokenizer)


def _recompute_meta_buffers(model: torch.nn.Module) -> None:
    """Non-persistent buffers (not in any file) left on ``meta``: recomputed by a fresh CPU instance of their module
    (transformers modules built from their ``config``, e.g. the rotary embedding's ``inv_freq``)."""
    for mod in model.modules():
        names = [n for n, b in mod.named_buffers(recurse=False) if b.is_meta]
        if names and hasattr(mod, "config"):
            fresh = type(mod)(config=mod.config)
            for n in names:
                setattr(mod, n, getattr(fresh, n))


def load_official(path: str | Path, cfg: ModelConfig):
    """The model of ``cfg`` filled from the official file: built on ``meta``, each tensor of the file read once."""
    from transformers import AutoConfig

    from c2ser.models.build import load_tokenizer

    source = str(path)
    official = read_official(path)
    tokenizer = load_tokenizer(cfg.llm)  # its eos is llm.eos_token (official: <|endoftext|>)
    llm_config = AutoConfig.from_pretrained(cfg.llm.name_or_path, trust_remote_code=cfg.llm.trust_remote_code)
    model = build_meta_model(cfg, llm_config, tokenizer)
    weights = convert_state_dict(official, model.state_dict(), source=source,
                                 fill_missing=lambda keys: read_base_tensors(cfg.llm.name_or_path, keys))
    model.load_state_dict(weights, strict=True, assign=True)
    _recompute_meta_buffers(model)
    left = [n for n, t in chain(model.named_parameters(), model.named_buffers()) if t.is_meta]
    if left:
        raise ValueError(f"{source}: {len(left)} model tensors could not be filled, e.g. {left[:3]}")
    if cfg.ssl.enabled and cfg.ssl.checkpoint:
        from c2ser.encoders.emotion2vec import Emotion2VecS

        model.ssl_encoder = Emotion2VecS.from_pretrained(cfg.ssl.checkpoint).eval().requires_grad_(False)
    return model.eval()
