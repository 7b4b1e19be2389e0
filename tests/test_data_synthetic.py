"""The synthetic corpus (deterministic, prosody measurable), CoT labels, and the manifest format."""
import hashlib

import numpy as np
import pytest

from c2ser.audio import load_audio
from c2ser.data.cot import add_bins, measure, targets
from c2ser.data.manifest import make_row, read_manifest, validate_manifest, write_manifest
from c2ser.data.synthetic import INTENDED, build_synthetic_corpus

FOUR = ("neutral", "happy", "sad", "angry")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    return out, build_synthetic_corpus(out, FOUR, per_class=16, valid_per_class=2, test_per_class=4, seed=1,
                                       progress=False, valid2_per_class=2)


def test_same_seed_same_manifest_and_audio_bytes(corpus, tmp_path):
    out, paths = corpus
    again = build_synthetic_corpus(tmp_path, FOUR, per_class=16, valid_per_class=2, test_per_class=4, seed=1,
                                   progress=False, valid2_per_class=2)
    a, b = read_manifest(paths["train"]), read_manifest(again["train"])
    assert [(r["key"], r["text"], r["speaker"], r["duration"]) for r in a] == \
           [(r["key"], r["text"], r["speaker"], r["duration"]) for r in b]
    for r, s in zip(a[:10], b[:10]):
        assert hashlib.sha1(open(r["audio"], "rb").read()).digest() == hashlib.sha1(open(s["audio"], "rb").read()).digest()


def test_splits_hold_out_sentences_and_voices(corpus):
    _, paths = corpus
    split = {s: read_manifest(paths[s]) for s in ("train", "valid", "valid2", "test")}
    train, test = split["train"], split["test"]
    assert len(train) == 64 and len(test) == 16 and len(split["valid2"]) == 8
    assert {r["emotion"] for r in train} == set(FOUR)
    for a, b in (("train", "valid"), ("train", "valid2"), ("train", "test"), ("valid", "valid2"), ("valid", "test"),
                 ("valid2", "test")):
        assert not {r["text"] for r in split[a]} & {r["text"] for r in split[b]}, (a, b)
        assert not {r["speaker"] for r in split[a]} & {r["speaker"] for r in split[b]}, (a, b)
    assert {r["language"] for r in train} == {"en", "zh"}
    assert validate_manifest(train) == []


def test_measured_style_agrees_with_the_intended_prosody(corpus):
    _, paths = corpus
    rows = read_manifest(paths["train"])
    for r in rows:
        r["style"] = measure(load_audio(r["audio"]), r["text"], r["language"])
    add_bins(rows, group_by="speaker")
    agree = {f: np.mean([r["style"][f] == INTENDED[r["emotion"]][f] for r in rows])
             for f in ("pitch_bin", "pace_bin", "volume_bin")}
    assert np.mean(list(agree.values())) >= 0.6, agree
    loud = {e: np.mean([r["style"]["loudness_lufs"] for r in rows if r["emotion"] == e]) for e in FOUR}
    rate = {e: np.mean([r["style"]["rate"] for r in rows if r["emotion"] == e]) for e in FOUR}
    assert loud["angry"] > loud["neutral"] > loud["sad"] and rate["angry"] > rate["neutral"] > rate["sad"]


def test_pitch_of_a_low_voice_with_a_weak_fundamental():
    # a 55 Hz voice whose energy sits in harmonics 2-5 (like espeak's low male voices): with a 60 Hz floor the
    # tracker took a harmonic (~185 Hz); the measure must report the fundamental
    t = np.arange(24000) / 16000
    for f0 in (55.0, 120.0):
        wav = sum(a * np.sin(2 * np.pi * k * f0 * t) for k, a in {1: 0.1, 2: 0.5, 3: 1.0, 4: 0.8, 5: 0.5}.items())
        assert abs(measure((0.1 * wav).astype(np.float32), "hello there", "en")["pitch_hz"] - f0) < 1.0


def test_cot_targets_and_short_clip_fallback():
    short = (0.1 * np.sin(np.arange(3000) / 5)).astype(np.float32)  # 0.19 s: too short for LUFS gating
    m = measure(short, "hi there", "en")
    assert np.isfinite(m["loudness_lufs"]) and m["loudness_lufs"] < 0
    row = make_row(key="k1", emotion="angry", language="en", text=" Go away ",
                   style={"pace_bin": "high", "pitch_bin": "low", "volume_bin": "high"})
    explicit, implicit = targets(row)
    assert '"Go away"' in explicit and "fast" in explicit and "loud" in explicit and explicit.endswith("angry.")
    assert implicit == "The emotion of this speech is angry."
    zh = dict(row, language="zh", text="走开")
    e_zh, i_zh = targets(zh)
    assert "快速" in e_zh and "响亮" in e_zh and "推测情绪为生气" in e_zh and i_zh == "这条语音的情感为生气。"
    assert targets(row, rewrite=lambda s, r: s.upper())[0].startswith(explicit.upper()[:10])


def test_manifest_validator_and_datasets_loading(tmp_path):
    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, np.zeros(1600, np.float32), 16000)
    rows = [make_row(key="a", audio=str(wav), duration=0.1, emotion="happy", corpus="x", split="train"),
            make_row(key="a", audio=str(tmp_path / "gone.wav"), duration=-1, emotion="bored", corpus="x", split="t"),
            make_row(key="c", audio=None, duration=1.0, emotion="sad", corpus="x", split="test")]
    problems = validate_manifest(rows)
    assert any("duplicate key" in p for p in problems) and any("unknown emotion 'bored'" in p for p in problems)
    assert any("audio file not found" in p for p in problems) and any("missing audio" in p for p in problems)
    assert any("duration must be a positive number" in p for p in problems)
    path = write_manifest(rows[:1], tmp_path / "m.jsonl")
    import datasets

    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    assert ds[0]["key"] == "a" and set(ds.column_names) >= {"audio", "emotion", "style", "explicit_target"}
    (tmp_path / "bad.jsonl").write_text('{"key": "a"}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: malformed JSON line"):
        read_manifest(tmp_path / "bad.jsonl")
