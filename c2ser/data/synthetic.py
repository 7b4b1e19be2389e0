"""A synthetic emotional-speech corpus made on this machine with espeak-ng + sox.

Each emotion has a distinct prosody (table ``PROSODY``): speaking rate (words/min), base pitch (espeak 0–99), pitch
range, amplitude, plus a sox effect for some (tremolo for fear). Every clip gets random jitter (±``jitter``) on
rate, pitch and amplitude. The same sentences are spoken with every emotion, so the label is learnable from
acoustics (prosody) only, not from the text. Valid, valid2, valid3 and test clips use held-out sentences AND
held-out voices (voice variants never heard in training), disjoint from each other, so validation can predict test
(valid3, with new sentences as test's, does it best: docs/demo.md). Voice identity is checked on the audio
(``render_voice`` / ``duplicate_voices``: one fixed sentence per voice), not on the voice names; the test voices are
drawn by a fixed rule (``draw_test_variants``).

Pitch range is set through espeak-ng's SSML ``<prosody range=...>``. Deterministic: the same seed gives the
same manifest and the same audio bytes (sox without dither).
"""
from __future__ import annotations

import hashlib
import io
import os
import random
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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

# The test split's voice variants, drawn by ``draw_test_variants`` (its rule, docs/demo.md "Protocol") and
# written here before any result on them was looked at; ``python data_prep/synthetic.py --draw-test-voices`` prints
# the draw again.
TEST_VARIANTS = ["iven4", "kaukovalta", "Mario", "Nguyen"]
# espeak-ng voice variants (each changes pitch and timbre), disjoint between the splits: valid, valid2 and test voices
# are never heard in training. Identity is checked on the audio (``duplicate_voices``): espeak-ng 1.51 ignores the
# variant of a voice written ``en-gb+X`` (it renders plain en-gb), so English voices use ``en+X`` (the same British
# voice, variant honoured); ``caleb`` renders the same audio as ``klatt`` and within 0.6 dB of ``adam`` (dropped).
# Training covers the pitch range of the held-out voices (their own pitch at the neutral setting, male and female),
# so an unseen voice's own pitch is not mistaken for an emotion. Robotic or whispered variants and those more than
# ~4 dB louder or quieter than the others (e.g. Jacky, Denis, iven, Hugo) are not used.
#   valid   the validation voices: every choice of the demo (schedules, epochs, probes) was made on them
#   valid2  the demo's former test voices; their scores steered the corpus (prosody table, angry pace, pitch floor,
#           training voices), so they are a second validation set, not a test (docs/demo.md, "Protocol")
#   valid3  opt-in (``valid3_per_class``): the test draw's two unused candidates on new sentences
#           (``VALID3_SENTENCES``), a validation split like the test split (docs/demo.md, "A third validation split")
#   test    drawn by ``draw_test_variants``'s rule before any result on them was looked at (docs/demo.md)
VARIANTS = {"train": ["m1", "m2", "m3", "m4", "m6", "Andy", "Gene", "Michael", "Mike", "adam", "benjamin", "boris",
                      "edward", "edward2", "gustave", "max", "michel", "miguel", "marcelo", "pablo", "quincy",
                      "robert", "sandro", "travis", "norbert",
                      "f1", "f2", "f5", "Alicia", "belinda", "linda", "steph", "aunty", "shelby", "grandma",
                      "Andrea", "anika", "david", "Denis", "Diogo", "Gene2", "Henrique", "iven2", "john", "m8",
                      "pedro", "rob", "steph2", "zac"],
            "valid": ["m5", "f4", "Lee"],
            "valid2": ["m7", "f3", "Alex", "Annie"],
            "valid3": ["iven3", "grandpa"],
            "test": TEST_VARIANTS}
EN_ACCENTS = ["en-us", "en", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-us-nyc"]
VOICES = {"en": {"train": [f"{EN_ACCENTS[i % len(EN_ACCENTS)]}+{v}" for i, v in enumerate(VARIANTS["train"])],
                 "valid": ["en-gb-x-gbclan+m5", "en-us+f4", "en-029+Lee"],
                 "valid2": ["en+f3", "en-us+m7", "en-gb-scotland+Alex", "en-us-nyc+Annie"],
                 "valid3": ["en-us+iven3", "en+grandpa"],
                 "test": [f"{EN_ACCENTS[i % len(EN_ACCENTS)]}+{v}" for i, v in enumerate(TEST_VARIANTS)]},
          "zh": {split: [f"cmn+{v}" for v in variants] for split, variants in VARIANTS.items()}}
SPLITS = ("train", "valid", "valid2", "valid3", "test")
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
# the last N sentences of each language are never used for training: the first third of them for valid, the rest for
# valid2 (the demo's former test sentences); valid and valid2 share no sentence either
HELD_OUT = {"en": 12, "zh": 9}
# the test split's sentences, written with its voices and before any result on them: in no other split
TEST_SENTENCES = {
    "en": ["The clock on the wall is slow", "We planted tomatoes in spring", "Her brother works at the airport",
           "The printer is out of paper", "I will wash the dishes later", "The museum opens at ten",
           "He parked the car outside", "Our neighbours have a new dog"],
    "zh": ["墙上的钟慢了", "我们春天种了西红柿", "她哥哥在机场工作", "打印机没纸了", "我等会儿洗碗", "博物馆十点开门"],
}


# valid3's sentences, in no other split: written after the twelfth search, for a check that found clips of new
# sentences harder than clips of the held-out ones (docs/demo.md, "A third validation split")
VALID3_SENTENCES = {
    "en": ["The kettle is on the stove", "Our teacher lives near the park", "The cinema was full last night",
           "He painted the kitchen yellow", "My uncle repairs old bicycles", "The parcel arrived this afternoon",
           "We walked along the beach", "The library is closed on Sunday", "My cousin sells fresh flowers",
           "The lamp is next to the sofa", "We ordered pizza for lunch", "The road is wet after the storm",
           "She keeps her notes in a box", "The baby is asleep upstairs", "He fixed the fence on Friday",
           "The plates are in the cupboard"],
    "zh": ["水壶在炉子上", "我们老师住在公园附近", "昨晚电影院满了", "他把厨房刷成黄色", "包裹今天下午到了", "图书馆周日关门",
           "我表哥卖鲜花", "台灯在沙发旁边", "我们午饭点了披萨", "暴雨过后路很滑", "孩子在楼上睡觉", "盘子在柜子里"],
}


# training sentences added by the fourteenth search (docs/demo.md): with only the first ones, each was spoken ~20 times
# and a clip's length told its pace; in no other split. ``_job`` draws them so that no clip of another split changed
MORE_TRAIN_SENTENCES = {
    "en": ["The cat is sleeping on the chair", "We had rice for dinner", "Her shoes are by the door",
           "The car needs new tyres", "I called my mother last night", "The park is full of people",
           "He is cooking eggs for breakfast", "The bank opens at half past nine", "Our team won the match",
           "The radio is too loud", "She walks to work every morning", "The shop has fresh fish today",
           "They moved to a small village", "My brother is learning to drive", "The door was left open",
           "We bought tickets for the concert", "The tea is too sweet", "He lost his wallet on the bus",
           "The doctor will see you soon", "Our house has a red roof", "I washed the car on Sunday",
           "The cake is in the oven", "She sent me a message", "The dog wants to go outside",
           "We cleaned the whole flat", "The road to the lake is long", "He wears a blue jacket",
           "The chairs are in the garden", "My friend is a nurse", "The price of bread went up",
           "They are waiting at the station", "I need a new pair of glasses", "The phone rang twice",
           "We took the early train", "The apples are on the tree", "She plays tennis on Tuesday",
           "The office is on the third floor", "He brought flowers for his wife", "The sky is clear tonight",
           "My coat is at the office", "The kids are drinking juice", "We visited our grandparents",
           "The map is in the drawer", "My computer is very slow", "They built a new bridge",
           "The students are reading quietly", "He opened the box carefully", "The market is busy on Saturday",
           "I wrote a letter to my aunt", "The towels are in the bathroom", "The stairs are very steep",
           "She cut her hair short", "The wind is blowing hard", "We ate by the window",
           "The keys are under the mat", "He is fixing the garden gate"],
    "zh": ["猫在椅子上睡觉", "我们晚饭吃米饭", "她的鞋在门口", "我昨晚给妈妈打电话了", "公园里人很多", "他在做早饭",
           "我们队赢了比赛", "收音机太吵了", "她每天走路上班", "他们搬到了一个小村子", "我弟弟在学开车", "门没有关",
           "我们买了音乐会的票", "茶太甜了", "他在公交车上丢了钱包", "医生马上就来", "我星期天洗了车", "蛋糕在烤箱里",
           "她给我发了短信", "狗想出去玩", "去湖边的路很远", "他穿着蓝色的外套", "面包涨价了", "他们在车站等着",
           "我需要一副新眼镜", "电话响了两次", "我们坐了早班车", "树上有很多苹果", "她星期二打网球", "办公室在三楼",
           "今晚天空很晴朗", "我们去看了爷爷奶奶", "地图在抽屉里", "我的电脑很慢", "学生们在安静地看书",
           "星期六市场很热闹", "风刮得很大", "钥匙在垫子下面"],
}


def sentence_pool(lang: str, split: str) -> list[str]:
    """The sentences a split draws from: train the first ones and ``MORE_TRAIN_SENTENCES``, valid and valid2
    disjoint held-out ones, valid3 and test their own (``VALID3_SENTENCES``, ``TEST_SENTENCES``)."""
    sents, n = SENTENCES[lang], HELD_OUT[lang]
    held = sents[-n:]
    return {"train": sents[:-n] + MORE_TRAIN_SENTENCES[lang], "valid": held[: n // 3], "valid2": held[n // 3:],
            "valid3": VALID3_SENTENCES[lang], "test": TEST_SENTENCES[lang]}[split]


# --- voice identity, checked on the audio -------------------------------------------------------------------------
# One fixed sentence per language (in no split), spoken by each voice at the neutral prosody without jitter.
FINGERPRINT_TEXT = {"en": "The quick brown fox jumps over the lazy dog", "zh": "我们明天早上一起去公园散步"}
# two renders closer than this (mean absolute difference of aligned log-mel frames, dB, after removing each render's
# mean level: a louder copy of a voice is the same voice) are one voice. On espeak-ng 1.51's variants (en-us+X):
# identical audio 0, steph2 / steph3 0.46, adam / caleb 0.61, klatt4 / klatt5 0.71; the next pairs are 1.42
# (Henrique / Hugo) and 1.55 apart
NEAR_DUPLICATE_DB = 1.0


@dataclass(frozen=True)
class VoiceRender:
    voice: str
    sha1: str              # of the 16-bit PCM samples
    logmel: np.ndarray     # 40 × frames, dB (floored at -80)
    level_db: float        # RMS level, dBFS
    seconds: float


def render_voice(voice: str, lang: str) -> VoiceRender:
    """``FINGERPRINT_TEXT[lang]`` spoken by ``voice`` at the neutral prosody (espeak-ng's own output, no sox)."""
    import librosa

    p = PROSODY["neutral"]
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(p.rate), "-p", str(p.pitch), "-a", str(p.amplitude),
                          "--stdout", FINGERPRINT_TEXT[lang]], capture_output=True, check=True).stdout
    pcm, sr = sf.read(io.BytesIO(out), dtype="int16")
    x = pcm.astype(np.float32) / 32768
    mel = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=512, hop_length=256, n_mels=40)
    return VoiceRender(voice, hashlib.sha1(pcm.tobytes()).hexdigest(),
                       np.maximum(librosa.power_to_db(mel + 1e-10), -80.0),
                       float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-10)), len(pcm) / sr)


def render_voices(voices, lang: str, workers: int = 4) -> list[VoiceRender]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda v: render_voice(v, lang), voices))


def logmel_distance(a: VoiceRender, b: VoiceRender) -> float:
    """Mean absolute dB difference of the aligned log-mel frames, each render's mean level removed; inf when the
    lengths differ by over 2 frames (a voice that speaks at another speed is audibly another voice)."""
    n, m = a.logmel.shape[1], b.logmel.shape[1]
    if abs(n - m) > 2:
        return float("inf")
    x, y = a.logmel[:, :min(n, m)], b.logmel[:, :min(n, m)]
    return float(np.mean(np.abs((x - x.mean()) - (y - y.mean()))))


def duplicate_voices(renders: list[VoiceRender]) -> list[tuple[str, str, float]]:
    """Pairs of voices that render the same audio (same samples, or log-mel closer than ``NEAR_DUPLICATE_DB``)."""
    dup = []
    for i, a in enumerate(renders):
        for b in renders[i + 1:]:
            d = 0.0 if a.sha1 == b.sha1 else logmel_distance(a, b)
            if d < NEAR_DUPLICATE_DB:
                dup.append((a.voice, b.voice, round(d, 3)))
    return dup


def espeak_variants() -> list[str]:
    """The voice variants installed with espeak-ng (``espeak-ng --voices=variant``)."""
    lines = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    header, *rows = lines.splitlines()
    start, end = header.index("File"), header.index("Other Languages")
    return [row[start:end].strip().removeprefix("!v/") for row in rows if row[start:end].strip().startswith("!v/")]


# variants with an effect (robotic, whispered, echo, breath, klatt synthesis, novelty): never a corpus voice
EFFECT_VARIANT = re.compile(r"robot|robosoft|klatt|whisper|demonic|croak|tweaky|fast|ricishay|storm|announcer",
                            re.IGNORECASE)


def draw_test_variants(n: int = 4, level_db: float = 4.0, duration: float = 0.10):
    """The test split's rule, fixed before any result on it was looked at (docs/demo.md, "Protocol"):
    candidates are the installed espeak-ng variants used by no other split and without an effect
    (``EFFECT_VARIANT``); a candidate must, in English (``en-us+X``) and Chinese (``cmn+X``) at the neutral
    prosody, be within ``level_db`` of the training voices' median RMS level and within ``duration`` of their
    median length, and be distinct by audio from every voice of the other splits and every earlier candidate
    (case-insensitive name order). The ``n`` drawn are spread evenly over the candidates sorted by English pitch
    (ties by name): positions round(i (k − 1) / (n − 1)) of k. Returns (drawn variants, {variant: why}). The rule
    as it was applied: the two candidates it left undrawn (iven3, grandpa) are valid3's voices since."""
    used = {v for split in ("train", "valid", "valid2") for v in VARIANTS[split]}
    ref = {lang: render_voices(VOICES[lang]["train"], lang) for lang in ("en", "zh")}
    others = {lang: ref[lang] + [r for s in ("valid", "valid2") for r in render_voices(VOICES[lang][s], lang)]
              for lang in ("en", "zh")}
    med = {lang: (np.median([r.level_db for r in ref[lang]]), np.median([r.seconds for r in ref[lang]]))
           for lang in ref}
    why, candidates = {}, []
    for v in sorted(set(espeak_variants()) - used, key=str.lower):
        if EFFECT_VARIANT.search(v):
            why[v] = "effect voice"
            continue
        problem, renders = None, {}
        for lang, acc in (("en", "en-us"), ("zh", "cmn")):
            r = renders[lang] = render_voice(f"{acc}+{v}", lang)
            if abs(r.level_db - med[lang][0]) > level_db:
                problem = f"{lang} level {r.level_db - med[lang][0]:+.1f} dB from the training median"
            elif abs(r.seconds / med[lang][1] - 1) > duration:
                problem = f"{lang} length {100 * (r.seconds / med[lang][1] - 1):+.0f} % from the training median"
            else:
                same = [b for a, b, _ in duplicate_voices([r] + others[lang]) if a == r.voice]
                problem = f"{lang} renders like {same[0]}" if same else None
            if problem:
                break
        if problem:
            why[v] = problem
            continue
        for lang in renders:
            others[lang].append(renders[lang])
        candidates.append((_pitch(f"en-us+{v}", "en"), v.lower(), v))
    candidates.sort()
    k = len(candidates)
    picks = sorted({round(i * (k - 1) / (n - 1)) for i in range(n)}) if k >= n > 1 else list(range(min(n, k)))
    for i, (f0, _, v) in enumerate(candidates):
        why[v] = f"{'drawn' if i in picks else 'candidate'} ({f0:.0f} Hz, {i + 1} of {k} by pitch)"
    return [candidates[i][2] for i in picks], why


def _pitch(voice: str, lang: str) -> float:
    """Median pitch (Hz) of ``voice`` speaking ``FINGERPRINT_TEXT[lang]`` at the neutral prosody."""
    from c2ser.data.cot import measure

    p = PROSODY["neutral"]
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(p.rate), "-p", str(p.pitch), "-a", str(p.amplitude),
                          "--stdout", FINGERPRINT_TEXT[lang]], capture_output=True, check=True).stdout
    x, sr = sf.read(io.BytesIO(out), dtype="float32")
    return measure(x, FINGERPRINT_TEXT[lang], lang, sr=sr)["pitch_hz"]


def _plan(emotions, per_class: int, langs, seed: int, test_per_class: int, valid_per_class: int,
          valid2_per_class: int = 0, valid3_per_class: int = 0):
    rng = random.Random(seed)
    jobs = []
    for emo in emotions:
        for split, n in (("train", per_class), ("valid", valid_per_class), ("valid2", valid2_per_class),
                         ("test", test_per_class)):
            jobs += [_job(rng, emo, split, j, langs) for j in range(n)]
    # valid3 (added later) draws from its own generator, so turning it on changes no clip of the other splits
    rng3 = random.Random(f"valid3-{seed}")
    for emo in emotions:
        jobs += [_job(rng3, emo, "valid3", j, langs) for j in range(valid3_per_class)]
    return jobs


def _job(rng: random.Random, emo: str, split: str, j: int, langs) -> dict:
    lang = langs[j % len(langs)]
    voices = VOICES[lang][split]
    # voices in turn: every voice speaks every emotion about equally often (its μ ± σ style bins are then those of
    # a balanced set)
    voice = voices[(j // len(langs)) % len(voices)]
    key = f"syn-{split}-{emo}-{j:04d}"
    if split == "train":
        # the corpus generator draws among the first training sentences, as before MORE_TRAIN_SENTENCES (so every
        # later draw, and no clip of another split, changed); the clip's own generator then takes its sentence
        first = rng.choice(SENTENCES[lang][:-HELD_OUT[lang]])
        text = random.Random(f"extra-{key}-{first}").choice(sentence_pool(lang, split))
    else:
        text = rng.choice(sentence_pool(lang, split))
    return {"key": key, "emotion": emo, "split": split, "lang": lang, "text": text,
            "voice": voice, "jit": [rng.uniform(-1, 1) for _ in range(4)]}


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
                           workers: int = 4, progress: bool = True, valid2_per_class: int = 0,
                           valid3_per_class: int = 0) -> dict[str, Path]:
    """Write ``wav/*.wav`` and ``{train,valid,test}.jsonl`` (and ``valid2.jsonl`` / ``valid3.jsonl`` when
    ``valid2_per_class`` / ``valid3_per_class``) under ``out_dir``; returns the manifest paths."""
    counts = {"per_class": per_class, "valid_per_class": valid_per_class, "valid2_per_class": valid2_per_class,
              "valid3_per_class": valid3_per_class, "test_per_class": test_per_class}
    bad = [f"{k}={v}" for k, v in counts.items() if not isinstance(v, int) or v < 0]
    if bad:
        raise ValueError(f"synthetic corpus {out_dir}: {', '.join(bad)}: expected a count of clips ≥ 0")
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} is not installed (apt-get install espeak-ng sox)")
    unknown = [e for e in emotions if e not in PROSODY]
    if unknown:
        raise ValueError(f"unknown emotions {unknown} (choose from {', '.join(PROSODY)})")
    out = Path(out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    jobs = _plan(list(emotions), per_class, list(langs), seed, test_per_class, valid_per_class, valid2_per_class,
                 valid3_per_class)
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

    rows = {s: [] for s in SPLITS if (s != "valid2" or valid2_per_class) and (s != "valid3" or valid3_per_class)}
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
