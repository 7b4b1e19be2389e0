"""Data-preparation scripts run as a user runs them (``python data_prep/X.py ...``) on small fake inputs with bad
items: documented exit code, one clear stderr line naming the file (and line) and the problem, no traceback,
good rows kept, and kept + rejected = input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def run_script(name, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(REPO / "data_prep" / name), *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def one_error_line(r, *needles):
    """Exit 1 and exactly one stderr line that contains every needle; no traceback."""
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


def tone(freq, sec=1.0, amp=0.5):
    t = np.arange(int(sec * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def lines(path):
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]


# ---- cot_labels.py ------------------------------------------------------------------------------------------
def clip_row(tmp, key, freq, speaker="a", emotion="happy", sec=1.0, data=None):
    wav = tmp / f"{key}.wav"
    sf.write(wav, tone(freq, sec) if data is None else data, SR)
    return {"key": key, "audio": str(wav), "duration": sec, "emotion": emotion, "corpus": "synthetic",
            "split": "train", "speaker": speaker, "language": "en", "text": "hello there my friend"}


@pytest.fixture(scope="module")
def cot_train(tmp_path_factory):
    """Four good clips (150, 200, 250, 300 Hz; speakers a, a, b, b) and four bad rows; cot_labels.py run once."""
    tmp = tmp_path_factory.mktemp("cot")
    rows = [clip_row(tmp, "good-150", 150, "a"), clip_row(tmp, "good-200", 200, "a"),
            clip_row(tmp, "short-10ms", 1000, "a", sec=0.01),            # 10 ms: too short to measure
            clip_row(tmp, "good-250", 250, "b"),
            clip_row(tmp, "silent", 0, "b", data=np.zeros(SR, np.float32)),  # no voiced frame: pitch NaN
            clip_row(tmp, "bored-1", 220, "b", emotion="bored"),           # line 6: unknown label
            dict(clip_row(tmp, "gone", 220, "b"), audio=str(tmp / "absent.wav")),
            clip_row(tmp, "good-300", 300, "b")]
    manifest = jsonl(tmp / "train.jsonl", rows)
    r = run_script("cot_labels.py", "--manifest", manifest, "--out", tmp / "train.cot.jsonl")
    return tmp, manifest, r


def test_cot_labels_rejects_bad_rows_and_keeps_them_out_of_the_statistics(cot_train):
    tmp, manifest, r = cot_train
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    # the unknown label is named once on stderr, with file and line; nothing else is printed there
    assert r.stderr.strip().splitlines() == [
        f"{manifest}:6: unknown emotion label 'bored' (expected one of neutral, happy, sad, angry, surprise, fear, "
        "disgust)"]
    kept = lines(tmp / "train.cot.jsonl")
    rejects = {x["key"]: x["reason"] for x in lines(tmp / "train.cot.rejects.jsonl")}
    assert [k["key"] for k in kept] == ["good-150", "good-200", "good-250", "good-300"]
    assert set(rejects) == {"short-10ms", "silent", "bored-1", "gone"} and len(kept) + len(rejects) == 8
    assert "too short" in rejects["short-10ms"]  # the audio reader's 25-ms floor, or the 0.3-s measuring one
    assert rejects["silent"].startswith("measurement failed (pitch_hz=nan")
    assert "file not found" in rejects["gone"] and "kept 4, rejected 4" in r.stdout
    pitch = [k["style"]["pitch_hz"] for k in kept]
    assert np.allclose(pitch, [150, 200, 250, 300], rtol=0.02)
    # μ ± σ over the four good clips only (225 ± 55.9 Hz): 300 Hz is high; with the 10 ms clip's bogus
    # pitch in the statistics it would be medium
    assert [k["style"]["pitch_bin"] for k in kept] == ["low", "medium", "medium", "high"]
    assert all(k["explicit_target"] and k["implicit_target"] for k in kept)


def test_cot_labels_stats_from_another_manifest_per_group_with_global_fallback(cot_train, tmp_path):
    tmp, _, _ = cot_train
    test = jsonl(tmp_path / "test.jsonl", [clip_row(tmp_path, "t-b-240", 240, "b"),
                                           clip_row(tmp_path, "t-c-240", 240, "c"),
                                           clip_row(tmp_path, "t-c-260", 260, "c")])
    own = run_script("cot_labels.py", "--manifest", test, "--out", tmp_path / "own.jsonl")
    assert own.returncode == 0, own.stderr
    # the test set's own μ ± σ (246.7 ± 9.4 Hz): 260 Hz is high
    assert [k["style"]["pitch_bin"] for k in lines(tmp_path / "own.jsonl")] == ["medium", "medium", "high"]
    r = run_script("cot_labels.py", "--manifest", test, "--out", tmp_path / "out.jsonl", "--group-by", "speaker",
                   "--stats-from", tmp / "train.cot.jsonl")
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    # speaker b in train: 250/300 Hz → 240 is low; speaker c is absent → train's global 225 ± 55.9 Hz
    assert [k["style"]["pitch_bin"] for k in lines(tmp_path / "out.jsonl")] == ["low", "medium", "medium"]
    assert "kept 3, rejected 0" in r.stdout and "2 clips of speaker values absent" in r.stdout
    g = run_script("cot_labels.py", "--manifest", test, "--out", tmp_path / "g.jsonl",
                   "--stats-from", tmp / "train.cot.jsonl")  # train's global 225 ± 55.9 Hz for every clip
    assert g.returncode == 0 and "bins from" in g.stdout
    assert [k["style"]["pitch_bin"] for k in lines(tmp_path / "g.jsonl")] == ["medium", "medium", "medium"]


def test_cot_labels_bad_files_give_one_line(cot_train, tmp_path):
    tmp, manifest, _ = cot_train
    one_error_line(run_script("cot_labels.py", "--manifest", tmp_path / "nope.jsonl", "--out", tmp_path / "o.jsonl"),
                   tmp_path / "nope.jsonl", "not found")
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(b'{"key": "a", "audio": "a.wav", "emotion": "happy"}\n{"key": "b", "text": "caf\xe9"}\n')
    one_error_line(run_script("cot_labels.py", "--manifest", latin, "--out", tmp_path / "o.jsonl"),
                   f"{latin}:2: not UTF-8 text")
    # --stats-from a manifest that was never measured
    one_error_line(run_script("cot_labels.py", "--manifest", manifest, "--out", tmp_path / "o.jsonl",
                              "--stats-from", manifest), manifest, "no measured style")
    assert not (tmp_path / "o.jsonl").exists()


def test_cot_labels_empty_result_is_an_error(tmp_path):
    rows = [clip_row(tmp_path, "short", 200, sec=0.05), clip_row(tmp_path, "odd", 200, emotion="joy")]
    manifest = jsonl(tmp_path / "m.jsonl", rows)
    r = run_script("cot_labels.py", "--manifest", manifest, "--out", tmp_path / "o.jsonl")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()
    assert err[0] == f"{manifest}:2: unknown emotion label 'joy' (expected one of neutral, happy, sad, angry, " \
                     "surprise, fear, disgust)"
    assert len(err) == 2 and err[1].startswith(f"cot_labels.py: error: {manifest}: no clip kept (2 rejected")
    assert len(lines(tmp_path / "o.rejects.jsonl")) == 2 and not (tmp_path / "o.jsonl").exists()


# ---- emo_emilia.py ------------------------------------------------------------------------------------------
def emilia_item(key, emotion="happy", text=" Hi."):
    return {"index": key, "emotion": emotion, "wav": f"./Emo-Emilia/wav/{key}.wav", "text": text}


def test_emo_emilia_rejects_nan_inf_and_duplicates(tmp_path):
    (tmp_path / "wav").mkdir()
    keys = [f"EN_B0000{i}_S00001_W000000" for i in range(1, 5)]
    sf.write(tmp_path / "wav" / f"{keys[0]}.wav", tone(200, 0.5), SR)
    sf.write(tmp_path / "wav" / f"{keys[1]}.wav", tone(300, 0.5), SR)
    bad = tone(200, 0.5)
    bad[100] = np.nan
    sf.write(tmp_path / "wav" / f"{keys[2]}.wav", bad, SR, subtype="FLOAT")
    bad[100] = np.inf
    sf.write(tmp_path / "wav" / f"{keys[3]}.wav", bad, SR, subtype="FLOAT")
    lst = jsonl(tmp_path / "list.jsonl", [emilia_item(keys[0], "happy"), emilia_item(keys[1], "sad"),
                                          emilia_item(keys[2]), emilia_item(keys[3]),
                                          emilia_item(keys[0], "angry"), emilia_item(keys[1], "sad")])
    r = run_script("emo_emilia.py", "--jsonl", lst, "--root", tmp_path, "--out", tmp_path / "out")
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    kept = lines(tmp_path / "out" / "test.jsonl")
    rej = lines(tmp_path / "out" / "rejects.jsonl")
    assert [(k["key"], k["emotion"]) for k in kept] == [(keys[0], "happy"), (keys[1], "sad")]  # first row wins
    assert len(kept) + len(rej) == 6
    reasons = {(x["key"], x["reason"]) for x in rej}
    assert reasons == {(keys[2], "unreadable audio (contains NaN or infinite samples)"),
                       (keys[3], "unreadable audio (contains NaN or infinite samples)"),
                       (keys[0], "duplicate key (first kept from line 1)"),
                       (keys[1], "duplicate key (first kept from line 2)")}
    assert "kept 2, rejected 4" in r.stdout and "2 duplicate keys rejected" in r.stdout


def test_emo_emilia_wrong_root_and_bad_list_give_one_line(tmp_path):
    (tmp_path / "Emo-Emilia" / "wav").mkdir(parents=True)
    lst = jsonl(tmp_path / "list.jsonl", [emilia_item("EN_B00001_S00001_W000000")])
    sf.write(tmp_path / "Emo-Emilia" / "wav" / "EN_B00001_S00001_W000000.wav", tone(200, 0.5), SR)
    typo = tmp_path / "Emo-Emila"  # misspelled but existing folder: nothing found → error naming the root
    typo.mkdir()
    line = one_error_line(run_script("emo_emilia.py", "--jsonl", lst, "--root", typo, "--out", tmp_path / "o"),
                          "emo_emilia.py: error:", f"--root {typo}", "1 rejected", "audio file missing")
    assert not (tmp_path / "o" / "test.jsonl").exists() and len(lines(tmp_path / "o" / "rejects.jsonl")) == 1
    one_error_line(run_script("emo_emilia.py", "--jsonl", lst, "--root", tmp_path / "absent", "--out", tmp_path / "o"),
                   tmp_path / "absent", "not a directory")
    one_error_line(run_script("emo_emilia.py", "--jsonl", tmp_path / "no.jsonl", "--root", tmp_path, "--out",
                              tmp_path / "o"), tmp_path / "no.jsonl", "not found")
    gbk = tmp_path / "gbk.jsonl"
    gbk.write_bytes(json.dumps(emilia_item("ZH_B00001_S00001_W000000")).encode() + b"\n" +
                    '{"index": "ZH_B00002_S00001_W000000", "text": "你好"}\n'.encode("gbk"))
    one_error_line(run_script("emo_emilia.py", "--jsonl", gbk, "--root", tmp_path / "Emo-Emilia", "--out",
                              tmp_path / "o"), f"{gbk}:2: not UTF-8 text")
    assert line.count("\n") == 0


# ---- casia.py -----------------------------------------------------------------------------------------------
def test_casia_script_rejects_nan_and_empty_root_is_an_error(tmp_path):
    root = tmp_path / "CASIA"
    for spk in ("wangzhe", "liuchanhg"):
        (root / spk / "angry").mkdir(parents=True)
        sf.write(root / spk / "angry" / "201.wav", tone(200, 0.3), SR)
    bad = tone(200, 0.3)
    bad[5] = np.nan
    sf.write(root / "wangzhe" / "angry" / "202.wav", bad, SR, subtype="FLOAT")
    r = run_script("casia.py", "--root", root, "--out", tmp_path / "out")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    kept, rej = lines(tmp_path / "out" / "all.jsonl"), lines(tmp_path / "out" / "rejects.jsonl")
    assert [k["key"] for k in kept] == ["casia-201-liuchanhg-angry", "casia-201-wangzhe-angry"]
    assert rej == [{"key": "casia-202-wangzhe-angry", "source": str(root / "wangzhe" / "angry" / "202.wav"),
                    "reason": "unreadable audio (contains NaN or infinite samples)"}]
    assert "kept 2, rejected 1" in r.stdout and "no valid split" in r.stdout
    # the speakers with no clips are named, one warning line each (folds 2 and 4)
    assert sorted(r.stderr.strip().splitlines()) == [f"{root}: warning: no clips of zhaoquanyin (fold_4 test speaker)",
                                                     f"{root}: warning: no clips of zhaozuoxiang (fold_2 test speaker)"]
    empty = tmp_path / "empty"
    empty.mkdir()
    one_error_line(run_script("casia.py", "--root", empty, "--out", tmp_path / "o"),
                   f"no clip found under --root {empty}")
    one_error_line(run_script("casia.py", "--root", tmp_path / "CASA", "--out", tmp_path / "o"),
                   tmp_path / "CASA", "not a directory")
    one_error_line(run_script("casia.py", "--root", root, "--out", tmp_path / "o", "--valid-fraction", "2"),
                   "--valid-fraction must be between 0 and 1")
