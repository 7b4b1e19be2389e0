"""Gradient checkpointing, on in the full recipe (model.yaml) for the Whisper encoder blocks and the Qwen2 LLM (peft
LoRA, frozen base): backward recomputes each block's forward, and the gradients equal those of a run without
checkpointing. fp32, in process, on the tiny models, every trainable part of the recipe's policy."""
import pytest
import torch

from c2ser.models.build import build_model
from c2ser.models.processor import C2SERProcessor
from c2ser.testing import tiny_model_config


def _model(tiny_models, checkpointing: bool, lora_dropout: float = 0.0):
    cfg = tiny_model_config(tiny_models, trainable="adapter_encoder_lora")
    cfg.whisper.gradient_checkpointing = cfg.llm.gradient_checkpointing = checkpointing
    cfg.lora.dropout = lora_dropout
    torch.manual_seed(0)
    model = build_model(cfg).train()
    with torch.no_grad():  # LoRA B starts at 0 (A would get no gradient): random B puts every matrix on the path
        g = torch.Generator().manual_seed(1)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model


def _batch(model):
    g = torch.Generator().manual_seed(2)
    items = [{"mel": torch.randn(80, n, generator=g), "ssl": torch.randn(10, 48, generator=g),
              "prompt": "Please describe the speaking style.", "target": t}
             for n, t in ((173, "The emotion of this speech is happy."), (96, "这条语音的情感为生气。"))]
    return C2SERProcessor(model.tokenizer).collate(items)


def _blocks(model):
    """One Whisper encoder block's MLP and one Qwen2 decoder layer's MLP (both inside a checkpointed unit)."""
    whisper_mlp = model.whisper.encoder.blocks[1].mlp
    llm_mlp = model.llm.base_model.model.model.layers[1].mlp
    return {"whisper": whisper_mlp, "llm": llm_mlp}


def _loss_grads_and_calls(model, batch, seed=3):
    calls = {"whisper": 0, "llm": 0}
    # pre-hooks: a recomputation stops as soon as it has every saved tensor back, before the block's last module
    # returns (torch's checkpoint early stop), so a post-forward hook would not see it
    hooks = [m.register_forward_pre_hook(lambda *_, k=k: calls.__setitem__(k, calls[k] + 1))
             for k, m in _blocks(model).items()]
    torch.manual_seed(seed)
    loss = model(batch)
    in_forward = dict(calls)
    loss.backward()
    for h in hooks:
        h.remove()
    in_backward = {k: calls[k] - in_forward[k] for k in calls}
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads, in_forward, in_backward


@pytest.mark.parametrize("lora_dropout", [0.0, 0.1])
def test_checkpointed_gradients_equal_plain_ones(tiny_models, lora_dropout):
    """Dropout off: the two runs are deterministic. LoRA dropout on (model.yaml's 0.1, inside the checkpointed LLM
    layers): the recomputation must draw the same masks as the forward (the RNG state is replayed)."""
    plain, ckpt = _model(tiny_models, False, lora_dropout), _model(tiny_models, True, lora_dropout)
    for (n, a), b in zip(plain.state_dict().items(), ckpt.state_dict().values()):
        assert torch.equal(a, b), n  # the same weights: only checkpointing differs
    batch = _batch(plain)
    loss_p, grads_p, fwd_p, bwd_p = _loss_grads_and_calls(plain, batch)
    loss_c, grads_c, fwd_c, bwd_c = _loss_grads_and_calls(ckpt, batch)
    # checkpointing really active: each block runs once in forward, and again in backward only when checkpointed
    assert fwd_p == fwd_c == {"whisper": 1, "llm": 1}
    assert bwd_p == {"whisper": 0, "llm": 0} and bwd_c == {"whisper": 1, "llm": 1}
    torch.testing.assert_close(loss_c, loss_p, rtol=0, atol=0)
    assert grads_p.keys() == grads_c.keys()
    parts = {"whisper.": 0, "adapter.": 0, "lora_A": 0, "lora_B": 0}
    for n in grads_p:
        torch.testing.assert_close(grads_c[n], grads_p[n], rtol=1e-6, atol=1e-8, msg=n)
        for part in parts:
            if part in n and grads_p[n].abs().sum() > 0:
                parts[part] += 1
    assert all(parts.values()), parts  # gradients reached every trained part (none compared as all-zero)
    assert not any(p.grad is not None for n, p in ckpt.named_parameters() if not p.requires_grad)

