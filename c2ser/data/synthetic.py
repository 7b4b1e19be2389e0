"""A synthetic emotional-speech corpus made on this machine with espeak-ng + sox.

Each emotion has a distinct prosody (table ``PROSODY``): speaking rate (words/min), base pitch (espeak 0–99),
pitch range, amplitude, plus a sox effect for some (tremolo for fear). Every clip
gets random jitter (±``jitter``) on rate, pitch and amplitude. The same sentences are spoken with every emotion,
so the label is learnable from acoustics (prosody) only, not from the text. Test clips use held-out sentences
AND held-out voices; valid clips use training voices with held-out sentences.

Pitch range is set through espeak-ng's SSML ``<prosody range=...>``. Deterministic: the same seed gives the
same manifest and the same audio bytes (sox without dither).
"""
from __future__ import annotations

import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from c2ser.data.manifest import Rejects, make_row, summary, write_manifest
from c2ser.labels import EMOTIONS


@dataclass(frozen=True)
class Prosody:
    rate: int        # words per minute (espeak -s)
    pitch: int       # base pitch 0–99 (espeak -p)
    range: int       # pitch range in % of normal (SSML prosody range)
    amplitude: int   # espeak -a (0–200)
    effect: tuple = ()   # extra sox effect


PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(rate=160, pitch=45, range=60, amplitude=100),
    "happy": Prosody(rate=185, pitch=85, range=250, amplitude=125),
    "sad": Prosody(rate=100, pitch=15, range=40, amplitude=50),
    "angry": Prosody(rate=235, pitch=45, range=60, amplitude=200),
    "surprise": Prosody(rate=165, pitch=92, range=200, amplitude=150),
    "fear": Prosody(rate=210, pitch=75, range=80, amplitude=70, effect=("tremolo", "7", "45")),
    "disgust": Prosody(rate=115, pitch=20, range=100, amplitude=110),
}
# intended bins, used to check the measured style agrees with the design (tests)
INTENDED = {e: {"pace_bin": "high" if p.rate >= 185 else "low" if p.rate <= 130 else "medium",
                "pitch_bin": "high" if p.pitch >= 65 else "low" if p.pitch <= 30 else "medium",
                "volume_bin": "high" if p.amplitude >= 140 else "low" if p.amplitude <= 80 else "medium"}
            for e, p in PROSODY.items()}

VOICES = {"en": {"train": ["en-us+m1", "en-us+m2", "en-us+m3", "en-us+m4", "en-us+m6", "en-us+f1", "en-us+f2",
                           "en-us+f5", "en-gb+m5", "en-gb+f4", "en-029+m3", "en-gb-scotland+f2"],
                 "test": ["en-gb+f3", "en-us+m7"]},
          "zh": {"train": ["cmn+m1", "cmn+m2", "cmn+m4", "cmn+m6", "cmn+f1", "cmn+f2", "cmn+f5"],
                 "test": ["cmn+f4", "cmn+m7"]}}
SENTENCES = {
    "en": ["I will see you tomorrow", "The meeting starts at nine", "Please close the door", "We went to the market",
           "It is raining again today", "My phone is on the table", "The train was late this morning",
           "She bought a new car", "They are painting the house", "He reads the news every day",
           "Turn left at the corner", "Dinner is ready", "The book is on the shelf", "We need more milk",
           "The garden looks green", "I found my keys", "The shop closes at six", "Call me when you arrive",
           "The children are at school", "It is my turn now", "The coffee is still hot", "Open the window please",
           "We are moving next week", "The letter came today"],
    "zh": ["我明天去上班", "会议九点开始", "请把门关上", "我们去了市场", "今天又下雨了", "我的手机在桌子上",
           "火车晚点了", "她买了一辆新车", "他们在粉刷房子", "他每天看新闻", "晚饭准备好了", "书在书架上",
           "我们需要买牛奶", "花园里很绿", "我找到钥匙了", "商店六点关门"],
}
HELD_OUT = {"en": 4, "zh": 3}   # the last N sentences of each language are never used for training


def _plan(emotions, per_class: int, langs, seed: int, test_per_class: int, valid_per_class: int):
    rng = random.Random(seed)
    jobs = []
    for emo in emotions:
        for split, n in (("train", per_class), ("valid", valid_per_class), ("test", test_per_class)):
            for j in range(n):
                lang = langs[j % len(langs)]
                sents = SENTENCES[lang]
                pool = sents[: -HELD_OUT[lang]] if split == "train" else sents[-HELD_OUT[lang]:]
                voices = VOICES[lang]["test" if split == "test" else "train"]
                jobs.append({"key": f"syn-{split}-{emo}-{j:04d}", "emotion": emo, "split": split, "lang": lang,
                             "text": rng.choice(pool), "voice": rng.choice(voices),
                             "jit": [rng.uniform(-1, 1) for _ in range(4)]})
    return jobs


def _synthesize(job: dict, wav: Path, jitter: float) -> None:
    p = PROSODY[job["emotion"]]
    j = job["jit"]
    rate = int(p.rate * (1 + jitter * j[0]))
    pitch = max(0, min(99, int(p.pitch + 100 * jitter * j[1] / 2)))
    rng_ = max(10, int(p.range * (1 + jitter * j[2])))
    amp = max(10, min(200, int(p.amplitude * (1 + jitter * j[3]))))
    ssml = f'<speak><prosody range="{rng_}%">{job["text"]}</prosody></speak>'
    tmp = wav.with_suffix(".tmp.wav")
    espeak = subprocess.run(["espeak-ng", "-m", "-v", job["voice"], "-s", str(rate), "-p", str(pitch), "-a", str(amp),
                             "--stdout", ssml], capture_output=True, check=True)
    # 16 kHz mono 16-bit; no dither (deterministic); limit peaks instead of clipping
    subprocess.run(["sox", "-D", "-t", "wav", "-", "-r", "16000", "-c", "1", "-b", "16", str(tmp),
                    *p.effect, "gain", "-l", "0"], input=espeak.stdout, capture_output=True, check=True)
    tmp.replace(wav)


def build_synthetic_corpus(out_dir: str | Path, emotions=EMOTIONS, per_class: int = 80, valid_per_class: int = 8,
                           test_per_class: int = 20, langs=("en", "zh"), seed: int = 0, jitter: float = 0.08,
                           workers: int = 4, progress: bool = True) -> dict[str, Path]:
    """Write ``wav/*.wav`` and ``{train,valid,test}.jsonl`` under ``out_dir``; returns the manifest paths."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} is not installed (apt-get install espeak-ng sox)")
    unknown = [e for e in emotions if e not in PROSODY]
    if unknown:
        raise ValueError(f"unknown emotions {unknown} (choose from {', '.join(PROSODY)})")
    out = Path(out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    jobs = _plan(list(emotions), per_class, list(langs), seed, test_per_class, valid_per_class)
    rejects = Rejects(out / "rejects.jsonl")

    def run(job):
        wav = out / "wav" / f"{job['key']}.wav"
        try:
            if not wav.is_file():  # idempotent: finished clips are kept
                _synthesize(job, wav, jitter)
            info = sf.info(str(wav))
            return job, wav, info.frames / info.samplerate, None
        except (subprocess.CalledProcessError, RuntimeError) as e:
            return job, wav, 0.0, str(e).splitlines()[0]

    rows = {"train": [], "valid": [], "test": []}
    with ThreadPoolExecutor(workers) as pool:
        for job, wav, dur, err in tqdm(pool.map(run, jobs), total=len(jobs), disable=not progress, desc="synthesize"):
            if err:
                rejects.add(job["key"], wav, err)
                continue
            rows[job["split"]].append(make_row(
                key=job["key"], audio=str(wav), duration=round(dur, 4), sample_rate=16000, emotion=job["emotion"],
                raw_emotion=job["emotion"], text=job["text"], language=job["lang"], corpus="synthetic",
                split=job["split"], speaker=job["voice"]))
    paths = {s: write_manifest(r, out / f"{s}.jsonl") for s, r in rows.items()}
    rejects.write()
    print(summary([r for rs in rows.values() for r in rs], rejects, f"synthetic corpus ({out})"))
    return paths
