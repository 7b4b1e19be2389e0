"""``c2ser plan``: parameter counts of the meta-device model against counts worked out by hand from the published
dims, DeepSpeed's ZeRO rules against DeepSpeed's own estimator, the stated activation model, the command."""
import pytest

from c2ser.cli import main
from c2ser.config import load_config
from c2ser.memory_plan import GiB, model_state_rows, plan
from c2ser.training.config import TrainConfig

FULL = ["recipes/c2ser/conf/model.yaml", "recipes/c2ser/conf/stage1.yaml"]

# ---- counts by hand from the architectures (c2ser_model.md §2) ---------------------------------------------------
V, H, F, KV, L = 152064, 3584, 18944, 512, 28                       # Qwen2-7B: untied embedding and LM head
QWEN2_7B = 2 * V * H + L * ((H * H + H) + 2 * (H * KV + KV) + H * H + 3 * H * F + 2 * H) + H
LORA = 8 * L * ((H + H) + (H + KV) + (H + KV) + (H + H) + (H + F) + (F + H))   # r·(in+out): q k v o gate down
D = 1024                                                             # Whisper-medium encoder, 24 blocks
WHISPER = (80 * D * 3 + D) + (D * D * 3 + D) + 24 * ((4 * D * D + 3 * D) + 2 * D + (8 * D * D + 5 * D) + 2 * D) + 2 * D
DOWNSAMPLER = 3 * (D * D * 3 + D)
GXL = (D * D + D + 2 * D) + 4 * (4 * (D * D + D) + 2 * D + (D * 2560 + 2560 + 2560 * D + D) + 2 * D) + 2 * D
LINK = DOWNSAMPLER + GXL + (D * H + H) + 2 * H                       # + projection + speech BOS/EOS rows
TRAINED = WHISPER + LINK + LORA                                      # adapter_encoder_lora


@pytest.fixture(scope="module")
def full():
    return plan(load_config(TrainConfig, FULL, ["data.train_manifest=x"]), gpus=8, zero=2, gpu_gb=80)


def test_hand_counts_are_the_published_ones():
    assert QWEN2_7B == 7_615_616_512 and LORA == 15_138_816 and round(WHISPER / 1e6, 1) == 305.7


def test_full_size_counts_from_the_meta_model(full):
    c = full.counts
    assert (c["llm"], c["lora"], c["encoder"], c["adapter"]) == (QWEN2_7B, LORA, WHISPER, LINK)
    assert c["trainable"] == TRAINED and c["total"] == QWEN2_7B + TRAINED
    assert full.largest_layer == V * H


def test_full_size_zero2_model_states_on_8_gpus(full):
    rows = {name: b for name, b, _ in full.rows}
    total = QWEN2_7B + TRAINED
    assert rows == {"parameters": 2 * total, "gradients": int(2 * TRAINED / 8 + 4 * TRAINED / 8),
                    "optimizer states": int(12 * TRAINED / 8)}
    assert full.fits and abs(rows["parameters"] / GiB - 14.88) < 0.01   # 7.99 G bf16 weights on every GPU


@pytest.mark.parametrize("gpus", [1, 8, 64])
def test_zero2_with_everything_trained_is_deepspeeds_estimate(gpus):
    """DeepSpeed's estimate_zero2_model_states_mem_needs (no offload): 2 B + 18 B / N per parameter."""
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    n = 1_234_567_891
    ours = sum(b for _, b, _ in model_state_rows(n, n, 10, gpus, 2, half=True))
    _, theirs = estimate_zero2_model_states_mem_needs(n, num_gpus_per_node=gpus, cpu_offload=False)
    assert abs(ours - theirs) <= 2  # integer rounding of the partitioned parts


def test_zero_stages_partition_what_they_say():
    total, trained, largest, n = 1000, 100, 7, 4
    by = {z: {k: b for k, b, _ in model_state_rows(total, trained, largest, n, z, half=True)} for z in range(4)}
    assert by[0] == {"parameters": 2000, "gradients": 600, "optimizer states": 1200}        # DDP replicas
    assert by[1] == {"parameters": 2000, "gradients": 200 + 100, "optimizer states": 300}   # optimizer ÷ 4
    assert by[2] == {"parameters": 2000, "gradients": 50 + 100, "optimizer states": 300}    # + 16-bit grads ÷ 4
    assert by[3] == {"parameters": 500, "gathered layer (ZeRO-3)": 28, "gradients": 150, "optimizer states": 300}
    fp32 = {k: b for k, b, _ in model_state_rows(total, trained, largest, n, 2, half=False)}
    assert fp32 == {"parameters": 4000, "gradients": 100, "optimizer states": 200}


def test_activation_model_at_the_batch_caps(full):
    acts = {name: b for name, b, _ in full.activation_rows}
    assert acts["LM logits + loss"] == 10 * 1900 * V                  # 1900 tokens (max_tokens_in_batch) × vocab
    no_ckpt = plan(load_config(TrainConfig, FULL, ["data.train_manifest=x", "model.llm.gradient_checkpointing=false",
                                                   "model.whisper.gradient_checkpointing=false"]), 8, 2, 80)
    acts_off = {name: b for name, b, _ in no_ckpt.activation_rows}
    # without checkpointing every block keeps its tensors: 2 B × 1900 tokens × 28 blocks × (≥ 4 f SwiGLU values)
    assert acts_off["LLM blocks"] > 2 * 1900 * L * 4 * F > acts["LLM blocks"]
    assert acts_off["Whisper encoder"] > acts["Whisper encoder"] and acts_off["LM logits + loss"] == 10 * 1900 * V


def test_tiny_plan_counts_equal_the_real_model(tiny_models):
    """The meta-device model of a tiny config (Whisper checkpoint file, local LLM directory) has exactly the
    parameters of the model really built from it."""
    from c2ser.models.build import build_model
    from c2ser.testing import tiny_model_config

    cfg = TrainConfig(model=tiny_model_config(tiny_models), data=load_config(TrainConfig, overrides=[
        "data.train_manifest=x"]).data)
    p = plan(cfg, gpus=2, zero=3, gpu_gb=1)
    real = build_model(cfg.model)
    assert p.counts == real.parameter_counts()
    assert p.counts["total"] == sum(t.numel() for t in real.parameters())


def test_plan_command_prints_the_parts_and_the_verdict(tiny_models, tmp_path, capsys):
    conf = tmp_path / "tiny.yaml"
    conf.write_text(f"model:\n  whisper: {{name_or_path: {tiny_models['whisper']}}}\n"
                    f"  llm: {{name_or_path: {tiny_models['llm']}, dtype: float32}}\n  ssl: {{dim: 48}}\n"
                    "  adapter: {num_blocks: 2, heads: 4, ffn: 128}\n  lora: {r: 4, alpha: 8}\n")
    assert main(["plan", "--config", str(conf), "--gpus", "2", "--zero", "3", "--gpu-gb", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "2 GPU(s) × 0.001 GiB, ZeRO-3" in out and "does NOT fit in 0.001 GiB" in out
    assert "activations — a MODEL" in out and "4 B fp32 ×" in out
    assert main(["plan", "--config", str(conf), "--gpu-gb", "80"]) == 0
    assert "fits in 80 GiB" in capsys.readouterr().out
    assert main(["plan", "--config", str(conf), "model.whisper.name_or_path=nope"]) == 1
    assert "not a Whisper size" in capsys.readouterr().err
