"""Free-text answer → canonical emotion, deterministically (EN + ZH).

1. For explicit chain-of-thought answers only the *conclusion* is parsed: the text after the last marker such
   as "the emotion is", "conveys a … tone", "推测情绪为", "情感为" (the description before it may mention any
   emotion words). Without a marker the whole answer is parsed.
2. Synonyms and inflections map to the seven canonical labels (tables below). English matches whole words,
   so "sadness" counts but "madam" does not; "unhappy" is sad, not happy.
3. Simple negations drop a mention: "not angry", "isn't happy", "no sign of fear", "不是生气", "没有生气".
4. Exactly one remaining label → that label. None → unparseable ("no label"); two or more → unparseable
   ("conflicting: a, b"). Unparseable answers count as wrong and are reported as the hallucination rate.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

EN_SYNONYMS: dict[str, list[str]] = {
    "neutral": ["neutral", "neutrality", "calm", "calmly", "calmness", "plain", "emotionless", "indifferent"],
    "happy": ["happy", "happily", "happiness", "joy", "joyful", "joyous", "cheerful", "cheerfully", "glad",
              "delighted", "excited", "excitement", "pleased", "elated", "amused"],
    "sad": ["sad", "sadly", "sadness", "sorrow", "sorrowful", "unhappy", "unhappiness", "upset", "depressed",
            "gloomy", "melancholy", "grief", "heartbroken", "down"],
    "angry": ["angry", "angrily", "anger", "furious", "fury", "mad", "annoyed", "irritated", "rage", "enraged",
              "frustrated", "frustration", "hostile"],
    "surprise": ["surprise", "surprised", "surprising", "astonished", "astonishment", "amazed", "amazement",
                 "shocked", "startled"],
    "fear": ["fear", "fearful", "scared", "afraid", "frightened", "terrified", "anxious", "anxiety", "nervous",
             "worried", "panic"],
    "disgust": ["disgust", "disgusted", "disgusting", "disgusts", "revulsion", "repulsed", "contempt", "contemptuous"],
}
ZH_SYNONYMS: dict[str, list[str]] = {
    "neutral": ["中性", "中立", "平静", "平淡", "冷静", "平和"],
    "happy": ["高兴", "开心", "快乐", "喜悦", "愉快", "兴奋", "欢快", "快活", "欣喜"],
    "sad": ["伤心", "悲伤", "难过", "悲痛", "沮丧", "失落", "哀伤", "忧伤"],
    "angry": ["生气", "愤怒", "恼火", "气愤", "发火", "恼怒", "暴躁"],
    "surprise": ["惊讶", "惊奇", "吃惊", "震惊", "意外", "惊喜"],
    "fear": ["恐惧", "害怕", "惊恐", "担心", "紧张", "畏惧", "恐慌"],
    "disgust": ["厌恶", "反感", "恶心", "嫌弃", "讨厌"],
}
# Conclusion markers: the answer is parsed from the text after the LAST one found.
MARKERS = [r"the emotion (?:of (?:this|the) (?:speech|speaker|utterance) )?is", r"emotion(?:al state)? is",
           r"emotion:", r"conveys? an? ", r"sounds?", r"推测情绪为", r"情感为", r"情绪为", r"情绪是", r"情感是"]
EN_NEGATION = re.compile(r"(?:\b(?:not|no|never|without|neither|nor|hardly)\b|n't)(?:\s+\w+){0,2}\s*$", re.I)
ZH_NEGATION = ("不是", "没有", "并非", "不", "无", "非")

_EN_WORDS = {w: lab for lab, ws in EN_SYNONYMS.items() for w in ws}
_EN_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _EN_WORDS), key=len, reverse=True)) + r")\b", re.I)
_ZH_WORDS = {w: lab for lab, ws in ZH_SYNONYMS.items() for w in ws}
_ZH_RE = re.compile("|".join(sorted(map(re.escape, _ZH_WORDS), key=len, reverse=True)))
_MARKER_RE = re.compile("|".join(MARKERS), re.I)


@dataclass(frozen=True)
class ParseResult:
    label: str | None        # canonical label, or None when unparseable
    reason: str              # "ok", "no label", "conflicting: a, b", "out of set: x"

    @property
    def ok(self) -> bool:
        return self.label is not None and self.reason == "ok"


def conclusion(text: str) -> str:
    """The part of an answer after its last conclusion marker (the whole text when there is none)."""
    last = None
    for m in _MARKER_RE.finditer(text):
        last = m
    return text[last.end():] if last else text


def _mentions(text: str) -> list[str]:
    found = []
    for m in _EN_RE.finditer(text):
        if not EN_NEGATION.search(text[max(0, m.start() - 40): m.start()]):
            found.append(_EN_WORDS[m.group(1).lower()])
    for m in _ZH_RE.finditer(text):
        before = text[max(0, m.start() - 3): m.start()]
        if not any(before.endswith(n) for n in ZH_NEGATION):
            found.append(_ZH_WORDS[m.group(0)])
    return found


def parse_emotion(text: str, allowed: Sequence[str] | None = None) -> ParseResult:
    """Canonical label of a free-text answer (see the module docstring); ``allowed`` restricts the label set."""
    labels = _mentions(conclusion(text or ""))
    distinct = sorted(set(labels), key=labels.index)
    if not distinct:
        return ParseResult(None, "no label")
    if len(distinct) > 1:
        return ParseResult(None, "conflicting: " + ", ".join(distinct))
    label = distinct[0]
    if allowed is not None and label not in allowed:
        return ParseResult(label, f"out of set: {label}")
    return ParseResult(label, "ok")
