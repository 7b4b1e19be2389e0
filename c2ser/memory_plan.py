"""Per-GPU training memory of a config (``c2ser plan``): model states from exact parameter counts, activations from
an explicit model.

Parameter counts come from the model of the config built on the ``meta`` device at its real dims (no memory, no
weights read): Whisper dims from the named size or the checkpoint file's ``dims``, the LLM's from its local
directory's ``config.json`` (or the built-in Qwen2-7B dims for ``Qwen/Qwen2-7B[-Instruct]``), LoRA and the
trainable policy as configured.

Model states per GPU under DeepSpeed bf16 with N GPUs (DeepSpeed's ZeRO rules and its byte counts, as in its
``estimate_zero2_model_states_mem_needs``: 2 B 16-bit weights + 18 B per trained parameter; Ψ = all parameters,
Ψt = the trained ones, frozen ones have no gradient and no optimizer state)::

    parameters   2 B · Ψ                   (÷ N at ZeRO-3, plus the largest layer gathered in fp32: 4 B · its size)
    gradients    2 B · Ψt (16-bit)         (÷ N at ZeRO-2/3)  + 4 B · Ψt fp32 copy for the step (÷ N at ZeRO ≥ 1)
    optimizer    (4 B fp32 master + 8 B Adam moments) · Ψt   (÷ N at ZeRO ≥ 1)

ZeRO 0 = nothing partitioned (each GPU holds everything, e.g. one process). With ``llm.dtype: float32`` (no bf16) the
weights are the master copy: 4 B params, 4 B grads, 8 B moments.

Activations (one micro-batch at the batch caps; not partitioned by ZeRO) are a MODEL, stated in the output: the
tensors autograd keeps per token and per layer in 16-bit (attention through SDPA: no T² score matrix), with
gradient checkpointing only each block's input plus one block recomputed at a time; plus the LM logits
(bf16 + the fp32 copy and log-softmax of the loss: 10 B per token × vocabulary). Tokens at the caps: Whisper sees
``max_frames_in_batch`` / 2 tokens, the adapter ``max_frames_in_batch`` / 8 + 12 per clip, the LLM
``max_tokens_in_batch``. Not counted: dropout masks (1 B per dropped value), CUDA context, allocator fragmentation,
DeepSpeed's communication buckets.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from c2ser.models.config import ModelConfig
from c2ser.training.config import TrainConfig

GiB = 1 << 30
# openai-whisper encoder sizes: (n_mels, n_audio_state, n_audio_head, n_audio_layer)
WHISPER_SIZES = {"tiny": (80, 384, 6, 4), "base": (80, 512, 8, 6), "small": (80, 768, 12, 12),
                 "medium": (80, 1024, 16, 24), "large": (80, 1280, 20, 32), "large-v1": (80, 1280, 20, 32),
                 "large-v2": (80, 1280, 20, 32), "large-v3": (128, 1280, 20, 32), "turbo": (128, 1280, 20, 32)}
QWEN2_7B_NAMES = ("Qwen/Qwen2-7B", "Qwen/Qwen2-7B-Instruct")
SPEECH_EXTRA_TOKENS = 12  # per clip in the LLM sequence / adapter: 10 Emotion2Vec-S tokens + BOS_sp + EOS_sp


def qwen2_7b_config(**kwargs):
    """Qwen2-7B's architecture (its config.json): untied 152,064-token embedding and LM head."""
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                       tie_word_embeddings=False, rope_theta=1000000.0, **kwargs)


def whisper_dims(cfg: ModelConfig):
    """The Whisper encoder dims of ``cfg``: a named size, or the ``dims`` of a local checkpoint file."""
    from c2ser.models.whisper_encoder import WhisperDims

    path = Path(cfg.whisper.name_or_path).expanduser()
    if path.is_file():
        from c2ser.inference.official import _whisper_dims

        return _whisper_dims(cfg)
    if cfg.whisper.name_or_path not in WHISPER_SIZES:
        raise ValueError(f"whisper.name_or_path={cfg.whisper.name_or_path!r}: not a Whisper size "
                         f"({', '.join(WHISPER_SIZES)}) nor a checkpoint file")
    n_mels, state, head, layer = WHISPER_SIZES[cfg.whisper.name_or_path]
    return WhisperDims(n_mels=n_mels, n_audio_state=state, n_audio_head=head, n_audio_layer=layer)


def llm_config(cfg: ModelConfig):
    """The LLM's HF config: its local directory's config.json, the built-in Qwen2-7B dims, or the HF cache."""
    from transformers import AutoConfig

    name = cfg.llm.name_or_path
    if Path(name).expanduser().is_dir():
        return AutoConfig.from_pretrained(str(Path(name).expanduser()), trust_remote_code=cfg.llm.trust_remote_code)
    if name in QWEN2_7B_NAMES:
        return qwen2_7b_config()
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=cfg.llm.trust_remote_code)
    except OSError:
        raise ValueError(f"llm.name_or_path={name!r}: cannot read its config.json (give a local HF directory)") \
            from None


def meta_model(cfg: ModelConfig, hf_config=None, **llm_kwargs):
    """The C2SER model of ``cfg`` on the ``meta`` device (shapes and dtypes only), with its gradient checkpointing
    and trainable policy; ``llm_kwargs`` go to ``from_config`` (e.g. ``attn_implementation``)."""
    from transformers import AutoModelForCausalLM

    from c2ser.models.build import DTYPES, apply_lora
    from c2ser.models.c2ser import C2SERModel
    from c2ser.models.whisper_encoder import WhisperEncoder

    if cfg.llm.dtype not in DTYPES:
        raise ValueError(f"llm.dtype={cfg.llm.dtype!r}: expected one of {sorted(DTYPES)}")
    hf_config = hf_config if hf_config is not None else llm_config(cfg)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # gradient_checkpointing_* renamed activation_* in v5
        llm = AutoModelForCausalLM.from_config(hf_config, dtype=DTYPES[cfg.llm.dtype],
                                               trust_remote_code=cfg.llm.trust_remote_code, **llm_kwargs)
        if cfg.llm.gradient_checkpointing:  # as c2ser.models.build.load_llm does
            llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        whisper = WhisperEncoder(whisper_dims(cfg), gradient_checkpointing=cfg.whisper.gradient_checkpointing)
        return C2SERModel(cfg, whisper, apply_lora(llm, cfg.lora), tokenizer=None)


@dataclass
class Plan:
    """Bytes per GPU of each part, with the rule that gave it."""
    gpus: int
    zero: int
    gpu_gb: float
    counts: dict          # parameters by part: encoder, adapter, lora, llm, total, trainable
    largest_layer: int    # parameters of the largest single tensor (gathered whole at ZeRO-3)
    rows: list            # (part, bytes, rule)
    activation_rows: list  # (part, bytes, rule)

    @property
    def total(self) -> int:
        return sum(b for _, b, _ in self.rows) + sum(b for _, b, _ in self.activation_rows)

    @property
    def fits(self) -> bool:
        return self.total <= self.gpu_gb * GiB


def model_state_rows(total: int, trainable: int, largest: int, gpus: int, zero: int, half: bool) -> list:
    """(part, bytes per GPU, rule) of parameters, gradients and optimizer states (module docstring)."""
    if zero not in (0, 1, 2, 3):
        raise ValueError(f"--zero {zero}: expected 0, 1, 2 or 3")
    if gpus < 1:
        raise ValueError(f"--gpus {gpus}: expected at least 1")

    def part(n: int, from_stage: int) -> tuple[float, str]:
        return (n / gpus, f" ÷ {gpus}") if zero >= from_stage else (n, "")

    p, ps = part(total, 3)
    if not half:  # fp32 training: the weights are the master copy
        g, gs = part(trainable, 2)
        o, os_ = part(trainable, 1)
        return [("parameters", int(4 * p), f"4 B fp32 × {total:,} all{ps}"),
                ("gradients", int(4 * g), f"4 B fp32 × {trainable:,} trained{gs}"),
                ("optimizer states", int(8 * o), f"8 B Adam moments × {trainable:,} trained{os_}")]
    rows = [("parameters", int(2 * p), f"2 B bf16 × {total:,} all{ps}")]
    if zero == 3:
        rows.append(("gathered layer (ZeRO-3)", 4 * largest, f"4 B × {largest:,} (largest tensor)"))
    g16, gs16 = part(trainable, 2)
    g32, gs32 = part(trainable, 1)
    rows.append(("gradients", int(2 * g16 + 4 * g32),
                 f"2 B bf16 × {trainable:,} trained{gs16} + 4 B fp32 × {trainable:,} trained{gs32}"))
    o, os_ = part(trainable, 1)
    rows.append(("optimizer states", int(12 * o), f"(4 B fp32 master + 8 B Adam m, v) × {trainable:,} trained{os_}"))
    return rows


def block_activations(tokens: int, per_token: int, layers: int, checkpointing: bool, width: int,
                      nbytes: int = 2) -> tuple[int, str]:
    """Bytes autograd keeps for ``layers`` identical blocks saving ``per_token`` values per token each; with
    checkpointing each block keeps its ``width`` input and one block is recomputed at a time."""
    if checkpointing:
        n = tokens * (layers * width + per_token)
        return nbytes * n, f"{nbytes} B × {tokens:,} tokens × ({layers} × {width} inputs + {per_token} one block)"
    n = tokens * layers * per_token
    return nbytes * n, f"{nbytes} B × {tokens:,} tokens × {layers} blocks × {per_token} values"


def activation_rows(train: TrainConfig, dims, hf_config) -> list:
    """(part, bytes, rule) of the activation model (module docstring) for one micro-batch at the batch caps."""
    m, d = train.model, train.data
    nbytes = 2 if m.llm.dtype in ("bfloat16", "float16") else 4
    rows = []
    w = dims.n_audio_state
    tok_w = d.max_frames_in_batch // 2
    # Whisper block: LN1 out, q, k, v, attention out, LN2 out (6 w) + fc1 out, GELU out (2 × 4 w); stem: conv outputs
    b, rule = block_activations(tok_w, 6 * w + 8 * w, dims.n_audio_layer, m.whisper.gradient_checkpointing, w, nbytes)
    stem = nbytes * d.max_frames_in_batch * w * 2 + nbytes * tok_w * w * 2
    rows.append(("Whisper encoder", b + stem, rule + f" + stem {stem / GiB:.2f} GiB"))
    tok_a = min(d.max_tokens_in_batch, d.max_frames_in_batch // 8 + SPEECH_EXTRA_TOKENS * d.max_batch_size)
    a = m.adapter
    # adapter block (never checkpointed): LN1, q, k, v, attention out, LN2 (6 w) + w_1 out, ReLU out (2 ffn)
    per = 6 * w + 2 * a.ffn
    b, rule = block_activations(tok_a, per, a.num_blocks, False, w, nbytes)
    down = nbytes * (tok_w * w * 6)  # downsampler: 3 × (padded input, conv output) at ≤ T' frames
    rows.append(("downsampler + adapter", b + down, rule + f" + downsampler {down / GiB:.2f} GiB"))
    h, f = hf_config.hidden_size, hf_config.intermediate_size
    kv = h // hf_config.num_attention_heads * hf_config.num_key_value_heads
    tok_l = d.max_tokens_in_batch
    # Qwen2 block: 2 RMSNorm outs, q, k, v, attention out (4 h + 2 kv) + gate, up, SiLU(gate), product (4 f);
    # LoRA: each target's dropout output of its input (q/k/v/o/gate: h each, down: f) + its r-dim A output
    per = 4 * h + 2 * kv + 4 * f
    if m.lora.enabled:
        ins = {"q_proj": h, "k_proj": h, "v_proj": h, "o_proj": h, "gate_proj": h, "up_proj": h, "down_proj": f}
        per += sum(ins.get(t, h) + m.lora.r for t in m.lora.target_modules)
    b, rule = block_activations(tok_l, per, hf_config.num_hidden_layers, m.llm.gradient_checkpointing, h, nbytes)
    rows.append(("LLM blocks", b, rule))
    logits = 10 * tok_l * hf_config.vocab_size
    rows.append(("LM logits + loss", logits, f"10 B × {tok_l:,} tokens × {hf_config.vocab_size:,} vocabulary"))
    return rows


def plan(train: TrainConfig, gpus: int, zero: int, gpu_gb: float, hf_config=None) -> Plan:
    """The memory plan of ``train`` on ``gpus`` GPUs at ZeRO stage ``zero`` (counts from the meta-device model)."""
    hf_config = hf_config if hf_config is not None else llm_config(train.model)
    model = meta_model(train.model, hf_config)
    counts = model.parameter_counts()
    largest = max(p.numel() for p in model.parameters())
    half = train.model.llm.dtype in ("bfloat16", "float16")
    rows = model_state_rows(counts["total"], counts["trainable"], largest, gpus, zero, half)
    return Plan(gpus, zero, gpu_gb, counts, largest, rows,
                activation_rows(train, model.whisper.dims, hf_config))


def format_plan(p: Plan, title: str = "") -> str:
    """The plan as text: counts, one line per part (GiB per GPU and its rule), total and whether it fits."""
    c = p.counts
    parts = ", ".join(f"{k} {c[k] / 1e6:,.1f} M" for k in ("encoder", "adapter", "lora", "llm"))
    lines = [f"c2ser plan{': ' + title if title else ''}",
             f"{p.gpus} GPU(s) × {p.gpu_gb:g} GiB, ZeRO-{p.zero}",
             f"parameters (model built on the meta device): {c['total']:,} total, {c['trainable']:,} trained "
             f"({parts})", "",
             f"{'per GPU':<26}{'GiB':>9}  rule"]
    for name, b, rule in p.rows:
        lines.append(f"{name:<26}{b / GiB:>9.2f}  {rule}")
    lines.append("activations — a MODEL (c2ser/memory_plan.py), one micro-batch at the batch caps:")
    for name, b, rule in p.activation_rows:
        lines.append(f"  {name:<24}{b / GiB:>9.2f}  {rule}")
    verdict = "fits" if p.fits else "does NOT fit"
    lines += [f"{'total':<26}{p.total / GiB:>9.2f}  {verdict} in {p.gpu_gb:g} GiB "
              "(CUDA context, fragmentation and DeepSpeed buckets not counted)"]
    return "\n".join(lines)
