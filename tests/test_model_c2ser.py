"""The assembled C2SER model: sequence layout, loss, trainable parts, generation, full-size parameter counts."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from c2ser.models.build import build_model
from c2ser.models.config import TRAINABLE_POLICIES
from c2ser.models.processor import C2SERProcessor
from c2ser.testing import tiny_model_config


def _items(n_ssl_dim=48):
    rng = np.random.default_rng(0)
    return [dict(wav=(0.1 * rng.standard_normal(int(16000 * s))).astype(np.float32),
                 ssl=rng.standard_normal((10, n_ssl_dim)).astype(np.float32),
                 prompt=p, target=t)
            for s, p, t in [(1.3, "emotion:", "The emotion of this speech is happy."),
                            (2.2, "Please describe the speaking style.", "sad")]]


@pytest.fixture(scope="module")
def model(tiny_models):
    torch.manual_seed(0)
    m = build_model(tiny_model_config(tiny_models)).eval()
    return m, C2SERProcessor(m.tokenizer)


def test_loss_equals_hand_built_reference(model):
    m, proc = model
    items = _items()
    batch = proc.collate(items)
    assert batch["mel_lengths"].tolist() == [130, 220] and batch["prompt_lengths"][0] != batch["prompt_lengths"][1]
    with torch.no_grad():
        loss = m(batch)
        # reference: each clip alone, embeddings concatenated by hand, CE over the target tokens only
        total, count = 0.0, 0
        for it in items:
            one = proc.collate([it])
            speech, _ = m.encode_speech(one["mel"], one["mel_lengths"], one["ssl"])
            prompt = m.tokenizer(it["prompt"], add_special_tokens=False)["input_ids"]
            target = m.tokenizer(it["target"], add_special_tokens=False)["input_ids"] + [m.tokenizer.eos_token_id]
            emb = m.llm.get_input_embeddings()
            seq = torch.cat([emb(torch.tensor(prompt)), m.speech_markers.weight[:1], speech[0],
                             m.speech_markers.weight[1:], emb(torch.tensor(target))])
            logits = m.llm(inputs_embeds=seq[None]).logits[0]
            start = len(prompt) + speech.shape[1] + 2  # first target position
            total += F.cross_entropy(logits[start - 1: -1], torch.tensor(target), reduction="sum").item()
            count += len(target)
    assert abs(loss.item() - total / count) < 1e-4


def test_sequence_layout_and_labels(model):
    m, proc = model
    batch = proc.collate(_items())
    speech, lengths = m.encode_speech(batch["mel"], batch["mel_lengths"], batch["ssl"])
    # 10 SSL tokens + ceil(ceil(T'/2)/2) Whisper tokens, T' = ceil(T/2)
    assert lengths.tolist() == [10 + 17, 10 + 28]
    a = m.assemble(batch["prompt_ids"], batch["prompt_lengths"], speech, lengths,
                   batch["target_ids"], batch["target_lengths"])
    for i in range(2):
        p, t = int(batch["prompt_lengths"][i]), int(batch["target_lengths"][i])
        n = p + int(lengths[i]) + 2 + t
        assert a.attention_mask[i].sum() == n and a.attention_mask[i, :n].all()  # right padded, contiguous
        assert (a.labels[i, : n - t] == -100).all() and (a.labels[i, n:] == -100).all()
        assert a.labels[i, n - t: n].tolist() == batch["target_ids"][i, :t].tolist()
        assert a.labels[i, n - 1] == m.tokenizer.eos_token_id
        torch.testing.assert_close(a.inputs_embeds[i, p], m.speech_markers.weight[0])
        torch.testing.assert_close(a.inputs_embeds[i, p + int(lengths[i]) + 1], m.speech_markers.weight[1])


@pytest.mark.parametrize("policy", sorted(TRAINABLE_POLICIES))
def test_gradients_reach_exactly_the_trainable_parts(tiny_models, policy):
    torch.manual_seed(0)
    m = build_model(tiny_model_config(tiny_models, trainable=policy)).train()
    proc = C2SERProcessor(m.tokenizer)
    m(proc.collate(_items())).backward()
    wanted = TRAINABLE_POLICIES[policy]
    for part, params in m.parameter_groups().items():
        for p in params:
            if part in wanted:
                assert p.requires_grad and p.grad is not None, part
            else:
                assert not p.requires_grad and p.grad is None, part
    # something non-zero reached every trainable part (LoRA B starts at zero, so check A's partner only)
    grads = {part: sum(float(p.grad.abs().sum()) for p in ps if p.grad is not None)
             for part, ps in m.parameter_groups().items()}
    for part in wanted:
        assert grads[part] > 0, part


def test_batched_greedy_generation_equals_one_by_one(model):
    m, proc = model
    items = _items()
    batched = m.generate(proc.collate(items), max_new_tokens=6)
    solo = [m.generate(proc.collate([it]), max_new_tokens=6)[0] for it in items]
    assert batched == solo and all(isinstance(t, str) and t for t in batched)
    assert m.generate(proc.collate(items), max_new_tokens=6) == batched  # deterministic


def test_prefix_hidden_states(model):
    m, proc = model
    batch = proc.collate(_items())
    h, mask = m.prefix_hidden_states(batch)
    assert h.shape[:2] == mask.shape and h.shape[-1] == 64
    assert mask.sum(1).tolist() == [int(batch["prompt_lengths"][i]) + [27, 38][i] + 2 for i in range(2)]


def test_missing_ssl_features_is_a_clear_error(model):
    m, proc = model
    items = _items()
    for it in items:
        it.pop("ssl")
        it.pop("wav")
        it["mel"] = proc.mel(np.zeros(16000, dtype=np.float32))
    with pytest.raises(ValueError, match="expects Emotion2Vec-S features"):
        m(proc.collate(items))


def test_full_size_model_on_meta_matches_the_spec_parameter_counts():
    """Whisper-medium + Qwen2-7B + LoRA (r 8, q/k/v/o/gate/down) as in c2ser_model.md §2."""
    from transformers import AutoModelForCausalLM

    from c2ser.models.config import ModelConfig
    from c2ser.models.whisper_encoder import WhisperDims, WhisperEncoder
    from c2ser.testing import qwen2_7b_config

    cfg = ModelConfig()
    with torch.device("meta"):
        whisper = WhisperEncoder(WhisperDims())
        llm = AutoModelForCausalLM.from_config(qwen2_7b_config(), dtype=torch.bfloat16)
        m = build_model(cfg, llm=llm, tokenizer=object(), whisper=whisper)
    c = m.parameter_counts()
    assert abs(c["encoder"] - 305.7e6) < 0.2e6          # Whisper-medium encoder
    assert c["lora"] == 15_138_816                      # official LoRA parameter count
    assert c["llm"] == 7_615_616_512                    # Qwen2-7B base weights
    # downsampler 9,440,256 + adapter (43,969,536 − 5,120,000 positional buffer) + projection 3,673,600 + 2 markers
    assert c["adapter"] == 9_440_256 + 43_969_536 - 5_120_000 + 3_673_600 + 2 * 3584
    assert c["trainable"] == c["encoder"] + c["adapter"] + c["lora"]
    assert c["total"] == c["trainable"] + c["llm"]


def test_whole_model_in_bf16_takes_fp32_speech_inputs(tiny_models, tmp_path):
    """DeepSpeed bf16 casts every module (Whisper, adapter, online Emotion2Vec-S, LLM); log-mels and waveforms
    stay fp32. The speech path follows the encoder's dtype: loss and decoding run, close to the fp32 model."""
    from c2ser.testing import build_tiny_emotion2vec

    e2v = build_tiny_emotion2vec(tmp_path / "e2v.pt")
    cfg = tiny_model_config(tiny_models)
    cfg.ssl.checkpoint = str(e2v)
    torch.manual_seed(0)
    m32 = build_model(cfg).eval()
    m16 = build_model(cfg).eval()
    m16.load_state_dict(m32.state_dict())
    m16.to(torch.bfloat16)
    proc = C2SERProcessor(m32.tokenizer)
    items = [{k: v for k, v in it.items() if k != "ssl"} for it in _items()]  # SSL computed online
    batch = proc.collate(items)
    assert batch["mel"].dtype == torch.float32 and "wavs" in batch
    with torch.no_grad():
        l32, l16 = m32(batch).item(), m16(batch).item()
    assert np.isfinite(l16) and abs(l16 - l32) < 0.05 * abs(l32)
    assert len(m16.generate(batch, max_new_tokens=3)) == 2


def test_decoding_ignores_the_llm_directory_generation_config(tiny_models, tmp_path):
    """An Instruct directory's generation_config.json (sampling, repetition penalty) must not change greedy
    answers: decoding is exactly the preset."""
    import json
    import shutil

    llm_dir = tmp_path / "llm"
    shutil.copytree(tiny_models["llm"], llm_dir)
    (llm_dir / "generation_config.json").write_text(json.dumps(
        {"do_sample": True, "repetition_penalty": 5.0, "top_p": 0.01, "temperature": 0.1, "top_k": 1,
         "max_new_tokens": 1}))
    plain_cfg, instruct_cfg = tiny_model_config(tiny_models), tiny_model_config(tiny_models)
    instruct_cfg.llm.name_or_path = str(llm_dir)
    torch.manual_seed(0)
    plain = build_model(plain_cfg).eval()
    instruct = build_model(instruct_cfg).eval()
    instruct.load_state_dict(plain.state_dict())
    proc = C2SERProcessor(plain.tokenizer)
    batch = proc.collate([{k: v for k, v in it.items() if k != "target"} for it in _items()])
    # a random tiny LLM repeats tokens: repetition_penalty 5.0 would change these answers if it leaked
    assert instruct.generate(batch, max_new_tokens=12) == plain.generate(batch, max_new_tokens=12)


def test_end_of_answer_token_is_a_config_choice(tiny_models):
    """llm.eos_token decides both the token appended to targets and where decoding stops."""
    cfg = tiny_model_config(tiny_models)
    cfg.llm.eos_token = "<|im_end|>"
    m = build_model(cfg)
    proc = C2SERProcessor(m.tokenizer)
    im_end = m.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert m.tokenizer.eos_token_id == im_end != m.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    ids, lengths = proc.tokenize(["happy"], add_eos=True)
    assert ids[0, int(lengths[0]) - 1] == im_end
    cfg.llm.eos_token = "<|no_such_token|>"
    with pytest.raises(ValueError, match="not a token"):
        build_model(cfg)


def test_the_lm_head_gets_contiguous_hidden_states_when_generating(model):
    """transformers slices the last position (a strided view when the batch has several clips); the LM head must
    see a contiguous tensor (a strided bf16 input costs GBs of temporaries on CPU at the released vocabulary)."""
    m, proc = model
    seen = []
    hook = m.llm.get_output_embeddings().register_forward_pre_hook(
        lambda mod, args: seen.append((args[0].shape, args[0].is_contiguous())))
    try:
        m.generate(proc.collate(_items()), max_new_tokens=2)
    finally:
        hook.remove()
    assert seen and seen[0][0][0] == 2 and seen[0][0][1] == 1  # the prefill: 2 clips, last position only
    assert all(contiguous for _, contiguous in seen), seen
