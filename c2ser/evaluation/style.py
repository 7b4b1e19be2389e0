"""Speaking-style words of explicit answers (pitch, pace, volume) -> low/medium/high bins, and their accuracy.

The explicit targets describe style with an adjective next to its attribute noun: EN "a slow pace, normal
pitch, and low energy"; ZH "以缓慢的速度、高昂的语调和中等音量的声音" or "语速慢，音调高". ``STYLE_WORDS`` lists, per attribute and
language, the adjectives of each bin and the attribute nouns; the first adjective+noun pair found is used.
Reference bins are the manifest's ``style.pitch_bin / pace_bin / volume_bin``.
"""
from __future__ import annotations

import re
from typing import Iterable

BINS = ("low", "medium", "high")
ATTRIBUTES = {"pitch": "pitch_bin", "pace": "pace_bin", "volume": "volume_bin"}

# attribute -> language -> (bin -> adjectives, attribute nouns)
STYLE_WORDS: dict[str, dict[str, tuple[dict[str, tuple[str, ...]], tuple[str, ...]]]] = {
    "pitch": {
        "en": ({"low": ("low", "deep"), "medium": ("medium", "normal", "moderate", "average"), "high": ("high",)},
               ("pitch", "pitched", "intonation")),
        "zh": ({"low": ("低沉", "较低", "低"), "medium": ("平稳", "中等", "适中", "正常", "中"),
                "high": ("高昂", "较高", "高")}, ("语调", "音调", "音高", "声调")),
    },
    "pace": {
        "en": ({"low": ("slow", "slower", "leisurely"), "medium": ("medium", "normal", "moderate", "average", "steady"),
                "high": ("fast", "quick", "rapid", "brisk", "faster")}, ("pace", "speed", "tempo", "rate")),
        "zh": ({"low": ("缓慢", "较慢", "慢"), "medium": ("中等", "适中", "正常", "平稳", "中"),
                "high": ("快速", "较快", "快")}, ("速度", "语速")),
    },
    "volume": {
        "en": ({"low": ("quiet", "soft", "low"), "medium": ("medium", "normal", "moderate", "average"),
                "high": ("loud", "high")}, ("volume", "energy", "loudness", "voice")),
        "zh": ({"low": ("轻柔", "较小", "轻", "低", "小"), "medium": ("中等", "适中", "正常", "中"),
                "high": ("响亮", "较大", "洪亮", "大", "高")}, ("音量",)),
    },
}


def _pattern(lang: str, adjectives: Iterable[str], nouns: Iterable[str]) -> re.Pattern:
    adj = "|".join(map(re.escape, sorted(adjectives, key=len, reverse=True)))
    noun = "|".join(map(re.escape, nouns))
    if lang == "en":  # "slow pace", "normal-pitched", "low, steady energy" is not matched (one adjective)
        return re.compile(rf"\b({adj})[\s-]+(?:{noun})\b", re.IGNORECASE)
    return re.compile(rf"({adj})的?(?:{noun})|(?:{noun})(?:较|很|偏|比较)?({adj})")  # 缓慢的速度 / 语速慢


_PATTERNS = {
    (attr, lang): (_pattern(lang, [w for ws in table.values() for w in ws], nouns),
                   {w: b for b, ws in table.items() for w in ws})
    for attr, langs in STYLE_WORDS.items() for lang, (table, nouns) in langs.items()
}


def parse_style(text: str) -> dict[str, str | None]:
    """{"pitch", "pace", "volume"} -> "low"/"medium"/"high" or None, reading EN and ZH phrasing."""
    out: dict[str, str | None] = {}
    for attr in ATTRIBUTES:
        hits = []
        for lang in ("en", "zh"):
            pat, to_bin = _PATTERNS[(attr, lang)]
            m = pat.search(text or "")
            if m:
                hits.append((m.start(), to_bin[(m.group(1) or m.group(2)).lower()]))
        out[attr] = min(hits)[1] if hits else None
    return out


def style_accuracy(texts: list[str], references: list[dict | None]) -> dict:
    """Per attribute: accuracy vs the reference bins (unparsed = wrong), parsed rate and count scored.

    ``references`` are manifest ``style`` dicts; rows without a bin for an attribute are not scored for it.
    """
    result = {}
    for attr, field in ATTRIBUTES.items():
        n = correct = parsed = 0
        for text, ref in zip(texts, references):
            gold = (ref or {}).get(field)
            if gold not in BINS:
                continue
            pred = parse_style(text)[attr]
            n += 1
            parsed += pred is not None
            correct += pred == gold
        result[attr] = {"n": n, "accuracy": correct / n if n else None, "parsed_rate": parsed / n if n else None}
    return result
