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
    rows = prepare_casia(root, tmp_path / "out")
    assert len(rows) == 24 and rows[0]["key"].startswith("casia-")
    assert "casia-201-wangzhe-angry" in {r["key"] for r in rows}
    for k, spk in enumerate(CASIA_FOLDS, 1):
        test = read_manifest(tmp_path / "out" / f"fold_{k}" / "test.jsonl")
        train = read_manifest(tmp_path / "out" / f"fold_{k}" / "train.jsonl")
        valid = read_manifest(tmp_path / "out" / f"fold_{k}" / "valid.jsonl")
        assert {r["speaker"] for r in test} == {spk} and len(test) == 6
        assert spk not in {r["speaker"] for r in train + valid} and len(train) + len(valid) == 18
    reasons = (tmp_path / "out" / "rejects.jsonl").read_text()
    assert "bored" in reasons and "unreadable audio" in reasons


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
    rows = prepare_emo_emilia(shared_data / "emo_emilia" / "Emo-Emilia-ALL.jsonl", tmp_path / "no-audio", tmp_path / "o")
    rej = [json.loads(x) for x in (tmp_path / "o" / "rejects.jsonl").read_text().splitlines()]
    assert rows == [] and len(rej) == 1400 and {x["reason"] for x in rej} == {"audio file missing"}
