"""Chat variety in training (data.chat_prompts): varied EN/ZH questions answered in the question's language, and
"why?" follow-ups answered with the explicit reasoning in the layout ``c2ser chat`` uses for a second turn."""
import random
import re

import pytest

from c2ser.prompts import EXPLICIT_PROMPT, EXPLICIT_QUESTIONS, IMPLICIT_PROMPT, IMPLICIT_QUESTIONS, WHY_QUESTIONS
from c2ser.training.data import ManifestDataset, chat_variant

ROW = {"key": "k1", "emotion": "angry", "language": "en", "text": "Go away",
       "style": {"pitch_bin": "medium", "volume_bin": "high", "pace_bin": "high"}}
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_variants_answer_in_the_question_language_with_the_same_label():
    seen = {"en": 0, "zh": 0}
    follow_ups = 0
    for i in range(200):
        v = chat_variant(ROW, random.Random(i))
        (q_e, a_e), (q_i, a_i) = v["explicit"], v["implicit"]
        lang = "zh" if q_i in IMPLICIT_QUESTIONS["zh"] else "en"
        assert q_e in EXPLICIT_QUESTIONS[lang]
        seen[lang] += 1
        if lang == "en":
            assert a_i.startswith("The emotion of this speech is angry.") and not CJK.search(a_i.replace("Go away", ""))
            assert "loud" in a_e and "fast" in a_e and a_e.endswith("angry.")
        else:
            assert a_i.startswith("这条语音的情感为生气。") and "响亮" in a_e and a_e.endswith("生气。")
        if "\n" in a_i:  # answer \n why-question \n explicit reasoning
            first, why, reasoning = a_i.split("\n")
            assert why in WHY_QUESTIONS[lang] and reasoning == a_e
            follow_ups += 1
    assert seen["en"] > 60 and seen["zh"] > 60 and 30 < follow_ups < 90  # FOLLOW_UP = 0.3 of 200


def test_rows_without_style_bins_keep_the_fixed_prompts():
    assert chat_variant(dict(ROW, style=None), random.Random(0)) is None


def test_dataset_varies_prompts_only_when_asked(tiny_models, tmp_path):
    from c2ser.models.build import load_tokenizer
    from c2ser.models.config import LLMConfig
    from c2ser.models.processor import C2SERProcessor
    from c2ser.testing import make_toy_corpus
    from c2ser.training.data import read_rows

    paths = make_toy_corpus(tmp_path, per_class=2)
    rows = read_rows(paths["train"])
    for r in rows:
        r["style"] = dict(ROW["style"])
    proc = C2SERProcessor(load_tokenizer(LLMConfig(name_or_path=str(tiny_models["llm"]))))
    fixed = ManifestDataset(rows, proc, paths["features"], True)
    assert {fixed[i]["implicit"][0] for i in range(len(rows))} == {IMPLICIT_PROMPT}
    varied = ManifestDataset(rows, proc, paths["features"], True, seed=3, chat_prompts=1.0)
    items = [varied[i] for i in range(len(rows))]
    assert {it["implicit"][0] for it in items} != {IMPLICIT_PROMPT}
    assert {it["explicit"][0] for it in items} <= set(EXPLICIT_QUESTIONS["en"] + EXPLICIT_QUESTIONS["zh"])
    assert [it["implicit"] for it in items] == [varied[i]["implicit"] for i in range(len(rows))]  # deterministic
    assert max(varied.tokens) > max(fixed.tokens)  # batch caps count the longer chat answers
    with pytest.raises(ValueError, match="chat_prompts"):
        ManifestDataset(rows, proc, paths["features"], True, chat_prompts=1.5)
    assert EXPLICIT_PROMPT in EXPLICIT_QUESTIONS["en"]


def _chat_consistency():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "eval" / "chat_consistency.py"
    spec = importlib.util.spec_from_file_location("chat_consistency", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chat_check_questions_are_worded_unlike_every_training_prompt():
    from difflib import SequenceMatcher

    from c2ser.prompts import GEN_SER_PROMPT

    cc = _chat_consistency()
    training = [p for d in (EXPLICIT_QUESTIONS, IMPLICIT_QUESTIONS, WHY_QUESTIONS) for ps in d.values() for p in ps]
    training += [EXPLICIT_PROMPT, IMPLICIT_PROMPT, GEN_SER_PROMPT]
    for asked in list(cc.QUESTIONS.values()) + list(cc.FOLLOW_UPS.values()):
        closest = max(training, key=lambda t: SequenceMatcher(None, asked.lower(), t.lower()).ratio())
        # "Why do you think so?" (a training follow-up) scored 1.0; the closest training prompts score ≤ 0.57
        assert SequenceMatcher(None, asked.lower(), closest.lower()).ratio() < 0.6, (asked, closest)


def test_chat_clips_are_balanced_over_languages_and_emotions():
    cc = _chat_consistency()
    emotions = ("neutral", "happy", "sad", "angry")
    # the synthetic manifest's order: emotion blocks, languages alternating (every 6th row was always English)
    rows = [{"key": f"{e}-{j}", "emotion": e, "language": ("en", "zh")[j % 2]} for e in emotions for j in range(60)]
    picked = cc.balanced_rows(rows, 40)
    cells = {}
    for r in picked:
        cells[(r["language"], r["emotion"])] = cells.get((r["language"], r["emotion"]), 0) + 1
    assert len(picked) == 40 and len({r["key"] for r in picked}) == 40
    assert cells == {(lang, e): 5 for lang in ("en", "zh") for e in emotions}
    spread = [int(r["key"].split("-")[1]) for r in picked if r["language"] == "en" and r["emotion"] == "sad"]
    assert spread == [0, 12, 24, 36, 48]  # spread over the cell, not its first rows
    odd = cc.balanced_rows(rows, 10)  # 10 over 8 cells: the first two cells (sorted) get one more
    assert len(odd) == 10 and sum(r["language"] == "zh" for r in odd) == 4
    assert cc.balanced_rows(rows[:3], 40) == rows[:3]


def test_chat_rates_count_an_unparsed_answer_as_disagreement():
    cc = _chat_consistency()
    records = [{"label": None, "predict": None, "follow_up_label": None, "answer": "度度", "language": "en"},
               {"label": "sad", "predict": "sad", "follow_up_label": "happy", "answer": "It is sad.", "language": "en"}]
    assert cc.rates(records) == {"n": 2, "same_label": 0.5, "follow_up_same_label": 0.0, "same_language": 0.5}
