"""The full-size model (Whisper-medium encoder, Emotion2Vec-S token dims, gxl adapter, Qwen2-7B with its untied
152,064-token vocabulary, LoRA r8 on the release's targets) trains one step on the ``meta`` device: forward and
backward with the recipe's own settings (model.yaml: gradient checkpointing, dropouts, adapter_encoder_lora) in bf16
as under DeepSpeed, on the release's layout ``[prompt][BOS_sp S W EOS_sp][target <|endoftext|>]``. A shape or dtype
error at full size fails here in seconds, with no memory used.

Meta tensors have no values, so two things are set up around the model: clip lengths are computed on the CPU (they
are data: the model turns them into Python ints), and the LLM uses eager attention (SDPA's mask shortcut reads the
mask's values). Meta kernels do not check dtypes (a fp32 input into a bf16 Linear passes on meta, fails on a GPU), so
every Linear / Conv1d / Embedding checks its input the way the real kernels do.
"""
import pytest
import torch

from c2ser.config import load_config
from c2ser.memory_plan import meta_model, qwen2_7b_config
from c2ser.models.adapter import CausalDownsampler
from c2ser.models.whisper_encoder import encoder_lengths
from c2ser.training.config import TrainConfig

ENDOFTEXT, VOCAB, HIDDEN = 151643, 152064, 3584
MEL_FRAMES = [300, 236]          # 3.0 s and 2.36 s of audio
PROMPT = [21, 17]                # token counts of the release's explicit / implicit prompts (order of magnitude)
TARGET = [40, 9]


@pytest.fixture(scope="module")
def model():
    cfg = load_config(TrainConfig, ["recipes/c2ser/conf/model.yaml", "recipes/c2ser/conf/stage1.yaml"],
                      ["data.train_manifest=x"]).model
    assert (cfg.trainable, cfg.whisper.gradient_checkpointing, cfg.llm.gradient_checkpointing) == \
        ("adapter_encoder_lora", True, True) and cfg.adapter.dropout > 0 and cfg.lora.dropout > 0
    m = meta_model(cfg, qwen2_7b_config(), attn_implementation="eager").to(torch.bfloat16).train()
    real = m.encode_speech

    def encode_speech(mel, mel_lengths, ssl=None):  # lengths from the CPU copy (meta tensors hold no values)
        x, lengths = real(mel, mel_lengths, ssl)
        assert lengths.shape == mel_lengths.shape
        return x, CausalDownsampler.output_lengths(encoder_lengths(mel_lengths)) + cfg.ssl.num_tokens

    m.encode_speech = encode_speech
    for mod in m.modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d)):
            mod.register_forward_pre_hook(_same_dtype)
        elif isinstance(mod, torch.nn.Embedding):
            mod.register_forward_pre_hook(_integer_ids)
    return m


def _same_dtype(mod, args):
    """What the real matmul / convolution kernels require (meta ones do not check it)."""
    if args[0].dtype != mod.weight.dtype:
        raise TypeError(f"{type(mod).__name__} with {mod.weight.dtype} weights got a {args[0].dtype} input")


def _integer_ids(mod, args):
    if args[0].dtype not in (torch.long, torch.int):
        raise TypeError(f"Embedding got {args[0].dtype} ids")


def test_the_dtype_check_catches_a_mixed_matmul():
    lin = torch.nn.Linear(4, 4, device="meta", dtype=torch.bfloat16)
    lin.register_forward_pre_hook(_same_dtype)
    lin(torch.empty(2, 4, device="meta", dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="bfloat16 weights got a torch.float32 input"):
        lin(torch.empty(2, 4, device="meta"))


def _batch(cfg):
    meta = torch.device("meta")
    target = torch.empty(2, max(TARGET), dtype=torch.long, device=meta)  # ids end with <|endoftext|> (151643)
    return {"mel": torch.empty(2, 80, max(MEL_FRAMES), device=meta), "mel_lengths": torch.tensor(MEL_FRAMES),
            "ssl": torch.empty(2, cfg.ssl.num_tokens, cfg.ssl.dim, device=meta),   # fp32 cached features
            "prompt_ids": torch.empty(2, max(PROMPT), dtype=torch.long, device=meta),
            "prompt_lengths": torch.tensor(PROMPT), "target_ids": target, "target_lengths": torch.tensor(TARGET)}


def test_full_size_dims(model):
    emb, head = model.llm.get_input_embeddings().weight, model.llm.get_output_embeddings().weight
    assert emb.shape == head.shape == (VOCAB, HIDDEN) and emb is not head            # untied
    assert ENDOFTEXT < VOCAB and model.projection.weight.shape == (HIDDEN, 1024)
    assert model.speech_markers.weight.shape == (2, HIDDEN) and model.whisper.dims.n_audio_layer == 24
    assert model.cfg.ssl.dim == 768 and model.cfg.ssl.num_tokens == 10
    q = model.llm.base_model.model.model.layers[27].self_attn.q_proj
    assert q.lora_A["default"].weight.shape == (8, HIDDEN) and q.lora_B["default"].weight.shape == (HIDDEN, 8)
    assert not hasattr(model.llm.base_model.model.model.layers[0].mlp.up_proj, "lora_A")   # up_proj excluded


def test_forward_and_backward_at_full_size(model):
    model.zero_grad(set_to_none=True)
    loss = model(_batch(model.cfg))
    assert loss.is_meta and loss.shape == () and loss.dtype == torch.float32   # HF upcasts the logits for the loss
    loss.backward()
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    no_grad = [n for n, p in trained.items() if p.grad is None]
    bad = [n for n, p in trained.items() if p.grad is not None and (p.grad.shape != p.shape or p.grad.dtype != p.dtype)]
    assert no_grad == [] and bad == []
    assert all(p.grad is None for p in frozen.values())
    assert sum(p.numel() for p in trained.values()) == 372_789_760          # Whisper + link + LoRA (test_plan.py)
    assert any(".lora_B." in n for n in trained) and "speech_markers.weight" in trained
    assert all(n.startswith("llm.") and ".lora_" not in n for n in frozen)


def test_prefill_for_the_head_at_full_size(model):
    """The Gen-SER head's conditioning: last-layer states over [prompt][BOS S W EOS] (no targets)."""
    batch = {k: v for k, v in _batch(model.cfg).items() if not k.startswith("target")}
    with torch.no_grad():
        states, mask = model.prefix_hidden_states(batch)
    speech = [CausalDownsampler.output_lengths(encoder_lengths(torch.tensor(t))) + 10 for t in MEL_FRAMES]
    longest = max(p + int(s) + 2 for p, s in zip(PROMPT, speech))
    assert states.shape == (2, longest, HIDDEN) and states.dtype == torch.bfloat16 and mask.shape == (2, longest)
