"""The official C2SER_llm.pt loader, checked against expectations that do not come from the converter:

- a hand-written table of official -> our names (and, with ../shared, the released key list with its shapes);
- a tiny synthetic official file whose official names are written by hand (``c2ser.testing.official_names``),
  never by ``map_key``;
  every tensor of the reference model is distinct random data, so any swapped name lands a wrong value.
"""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from c2ser.inference import official
from c2ser.inference.official import convert_state_dict, load_official, map_key
from c2ser.models.build import build_model
from c2ser.models.processor import C2SERProcessor
from c2ser.prompts import IMPLICIT_PROMPT
from c2ser.testing import official_state_dict, tiny_model_config

LAYOUT = "layouts/c2ser_llm_official_state_dict.json"
OFFICIAL_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]
TINY_OVERRIDES = ["llm.dtype=float32", "ssl.dim=48", "adapter.num_blocks=2", "adapter.ffn=128", "lora.r=4",
                  "lora.alpha=8"]
L = "llama_model.base_model.model."
O = "llm.base_model.model."

# official name -> our name (None = dropped on purpose), written by hand from shared/specs/c2ser_model.md §2 and §7.
HAND_TABLE = {
    "encoder.embed.conv.0.weight": "whisper.encoder.conv1.weight",
    "encoder.embed.conv.2.bias": "whisper.encoder.conv2.bias",
    "encoder.embed.pos_enc.pe": "whisper.encoder.positional_embedding",
    "encoder.encoders.3.norm1.weight": "whisper.encoder.blocks.3.attn_ln.weight",
    "encoder.encoders.3.norm2.bias": "whisper.encoder.blocks.3.mlp_ln.bias",
    "encoder.encoders.0.self_attn.linear_q.weight": "whisper.encoder.blocks.0.attn.query.weight",
    "encoder.encoders.0.self_attn.linear_k.weight": "whisper.encoder.blocks.0.attn.key.weight",
    "encoder.encoders.23.self_attn.linear_out.bias": "whisper.encoder.blocks.23.attn.out.bias",
    "encoder.encoders.1.feed_forward.w_1.weight": "whisper.encoder.blocks.1.mlp.0.weight",
    "encoder.encoders.1.feed_forward.w_2.bias": "whisper.encoder.blocks.1.mlp.2.bias",
    "encoder.after_norm.weight": "whisper.encoder.ln_post.weight",
    "down_sample_2.conv.4.weight": "downsampler.conv.4.weight",
    "speech_transformer.encoders.0.norm1.weight": "adapter.encoders.0.norm1.weight",
    "speech_transformer.encoders.2.self_attn.linear_k.bias": "adapter.encoders.2.self_attn.linear_k.bias",
    "speech_transformer.embed.pos_enc.pe": "adapter.embed.pos_enc.pe",
    "speech_llama_proj.weight": "projection.weight",
    "speech_token_emded.weight": "speech_markers.weight",
    L + "model.layers.0.self_attn.q_proj.base_layer.weight": O + "model.layers.0.self_attn.q_proj.base_layer.weight",
    L + "model.layers.27.mlp.down_proj.lora_A.default.weight":
        O + "model.layers.27.mlp.down_proj.lora_A.default.weight",
    L + "model.layers.5.mlp.up_proj.weight": O + "model.layers.5.mlp.up_proj.weight",
    L + "lm_head.weight": O + "lm_head.weight",
    "speaker_head.weight": None, "ln_speech.bias": None, "embed_tokens.weight": None, "lm_head.weight": None,
}
# full-size shapes of some of those keys in the release (Whisper-medium 1024, Qwen2-7B 3584 / 18944, LoRA r 8)
RELEASE_SHAPES = {
    "encoder.embed.pos_enc.pe": [1, 1500, 1024], "encoder.encoders.3.norm1.weight": [1024],
    "encoder.embed.conv.0.weight": [1024, 80, 3], "speech_token_emded.weight": [4099, 3584],
    "speech_llama_proj.weight": [3584, 1024], "speech_transformer.embed.pos_enc.pe": [1, 5000, 1024],
    L + "model.layers.0.self_attn.q_proj.base_layer.weight": [3584, 3584],
    L + "model.layers.27.mlp.down_proj.lora_A.default.weight": [8, 18944],
}
DROPPED_IN_RELEASE = ["embed_tokens.weight", "lm_head.weight", "ln_speech.bias", "ln_speech.weight",
                      "speaker_head.bias", "speaker_head.weight"]


def _tiny_cfg(models, **llm):
    cfg = tiny_model_config(models)
    cfg.lora.target_modules = list(OFFICIAL_LORA_TARGETS)
    for k, v in llm.items():
        setattr(cfg.llm, k, v)
    return cfg


def _random_reference(models):
    """Our tiny model with EVERY parameter and persistent buffer distinct random (bf16-representable) data."""
    torch.manual_seed(1)
    ref = build_model(_tiny_cfg(models)).eval()
    with torch.no_grad():
        for t in ref.state_dict().values():
            t.copy_(torch.randn_like(t).to(torch.bfloat16).float())
    return ref


class CountingDict(dict):
    """A state dict that counts how often each tensor is fetched."""

    def __init__(self, *a):
        super().__init__(*a)
        self.fetched = dict.fromkeys(self, 0)

    def __getitem__(self, k):
        self.fetched[k] += 1
        return super().__getitem__(k)

    def get(self, k, default=None):
        return self[k] if k in self else default

    def items(self):
        return [(k, self[k]) for k in self]

    def values(self):
        return [self[k] for k in self]


@pytest.fixture(scope="module")
def setup(tiny_models, tmp_path_factory):
    ref = _random_reference(tiny_models)
    sd = official_state_dict(ref)
    path = tmp_path_factory.mktemp("official") / "C2SER_llm.pt"
    torch.save(sd, path)
    return ref, sd, path, tiny_models


@pytest.fixture(scope="module")
def e2v(tmp_path_factory):
    from c2ser.testing import build_tiny_emotion2vec
    return build_tiny_emotion2vec(tmp_path_factory.mktemp("e2v") / "emotion2vec_s.pt")


def _batch(wav, ssl=None, prompt=IMPLICIT_PROMPT, tokenizer=None):
    item = dict(wav=wav, prompt=prompt)
    if ssl is not None:
        item["ssl"] = ssl
    return C2SERProcessor(tokenizer).collate([item])


def _wav(seed=0, n=16000):
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


# ---- the name map against hand-written expectations -----------------------------------------------------------

def test_map_key_follows_the_hand_written_table():
    assert {k: map_key(k) for k in HAND_TABLE} == HAND_TABLE


def test_hand_table_keys_and_shapes_are_those_of_the_release(shared_data):
    shapes = json.loads((shared_data / LAYOUT).read_text())["keys"]  # name -> shape, in state-dict order
    assert len(shapes) == 1128 and set(HAND_TABLE) <= set(shapes)
    assert {k: shapes[k] for k in RELEASE_SHAPES} == RELEASE_SHAPES
    assert sorted(k for k in shapes if map_key(k) is None) == DROPPED_IN_RELEASE


def test_release_layout_fits_the_full_size_model_built_on_meta(shared_data):
    """Every released key maps onto the full-size model (Whisper-medium, Qwen2-7B, LoRA r8) with its exact shape."""
    from c2ser.inference.official import build_meta_model, official_model_config
    from c2ser.testing import qwen2_7b_config

    shapes = json.loads((shared_data / LAYOUT).read_text())["keys"]
    sd = {k: torch.empty(v, dtype=torch.bfloat16, device="meta") for k, v in shapes.items()}
    sd["embed_tokens.weight"], sd["lm_head.weight"] = sd[L + "model.embed_tokens.weight"], sd[L + "lm_head.weight"]
    model = build_meta_model(official_model_config("unused-qwen2-dir"), qwen2_7b_config())
    own = model.state_dict()
    out = convert_state_dict(sd, own, source="layout")
    assert set(out) == set(own) and len(out) == 1128 - len(DROPPED_IN_RELEASE)
    assert out[O + "model.layers.27.mlp.down_proj.lora_A.default.weight"].shape == (8, 18944)
    assert out["speech_markers.weight"].shape == (2, 3584)
    assert out["whisper.encoder.positional_embedding"].shape == (1500, 1024)


# ---- loading the tiny synthetic official file ------------------------------------------------------------------

def test_values_land_in_the_right_parameters(setup):
    ref, sd, path, models = setup
    model = load_official(path, _tiny_cfg(models))
    w, a = model.whisper.encoder, model.adapter
    bf = torch.bfloat16
    assert torch.equal(w.blocks[1].attn_ln.weight.to(bf), sd["encoder.encoders.1.norm1.weight"])
    assert torch.equal(w.blocks[1].mlp_ln.weight.to(bf), sd["encoder.encoders.1.norm2.weight"])
    assert not torch.equal(sd["encoder.encoders.1.norm1.weight"], sd["encoder.encoders.1.norm2.weight"])
    assert torch.equal(w.blocks[0].attn.out.bias.to(bf), sd["encoder.encoders.0.self_attn.linear_out.bias"])
    assert torch.equal(w.blocks[0].mlp[2].weight.to(bf), sd["encoder.encoders.0.feed_forward.w_2.weight"])
    assert torch.equal(w.ln_post.bias.to(bf), sd["encoder.after_norm.bias"])
    assert torch.equal(w.positional_embedding.to(bf), sd["encoder.embed.pos_enc.pe"][0])
    assert torch.equal(a.encoders[0].norm2.weight.to(bf), sd["speech_transformer.encoders.0.norm2.weight"])
    assert torch.equal(model.downsampler.conv[7].bias.to(bf), sd["down_sample_2.conv.7.bias"])
    assert torch.equal(model.speech_markers.weight.to(bf), sd["speech_token_emded.weight"][[4097, 4098]])
    q = model.llm.base_model.model.model.layers[1].self_attn.q_proj
    lora_a = sd[L + "model.layers.1.self_attn.q_proj.lora_A.default.weight"]
    assert torch.equal(q.lora_A["default"].weight.to(bf), lora_a)
    assert torch.equal(q.base_layer.bias.to(bf), sd[L + "model.layers.1.self_attn.q_proj.base_layer.bias"])
    own = model.state_dict()
    for k, v in ref.state_dict().items():  # and everything else: all tensors differ, so no swap can hide
        assert torch.equal(own[k], v), k


def test_nothing_left_on_meta_and_same_outputs_as_the_reference(setup):
    ref, sd, path, models = setup
    model = load_official(path, _tiny_cfg(models))
    on_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    assert on_meta == []
    rot, rot_ref = model.llm.base_model.model.model.rotary_emb, ref.llm.base_model.model.model.rotary_emb
    assert torch.equal(rot.inv_freq, rot_ref.inv_freq) and rot.inv_freq.abs().sum() > 0
    batch = _batch(_wav(), torch.randn(10, 48), tokenizer=model.tokenizer)
    assert model.generate(batch, max_new_tokens=8) == ref.generate(batch, max_new_tokens=8)
    with torch.no_grad():
        assert torch.equal(model.prefix_hidden_states(batch)[0], ref.prefix_hidden_states(batch)[0])


def test_each_tensor_of_the_file_is_fetched_once_and_qwen2_weights_never_loaded(setup, monkeypatch):
    import transformers

    from c2ser.models import build
    from c2ser.models.whisper_encoder import WhisperEncoder
    ref, sd, path, models = setup
    counting = CountingDict(torch.load(path, weights_only=True, mmap=True))
    monkeypatch.setattr(official, "read_official", lambda p: counting)

    def refuse(*a, **k):
        raise AssertionError("a full model was read")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(build, "load_llm", refuse)
    monkeypatch.setattr(WhisperEncoder, "from_pretrained", refuse)
    monkeypatch.setattr(official, "read_base_tensors", refuse)  # nothing is missing from this file
    load_official(path, _tiny_cfg(models))
    once = {k: n for k, n in counting.fetched.items() if not k.startswith(("speaker_head.", "ln_speech."))
            and k not in ("embed_tokens.weight", "lm_head.weight")}
    assert set(once.values()) == {1}, {k: n for k, n in once.items() if n != 1}
    assert [counting.fetched[k] for k in ("speaker_head.weight", "speaker_head.bias", "ln_speech.weight")] == [0, 0, 0]
    assert counting.fetched["embed_tokens.weight"] <= 1 and counting.fetched["lm_head.weight"] <= 1


def test_bf16_llm_weights_stay_file_backed(setup, monkeypatch):
    """With the LLM in the file's dtype, its weights are the file's memory-mapped tensors: no copy at all."""
    ref, sd, path, models = setup
    mapped = torch.load(path, weights_only=True, mmap=True)
    monkeypatch.setattr(official, "read_official", lambda p: mapped)
    model = load_official(path, _tiny_cfg(models, dtype="bfloat16"))
    w = model.llm.base_model.model.model.layers[0].mlp.up_proj.weight
    assert w.dtype == torch.bfloat16 and w.data_ptr() == mapped[L + "model.layers.0.mlp.up_proj.weight"].data_ptr()
    assert model.whisper.encoder.conv1.weight.dtype == torch.float32  # the speech side runs in fp32


def test_a_base_tensor_missing_from_the_file_is_read_alone_from_the_qwen2_dir(setup, tmp_path, monkeypatch):
    from safetensors.torch import load_file
    ref, sd, path, models = setup
    bad = dict(sd)
    del bad[L + "model.norm.weight"]
    torch.save(bad, tmp_path / "no_norm.pt")
    asked = []
    original = official.read_base_tensors
    monkeypatch.setattr(official, "read_base_tensors", lambda d, keys: asked.append(keys) or original(d, keys))
    model = load_official(tmp_path / "no_norm.pt", _tiny_cfg(models))
    assert asked == [[O + "model.norm.weight"]]
    expected = load_file(str(models["llm"] / "model.safetensors"))["model.norm.weight"]
    assert torch.equal(model.llm.base_model.model.model.norm.weight, expected)
    assert not torch.equal(expected, ref.llm.base_model.model.model.norm.weight)  # it did not come from elsewhere


def test_missing_lora_or_adapter_keys_are_clear_errors(setup, tmp_path):
    ref, sd, path, models = setup
    for key, pattern in ((L + "model.layers.1.mlp.down_proj.lora_B.default.weight", r"lora_B"),
                         ("down_sample_2.conv.4.weight", r"downsampler\.conv\.4\.weight")):
        bad = dict(sd)
        del bad[key]
        torch.save(bad, tmp_path / "missing.pt")
        with pytest.raises(ValueError, match="1 model keys missing from the file.*" + pattern):
            load_official(tmp_path / "missing.pt", _tiny_cfg(models))


def test_unknown_key_shape_mismatch_and_alias_mismatch_are_clear_errors(setup, tmp_path):
    ref, sd, path, models = setup
    cases = [({"mystery_head.weight": torch.zeros(2)}, "unknown keys.*mystery_head"),
             ({"speech_llama_proj.bias": torch.zeros(3)}, "shape mismatches.*speech_llama_proj.bias"),
             ({"lm_head.weight": sd["lm_head.weight"] + 1}, "aliased key 'lm_head.weight' differs")]
    for extra, pattern in cases:
        torch.save(dict(sd, **extra), tmp_path / "bad.pt")
        with pytest.raises(ValueError, match=pattern):
            load_official(tmp_path / "bad.pt", _tiny_cfg(models))


def test_not_a_state_dict(tmp_path, tiny_models):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        load_official(tmp_path / "list.pt", _tiny_cfg(tiny_models))


# ---- online Emotion2Vec-S, load_for_inference, CLI -------------------------------------------------------------

def test_online_emotion2vec_is_loaded_from_its_own_checkpoint(setup, e2v):
    from c2ser.encoders.emotion2vec import Emotion2VecS
    ref, sd, path, models = setup
    cfg = _tiny_cfg(models)
    cfg.ssl.checkpoint, cfg.ssl.mode = str(e2v), "official"
    model = load_official(path, cfg)  # before the fix: "87 model keys missing from the file ['ssl_encoder.…']"
    own_e2v = Emotion2VecS.from_pretrained(str(e2v)).eval()
    for k, v in own_e2v.state_dict().items():
        assert torch.equal(model.ssl_encoder.state_dict()[k], v), k
    wav = _wav(3)
    with torch.no_grad():
        ssl = own_e2v.utterance_features([wav], mode="official")[0]
    assert ssl.shape == (10, 48)
    online = C2SERProcessor(model.tokenizer).collate([dict(wav=wav, prompt=IMPLICIT_PROMPT)])
    assert model.generate(online, max_new_tokens=6) == ref.generate(_batch(wav, ssl, tokenizer=ref.tokenizer),
                                                                    max_new_tokens=6)


def test_load_for_inference_official_end_to_end(setup, e2v, tmp_path):
    import soundfile as sf

    from c2ser.encoders.emotion2vec import Emotion2VecS
    from c2ser.inference.loading import audio_item, load_for_inference
    ref, sd, path, models = setup
    wav = _wav(4)
    sf.write(tmp_path / "a.wav", wav, 16000)
    model, proc = load_for_inference(f"official:{path}", ssl_checkpoint=str(e2v), qwen2_dir=str(models["llm"]),
                                     overrides=[f"whisper.name_or_path={models['whisper']}", *TINY_OVERRIDES])
    assert model.ssl_encoder is not None and model.cfg.ssl.mode == "official"
    assert model.tokenizer.eos_token == "<|endoftext|>"
    item = audio_item(tmp_path / "a.wav", model)
    text = model.generate(proc.collate([dict(item, prompt=IMPLICIT_PROMPT)]), max_new_tokens=6)
    with torch.no_grad():
        ssl = Emotion2VecS.from_pretrained(str(e2v)).eval().utterance_features([item["wav"]], mode="official")[0]
    expected = ref.generate(_batch(item["wav"], ssl, tokenizer=ref.tokenizer), max_new_tokens=6)
    assert text == expected and isinstance(text[0], str)


def test_predict_cli_with_the_official_file_and_online_ssl(setup, e2v, tmp_path):
    import soundfile as sf

    from c2ser.encoders.emotion2vec import Emotion2VecS
    ref, sd, path, models = setup
    wav = _wav(0)
    sf.write(tmp_path / "a.wav", wav, 16000)
    over = [f"whisper.name_or_path={models['whisper']}", *TINY_OVERRIDES]
    args = ["predict", str(tmp_path / "a.wav"), "--checkpoint", "official", "--official-path", str(path),
            "--qwen2-dir", str(models["llm"]), "--json", "--ssl-checkpoint", str(e2v), "--max-new-tokens", "6"]
    r = subprocess.run([sys.executable, "-m", "c2ser.cli", *args, *[a for o in over for a in ("--set", o)]],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    from c2ser.audio import load_audio
    clip = load_audio(str(tmp_path / "a.wav"))
    with torch.no_grad():
        ssl = Emotion2VecS.from_pretrained(str(e2v)).eval().utterance_features([clip], mode="official")[0]
    assert json.loads(r.stdout)["text"] == ref.generate(_batch(clip, ssl, tokenizer=ref.tokenizer), max_new_tokens=6)[0]


def test_official_loading_needs_the_qwen2_dir(setup):
    from c2ser.inference.loading import load_for_inference
    with pytest.raises(ValueError, match="--qwen2-dir"):
        load_for_inference(f"official:{setup[2]}")


# ---- the release's settings: config, end-of-answer token, prompts, decoding --------------------------------------

def test_official_config_matches_the_release():
    from c2ser.inference.official import official_model_config
    cfg = official_model_config("/models/Qwen2-7B")
    assert (cfg.lora.r, cfg.lora.alpha) == (8, 32) and cfg.lora.target_modules == OFFICIAL_LORA_TARGETS
    assert cfg.ssl.mode == "official" and (cfg.adapter.num_blocks, cfg.adapter.heads, cfg.adapter.ffn) == (4, 4, 2560)
    assert cfg.llm.name_or_path == "/models/Qwen2-7B" and cfg.whisper.name_or_path == "medium"
    assert cfg.llm.eos_token == "<|endoftext|>"


def test_release_prompts_and_parity_decoding_are_the_specs(shared_data):
    """Against the written analysis of the release (../shared/specs/c2ser_model.md §4 and §6), not a copy."""
    import re

    from c2ser.inference.official import OFFICIAL_PROMPTS, PARITY_DECODING, PARITY_SEED
    spec = (shared_data.parent / "specs" / "c2ser_model.md").read_text()
    [row] = [ln for ln in spec.splitlines() if ln.startswith("| prompt (English")]
    explicit, implicit = re.findall(r"`([^`]+)`", row)
    assert OFFICIAL_PROMPTS == {"explicit": explicit, "implicit": implicit}
    section = spec.split("## 6. Inference settings")[1].split("\n\n")[1]
    cells = [c.strip() for ln in section.splitlines()[2:] for c in ln.strip("|").split("|")]
    settings = {k: json.loads(v.lower().replace(" ", "").split("/")[0]) for k, v in zip(cells[::2], cells[1::2])}
    for key in ("max_new_tokens", "num_beams", "do_sample", "top_p", "top_k", "repetition_penalty", "length_penalty",
                "temperature", "min_length"):
        assert PARITY_DECODING[key] == settings[key], key
    assert PARITY_SEED == int(re.search(r"`recognize4llmasr.py` seeds\s+(\d+)", spec).group(1))


def test_an_instruct_tokenizer_still_ends_answers_at_endoftext(setup, tmp_path):
    """With an Instruct tokenizer (eos <|im_end|>) the official model must still stop (and end targets) at
    <|endoftext|>, the token it was trained on."""
    from transformers import AutoTokenizer
    ref, sd, path, models = setup
    instruct = tmp_path / "qwen2-instruct"
    shutil.copytree(models["llm"], instruct)
    tc = json.loads((instruct / "tokenizer_config.json").read_text())
    (instruct / "tokenizer_config.json").write_text(json.dumps(dict(tc, eos_token="<|im_end|>")))
    assert AutoTokenizer.from_pretrained(instruct).eos_token == "<|im_end|>"
    cfg = _tiny_cfg(models, name_or_path=str(instruct), eos_token="<|endoftext|>")
    model = load_official(path, cfg)
    endoftext = model.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert endoftext != model.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert model.tokenizer.eos_token_id == endoftext
    ids, _ = C2SERProcessor(model.tokenizer).tokenize(["happy"], add_eos=True)
    assert int(ids[0, -1]) == endoftext
    with pytest.raises(ValueError, match=r"llm.eos_token='<\|nope\|>' is not a token"):
        load_official(path, _tiny_cfg(models, eos_token="<|nope|>"))


def test_parity_decoding_is_reproducible_with_the_seed(setup):
    from c2ser.inference.official import PARITY_DECODING, PARITY_SEED
    ref, sd, path, models = setup
    batch = _batch(_wav(), torch.randn(10, 48), tokenizer=ref.tokenizer)
    kw = dict(PARITY_DECODING, max_new_tokens=6)
    torch.manual_seed(PARITY_SEED)
    a = ref.generate(batch, **kw)
    torch.manual_seed(PARITY_SEED)
    assert ref.generate(batch, **kw) == a
