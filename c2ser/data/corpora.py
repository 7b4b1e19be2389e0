"""Preparation of the public SER corpora into manifests: Emo-Emilia, MELD (from the raw mp4), CASIA.

Every function writes manifests (``c2ser.data.manifest`` format), a ``rejects.jsonl`` with one reason per
skipped item, prints a summary (kept / rejected / per label), and skips work already done when re-run.
Bad input raises a one-line ``ValueError`` / ``FileNotFoundError`` naming the file (the ``data_prep`` scripts print
it and exit 1): a missing or non-UTF-8 list, a missing root, and an empty result (nothing kept: usually a wrong
``--root``; the rejects file is still written). Audio with NaN/Inf samples is rejected. Every output (wav,
manifest, rejects, list) is written under a temporary name and renamed (``c2ser.atomic``): complete or absent,
so a killed run is simply run again; a full disk or read-only output stops with one line naming the path.
Keys and splits follow EmoBox where it has them (``meld-dia{D}_utt{U}-{split}``, ``casia-{id}-{speaker}-{emo}``).
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from c2ser.atomic import atomic_write_bytes, atomic_write_text, remove_leftovers
from c2ser.data.manifest import Rejects, make_row, summary, write_manifest
from c2ser.labels import canonical

LONG_CLIP_S = 30.0


def _duration(path: Path) -> float:
    info = sf.info(str(path))
    if info.frames == 0:
        raise ValueError("zero-length audio")
    return round(info.frames / info.samplerate, 4)


def _checked_audio(path: Path) -> tuple[float, int]:
    """(duration s, sample rate) of a readable audio file with only finite samples; ``ValueError`` otherwise."""
    dur = _duration(path)
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if not np.all(np.isfinite(data)):
        raise ValueError("contains NaN or infinite samples")
    return dur, sr


def _read_text(path: str | Path, what: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x})") from None


def _need_dir(root: Path, flag: str) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: {flag} is not a directory")


def _nothing_kept(rejects: Rejects, root: Path, source: str) -> ValueError:
    """The error for an empty result (the rejects file is written first)."""
    rejects.write()
    if not rejects.items:
        return ValueError(f"{source}: no clip found under --root {root}")
    first = rejects.items[0]["reason"]
    return ValueError(f"{source}: no clip kept under --root {root} ({len(rejects.items)} rejected, first: {first}; "
                      f"see {rejects.path})")


# ---- Emo-Emilia -------------------------------------------------------------------------------------------
def prepare_emo_emilia(jsonl: str | Path, root: str | Path, out_dir: str | Path) -> list[dict]:
    """``Emo-Emilia-ALL.jsonl`` + the folder holding the wavs → ``test.jsonl`` (the whole set is a test set).
    A key seen again keeps its first row; the later ones are rejected ("duplicate key")."""
    root, out = Path(root), Path(out_dir)
    lines = _read_text(jsonl, "Emo-Emilia list").splitlines()
    _need_dir(root, "--root")
    rejects, rows, first_line = Rejects(out / "rejects.jsonl"), [], {}
    for n, line in enumerate(tqdm(lines, desc="emo-emilia", disable=None), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            key, raw = item["index"], item["emotion"]
            if not isinstance(key, str) or not key:
                raise TypeError("index")
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            rejects.add(f"line-{n}", f"{jsonl}:{n}", f"malformed line ({e.__class__.__name__})")
            continue
        if key in first_line:
            rejects.add(key, f"{jsonl}:{n}", f"duplicate key (first kept from line {first_line[key]})")
            continue
        first_line[key] = n
        try:
            emotion = canonical("emo_emilia", raw)
        except (KeyError, AttributeError) as e:
            rejects.add(key, f"{jsonl}:{n}", e.args[0] if isinstance(e, KeyError) else f"bad label {raw!r}")
            continue
        rel = str(item.get("wav", "")).replace("./Emo-Emilia/", "")
        candidates = [root / "wav" / f"{key}.wav", root / f"{key}.wav", root / rel]
        wav = next((c for c in candidates if c.is_file()), None)
        if wav is None:
            rejects.add(key, candidates[0], "audio file missing")
            continue
        try:
            dur, sr = _checked_audio(wav)
        except (RuntimeError, ValueError) as e:
            rejects.add(key, wav, f"unreadable audio ({e})")
            continue
        rows.append(make_row(key=key, audio=str(wav), duration=dur, sample_rate=sr,
                             emotion=emotion, raw_emotion=raw, text=str(item.get("text", "")).strip(),
                             language="zh" if key.startswith("ZH") else "en", corpus="emo_emilia", split="test",
                             speaker=key.split("_")[1] if key.count("_") >= 2 else None))
    if not rows:
        raise _nothing_kept(rejects, root, str(jsonl))
    write_manifest(rows, out / "test.jsonl")
    rejects.write()
    dups = sum(x["reason"].startswith("duplicate key") for x in rejects.items)
    print(summary(rows, rejects, f"Emo-Emilia → {out}/test.jsonl") + f"; {dups} duplicate keys rejected")
    return rows


# ---- MELD ---------------------------------------------------------------------------------------------------
MELD_SPLITS = {"train": ("train_sent_emo.csv", "train_splits"),
               "valid": ("dev_sent_emo.csv", "dev_splits_complete"),
               "test": ("test_sent_emo.csv", "output_repeated_splits_test")}
EMOBOX_SPLIT = {"train": "train", "valid": "dev", "test": "test"}


def read_meld_csv(path: Path) -> tuple[list[dict], list[tuple[int, str]]]:
    """Rows of a MELD CSV (utf-8, cp1252 fallback) and the malformed lines (line number, reason)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    rows, bad = [], []
    reader = csv.DictReader(io.StringIO(text))
    need = {"Utterance", "Emotion", "Dialogue_ID", "Utterance_ID", "Speaker"}
    if not need <= set(reader.fieldnames or []):
        raise ValueError(f"{path}: not a MELD CSV (columns {reader.fieldnames})")
    for r in reader:
        try:
            r["Dialogue_ID"], r["Utterance_ID"] = int(r["Dialogue_ID"]), int(r["Utterance_ID"])
            rows.append(r)
        except (TypeError, ValueError):
            bad.append((reader.line_num, "malformed row (dialogue/utterance id)"))
    return rows, bad


def audio_channels(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=channels",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        raise ValueError(f"no audio stream ({out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'ffprobe failed'})")
    return int(out.stdout.strip().split(",")[0])


def extract_meld_wav(mp4: Path, wav: Path) -> int:
    """16 kHz mono wav of the dialogue: the centre channel of 5.1 audio, the first channel of stereo
    (EmoBox's ``channel`` 3 / 1). Returns the 1-indexed channel taken."""
    channels = audio_channels(mp4)
    channel = 3 if channels >= 6 else 1
    # raw samples through a pipe, the wav written here: ffmpeg exits 0 with a silently cut file on a full disk
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(mp4), "-vn", "-af",
                           f"pan=mono|c0=c{channel - 1}", "-ar", "16000", "-f", "s16le", "-c:a", "pcm_s16le",
                           "pipe:1"], capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise ValueError(f"ffmpeg failed ({err.splitlines()[-1] if err else '?'})")
    buf = io.BytesIO()
    sf.write(buf, np.frombuffer(proc.stdout, dtype="<i2"), 16000, subtype="PCM_16", format="WAV")
    atomic_write_bytes(wav, buf.getvalue())  # complete or absent: a killed or failed write leaves no wav
    return channel


def _find(root: Path, name: str) -> Path | None:
    direct = [root / name, root / "train" / name]
    return next((p for p in direct if p.exists()), None) or next(iter(sorted(root.rglob(name))), None)


def prepare_meld(root: str | Path, out_dir: str | Path, workers: int = 4) -> dict[str, list[dict]]:
    """MELD.Raw (CSVs + mp4 folders) → ``{train,valid,test}.jsonl`` with 16 kHz mono wavs under ``wav/``."""
    if shutil.which("ffmpeg") is None:
        raise FileNotFoundError("ffmpeg is not installed (apt-get install ffmpeg)")
    root, out = Path(root), Path(out_dir)
    rejects, result, long_clips = Rejects(out / "rejects.jsonl"), {}, []
    for split, (csv_name, folder) in MELD_SPLITS.items():
        csv_path, clip_dir = _find(root, csv_name), _find(root, folder)
        if csv_path is None:
            rejects.add(f"meld-{split}", root / csv_name, "CSV not found")
            result[split] = []
            continue
        rows, bad = read_meld_csv(csv_path)
        for line, reason in bad:
            rejects.add(f"{csv_name}:{line}", csv_path, reason)
        (out / "wav" / split).mkdir(parents=True, exist_ok=True)
        remove_leftovers(out / "wav" / split, "*.wav")  # conversions a killed run left half done

        def work(r):
            name = f"dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}"
            key = f"meld-{name}-{EMOBOX_SPLIT[split]}"
            try:
                emotion = canonical("meld", r["Emotion"])
            except KeyError as e:
                return key, None, e.args[0]
            mp4 = (clip_dir or root) / f"{name}.mp4"
            wav = out / "wav" / split / f"{name}.wav"
            try:
                channel = 1
                if not wav.is_file():
                    if not mp4.is_file():
                        return key, None, f"clip missing: {mp4}"
                    channel = extract_meld_wav(mp4, wav)
                dur = _duration(wav)
            except (ValueError, RuntimeError) as e:
                return key, None, str(e)
            return key, make_row(key=key, audio=str(wav), duration=dur, sample_rate=16000, channel=None,
                                 emotion=emotion, raw_emotion=r["Emotion"].strip().lower(), text=r["Utterance"],
                                 language="en", corpus="meld", split=split, speaker=r["Speaker"]), channel

        kept = []
        with ThreadPoolExecutor(workers) as pool:
            for key, row, info in tqdm(pool.map(work, rows), total=len(rows), desc=f"meld {split}"):
                if row is None:
                    rejects.add(key, clip_dir or root, info)
                    continue
                kept.append(row)
                if row["duration"] > LONG_CLIP_S:
                    long_clips.append(f"{key}\t{row['duration']:.1f}")
        result[split] = kept
        write_manifest(kept, out / f"{split}.jsonl")
    rejects.write()
    atomic_write_text(out / "long_clips.tsv", "".join(x + "\n" for x in long_clips))
    print(summary([r for rs in result.values() for r in rs], rejects, f"MELD → {out}")
          + f"; {len(long_clips)} clips over {LONG_CLIP_S:g} s listed in {out / 'long_clips.tsv'} "
            "(the Whisper encoder errors or crops them: model.whisper.long_audio)")
    return result


# ---- CASIA --------------------------------------------------------------------------------------------------
CASIA_FOLDS = ["wangzhe", "zhaozuoxiang", "liuchanhg", "zhaoquanyin"]   # EmoBox order: fold_k tests speaker k


def casia_valid(key: str, fraction: float) -> bool:
    """Deterministic validation subset (a ``fraction`` of the keys, by a CRC-32 of the key)."""
    return zlib.crc32(key.encode()) % 10000 < round(fraction * 10000)


def prepare_casia(root: str | Path, out_dir: str | Path, valid_fraction: float | None = None) -> list[dict]:
    """``speaker/emotion/id.wav`` → ``all.jsonl`` (zero-shot test) and ``fold_{1..4}/{train,test}.jsonl``:
    leave one speaker out in EmoBox's order, train = all clips of the other three speakers (900 of the 1,200),
    exactly EmoBox's fold lists. EmoBox has no valid split; ``valid_fraction`` F (0 < F < 1) additionally writes
    ``fold_k/valid.jsonl`` = a fixed F of those clips (CRC-32 of the key) and removes them from ``train.jsonl``,
    so such folds are NOT comparable with EmoBox. Without it a stale ``valid.jsonl`` is deleted."""
    if valid_fraction is not None and not 0 < valid_fraction < 1:
        raise ValueError(f"--valid-fraction must be between 0 and 1 (exclusive), got {valid_fraction}")
    root, out = Path(root), Path(out_dir)
    _need_dir(root, "--root")
    rejects, rows = Rejects(out / "rejects.jsonl"), []
    for wav in tqdm(sorted(root.glob("*/*/*.wav")), desc="casia", disable=None):
        speaker, emo, cid = wav.parent.parent.name, wav.parent.name, wav.stem
        key = f"casia-{cid}-{speaker}-{emo}"
        try:
            emotion = canonical("casia", emo)
            dur, _ = _checked_audio(wav)
        except KeyError as e:
            rejects.add(key, wav, e.args[0])
            continue
        except (RuntimeError, ValueError) as e:
            rejects.add(key, wav, f"unreadable audio ({e})")
            continue
        rows.append(make_row(key=key, audio=str(wav), duration=dur, sample_rate=16000, channel=1, emotion=emotion,
                             raw_emotion=emo, text="", language="zh", corpus="casia", split="test", speaker=speaker))
    if not rows:
        raise _nothing_kept(rejects, root, "CASIA")
    write_manifest(rows, out / "all.jsonl")
    folds = []
    for k, test_spk in enumerate(CASIA_FOLDS, 1):
        fold = out / f"fold_{k}"
        test = [dict(r, split=f"fold_{k}") for r in rows if r["speaker"] == test_spk]
        rest = [r for r in rows if r["speaker"] != test_spk]
        if not test:
            print(f"{root}: warning: no clips of {test_spk} (fold_{k} test speaker)", file=sys.stderr)
        write_manifest(test, fold / "test.jsonl")
        if valid_fraction is None:
            (fold / "valid.jsonl").unlink(missing_ok=True)
            train, valid = rest, []
        else:
            train = [r for r in rest if not casia_valid(r["key"], valid_fraction)]
            valid = [dict(r, split="valid") for r in rest if casia_valid(r["key"], valid_fraction)]
            write_manifest(valid, fold / "valid.jsonl")
        write_manifest([dict(r, split="train") for r in train], fold / "train.jsonl")
        folds.append(f"fold_{k} {len(train)}/{len(test)}" + (f"/{len(valid)}" if valid_fraction else ""))
    rejects.write()
    note = (f"; valid = {valid_fraction:g} of train (folds NOT comparable with EmoBox)" if valid_fraction
            else "; train = EmoBox fold lists, no valid split")
    print(summary(rows, rejects, f"CASIA → {out}/all.jsonl + 4 folds")
          + f"; train/test{'/valid' if valid_fraction else ''}: {', '.join(folds)}{note}")
    return rows
