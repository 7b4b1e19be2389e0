"""Corpus preparation on fake trees that mirror the real layouts, the real lists, and bad input."""
import json

import numpy as np
import pytest
import soundfile as sf

from c2ser.audio import load_audio
from c2ser.data.corpora import CASIA_FOLDS, prepare_casia, prepare_emo_emilia, prepare_meld, read_meld_csv
from c2ser.data.fake_corpora import write_mp4
from c2ser.data.manifest import read_manifest, validate_manifest

SR = 16000


def _tone(freq, sec=0.5, sr=SR):
    t = np.arange(int(sec * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _mp4(path, channels, loud_channel):
    """An mp4 whose audio has ``channels`` channels, a 440 Hz tone only in ``loud_channel`` (1-indexed)."""
    data = np.zeros((48000 // 2, channels), np.float32)
    data[:, loud_channel - 1] = _tone(440, sr=48000)
    write_mp4(path, data, 48000)


def test_meld_centre_channel_of_5_1_and_first_of_stereo(tmp_path):
    root = tmp_path / "MELD.Raw"
    (root / "train" / "train_splits").mkdir(parents=True)
    (root / "dev_splits_complete").mkdir()
    (root / "output_repeated_splits_test").mkdir()
    header = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"
    (root / "train" / "train_sent_emo.csv").write_text(
        header + '1,"Oh, hi!",Joey,joy,positive,0,0,1,1,"00:00:01,000","00:00:02,000"\n'
                 '2,Go away.,Ross,anger,negative,0,1,1,1,"00:00:03,000","00:00:04,000"\n'
                 '3,Missing clip.,Ross,fear,negative,0,2,1,1,"00:00:03,000","00:00:04,000"\n'
                 '4,Odd label.,Ross,boredom,negative,0,3,1,1,"00:00:03,000","00:00:04,000"\n'
                 '5,Broken row.,Ross,anger,negative,x,y,1,1,"00:00:03,000","00:00:04,000"\n')
    (root / "dev_sent_emo.csv").write_text(header + '1,Fine.,Monica,neutral,neutral,3,0,1,1,"0","0"\n')
    (root / "test_sent_emo.csv").write_text(header)
    _mp4(root / "train" / "train_splits" / "dia0_utt0.mp4", 6, loud_channel=3)   # 5.1: dialogue in the centre
    _mp4(root / "train" / "train_splits" / "dia0_utt1.mp4", 2, loud_channel=1)   # stereo
    (root / "dev_splits_complete" / "dia3_utt0.mp4").write_bytes(b"not a video")  # corrupt
    out = tmp_path / "out"
    res = prepare_meld(root, out, workers=2)
    assert [r["key"] for r in res["train"]] == ["meld-dia0_utt0-train", "meld-dia0_utt1-train"]
    assert [r["emotion"] for r in res["train"]] == ["happy", "angry"]
    for r in res["train"]:
        wav = load_audio(r["audio"])
        assert sf.info(r["audio"]).channels == 1 and sf.info(r["audio"]).samplerate == SR
        assert np.sqrt(np.mean(wav ** 2)) > 0.2  # the loud channel was taken, not a silent one or a down-mix
    reasons = [json.loads(x)["reason"] for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert any("clip missing" in r for r in reasons) and any("boredom" in r for r in reasons)
    assert any("malformed row" in r for r in reasons) and any("no audio stream" in r or "ffmpeg" in r for r in reasons)
    assert res["valid"] == [] and res["test"] == []
    again = prepare_meld(root, out, workers=2)  # idempotent: wavs reused
    assert [r["key"] for r in again["train"]] == [r["key"] for r in res["train"]]


def test_casia_folds(tmp_path):
    root = tmp_path / "CASIA"
    for spk in CASIA_FOLDS:
        for emo in ("angry", "happy"):
            d = root / spk / emo
            d.mkdir(parents=True)
            for cid in (201, 202, 203):
                sf.write(d / f"{cid}.wav", _tone(200), SR)
    (root / "wangzhe" / "bored").mkdir()
    sf.write(root / "wangzhe" / "bored" / "201.wav", _tone(200), SR)
    (root / "wangzhe" / "angry" / "204.wav").write_bytes(b"")
    stale = tmp_path / "out" / "fold_1" / "valid.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}\n")  # from an older run: must not survive
    rows = prepare_casia(root, tmp_path / "out")
    assert len(rows) == 24 and rows[0]["key"].startswith("casia-")
    assert "casia-201-wangzhe-angry" in {r["key"] for r in rows}
    for k, spk in enumerate(CASIA_FOLDS, 1):
        test = read_manifest(tmp_path / "out" / f"fold_{k}" / "test.jsonl")
        train = read_manifest(tmp_path / "out" / f"fold_{k}" / "train.jsonl")
        assert {r["speaker"] for r in test} == {spk} and len(test) == 6
        assert spk not in {r["speaker"] for r in train} and len(train) == 18  # nothing carved out of train
        assert not (tmp_path / "out" / f"fold_{k}" / "valid.jsonl").exists()
    reasons = (tmp_path / "out" / "rejects.jsonl").read_text()
    assert "bored" in reasons and "unreadable audio" in reasons


@pytest.fixture(scope="module")
def casia_full(tmp_path_factory):
    """The public CASIA subset's shape: 4 speakers x 6 emotions x ids 201-250 = 1,200 clips."""
    root = tmp_path_factory.mktemp("casia") / "CASIA"
    clip = _tone(220, sec=0.02)
    for spk in CASIA_FOLDS:
        for emo in ("angry", "fear", "happy", "neutral", "sad", "surprise"):
            (root / spk / emo).mkdir(parents=True)
            for cid in range(201, 251):
                sf.write(root / spk / emo / f"{cid}.wav", clip, SR)
    return root


def _emobox_casia_fold(k):
    """EmoBox's CASIA fold k, built from its rule (spec datasets.md §3), not from our code."""
    test_spk = {1: "wangzhe", 2: "zhaozuoxiang", 3: "liuchanhg", 4: "zhaoquanyin"}[k]
    emos = ("angry", "fear", "happy", "neutral", "sad", "surprise")
    spks = ("liuchanhg", "wangzhe", "zhaoquanyin", "zhaozuoxiang")
    keys = {s: {f"casia-{i}-{s}-{e}" for e in emos for i in range(201, 251)} for s in spks}
    return set().union(*(keys[s] for s in spks if s != test_spk)), keys[test_spk]


def test_casia_full_folds_equal_emobox_lists(casia_full, tmp_path):
    rows = prepare_casia(casia_full, tmp_path / "out")
    assert len(rows) == 1200 and (tmp_path / "out" / "rejects.jsonl").read_text() == ""
    for k in range(1, 5):
        train = read_manifest(tmp_path / "out" / f"fold_{k}" / "train.jsonl")
        test = read_manifest(tmp_path / "out" / f"fold_{k}" / "test.jsonl")
        want_train, want_test = _emobox_casia_fold(k)
        assert len(train) == 900 and len(test) == 300
        assert {r["key"] for r in train} == want_train and {r["key"] for r in test} == want_test
        assert {r["split"] for r in train} == {"train"}


def test_casia_optional_valid_split_is_separate(casia_full, tmp_path):
    prepare_casia(casia_full, tmp_path / "out", valid_fraction=0.1)
    for k in range(1, 5):
        fold = tmp_path / "out" / f"fold_{k}"
        train, valid = read_manifest(fold / "train.jsonl"), read_manifest(fold / "valid.jsonl")
        want_train, _ = _emobox_casia_fold(k)
        tk, vk = {r["key"] for r in train}, {r["key"] for r in valid}
        assert not tk & vk and tk | vk == want_train  # valid comes out of EmoBox's train, nothing else
        assert 60 <= len(valid) <= 120  # ~10 % of 900
    with pytest.raises(ValueError, match="between 0 and 1"):
        prepare_casia(casia_full, tmp_path / "o2", valid_fraction=1.5)


def test_emo_emilia_folder_reports_missing_clips(tmp_path):
    lst = tmp_path / "list.jsonl"
    lst.write_text(
        '{"index": "ZH_B00001_S00001_W000000", "emotion": "angry", "wav": "./Emo-Emilia/wav/ZH_B00001_S00001_W000000.wav", "text": "你好"}\n'
        '{"index": "EN_B00002_S00001_W000000", "emotion": "surprised", "wav": "./Emo-Emilia/wav/EN_B00002_S00001_W000000.wav", "text": " Wow."}\n'
        '{"index": "EN_B00003_S00001_W000000", "emotion": "happy", "wav": "x", "text": "absent"}\n'
        '{"index": "EN_B00004_S00001_W000000", "emotion": "bored", "wav": "x", "text": "bad label"}\n'
        '{"index": "EN_B0\n')
    (tmp_path / "wav").mkdir()
    for k in ("ZH_B00001_S00001_W000000", "EN_B00002_S00001_W000000"):
        sf.write(tmp_path / "wav" / f"{k}.wav", _tone(300), SR)
    rows = prepare_emo_emilia(lst, tmp_path, tmp_path / "out")
    assert [(r["language"], r["emotion"], r["text"]) for r in rows] == [("zh", "angry", "你好"), ("en", "surprise", "Wow.")]
    rej = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [x["reason"] for x in rej][0] == "audio file missing" and len(rej) == 3
    assert validate_manifest(read_manifest(tmp_path / "out" / "test.jsonl")) == []


def test_real_meld_csvs(shared_data):
    counts = {}
    for name in ("train", "dev", "test"):
        rows, bad = read_meld_csv(shared_data / "meld" / f"{name}_sent_emo.csv")
        counts[name] = len(rows)
        assert not bad and {r["Emotion"] for r in rows} == {"neutral", "joy", "sadness", "surprise", "disgust",
                                                            "anger", "fear"}
    assert counts == {"train": 9989, "dev": 1109, "test": 2610}


def test_real_emo_emilia_list(shared_data, tmp_path):
    (tmp_path / "no-audio").mkdir()
    with pytest.raises(ValueError, match="no clip kept under --root .*no-audio"):
        prepare_emo_emilia(shared_data / "emo_emilia" / "Emo-Emilia-ALL.jsonl", tmp_path / "no-audio", tmp_path / "o")
    rej = [json.loads(x) for x in (tmp_path / "o" / "rejects.jsonl").read_text().splitlines()]
    assert len(rej) == 1400 and {x["reason"] for x in rej} == {"audio file missing"}  # 1,400 unique keys
    assert not (tmp_path / "o" / "test.jsonl").exists()
