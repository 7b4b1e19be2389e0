"""Fake raw corpora (MELD.Raw, CASIA, Emo-Emilia) prepared by the REAL data_prep scripts, run as the recipe's
stage 0 runs them: counts per split and emotion, MELD's centre channel, the long clip, folds, determinism."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from c2ser.audio import load_audio
from c2ser.data.corpora import CASIA_FOLDS
from c2ser.data.fake_corpora import build_fake_corpora, plan, speech
from c2ser.data.manifest import read_manifest, validate_manifest

REPO = Path(__file__).resolve().parents[1]
SEVEN = {"neutral", "happy", "sad", "angry", "surprise", "fear", "disgust"}
MELD_HEADER = ("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
               "StartTime,EndTime\r\n")


def _run(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """per_class 2: MELD train 2 / dev 1 / test 1 per emotion, CASIA 1 per speaker × emotion, Emo-Emilia 1 per
    language × emotion; then the three prep scripts exactly as recipes/c2ser/run.sh stage 0 calls them."""
    raw, data = tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("data")
    _run("data_prep/fake_corpora.py", "--out", str(raw), "--per-class", "2", "--seed", "3")
    ee = raw / "Emo-Emilia"
    _run("data_prep/emo_emilia.py", "--jsonl", str(ee / "Emo-Emilia-ALL.jsonl"), "--root", str(ee),
         "--out", str(data / "emo_emilia"))
    _run("data_prep/meld.py", "--root", str(raw / "MELD.Raw"), "--out", str(data / "meld"))
    _run("data_prep/casia.py", "--root", str(raw / "CASIA"), "--out", str(data / "casia"))
    return raw, data


def _probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,channels,"
                          "channel_layout,sample_rate", "-of", "json", str(path)], capture_output=True, text=True)
    return {s["codec_type"]: s for s in json.loads(out.stdout)["streams"]}


def _best_corr(a, b, max_lag=800):
    """Largest normalised correlation of a and b over lags up to ±max_lag samples (codec delay)."""
    n = min(len(a), len(b)) - 2 * max_lag
    ref = a[max_lag:max_lag + n]
    best = 0.0
    for lag in range(0, 2 * max_lag + 1, 1):
        seg = b[lag:lag + n]
        best = max(best, float(np.dot(ref, seg) / (np.linalg.norm(ref) * np.linalg.norm(seg) + 1e-12)))
    return best


def test_meld_raw_tree_and_csvs(built):
    raw, _ = built
    root = raw / "MELD.Raw"
    csvs = {"train": root / "train" / "train_sent_emo.csv", "dev": root / "dev_sent_emo.csv",
            "test": root / "test_sent_emo.csv"}
    folders = {"train": root / "train" / "train_splits", "dev": root / "dev_splits_complete",
               "test": root / "output_repeated_splits_test"}
    for split, path in csvs.items():
        text = path.read_bytes().decode("utf-8")
        assert text.startswith(MELD_HEADER) and text.count("\r\n") == text.count("\n")
        rows = list(csv.DictReader(text.splitlines()))
        assert len(rows) == {"train": 14, "dev": 8, "test": 7}[split]
        assert [int(r["Sr No."]) for r in rows] == list(range(1, len(rows) + 1))
        clips = {p.name for p in folders[split].glob("*.mp4")}
        listed = {f"dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}.mp4" for r in rows}
        assert clips == (listed - {"dia1_utt2.mp4"} if split == "dev" else listed)   # dev: one row has no clip
        for r in rows:
            assert re.fullmatch(r"\d\d:\d\d:\d\d,\d\d\d", r["StartTime"]) and r["Emotion"] in {
                "neutral", "joy", "sadness", "surprise", "disgust", "anger", "fear"}
    train = list(csv.DictReader(csvs["train"].read_text().splitlines()))
    long_row = train[1]
    assert (long_row["Dialogue_ID"], long_row["Utterance_ID"], long_row["Emotion"]) == ("0", "1", "joy")
    h, m, s = long_row["StartTime"].replace(",", ".").split(":")
    h2, m2, s2 = long_row["EndTime"].replace(",", ".").split(":")
    assert abs((int(h2) * 3600 + int(m2) * 60 + float(s2)) - (int(h) * 3600 + int(m) * 60 + float(s)) - 41.04) < 0.002
    five, stereo = _probe(folders["train"] / "dia0_utt0.mp4"), _probe(folders["train"] / "dia1_utt2.mp4")
    assert five["video"]["codec_name"] == "h264"
    assert (five["audio"]["codec_name"], five["audio"]["channels"], five["audio"]["channel_layout"],
            five["audio"]["sample_rate"]) == ("aac", 6, "5.1", "48000")
    assert (stereo["audio"]["channels"], stereo["audio"]["channel_layout"]) == (2, "stereo")


def test_meld_prep_counts_long_clip_and_missing_row(built):
    _, data = built
    out = data / "meld"
    per_split = {s: read_manifest(out / f"{s}.jsonl") for s in ("train", "valid", "test")}
    for split, n in {"train": 2, "valid": 1, "test": 1}.items():
        rows = per_split[split]
        assert validate_manifest(rows) == []
        assert {e: sum(r["emotion"] == e for r in rows) for e in SEVEN} == {e: n for e in SEVEN}
        assert all(r["key"].endswith({"train": "-train", "valid": "-dev", "test": "-test"}[split]) for r in rows)
        assert all(r["sample_rate"] == 16000 and sf.info(r["audio"]).channels == 1 for r in rows)
    long = [r for r in per_split["train"] if r["duration"] > 30]
    assert [r["key"] for r in long] == ["meld-dia0_utt1-train"] and abs(long[0]["duration"] - 41.04) < 0.05
    assert (out / "long_clips.tsv").read_text().startswith("meld-dia0_utt1-train\t41.0")
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert [(r["key"], r["reason"].split(":")[0]) for r in rejects] == [("meld-dia1_utt2-dev", "clip missing")]


@pytest.mark.parametrize("name", ["dia0_utt0", "dia1_utt2"])   # 5.1 (speech in the centre only), stereo
def test_meld_prep_takes_the_dialogue_channel(built, tmp_path, name):
    raw, data = built
    clip = next(c for c in plan(raw, per_class=2, seed=3, corpora=("meld",))["clips"]
                if c["path"] == raw / "MELD.Raw" / "train" / "train_splits" / f"{name}.mp4")
    original = speech(clip, tmp_path)
    prepared = load_audio(data / "meld" / "wav" / "train" / f"{name}.wav")
    # the mp4's AAC track pads to whole 1024-sample frames (21 ms at 48 kHz) and adds encoder priming
    assert abs(len(prepared) - len(original)) < 0.05 * 16000
    assert _best_corr(original, prepared) > 0.9
    # the front-left channel is noise only in 5.1 (what a wrong channel or a down-mix would bring in)
    left = load_audio(raw / "MELD.Raw" / "train" / "train_splits" / f"{name}.mp4", channel=1)
    if clip["format"] == "5.1":
        assert np.sqrt(np.mean(left ** 2)) < 0.01 < np.sqrt(np.mean(prepared ** 2))
        assert _best_corr(original, left) < 0.2
    else:
        assert _best_corr(original, left) > 0.9


def test_casia_tree_and_folds(built):
    raw, data = built
    root = raw / "CASIA"
    assert sorted(p.name for p in root.iterdir()) == ["liuchanhg", "wangzhe", "zhaoquanyin", "zhaozuoxiang"]
    for spk in root.iterdir():
        assert sorted(p.name for p in spk.iterdir()) == ["angry", "fear", "happy", "neutral", "sad", "surprise"]
        assert sorted(p.name for p in spk.glob("*/*")) == ["201.wav"] * 6
    info = sf.info(str(root / "wangzhe" / "fear" / "201.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    rows = read_manifest(data / "casia" / "all.jsonl")
    assert len(rows) == 24 and {r["emotion"] for r in rows} == SEVEN - {"disgust"}
    assert "casia-201-liuchanhg-surprise" in {r["key"] for r in rows}
    for k, spk in enumerate(CASIA_FOLDS, 1):
        fold = {s: read_manifest(data / "casia" / f"fold_{k}" / f"{s}.jsonl") for s in ("train", "test")}
        assert {r["speaker"] for r in fold["test"]} == {spk} and len(fold["test"]) == 6
        # EmoBox folds: train = every clip of the other three speakers (no validation carved out)
        assert len(fold["train"]) == 18 and spk not in {r["speaker"] for r in fold["train"]}
        assert not (data / "casia" / f"fold_{k}" / "valid.jsonl").exists()


def test_emo_emilia_list_and_manifest(built):
    raw, data = built
    lines = (raw / "Emo-Emilia" / "Emo-Emilia-ALL.jsonl").read_text(encoding="utf-8").splitlines()
    items = [json.loads(x) for x in lines]
    assert len(items) == 14 and all(list(i) == ["index", "emotion", "wav", "text"] for i in items)
    for i in items:
        assert re.fullmatch(r"(ZH|EN)_B\d{5}_S\d{5}_W\d{6}", i["index"])
        assert i["wav"] == f"./Emo-Emilia/wav/{i['index']}.wav"
        assert i["text"].startswith(" ") == i["index"].startswith("EN")
    assert sf.info(str(raw / "Emo-Emilia" / "wav" / f"{items[0]['index']}.wav")).samplerate == 24000
    rows = read_manifest(data / "emo_emilia" / "test.jsonl")
    assert not (data / "emo_emilia" / "rejects.jsonl").read_text().strip()
    assert [r["key"] for r in rows] == [i["index"] for i in items]
    for lang in ("en", "zh"):
        assert sorted(r["emotion"] for r in rows if r["language"] == lang) == sorted(SEVEN)
    assert all(r["language"] == ("zh" if r["key"].startswith("ZH") else "en") and r["text"] == r["text"].strip()
               and r["sample_rate"] == 24000 for r in rows)


def test_same_seed_same_bytes(built, tmp_path):
    raw, _ = built
    # MELD: rebuild two deleted clips and all CSVs into a copy; CASIA and Emo-Emilia from scratch (own rng streams)
    copy = tmp_path / "MELD.Raw"
    shutil.copytree(raw / "MELD.Raw", copy)
    gone = [copy / "train" / "train_splits" / "dia0_utt0.mp4", copy / "train" / "train_splits" / "dia1_utt2.mp4",
            copy / "train" / "train_sent_emo.csv", copy / "dev_sent_emo.csv", copy / "test_sent_emo.csv"]
    for p in gone:
        p.unlink()
    build_fake_corpora(tmp_path, per_class=2, seed=3, workers=2)
    for p in gone:
        assert p.read_bytes() == (raw / p.relative_to(tmp_path)).read_bytes(), p
    for sub in ("CASIA", "Emo-Emilia"):
        files = sorted(p.relative_to(raw) for p in (raw / sub).rglob("*") if p.is_file())
        assert files and files == sorted(p.relative_to(tmp_path) for p in (tmp_path / sub).rglob("*") if p.is_file())
        assert all((raw / f).read_bytes() == (tmp_path / f).read_bytes() for f in files)
    other = build_fake_corpora(tmp_path / "other", per_class=2, seed=4, workers=2, corpora=("emo_emilia",))
    assert (other["emo_emilia"] / "Emo-Emilia-ALL.jsonl").read_bytes() != \
           (raw / "Emo-Emilia" / "Emo-Emilia-ALL.jsonl").read_bytes()


def test_cli_bad_size_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "data_prep/fake_corpora.py", "--out", str(tmp_path), "--per-class", "0"],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "fake_corpora: error: per_class must be at least 1 (got 0)"


def test_same_header_and_list_order_as_the_real_files(built, shared_data):
    raw, _ = built
    for name in ("train", "dev", "test"):
        real = (shared_data / "meld" / f"{name}_sent_emo.csv").read_bytes().split(b"\n")[0]
        fake = next((raw / "MELD.Raw").rglob(f"{name}_sent_emo.csv")).read_bytes().split(b"\n")[0]
        assert fake == real
    fake, real = raw / "Emo-Emilia" / "Emo-Emilia-ALL.jsonl", shared_data / "emo_emilia" / "Emo-Emilia-ALL.jsonl"
    assert _groups(fake) == _groups(real)


def _groups(path):
    """The (language, emotion) groups of an Emo-Emilia list in file order, and the field names of its lines."""
    groups, fields = [], set()
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        fields.add(tuple(item))
        if not groups or groups[-1] != (item["index"][:2], item["emotion"]):
            groups.append((item["index"][:2], item["emotion"]))
    return groups, fields
