"""Small fake corpora in the REAL raw layouts (MELD.Raw, CASIA, Emo-Emilia), spoken by the synthetic emotional
voices of ``c2ser.data.synthetic`` (espeak-ng + sox, one prosody per emotion), so the real ``data_prep`` scripts
run on them unchanged (the tiny recipe, CI, tests). Layouts follow docs of the real releases (datasets spec):

    MELD.Raw/train/train_sent_emo.csv   MELD.Raw/train/train_splits/dia{D}_utt{U}.mp4
    MELD.Raw/dev_sent_emo.csv           MELD.Raw/dev_splits_complete/dia{D}_utt{U}.mp4
    MELD.Raw/test_sent_emo.csv          MELD.Raw/output_repeated_splits_test/dia{D}_utt{U}.mp4
    CASIA/{speaker}/{emotion}/{id}.wav                      (16 kHz mono, ids from 201, same text per id)
    Emo-Emilia/Emo-Emilia-ALL.jsonl     Emo-Emilia/wav/{index}.wav   (24 kHz mono)

MELD clips are mp4 (tiny black h264 video + AAC at 48 kHz) like the release: 5.1 audio with the speech ONLY in
the front-centre channel (the other five carry low noise), except every 8th clip of a split, which is stereo
with the speech in both channels (the release has both kinds). The CSVs have the real columns, CRLF lines and
``HH:MM:SS,mmm`` times matching the clip lengths. Like the release, train has one clip over 30 s (the first
train "joy" clip is 41.04 s, as the real ``dia309_utt0``) and one dev CSV row has no mp4.

Sizes from ``per_class`` (N): MELD train N per emotion, dev ceil(N/4), test ceil(N/2); CASIA ceil(N/4) per
speaker and emotion; Emo-Emilia ceil(N/2) per language and emotion. Deterministic under ``seed``: wavs, CSVs and
the jsonl are byte-identical; the mp4 are made bit-exact too (identical with the same ffmpeg build).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import shutil
import subprocess
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from c2ser.audio import resample
from c2ser.data.synthetic import HELD_OUT, SENTENCES, _synthesize
from c2ser.labels import CORPUS_LABELS, EMOTIONS

SPEECH_SR = 16000          # what the synthetic voices produce (CASIA is stored at this rate)
MELD_SR = 48000            # MELD mp4 audio
EMO_EMILIA_SR = 24000      # Emilia's release rate (inferred for Emo-Emilia)
NOISE = 0.003              # amplitude of the noise outside the dialogue channel(s), about -50 dBFS
JITTER = 0.08              # prosody jitter, as the synthetic corpus
LONG_CLIP_S = 41.04        # the real train outlier dia309_utt0 (00:11:45,121 -> 00:12:26,161)
LONG_REPEATS = 12          # the long clip says its sentence this many times (the CSV text says it as often)
UTTERANCES_PER_DIALOGUE = 5
STEREO_EVERY = 8           # every 8th MELD clip of a split is stereo (about the release's share)

MELD_RAW = {canon: raw for raw, canon in CORPUS_LABELS["meld"].items()}

MELD_COLUMNS = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
                "Episode", "StartTime", "EndTime"]
MELD_LAYOUT = {"train": ("train/train_sent_emo.csv", "train/train_splits"),
               "dev": ("dev_sent_emo.csv", "dev_splits_complete"),
               "test": ("test_sent_emo.csv", "output_repeated_splits_test")}
MELD_SENTIMENT = {"neutral": "neutral", "joy": "positive", "surprise": "positive", "sadness": "negative",
                  "anger": "negative", "fear": "negative", "disgust": "negative"}
MELD_CHARACTERS = {"Joey": "en-us+m1", "Ross": "en-us+m2", "Chandler": "en-us+m3", "Rachel": "en-us+f1",
                   "Monica": "en-us+f2", "Phoebe": "en-us+f5"}

CASIA_VOICES = {"liuchanhg": "cmn+f1", "wangzhe": "cmn+m1", "zhaoquanyin": "cmn+f2", "zhaozuoxiang": "cmn+m2"}
CASIA_EMOTIONS = ("angry", "fear", "happy", "neutral", "sad", "surprise")
CASIA_FIRST_ID = 201

# the real list is grouped by (language, emotion) in this order; its speakers (B ids) are held-out voices here
EMO_EMILIA_ORDER = [("ZH", "angry"), ("EN", "neutral"), ("ZH", "disgusted"), ("EN", "disgusted"), ("ZH", "surprised"),
                    ("ZH", "neutral"), ("EN", "fearful"), ("ZH", "happy"), ("ZH", "fearful"), ("EN", "sad"),
                    ("EN", "happy"), ("EN", "angry"), ("ZH", "sad"), ("EN", "surprised")]
EMO_EMILIA_SPEAKERS = {"EN": {"B00012": "en-gb+f3", "B00047": "en-us+m7"},
                       "ZH": {"B00074": "cmn+f4", "B00090": "cmn+m7"}}


def _jit(rng: random.Random) -> list[float]:
    return [rng.uniform(-1, 1) for _ in range(4)]


# ---- plans: one dict per clip (the synthetic job fields + where and how to write it) -----------------------
def plan_meld(root: Path, per_class: int, rng: random.Random) -> tuple[list[dict], dict[str, list[dict]]]:
    """Clips and CSV rows (times filled in after rendering) of the three splits."""
    sizes = {"train": per_class, "dev": math.ceil(per_class / 4), "test": math.ceil(per_class / 2)}
    clips, rows = [], {}
    for split, (_, folder) in MELD_LAYOUT.items():
        pool = SENTENCES["en"][:-HELD_OUT["en"]] if split != "test" else SENTENCES["en"][-HELD_OUT["en"]:]
        emotions = [e for _ in range(sizes[split]) for e in EMOTIONS]
        rows[split] = []
        long_done = split != "train"
        for i, emo in enumerate(emotions + (["neutral"] if split == "dev" else [])):
            dia, utt = divmod(i, UTTERANCES_PER_DIALOGUE)
            speaker = rng.choice(sorted(MELD_CHARACTERS))
            text = rng.choice(pool) + "."
            clip = {"corpus": "meld", "path": root / folder / f"dia{dia}_utt{utt}.mp4", "emotion": emo,
                    "text": text, "voice": MELD_CHARACTERS[speaker], "jit": _jit(rng),
                    "format": "stereo" if i % STEREO_EVERY == STEREO_EVERY - 1 else "5.1", "length_s": None}
            if not long_done and emo == "happy":
                clip["length_s"], long_done = LONG_CLIP_S, True
                text = " ".join([text] * LONG_REPEATS)
            row = {"Utterance": text, "Speaker": speaker, "Emotion": MELD_RAW[emo],
                   "Sentiment": MELD_SENTIMENT[MELD_RAW[emo]], "Dialogue_ID": dia, "Utterance_ID": utt,
                   "clip": clip}
            if i == len(emotions):      # the extra dev row: listed in the CSV, no mp4 (as in the release)
                row["clip"] = None
            else:
                clips.append(clip)
            rows[split].append(row)
    return clips, rows


def plan_casia(root: Path, per_class: int, rng: random.Random) -> list[dict]:
    per_cell = math.ceil(per_class / 4)
    return [{"corpus": "casia", "path": root / spk / emo / f"{CASIA_FIRST_ID + j}.wav",
             "emotion": CORPUS_LABELS["casia"][emo],
             "text": SENTENCES["zh"][j % len(SENTENCES["zh"])], "voice": voice, "jit": _jit(rng),
             "format": "wav", "sr": SPEECH_SR, "length_s": None}
            for spk, voice in CASIA_VOICES.items() for emo in CASIA_EMOTIONS for j in range(per_cell)]


def plan_emo_emilia(root: Path, per_class: int, rng: random.Random) -> list[dict]:
    per_cell = math.ceil(per_class / 2)
    segments = iter(rng.sample(range(1, 10000), per_cell * len(EMO_EMILIA_ORDER)))
    clips = []
    for lang, raw in EMO_EMILIA_ORDER:
        for _ in range(per_cell):
            b = rng.choice(sorted(EMO_EMILIA_SPEAKERS[lang]))
            index = f"{lang}_{b}_S{next(segments):05d}_W{rng.randrange(4):06d}"
            sentence = rng.choice(SENTENCES[lang.lower()])
            clips.append({"corpus": "emo_emilia", "path": root / "wav" / f"{index}.wav", "index": index,
                          "emotion": CORPUS_LABELS["emo_emilia"][raw], "raw": raw,
                          "text": f" {sentence}." if lang == "EN" else f"{sentence}。",
                          "voice": EMO_EMILIA_SPEAKERS[lang][b], "jit": _jit(rng), "format": "wav",
                          "sr": EMO_EMILIA_SR, "length_s": None})
    return clips


# ---- rendering ------------------------------------------------------------------------------------------------
def speech(clip: dict, tmp_dir: Path) -> np.ndarray:
    """The clip's synthetic speech at 16 kHz (float32 mono); the long clip says it LONG_REPEATS times."""
    wav = Path(tmp_dir) / (hashlib.sha1(str(clip["path"]).encode()).hexdigest() + ".wav")
    try:
        _synthesize(clip, wav, JITTER)
    except subprocess.CalledProcessError as e:
        msg = e.stderr.decode(errors="replace").strip().splitlines() if e.stderr else []
        raise ValueError(f"{clip['path']}: could not synthesize speech ({msg[-1] if msg else e})") from None
    x, _ = sf.read(wav, dtype="float32")
    wav.unlink()
    if clip["length_s"]:   # LONG_REPEATS times the sentence, evenly spaced, cut or padded to length_s
        n = int(round(clip["length_s"] * SPEECH_SR))
        slot = max(len(x), n // LONG_REPEATS)
        x = np.tile(np.pad(x, (0, slot - len(x))), LONG_REPEATS)
        x = np.pad(x, (0, max(0, n - len(x))))[:n]
    return x


def write_mp4(path: Path, audio: np.ndarray, sr: int = MELD_SR) -> None:
    """An mp4 like MELD's: AAC audio (``audio`` is samples × 2 or 6 channels, float in [-1, 1]; 6 = 5.1 with
    front centre third) and a tiny black h264 video as long as the audio. Bit-exact flags: reproducible."""
    if audio.shape[1] not in (2, 6):   # ffmpeg takes the default layout of the count: stereo, 5.1
        raise ValueError(f"{path}: MELD audio has 2 or 6 channels, not {audio.shape[1]}")
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes()
    dur = math.ceil(10 * len(audio) / sr) / 10
    tmp = path.with_name(path.stem + ".tmp.mp4")
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-v", "error", "-f", "s16le", "-ar", str(sr), "-ac", str(audio.shape[1]),
         "-i", "pipe:0",
         "-f", "lavfi", "-i", f"color=c=black:s=32x32:r=10:d={dur}", "-map", "1:v", "-map", "0:a",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-aac_coder", "fast",
         "-threads", "1",
         "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", str(tmp)],
        input=pcm, capture_output=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"{path}: ffmpeg failed ({msg[-1] if msg else 'unknown error'})")
    tmp.replace(path)


def render(clip: dict, tmp_dir: Path, seed: int) -> float:
    """Write one clip unless it exists; returns its duration in seconds."""
    path = clip["path"]
    if path.is_file():
        return sf.info(str(path)).duration if clip["format"] == "wav" else len(speech(clip, tmp_dir)) / SPEECH_SR
    path.parent.mkdir(parents=True, exist_ok=True)
    x = speech(clip, tmp_dir)
    if clip["format"] == "wav":
        tmp = path.with_name(path.stem + ".tmp.wav")
        sf.write(tmp, resample(x, SPEECH_SR, clip["sr"]), clip["sr"], subtype="PCM_16")
        tmp.replace(path)
        return sf.info(str(path)).duration
    x48 = resample(x, SPEECH_SR, MELD_SR)
    rng = np.random.default_rng([seed, zlib.crc32(f"{path.parent.name}/{path.name}".encode())])
    channels = 6 if clip["format"] == "5.1" else 2
    audio = NOISE * rng.standard_normal((len(x48), channels))
    if channels == 6:
        audio[:, 2] = x48                     # front centre: the dialogue only
    else:
        audio += x48[:, None]
    write_mp4(path, audio)
    return len(x) / SPEECH_SR


# ---- metadata files -----------------------------------------------------------------------------------------
def _clock(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def write_meld_csv(path: Path, rows: list[dict], durations: dict[Path, float], rng: random.Random) -> None:
    """The split CSV as the release has it (utf-8, CRLF, minimal quoting, times quoted)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(MELD_COLUMNS)
    clock, episode = 0.0, None
    for n, r in enumerate(rows, 1):
        if r["Utterance_ID"] == 0:   # a new dialogue: somewhere in an episode
            episode, clock = (rng.randint(1, 10), rng.randint(1, 24)), rng.uniform(60, 1200)
        dur = durations[r["clip"]["path"]] if r["clip"] else 1.5
        start = clock + rng.uniform(0.2, 1.5)
        clock = start + dur
        w.writerow([n, r["Utterance"], r["Speaker"], r["Emotion"], r["Sentiment"], r["Dialogue_ID"],
                    r["Utterance_ID"], episode[0], episode[1], _clock(start), _clock(clock)])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode("utf-8"))


def write_emo_emilia_list(path: Path, clips: list[dict]) -> None:
    """``Emo-Emilia-ALL.jsonl`` as released: index, emotion, wav, text (EN texts start with a space)."""
    lines = [json.dumps({"index": c["index"], "emotion": c["raw"], "wav": f"./Emo-Emilia/wav/{c['index']}.wav",
                         "text": c["text"]}, ensure_ascii=False) for c in clips]
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")


# ---- entry point --------------------------------------------------------------------------------------------
CORPORA = ("meld", "casia", "emo_emilia")


def plan(out_dir: str | Path, per_class: int = 8, seed: int = 0, corpora=CORPORA) -> dict:
    """Everything decided before rendering: corpus roots, the clips, MELD's CSV rows, the random streams."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1 (got {per_class})")
    unknown = set(corpora) - set(CORPORA)
    if unknown:
        raise ValueError(f"unknown corpora {sorted(unknown)} (choose from {', '.join(CORPORA)})")
    out = Path(out_dir)
    roots = {"meld": out / "MELD.Raw", "casia": out / "CASIA", "emo_emilia": out / "Emo-Emilia"}
    rng = {c: random.Random(f"{seed}-{c}") for c in CORPORA}   # one stream per corpus: each is stable alone
    clips, meld_rows = [], {}
    if "meld" in corpora:
        meld_clips, meld_rows = plan_meld(roots["meld"], per_class, rng["meld"])
        clips += meld_clips
    if "casia" in corpora:
        clips += plan_casia(roots["casia"], per_class, rng["casia"])
    if "emo_emilia" in corpora:
        clips += plan_emo_emilia(roots["emo_emilia"], per_class, rng["emo_emilia"])
    return {"roots": {c: roots[c] for c in corpora}, "clips": clips, "meld_rows": meld_rows, "rng": rng}


def build_fake_corpora(out_dir: str | Path, per_class: int = 8, seed: int = 0, workers: int = 4,
                       corpora=CORPORA) -> dict:
    """Write the fake raw corpora under ``out_dir``; returns their roots by corpus name (``meld``, ``casia``,
    ``emo_emilia``), the clips (``clips``) and their durations (``durations``, by path). Existing clips are kept."""
    p = plan(out_dir, per_class, seed, corpora)
    for tool in ("espeak-ng", "sox") + (("ffmpeg",) if "meld" in corpora else ()):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} is not installed (apt-get install espeak-ng sox ffmpeg)")
    t0, out, roots, clips = time.time(), Path(out_dir), p["roots"], p["clips"]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp, ThreadPoolExecutor(workers) as pool:
        durations = dict(zip([c["path"] for c in clips], pool.map(lambda c: render(c, Path(tmp), seed), clips)))
    for split, rows in p["meld_rows"].items():
        write_meld_csv(roots["meld"] / MELD_LAYOUT[split][0], rows, durations, p["rng"]["meld"])
    if "emo_emilia" in corpora:
        write_emo_emilia_list(roots["emo_emilia"] / "Emo-Emilia-ALL.jsonl",
                              [c for c in clips if c["corpus"] == "emo_emilia"])
    counts = {c: sum(1 for x in clips if x["corpus"] == c) for c in corpora}
    print(f"fake corpora in {out} ({time.time() - t0:.0f} s): "
          + ", ".join(f"{roots[c].name} {n} clips" for c, n in counts.items())
          + ("; MELD: 1 train clip over 30 s, 1 dev CSV row without its mp4 (as in the release)"
             if "meld" in corpora else ""))
    return {**roots, "clips": clips, "durations": durations}
