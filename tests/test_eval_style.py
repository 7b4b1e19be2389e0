"""Style words (pitch/pace/volume) of explicit answers -> bins, and accuracy vs manifest bins."""
from __future__ import annotations

import pytest

from c2ser.evaluation.style import parse_style, style_accuracy

CASES = [
    ("Spoken by a young woman with a slow pace, normal pitch, and low energy, the phrase 'Dear! dear!' conveys a "
     "happy and sincere tone.", {"pace": "low", "pitch": "medium", "volume": "low"}),
    ("With a fast pace, high pitch, and high energy, the phrase 'No way!' conveys a surprised tone.",
     {"pace": "high", "pitch": "high", "volume": "high"}),
    ("A man speaks at a medium speed with a deep pitch and a loud voice.",
     {"pace": "medium", "pitch": "low", "volume": "high"}),
    ("She whispers in a quiet voice at a normal pace.", {"pace": "medium", "pitch": None, "volume": "low"}),
    ("说话者以缓慢的速度、高昂的语调和中等音量的声音说道：“不知道艾德林小姐有没有给我们准备好吃的点心呢。”通过分析语音特征，推测情绪为快乐。",
     {"pace": "low", "pitch": "high", "volume": "medium"}),
    ("说话者以快速的速度、低沉的语调和响亮音量的声音说道：“快走！”", {"pace": "high", "pitch": "low", "volume": "high"}),
    ("说话者以中等的速度、平稳的语调和轻柔音量的声音说道：“好的。”", {"pace": "medium", "pitch": "medium", "volume": "low"}),
    ("语速慢，音调高，音量低", {"pace": "low", "pitch": "high", "volume": "low"}),
    ("她的语速较快，声调偏低沉，音量适中", {"pace": "high", "pitch": "low", "volume": "medium"}),
    ("以慢的语速、低的音调和高音量说道", {"pace": "low", "pitch": "low", "volume": "high"}),
    ("这条语音的的情感为高兴", {"pace": None, "pitch": None, "volume": None}),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_parse_style(text, expected):
    assert parse_style(text) == expected


def test_style_accuracy_counts_unparsed_as_wrong_and_skips_missing_bins():
    texts = [CASES[0][0], CASES[4][0], "这条语音的的情感为高兴"]
    refs = [{"pitch_bin": "medium", "pace_bin": "low", "volume_bin": "high"},
            {"pitch_bin": "high", "pace_bin": "low", "volume_bin": "medium"},
            {"pitch_bin": "low", "pace_bin": None, "volume_bin": "low"}]
    acc = style_accuracy(texts, refs)
    assert acc["pitch"] == {"n": 3, "accuracy": pytest.approx(2 / 3), "parsed_rate": pytest.approx(2 / 3)}
    assert acc["pace"] == {"n": 2, "accuracy": 1.0, "parsed_rate": 1.0}
    assert acc["volume"] == {"n": 3, "accuracy": pytest.approx(1 / 3), "parsed_rate": pytest.approx(2 / 3)}
