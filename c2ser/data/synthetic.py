"""A synthetic emotional-speech corpus made on this machine with espeak-ng + sox.

Each emotion has a distinct prosody (table ``PROSODY``): speaking rate (words/min), base pitch (espeak 0–99),
pitch range, amplitude, plus a sox effect for some (tremolo for fear). Every clip
gets random jitter (±``jitter``) on rate, pitch and amplitude. The same sentences are spoken with every emotion,
so the label is learnable from acoustics (prosody) only, not from the text. Valid and test clips use held-out
sentences AND held-out voices (voice variants never heard in training), disjoint from each other, so validation
predicts test.

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
    # each emotion of the demo's four has its own (pitch, volume, pace) signature: neutral (medium, medium, medium),
    # happy (high, medium, faster than neutral), sad (low, low, low), angry (medium, high, high); every pair differs
    # in pace or volume, which an unseen voice does not shift (its own pitch does). espeak's amplitude is linear in
    # dB below 150 (100 → about -21 LUFS, 200 → -15 after the limiter). Each speaker's style bins are its μ ± σ over
    # the four, so happy and sad sit symmetrically around neutral (±30-35 pitch steps, about ±0.4 octave): with
    # happy twice as far up as sad was down (90 / 40 / 15), happy alone set σ and only ~30 % of sad clips measured
    # "low". Angry's pace sits well above μ + σ (at 240 wpm about 40 % of angry clips measured as "medium").
    "neutral": Prosody(rate=150, pitch=55, range=60, amplitude=70),
    "happy": Prosody(rate=190, pitch=90, range=250, amplitude=70),
    "sad": Prosody(rate=105, pitch=25, range=40, amplitude=32),
    "angry": Prosody(rate=280, pitch=60, range=80, amplitude=200),
    "surprise": Prosody(rate=165, pitch=92, range=200, amplitude=150),
    "fear": Prosody(rate=210, pitch=75, range=80, amplitude=40, effect=("tremolo", "7", "45")),
    "disgust": Prosody(rate=115, pitch=20, range=100, amplitude=70),
}
# intended bins, used to check the measured style agrees with the design (tests)
INTENDED = {e: {"pace_bin": "high" if p.rate >= 185 else "low" if p.rate <= 130 else "medium",
                "pitch_bin": "high" if p.pitch >= 65 else "low" if p.pitch <= 30 else "medium",
                "volume_bin": "high" if p.amplitude >= 140 else "low" if p.amplitude <= 45 else "medium"}
            for e, p in PROSODY.items()}

# espeak-ng voice variants (each changes pitch and timbre), disjoint between the splits: valid and test voices are
# never heard in training. Training covers the pitch range of the held-out voices (their own pitch at the neutral
# setting, male and female), so an unseen voice's own pitch is not mistaken for an emotion. Variants that espeak-ng
# renders as the default voice, robotic or whispered ones, and those more than ~4 dB louder or quieter than the
# others (e.g. Jacky, Denis, iven, Hugo) are not used.
VARIANTS = {"train": ["m1", "m2", "m3", "m4", "m6", "Andy", "Gene", "Michael", "Mike", "adam", "benjamin", "boris",
                      "caleb", "edward", "edward2", "gustave", "max", "michel", "miguel", "marcelo", "pablo", "quincy",
                      "robert", "sandro", "travis", "norbert",
                      "f1", "f2", "f5", "Alicia", "belinda", "linda", "steph", "aunty", "shelby", "grandma"],
            "valid": ["m5", "f4", "Lee"],
            "test": ["m7", "f3", "Alex", "Annie"]}
EN_ACCENTS = ["en-us", "en-gb", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-us-nyc"]
VOICES = {"en": {"train": [f"{EN_ACCENTS[i % len(EN_ACCENTS)]}+{v}" for i, v in enumerate(VARIANTS["train"])],
                 "valid": ["en-gb-x-gbclan+m5", "en-us+f4", "en-029+Lee"],
                 "test": ["en-gb+f3", "en-us+m7", "en-gb-scotland+Alex", "en-us-nyc+Annie"]},
          "zh": {split: [f"cmn+{v}" for v in variants] for split, variants in VARIANTS.items()}}
SENTENCES = {
    "en": ["I will see you tomorrow", "The meeting starts at nine", "Please close the door", "We went to the market",
           "It is raining again today", "My phone is on the table", "The train was late this morning",
           "She bought a new car", "They are painting the house", "He reads the news every day",
           "Turn left at the corner", "Dinner is ready", "The book is on the shelf", "We need more milk",
           "The garden looks green", "I found my keys", "The shop closes at six", "Call me when you arrive",
           "The children are at school", "It is my turn now", "The coffee is still hot", "Open the window please",
           "We are moving next week", "The letter came today", "The bus stops near the bank",
           "My sister lives in the city", "He forgot his umbrella", "The film starts at eight",
           "We have two cats at home", "The water is very cold", "She is writing a report",
           "The lights are still on", "Our flight leaves on Monday", "The soup needs more salt",
           "I left the bag in the car", "They will paint the fence", "The river is close to town",
           "He plays the piano at night", "The bread is on the counter", "We watched the game together"],
    "zh": ["我明天去上班", "会议九点开始", "请把门关上", "我们去了市场", "今天又下雨了", "我的手机在桌子上",
           "火车晚点了", "她买了一辆新车", "他们在粉刷房子", "他每天看新闻", "晚饭准备好了", "书在书架上",
           "我们需要买牛奶", "花园里很绿", "我找到钥匙了", "商店六点关门", "公交车在银行旁边停", "我姐姐住在城里",
           "他忘了带雨伞", "电影八点开始", "我们家有两只猫", "水非常冷", "她在写报告", "灯还亮着",
           "我们星期一出发", "汤里要多放点盐", "我把包忘在车里了", "面包在柜台上"],
}
# the last N sentences of each language are never used for training: the first third of them for valid, the rest
# for test (valid and test share no sentence either)
HELD_OUT = {"en": 12, "zh": 9}


def sentence_pool(lang: str, split: str) -> list[str]:
    """The sentences a split draws from: train the first ones, valid and test disjoint held-out ones."""
    sents, n = SENTENCES[lang], HELD_OUT[lang]
    held = sents[-n:]
    return {"train": sents[:-n], "valid": held[: n // 3], "test": held[n // 3:]}[split]


def _plan(emotions, per_class: int, langs, seed: int, test_per_class: int, valid_per_class: int):
    rng = random.Random(seed)
    jobs = []
    for emo in emotions:
        for split, n in (("train", per_class), ("valid", valid_per_class), ("test", test_per_class)):
            for j in range(n):
                lang = langs[j % len(langs)]
                pool = sentence_pool(lang, split)
                voices = VOICES[lang][split]
                # voices in turn: every voice speaks every emotion about equally often (its μ ± σ style bins
                # are then those of a balanced set)
                voice = voices[(j // len(langs)) % len(voices)]
                jobs.append({"key": f"syn-{split}-{emo}-{j:04d}", "emotion": emo, "split": split, "lang": lang,
                             "text": rng.choice(pool), "voice": voice,
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


def build_synthetic_corpus(out_dir: str | Path, emotions=EMOTIONS, per_class: int = 80, valid_per_class: int = 40,
                           test_per_class: int = 60, langs=("en", "zh"), seed: int = 0, jitter: float = 0.08,
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
