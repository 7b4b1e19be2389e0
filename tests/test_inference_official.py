"""The official C2SER_llm.pt converter on a synthetic file with the EXACT official key names (tiny dims)."""
import json
import re

import pytest
import torch

from c2ser.inference.official import BOS_ROW, EOS_ROW, load_official, map_key
from c2ser.models.build import build_model
from c2ser.models.processor import C2SERProcessor
from c2ser.testing import tiny_model_config

LAYOUT = "layouts/c2ser_llm_official_state_dict.json"


def _tiny_cfg(models):
    cfg = tiny_model_config(models)
    cfg.lora.target_modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]
    return cfg


def _layer_ok(key, n_whisper=2, n_adapter=2, n_llm=2):
    m = re.search(r"(encoder\.encoders|speech_transformer\.encoders|layers)\.(\d+)\.", key)
    if not m:
        return True
    limit = {"encoder.encoders": n_whisper, "speech_transformer.encoders": n_adapter, "layers": n_llm}[m.group(1)]
    return int(m.group(2)) < limit


def _synthetic_official(layout_keys, ref):
    """Official-named tensors whose values come from ``ref`` (our model): the inverse of the key map."""
    own = ref.state_dict()
    out = {}
    for key in layout_keys:
        ours = map_key(key)
        if ours is None:  # dropped: random tensors of tiny shapes (aliases = the LLM's own tensors)
            if key == "embed_tokens.weight":
                out[key] = own["llm.base_model.model.model.embed_tokens.weight"].clone()
            elif key == "lm_head.weight":
                out[key] = own["llm.base_model.model.lm_head.weight"].clone()
            else:
                out[key] = torch.randn(5, 3)
        elif ours == "speech_markers.weight":
            t = torch.randn(EOS_ROW + 1, own[ours].shape[1])
            t[[BOS_ROW, EOS_ROW]] = own[ours]
            out[key] = t
        elif ours == "whisper.encoder.positional_embedding":
            out[key] = own[ours][None].clone()
        else:
            out[key] = own[ours].clone()
    return {k: v.to(torch.bfloat16) for k, v in out.items()}


@pytest.fixture(scope="module")
def setup(tiny_models, shared_data, tmp_path_factory):
    keys = [k for k in json.loads((shared_data / LAYOUT).read_text())["keys"] if _layer_ok(k)]
    torch.manual_seed(1)
    ref = build_model(_tiny_cfg(tiny_models)).eval()
    with torch.no_grad():
        for n, p in ref.named_parameters():
            p.copy_(p.to(torch.bfloat16).float())  # bf16-representable, so the round trip is exact
            if "lora_B" in n:
                p.copy_(torch.randn_like(p).to(torch.bfloat16).float())
    ref.adapter.embed.pos_enc.pe.copy_(ref.adapter.embed.pos_enc.pe.to(torch.bfloat16).float())
    ref.whisper.encoder.positional_embedding.copy_(ref.whisper.encoder.positional_embedding.to(torch.bfloat16).float())
    sd = _synthetic_official(keys, ref)
    path = tmp_path_factory.mktemp("official") / "C2SER_llm.pt"
    torch.save(sd, path)
    return keys, ref, sd, path, tiny_models


def test_every_layout_key_is_mapped_or_dropped(setup):
    keys = setup[0]
    dropped = [k for k in keys if map_key(k) is None]
    assert sorted(dropped) == ["embed_tokens.weight", "lm_head.weight", "ln_speech.bias", "ln_speech.weight",
                               "speaker_head.bias", "speaker_head.weight"]


def test_loaded_model_equals_the_reference(setup):
    keys, ref, sd, path, models = setup
    torch.manual_seed(2)
    model = load_official(path, _tiny_cfg(models))
    own = model.state_dict()
    for k, v in ref.state_dict().items():
        assert torch.equal(own[k], v), k
    proc = C2SERProcessor(model.tokenizer)
    batch = proc.collate([dict(wav=torch.randn(16000).numpy() * 0.1, ssl=torch.randn(10, 48), prompt="emotion:")])
    assert model.generate(batch, max_new_tokens=8) == ref.generate(batch, max_new_tokens=8)
    with torch.no_grad():
        h1, _ = model.prefix_hidden_states(batch)
        h2, _ = ref.prefix_hidden_states(batch)
    assert torch.equal(h1, h2)


def test_missing_key_is_a_clear_error(setup, tmp_path):
    keys, ref, sd, path, models = setup
    bad = dict(sd)
    del bad["down_sample_2.conv.4.weight"]
    torch.save(bad, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"missing from the file.*downsampler\.conv\.4\.weight"):
        load_official(tmp_path / "missing.pt", _tiny_cfg(models))


def test_unknown_key_is_a_clear_error(setup, tmp_path):
    keys, ref, sd, path, models = setup
    bad = dict(sd, **{"mystery_head.weight": torch.zeros(2)})
    torch.save(bad, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match="unknown keys.*mystery_head"):
        load_official(tmp_path / "extra.pt", _tiny_cfg(models))


def test_shape_mismatch_is_a_clear_error(setup, tmp_path):
    keys, ref, sd, path, models = setup
    bad = dict(sd, **{"speech_llama_proj.bias": torch.zeros(3)})
    torch.save(bad, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match="shape mismatches.*speech_llama_proj.bias"):
        load_official(tmp_path / "shape.pt", _tiny_cfg(models))


def test_not_a_state_dict(tmp_path, tiny_models):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        load_official(tmp_path / "list.pt", _tiny_cfg(tiny_models))


def test_parity_decoding_is_reproducible_with_the_seed(setup):
    from c2ser.inference.official import PARITY_DECODING, PARITY_SEED
    keys, ref, sd, path, models = setup
    proc = C2SERProcessor(ref.tokenizer)
    batch = proc.collate([dict(wav=torch.randn(16000).numpy() * 0.1, ssl=torch.randn(10, 48), prompt="emotion:")])
    kw = dict(PARITY_DECODING, max_new_tokens=6)
    assert kw["num_beams"] == 4 and kw["do_sample"] and kw["repetition_penalty"] == 1.05
    torch.manual_seed(PARITY_SEED)
    a = ref.generate(batch, **kw)
    torch.manual_seed(PARITY_SEED)
    assert ref.generate(batch, **kw) == a


def test_official_loading_needs_the_qwen2_dir(setup):
    from c2ser.inference.loading import load_for_inference
    with pytest.raises(ValueError, match="--qwen2-dir"):
        load_for_inference(f"official:{setup[3]}")


def test_official_config_matches_the_release():
    from c2ser.inference.official import official_model_config
    cfg = official_model_config("/models/Qwen2-7B")
    assert (cfg.lora.r, cfg.lora.alpha) == (8, 32) and "up_proj" not in cfg.lora.target_modules
    assert cfg.ssl.mode == "official" and (cfg.adapter.num_blocks, cfg.adapter.ffn) == (4, 2560)
    assert cfg.llm.name_or_path == "/models/Qwen2-7B" and cfg.whisper.name_or_path == "medium"


def test_predict_cli_with_the_official_file(setup, tmp_path):
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf
    keys, ref, sd, path, models = setup
    wav = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    sf.write(tmp_path / "a.wav", wav, 16000)
    np.save(tmp_path / "a.npy", np.ones((10, 48), np.float32))
    over = [f"whisper.name_or_path={models['whisper']}", "llm.dtype=float32", "ssl.dim=48", "adapter.num_blocks=2",
            "adapter.ffn=128", "lora.r=4", "lora.alpha=8"]
    r = subprocess.run([sys.executable, "-m", "c2ser.cli", "predict", str(tmp_path / "a.wav"), "--checkpoint",
                        "official", "--official-path", str(path), "--qwen2-dir", str(models["llm"]), "--json",
                        "--ssl-features", str(tmp_path), "--max-new-tokens", "6", *[a for o in over for a in ("--set", o)]],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    batch = C2SERProcessor(ref.tokenizer).collate([dict(wav=wav, ssl=np.ones((10, 48), np.float32),
                                                        prompt=__import__("c2ser.prompts").prompts.IMPLICIT_PROMPT)])
    assert json.loads(r.stdout)["text"] == ref.generate(batch, max_new_tokens=6)[0]
