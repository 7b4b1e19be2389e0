"""Chain-of-thought targets built from measurements, as the C2SER paper describes.

0. Check each row first (``check_row``): a canonical emotion label, a key and an audio path. Clips shorter
   than ``MIN_SECONDS`` (0.3 s) cannot be measured (a 10 ms clip reads as 455 Hz and 350 syllables/s) and are
   rejected, as are clips whose pitch, loudness or rate comes out non-finite (e.g. silence): such rows go to the
   rejects file and never enter the statistics.
1. Measure each clip: mean pitch (librosa YIN on voiced frames, Hz), loudness (pyloudnorm integrated LUFS;
   clips shorter than its 0.4 s block fall back to RMS dBFS), speaking rate (syllables per second of speech:
   vowel groups for English, characters for Chinese; speech time from an energy detector).
2. Bin each measure low / medium / high at μ ± σ computed over the corpus (or per speaker: ``group_by``), or
   over another manifest's measured rows (``style_stats`` of e.g. the training set, applied to the test set);
   a group absent from those statistics uses their global μ ± σ.
3. Fill a template (EN or ZH by the clip's language; the template is picked deterministically from the key):
   explicit = style + content + emotion, implicit = the emotion directly. An optional ``rewrite`` callable
   (e.g. :func:`hf_rewriter` with a local instruct LLM) may paraphrase the explicit sentence.
"""
from __future__ import annotations

import re
import zlib
from collections import defaultdict
from typing import Callable

import librosa
import numpy as np
import pyloudnorm

from c2ser.labels import EMOTIONS, EN_WORD, ZH_WORD

MIN_SECONDS = 0.3   # shorter clips are rejected: too few frames for pitch (YIN) and the speech-time detector
PITCH_FLOOR_HZ = 50.0   # lowest F0 the pitch tracker searches
MEASURES = (("pitch_hz", "pitch_bin"), ("loudness_lufs", "volume_bin"), ("rate", "pace_bin"))

EN_TEMPLATES = [
    'The speaker says, at a {pace} pace with a {pitch} pitch and a {volume} voice: "{text}". '
    "From these cues, the emotion is {emotion}.",
    'Spoken at a {pace} pace, with a {pitch} pitch and a {volume} voice, the words "{text}" show that '
    "the emotion is {emotion}.",
    'With a {volume} voice, a {pitch} pitch and a {pace} pace, the speaker says: "{text}". The emotion is {emotion}.',
]
ZH_TEMPLATES = [
    "说话者以{pace}的语速、{pitch}的语调和{volume}的音量说道：“{text}”。通过分析语音特征，推测情绪为{emotion}。",
    "说话者用{volume}的音量、{pitch}的语调，以{pace}的语速说：“{text}”。综合这些线索，推测情绪为{emotion}。",
]
EN_IMPLICIT = "The emotion of this speech is {emotion}."
ZH_IMPLICIT = "这条语音的情感为{emotion}。"
WORDS = {"en": {"pace": {"low": "slow", "medium": "medium", "high": "fast"},
                "pitch": {"low": "low", "medium": "medium", "high": "high"},
                "volume": {"low": "quiet", "medium": "medium", "high": "loud"}},
         "zh": {"pace": {"low": "缓慢", "medium": "中等", "high": "快速"},
                "pitch": {"low": "低沉", "medium": "平稳", "high": "高昂"},
                "volume": {"low": "轻柔", "medium": "中等", "high": "响亮"}}}


def check_row(row: dict) -> str | None:
    """Why a manifest row cannot get CoT targets (None = fine): missing key/audio or a non-canonical emotion."""
    missing = [f for f in ("key", "audio") if not row.get(f)]
    if missing:
        return f"missing {', '.join(missing)}"
    if row.get("emotion") not in EMOTIONS:
        return f"unknown emotion label {row.get('emotion')!r} (expected one of {', '.join(EMOTIONS)})"
    return None


def measurable(wav: np.ndarray, sr: int = 16000) -> str | None:
    """Why a clip is too short to measure (None = long enough)."""
    if len(wav) < MIN_SECONDS * sr:
        return f"too short to measure ({len(wav) / sr:.3f} s < {MIN_SECONDS:g} s)"
    return None


def measurement_problem(style: dict | None) -> str | None:
    """Why a measured style is unusable (None = every measure finite)."""
    if not style:
        return "not measured"
    bad = [f"{f}={style.get(f)}" for f, _ in MEASURES
           if not isinstance(style.get(f), (int, float)) or not np.isfinite(style[f])]
    return f"measurement failed ({', '.join(bad)})" if bad else None


def speech_seconds(wav: np.ndarray, sr: int = 16000) -> float:
    """Duration of frames within 30 dB of the loudest frame (a simple energy detector)."""
    rms = librosa.feature.rms(y=wav, frame_length=400, hop_length=160)[0]
    if rms.max() <= 0:
        return 0.0
    return float((rms > rms.max() * 10 ** (-30 / 20)).sum() * 160 / sr)


def syllables(text: str, language: str) -> int:
    if language == "zh":
        return len(re.findall(r"[\u4e00-\u9fff]", text)) or len(text.split())
    return sum(max(1, len(re.findall(r"[aeiouy]+", w))) for w in re.findall(r"[a-z']+", text.lower()))


def measure(wav: np.ndarray, text: str, language: str, sr: int = 16000) -> dict:
    """pitch_hz, loudness_lufs, rate (syllables per second of speech) of one clip."""
    # floor 50 Hz (PENN, the paper's tracker, searches from 31 Hz): with 60, yin took the 3rd or 4th harmonic of low,
    # quiet male voices (~55-65 Hz) and measured them at 200-360 Hz
    f0 = librosa.yin(wav, fmin=PITCH_FLOOR_HZ, fmax=500, sr=sr, frame_length=1024, hop_length=160)
    rms = librosa.feature.rms(y=wav, frame_length=1024, hop_length=160)[0][: len(f0)]
    voiced = rms > rms.max() * 10 ** (-20 / 20) if rms.max() > 0 else np.zeros_like(rms, dtype=bool)
    pitch = float(np.median(f0[: len(rms)][voiced])) if voiced.any() else float("nan")
    if len(wav) >= int(0.4 * sr) + 1:
        loud = float(pyloudnorm.Meter(sr).integrated_loudness(wav.astype(np.float64)))
    else:
        loud = float("-inf")
    if not np.isfinite(loud):  # too short or too quiet for the gated measure: RMS level instead
        loud = float(20 * np.log10(np.sqrt(np.mean(wav.astype(np.float64) ** 2)) + 1e-10))
    sp = speech_seconds(wav, sr)
    return {"pitch_hz": round(pitch, 2), "loudness_lufs": round(loud, 2),
            "rate": round(syllables(text or "", language) / sp, 3) if sp > 0 else float("nan")}


def _bin(value: float, mu: float, sd: float) -> str:
    if not np.isfinite(value):
        return "medium"
    return "low" if value < mu - sd else "high" if value > mu + sd else "medium"


def _number(x) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else float("nan")


Stats = dict  # {"global": {field: (μ, σ)}, "groups": {group value: {field: (μ, σ)}}}


def style_stats(rows: list[dict], group_by: str | None = None) -> Stats:
    """μ ± σ of each measure over the rows' finite values, globally and within each ``group_by`` value."""
    def stats(members):
        out = {}
        for field, _ in MEASURES:
            vals = np.array([_number((m.get("style") or {}).get(field)) for m in members])
            ok = vals[np.isfinite(vals)]
            out[field] = (float(ok.mean()), float(ok.std())) if ok.size else (0.0, 0.0)
        return out

    groups = defaultdict(list)
    if group_by:
        for r in rows:
            groups[r.get(group_by)].append(r)
    return {"global": stats(rows), "groups": {g: stats(m) for g, m in groups.items()}}


def add_bins(rows: list[dict], group_by: str | None = None, stats: Stats | None = None) -> int:
    """Set style.{pitch,volume,pace}_bin at μ ± σ: of ``stats`` (e.g. ``style_stats`` of the training set) or
    of the rows themselves; within each ``group_by`` value when given, the global μ ± σ for a group absent from
    ``stats``. Returns how many rows used that global fallback."""
    stats = stats or style_stats(rows, group_by)
    fallback = 0
    for r in rows:
        per = stats["global"]
        if group_by:
            if r.get(group_by) in stats["groups"]:
                per = stats["groups"][r.get(group_by)]
            else:
                fallback += 1
        for field, out in MEASURES:
            r["style"][out] = _bin(float(r["style"][field]), *per[field])
    return fallback


def targets(row: dict, rewrite: Callable[[str, dict], str] | None = None) -> tuple[str, str]:
    """(explicit, implicit) target sentences for a row with measured style bins."""
    lang = "zh" if row.get("language") == "zh" else "en"
    w, st = WORDS[lang], row["style"]
    emotion = (ZH_WORD if lang == "zh" else EN_WORD)[row["emotion"]]
    templates = ZH_TEMPLATES if lang == "zh" else EN_TEMPLATES
    t = templates[zlib.crc32(row["key"].encode()) % len(templates)]
    explicit = t.format(pace=w["pace"][st["pace_bin"]], pitch=w["pitch"][st["pitch_bin"]],
                        volume=w["volume"][st["volume_bin"]], text=(row.get("text") or "").strip(), emotion=emotion)
    if rewrite is not None:
        explicit = rewrite(explicit, row)
    return explicit, (ZH_IMPLICIT if lang == "zh" else EN_IMPLICIT).format(emotion=emotion)


def hf_rewriter(model_dir: str, max_new_tokens: int = 120) -> Callable[[str, dict], str]:
    """A ``rewrite`` callable that paraphrases with a local instruct LLM (chat template), keeping the facts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    llm = AutoModelForCausalLM.from_pretrained(model_dir).eval()

    def rewrite(sentence: str, row: dict) -> str:
        msg = [{"role": "user", "content": "Rewrite this description of a speech clip fluently, keeping the pace, "
                "pitch, volume, the quoted words and the final emotion unchanged. Answer with the sentence only.\n"
                + sentence}]
        ids = tok.apply_chat_template(msg, add_generation_prompt=True, return_tensors="pt")["input_ids"]
        out = llm.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
        return text or sentence

    return rewrite
