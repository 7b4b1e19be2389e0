"""Emotion2Vec-S without fairseq: parity with FunASR's independent implementation, loaders, batching, caching."""
import json
import os
import sys
import types

import numpy as np
import pytest
import torch

from c2ser.encoders.emotion2vec import Emotion2VecS
from c2ser.encoders.emotion2vec_loading import AUDIO, load_emotion2vec
from c2ser.testing import TINY_E2V_CFG, build_tiny_emotion2vec, emotion2vec_model_cfg
from deps import need_module


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return build_tiny_emotion2vec(tmp_path_factory.mktemp("e2v") / "checkpoint.pt", seed=3)


@pytest.fixture(scope="module")
def ours(ckpt):
    return load_emotion2vec(ckpt, verbose=False)


def _funasr_conf(cfg: dict, depth: int) -> dict:
    """Every field FunASR's Emotion2vec reads, inference values (no dropout, no masking)."""
    full = dict(cfg, dropout_input=0.0, encoder_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                post_mlp_drop=0.0, start_drop_path_rate=0.0, end_drop_path_rate=0.0, layerdrop=0.0,
                end_of_block_targets=False, average_top_k_layers=1, loss_beta=0.0, loss_scale=None, clone_batch=1,
                normalize=False, supported_modality="AUDIO")
    full["modalities"] = {"audio": dict(
        cfg["modalities"]["audio"], type="AUDIO", decoder=None, prenet_dropout=0.0, prenet_layerdrop=0.0,
        start_drop_path_rate=0.0, end_drop_path_rate=0.0, model_depth=depth, alibi_scale=1.0, alibi_max_pos=None,
        learned_alibi=False, init_extra_token_zero=True, input_dropout=0.0, local_grad_mult=1.0,
        mask_noise_std=0.01, mask_prob_min=None, inverse_mask=False, mask_prob=0.0, mask_prob_adjust=0.0,
        keep_masked_pct=0.0, mask_length=5, add_masks=False, remove_masks=False, mask_dropout=0.0,
        encoder_zero_mask=True, mask_channel_prob=0.0, mask_channel_length=64, ema_local_encoder=False)}
    return full


@pytest.fixture(scope="module")
def funasr_ref(ours):
    sys.modules.setdefault("funasr.utils.load_utils",
                           types.SimpleNamespace(load_audio_text_image_video=None))  # light install (spec §8)
    # the basis of "tested equal to FunASR": a failure in CI when FunASR is missing, a skip with the reason elsewhere
    Emotion2vec = need_module("funasr.models.emotion2vec.model", "FunASR (the independent reference)").Emotion2vec
    ref = Emotion2vec(model_conf=_funasr_conf(emotion2vec_model_cfg(**TINY_E2V_CFG), TINY_E2V_CFG["depth"]),
                      vocab_size=-1).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ref


def _wav(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.2 * np.sin(2 * np.pi * (100 + 40 * seed) * t) * (1 + np.sin(3 * t)) + 0.05 * rng.standard_normal(n)
            ).astype(np.float32)


@pytest.mark.parametrize("n", [400, 3000, 3280, 16000, 37123])
def test_single_clip_parity_with_funasr(ours, funasr_ref, n):
    x = torch.from_numpy(_wav(n, 1))[None]
    with torch.no_grad():
        ref = funasr_ref.extract_features(x, padding_mask=None)["x"]
        ref_tokens = funasr_ref.extract_features(x, padding_mask=None, remove_extra_tokens=False)["x"][:, :10]
        frames, lengths, tokens = ours(x)
    assert frames.shape == ref.shape and lengths.tolist() == [(n - 400) // 320 + 1]
    assert float((frames - ref).abs().max()) <= 1e-4
    assert float((tokens - ref_tokens).abs().max()) <= 1e-4
    if frames.shape[1] > 2:
        assert float(frames[0].std(0).mean()) > 0.05  # outputs vary across frames: the test is sensitive


def test_padded_batch_equals_funasr_one_clip_at_a_time(ours, funasr_ref):
    wavs = [_wav(n, i) for i, n in enumerate((16000, 9100, 25000))]
    frames, lengths, tokens = ours.extract(wavs)
    for i, w in enumerate(wavs):
        with torch.no_grad():
            ref = funasr_ref.extract_features(torch.from_numpy(w)[None], padding_mask=None)["x"][0]
        assert float((frames[i, : lengths[i]] - ref).abs().max()) <= 1e-4


def test_utterance_modes(ours):
    wavs = [_wav(16000, 0), _wav(8000, 1)]
    frames, lengths, tokens = ours.extract(wavs)
    assert torch.equal(ours.utterance_features(wavs, "official"), frames[:, :10])
    assert torch.equal(ours.utterance_features(wavs, "tokens"), tokens)
    mean = ours.utterance_features(wavs, "mean")
    torch.testing.assert_close(mean[1, 0], frames[1, : lengths[1]].mean(0))
    with pytest.raises(ValueError, match="'official' mode needs"):
        ours.utterance_features([_wav(2000, 0)], "official")
    with pytest.raises(ValueError, match="shorter than the encoder's minimum"):
        ours.extract([_wav(300, 0)])


def test_fairseq_and_funasr_formats_load_the_same_weights(tmp_path, ours, ckpt):
    d = build_tiny_emotion2vec(tmp_path / "funasr_dir", seed=3, fmt="funasr")
    other = load_emotion2vec(d, verbose=False)
    for (k, a), (k2, b) in zip(ours.state_dict().items(), other.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert ours.dropped_keys == [f"{AUDIO}decoder.proj.weight", f"{AUDIO}decoder.proj.bias"]


def test_missing_key_and_bad_files_are_clear_errors(tmp_path, ckpt):
    state = torch.load(ckpt, weights_only=False)
    del state["model"]["blocks.1.norm2.weight"]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="broken.pt: 1 encoder keys missing"):
        load_emotion2vec(tmp_path / "broken.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: not a readable PyTorch checkpoint"):
        load_emotion2vec(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_emotion2vec(tmp_path / "absent.pt")


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_a_checkpoint_cannot_run_code(tmp_path, ckpt):
    state = torch.load(ckpt, weights_only=False)
    marker = tmp_path / "pwned"
    state["extra_state"] = {"payload": _Exploit(marker), "np": np.float64(3.0)}
    torch.save(state, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"evil.pt: refused to load: the file asks for posix.system"):
        load_emotion2vec(tmp_path / "evil.pt", verbose=False)
    assert not marker.exists()
    state["extra_state"] = {"np": np.float64(3.0), "arr": np.arange(3)}  # fairseq bookkeeping still loads
    torch.save(state, tmp_path / "numpy.pt")
    assert isinstance(load_emotion2vec(tmp_path / "numpy.pt", verbose=False), Emotion2VecS)


def test_official_layout_full_size_loads_with_no_missing_or_unexpected_keys(shared_data, tmp_path):
    layout = json.loads((shared_data / "layouts" / "emotion2vec_s_checkpoint_layout.json").read_text())
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(shape, generator=g).half() for k, shape in layout["keys"].items()}
    sd[AUDIO + "alibi_scale"] = sd[AUDIO + "alibi_scale"].abs()
    cfg = emotion2vec_model_cfg()
    torch.save({"args": None, "cfg": {"model": cfg, "task": {"normalize": True}}, "model": sd}, tmp_path / "c.pt")
    model = load_emotion2vec(tmp_path / "c.pt", verbose=False)
    own = model.state_dict()
    assert len(own) == 183 and len(model.dropped_keys) == 10
    assert all(".decoder." in k for k in model.dropped_keys)
    for k in (AUDIO + "extra_tokens", "blocks.7.mlp.fc2.weight", AUDIO + "local_encoder.conv_layers.0.0.weight"):
        torch.testing.assert_close(own[k], sd[k].float())
    assert sum(p.numel() for p in model.parameters()) == 93_171_212


def test_real_clips_frame_counts_match_the_official_features(shared_data, ours):
    from c2ser.audio import load_audio

    for name, frames in (("4YJy1uDx0jM_769", 569), ("vo_EQAST002_1_paimon_07", 204)):
        wav = load_audio(shared_data / "clips" / f"{name}.wav")  # one file is 48 kHz: resampled to 16 kHz
        assert np.load(shared_data / "clips" / f"{name}.frame.npy").shape[0] == frames
        _, lengths, _ = ours.extract([wav])
        assert int(lengths[0]) == frames


def test_cached_features_equal_the_online_path(ours, ckpt, tmp_path):
    import soundfile as sf

    from c2ser.audio import load_audio
    from c2ser.features import extract_features, load_cached_features

    rows = []
    for i, n in enumerate((16000, 20000, 12000)):
        sf.write(tmp_path / f"c{i}.wav", _wav(n, i), 16000)
        rows.append({"key": f"c{i}", "audio": str(tmp_path / f"c{i}.wav"), "duration": n / 16000})
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    rows.append({"key": "bad", "audio": str(tmp_path / "bad.wav"), "duration": 1.0})
    s = extract_features(rows, ours, tmp_path / "feats", mode="tokens", progress=False)
    assert s == {"written": 3, "skipped": 0, "rejected": 1}
    assert "unreadable audio" in (tmp_path / "feats" / "rejects.jsonl").read_text()
    for i in range(3):  # the model's online path: the same file, one clip at a time
        online = ours.utterance_features([load_audio(tmp_path / f"c{i}.wav")], "tokens")[0].numpy()
        np.testing.assert_array_equal(load_cached_features(tmp_path / "feats", f"c{i}"), online)
    extract_features(rows, ours, tmp_path / "batched", batch_size=3, progress=False)
    for i in range(3):
        np.testing.assert_allclose(load_cached_features(tmp_path / "batched", f"c{i}"),
                                   load_cached_features(tmp_path / "feats", f"c{i}"), atol=1e-5)
    s = extract_features(rows, ours, tmp_path / "feats", progress=False)  # resume: nothing left to do
    assert s["written"] == 0 and s["skipped"] == 3


def test_length_buckets_batch_neighbours_under_the_padding_cap():
    from c2ser.features import length_buckets

    lengths = [10.0, 1.0, 1.05, 0.0, 5.0, 1.1, 10.5, 4.9, 1.02]
    # sorted: 1.0(1) 1.02(8) 1.05(2) 1.1(5) | 4.9(7) 5.0(4) | 10.0(0) 10.5(6); unknown length (3) alone
    assert length_buckets(lengths, 8) == [[1, 8, 2, 5], [7, 4], [0, 6], [3]]
    assert length_buckets(lengths, 2) == [[1, 8], [2, 5], [7, 4], [0, 6], [3]]
    # 1.0 and 1.5 together would be 1.5 × 2 = 3.0 > 1.1 × 2.5 = 2.75 padded samples
    assert length_buckets([1.0, 1.5], 8) == [[0], [1]]
    assert length_buckets([1.0, 1.5], 8, max_padding=0.25) == [[0, 1]]


def test_bucketed_extraction_equals_one_clip_at_a_time_and_writes_every_clip(ours, tmp_path, monkeypatch):
    import soundfile as sf

    from c2ser.features import extract_features, load_cached_features

    sizes = (16000, 48000, 16400, 47000, 30000, 15800)  # two groups of near-equal lengths and one alone
    rows = []
    for i, n in enumerate(sizes):
        sf.write(tmp_path / f"c{i}.wav", _wav(n, i), 16000)
        rows.append({"key": f"c{i}", "audio": str(tmp_path / f"c{i}.wav"), "duration": n / 16000})
    assert extract_features(rows, ours, tmp_path / "one", progress=False)["written"] == 6
    seen = []
    real = type(ours).utterance_features
    monkeypatch.setattr(type(ours), "utterance_features",
                        lambda self, wavs, mode="tokens": seen.append(sorted(len(w) for w in wavs)) or real(self, wavs, mode))
    s = extract_features(rows, ours, tmp_path / "bucketed", batch_size=4, progress=False)
    assert s == {"written": 6, "skipped": 0, "rejected": 0}
    assert seen == [[15800, 16000, 16400], [30000], [47000, 48000]]  # neighbours only, no 1-s clip padded to 3 s
    for i in range(6):
        np.testing.assert_allclose(load_cached_features(tmp_path / "bucketed", f"c{i}"),
                                   load_cached_features(tmp_path / "one", f"c{i}"), atol=1e-5)
