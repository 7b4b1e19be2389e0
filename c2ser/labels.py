"""The canonical emotion taxonomy and each corpus's label map.

Canonical ids are lower-case: ``neutral, happy, sad, angry, surprise, fear, disgust``. Every manifest stores
both the corpus's raw label and the canonical one; evaluation scores a corpus only over its own classes.
"""
from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprise", "fear", "disgust")

# Words used in generated targets (EN adjective form, ZH word of the official release).
EN_WORD = {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
           "surprise": "surprised", "fear": "fearful", "disgust": "disgusted"}
ZH_WORD = {"neutral": "中性", "happy": "高兴", "sad": "伤心", "angry": "生气",
           "surprise": "惊讶", "fear": "害怕", "disgust": "厌恶"}

# raw corpus label -> canonical label
CORPUS_LABELS: dict[str, dict[str, str]] = {
    "emo_emilia": {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
                   "surprised": "surprise", "fearful": "fear", "disgusted": "disgust"},
    "meld": {"neutral": "neutral", "joy": "happy", "sadness": "sad", "anger": "angry",
             "surprise": "surprise", "fear": "fear", "disgust": "disgust"},
    "casia": {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
              "surprise": "surprise", "fear": "fear"},
    "synthetic": {e: e for e in EMOTIONS},
}


def corpus_classes(corpus: str) -> list[str]:
    """Canonical classes a corpus uses, in canonical order (unknown corpora use all seven)."""
    used = set(CORPUS_LABELS.get(corpus, {e: e for e in EMOTIONS}).values())
    return [e for e in EMOTIONS if e in used]


def canonical(corpus: str, raw: str) -> str:
    """Map a corpus's raw label to the canonical id; raise ``KeyError`` with the allowed labels otherwise."""
    table = CORPUS_LABELS.get(corpus, {e: e for e in EMOTIONS})
    key = raw.strip().lower()
    if key not in table:
        raise KeyError(f"unknown {corpus} label {raw!r} (expected one of {sorted(table)})")
    return table[key]
