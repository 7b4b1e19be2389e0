"""Free-text answer -> canonical emotion label (English and Chinese), deterministic and explainable.

How an answer is read:

1. Clause. Explicit chain-of-thought answers describe pitch, pace and content before concluding, and the
   description may name other emotions. Unless ``explicit=False``, the text after the *last* conclusion marker
   (``MARKERS``: "推测情绪为", "情感为", "the emotion is", "conveys a", "emotion:" ...) is parsed instead of the
   whole text; without a marker the whole text is parsed. When nothing parses after the marker (a truncated
   conclusion: "... the emotion is"), the text before it is read with quoted spans removed (``QUOTES``), so the
   transcript a CoT answer quotes ("I am so sad") is never taken as the answer.
2. Mentions. Every synonym of ``SYNONYMS_EN`` (whole words, case-insensitive, so "madam" is not "mad" and
   "unhappy" is sad, not happy) and ``SYNONYMS_ZH`` (substrings; the longest overlapping term wins, so "不开心"
   is sad) is located. A mention preceded by a simple negation ("not", "isn't", "never", "whether" within four words
   in the same clause; "不/没/没有/不是/并非/无/是否" right before, degree adverbs like "很" skipped) is dropped.
3. Decision. One distinct label -> that label. Several -> if a marker was used and the first mention starts
   right after it (``NEAR_MARKER`` characters; "conveys a happy and slightly nervous tone") the first one
   wins, unless the next other label is coordinated with it (``COORDINATED``: only "and"/"or"/"和"/"或"/"、"...
   in between, or any "or"/"或"/"还是": "the emotion is happy or sad", "情感为生气和高兴" name two answers);
   otherwise the answer is ``conflicting``. None -> ``no label`` (refusals, off-topic text).
4. Allowed set. With ``allowed`` (a corpus's classes), a label outside it is kept but marked ``out-of-set``
   (e.g. "disgust" on CASIA), which scoring counts as an error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from c2ser.labels import EMOTIONS

# canonical label -> English words (matched as whole words, lower-cased). Inflections are listed explicitly.
SYNONYMS_EN: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral", "neutrality", "calm", "calmly", "calmness", "emotionless", "unemotional"),
    "happy": ("happy", "happily", "happiness", "joy", "joyful", "joyous", "cheerful", "cheerfully", "glad",
              "excited", "excitement", "delighted", "pleased", "elated"),
    "sad": ("sad", "sadly", "sadness", "sorrow", "sorrowful", "unhappy", "unhappiness", "depressed", "melancholy",
            "melancholic", "gloomy", "grief", "heartbroken", "mournful"),
    "angry": ("angry", "angrily", "anger", "furious", "fury", "mad", "annoyed", "annoyance", "irritated",
              "rage", "enraged", "irate"),
    "surprise": ("surprise", "surprised", "astonished", "astonishment", "amazed", "amazement", "shocked"),
    "fear": ("fear", "fearful", "fearfully", "scared", "afraid", "frightened", "terrified", "terror", "panicked"),
    "disgust": ("disgust", "disgusted", "disgusting", "disgustful", "repulsed", "revolted"),
}

# canonical label -> Chinese words (substring match; the longest overlapping term wins).
SYNONYMS_ZH: dict[str, tuple[str, ...]] = {
    "neutral": ("中性", "中立", "平静", "平淡", "无明显情绪", "没有明显情绪"),
    "happy": ("高兴", "开心", "快乐", "喜悦", "愉快", "愉悦", "欢快", "兴奋"),
    "sad": ("伤心", "悲伤", "难过", "悲哀", "忧伤", "沮丧", "不高兴", "不开心", "不快乐", "不愉快"),
    "angry": ("生气", "愤怒", "恼火", "气愤", "发火", "恼怒"),
    "surprise": ("惊讶", "惊奇", "吃惊", "惊喜", "震惊"),
    "fear": ("恐惧", "害怕", "担心", "惊恐", "恐慌", "畏惧"),
    "disgust": ("厌恶", "反感", "恶心", "嫌弃", "讨厌"),
}

# Conclusion markers of explicit answers (regexes, case-insensitive); the text after the last one is parsed.
MARKERS: tuple[str, ...] = (
    r"推测情绪为", r"推测情感为", r"情绪为", r"情感为", r"情绪是", r"情感是", r"情绪：", r"情感：",
    r"\bthe emotion (?:of [^.,;]{0,40})?is\b", r"\bemotion(?:al state)? (?:is|was)\b", r"\bemotion\s*:",
    r"\bconvey(?:s|ed|ing)?\b(?: an?\b)?",
)
NEAR_MARKER = 16  # characters: a first mention this close to the marker is the conclusion
# Text between two label mentions that makes them two answers rather than a label and a nuance.
COORDINATED = re.compile(r"^[\s,，]*(?:and|or|and/or|plus|/|&|、|和|与|及|以及|跟|同|并且|或|或者|或是|还是)?[\s,，]*$"
                         r"|\bor\b|或|还是", re.IGNORECASE)
# Quoted spans (the transcript inside a CoT answer), dropped when falling back to the text before the marker.
QUOTES = re.compile(r'"[^"]*"|“[^”]*”|‘[^’]*’|「[^」]*」|『[^』]*』|(?<!\w)\'.*?\'(?!\w)', re.DOTALL)

NEGATORS_EN = {"not", "no", "never", "neither", "nor", "without", "hardly", "barely", "nothing", "lacks", "cannot",
               "whether"}
NEGATORS_ZH = ("不是", "没有", "并非", "并不", "是否", "不", "没", "非", "无", "毫无")
DEGREE_ZH = ("非常", "特别", "十分", "那么", "这么", "太", "很", "是", "太过", "一点")

_CLAUSE_BREAK = re.compile(r"[,.;:!?，。；：！？]|\bbut\b|但|而是")


@dataclass(frozen=True)
class ParseResult:
    label: str | None
    reason: str  # "ok", "ok (first after marker)", "no label", "conflicting: a, b", "out-of-set: x"

    @property
    def valid(self) -> bool:
        """True when the answer maps to a label of the allowed set."""
        return self.label is not None and not self.reason.startswith("out-of-set")


def _compile_en() -> re.Pattern:
    words = sorted({w for ws in SYNONYMS_EN.values() for w in ws}, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)


_EN_RE = _compile_en()
_EN_LABEL = {w: lab for lab, ws in SYNONYMS_EN.items() for w in ws}
_ZH_TERMS = sorted(((w, lab) for lab, ws in SYNONYMS_ZH.items() for w in ws), key=lambda t: -len(t[0]))
_MARKER_RE = re.compile("|".join(f"(?:{m})" for m in MARKERS), re.IGNORECASE)


def _negated_en(before: str) -> bool:
    clause = _CLAUSE_BREAK.split(before)[-1]
    tokens = re.findall(r"[a-z']+", clause.lower())[-4:]
    return any(t in NEGATORS_EN or t.endswith("n't") for t in tokens)


def _negated_zh(before: str) -> bool:
    s = _CLAUSE_BREAK.split(before)[-1]
    stripped = True
    while stripped:
        stripped = False
        for d in DEGREE_ZH:
            if s.endswith(d) and not s.endswith(NEGATORS_ZH):
                s, stripped = s[: -len(d)], True
    return s.endswith(NEGATORS_ZH)


def _mentions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, label) of every non-negated mention, in text order."""
    found: list[tuple[int, int, str]] = []
    for m in _EN_RE.finditer(text):
        if not _negated_en(text[: m.start()]):
            found.append((m.start(), m.end(), _EN_LABEL[m.group(1).lower()]))
    taken = [False] * len(text)
    for word, lab in _ZH_TERMS:  # longest first; a shorter term inside a longer match is ignored
        for m in re.finditer(re.escape(word), text):
            if any(taken[m.start():m.end()]):
                continue
            taken[m.start():m.end()] = [True] * len(word)
            if not _negated_zh(text[: m.start()]):
                found.append((m.start(), m.end(), lab))
    return sorted(found)


def _coordinated(clause: str, found: list[tuple[int, int, str]]) -> bool:
    """True when the first mention and the next mention of another label are joined as alternatives/a pair."""
    first_end, first = found[0][1], found[0][2]
    nxt = next(start for start, _, lab in found if lab != first)
    return COORDINATED.search(clause[first_end:nxt]) is not None


def parse_emotion(text: str, allowed: Sequence[str] | None = None, explicit: bool | None = None) -> ParseResult:
    """Map a model answer to a canonical label (see the module docstring for the rules).

    ``allowed``: the corpus's classes (``corpus_classes``); None accepts all seven. ``explicit``: None or True
    read the clause after the last conclusion marker when there is one; False always reads the whole text.
    """
    text = text or ""
    clause, marker_end = text, None
    if explicit is not False:
        last = None
        for last in _MARKER_RE.finditer(text):
            pass
        if last is not None:
            clause, marker_end = text[last.end():], 0
    found = _mentions(clause)
    if not found and marker_end is not None:  # nothing after the marker: the text before it, quotes removed
        clause, marker_end = QUOTES.sub(" ", text[: last.start()]), None
        found = _mentions(clause)
    labels = list(dict.fromkeys(lab for _, _, lab in found))
    if not labels:
        return ParseResult(None, "no label")
    if len(labels) == 1:
        label, reason = labels[0], "ok"
    elif marker_end is not None and found[0][0] - marker_end <= NEAR_MARKER and not _coordinated(clause, found):
        label, reason = found[0][2], "ok (first after marker)"
    else:
        ordered = [e for e in EMOTIONS if e in labels]
        return ParseResult(None, "conflicting: " + ", ".join(ordered))
    if allowed is not None and label not in allowed:
        return ParseResult(label, f"out-of-set: {label}")
    return ParseResult(label, reason)
