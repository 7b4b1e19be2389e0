"""Checkpoints store only what trained and reload to the same outputs."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from c2ser.checkpoint import load_model, save_checkpoint
from c2ser.models.build import build_model
from c2ser.models.processor import C2SERProcessor
from c2ser.testing import tiny_model_config


def test_save_then_load_gives_the_same_model(tiny_models, tmp_path):
    torch.manual_seed(0)
    m = build_model(tiny_model_config(tiny_models)).eval()
    with torch.no_grad():  # make LoRA B non-zero so LoRA weights matter
        for n, p in m.llm.named_parameters():
            if "lora_B" in n:
                p.normal_()
    ckpt = save_checkpoint(m, tmp_path / "ckpt", extra_config={"train": {"step": 3}})
    stored = load_file(ckpt / "model.safetensors")
    assert any(k.startswith("whisper.") for k in stored) and any(k.startswith("adapter.") for k in stored)
    assert not any(k.startswith("llm.") for k in stored)
    lora = load_file(ckpt / "lora" / "adapter_model.safetensors")
    assert lora and all("lora_" in k for k in lora)
    again = load_model(ckpt)
    # the LoRA directory is a standard peft adapter: peft loads it onto the base LLM by itself
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_models["llm"]))
    peft_llm = PeftModel.from_pretrained(base, str(ckpt / "lora"))
    for name, p in peft_llm.named_parameters():
        if "lora_B" in name:
            assert torch.equal(p, dict(m.llm.named_parameters())[name])
    proc = C2SERProcessor(m.tokenizer)
    rng = np.random.default_rng(0)
    batch = proc.collate([dict(wav=rng.standard_normal(16000).astype(np.float32), ssl=np.ones((10, 48), np.float32),
                               prompt="emotion:", target="happy")])
    with torch.no_grad():
        assert abs(m(batch).item() - again(batch).item()) < 1e-6
    save_checkpoint(m, ckpt)  # overwrite in place works (atomic rename)
    assert not (tmp_path / "ckpt.tmp").exists()


def test_loading_a_non_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a c2ser checkpoint"):
        load_model(tmp_path)
