"""The demo's corpus design and result tooling: held-out voices (distinct by their audio) and sentences per split, a
style signature per emotion, the Gen-SER step choice on validation, and the mean ± std table over seeds."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from c2ser.data.synthetic import (INTENDED, MORE_TRAIN_SENTENCES, SENTENCES, SPLITS, TEST_SENTENCES, VALID3_SENTENCES,
                                  VARIANTS, VOICES, VoiceRender, _plan, build_synthetic_corpus, duplicate_voices,
                                  render_voices, sentence_pool)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
import aggregate_seeds  # noqa: E402
import select_gen_ser_steps  # noqa: E402

FOUR = ("neutral", "happy", "sad", "angry")


def _variant(voice: str) -> str:
    return voice.split("+")[1]


def test_splits_use_disjoint_voice_variants_and_sentences():
    for lang in ("en", "zh"):
        variants = {s: {_variant(v) for v in VOICES[lang][s]} for s in SPLITS}
        pools = {s: set(sentence_pool(lang, s)) for s in SPLITS}
        for i, a in enumerate(SPLITS):
            for b in SPLITS[i + 1:]:
                assert not variants[a] & variants[b], (lang, a, b)
                assert not pools[a] & pools[b], (lang, a, b)
        assert len(variants["test"]) >= 4 and len(variants["valid2"]) >= 4 and len(variants["valid"]) >= 3
        own = set(TEST_SENTENCES[lang]) | set(VALID3_SENTENCES[lang]) | set(MORE_TRAIN_SENTENCES[lang])
        assert set().union(*pools.values()) == set(SENTENCES[lang]) | own
        assert set(MORE_TRAIN_SENTENCES[lang]) <= pools["train"]
        assert pools["valid3"] == set(VALID3_SENTENCES[lang]) and not pools["valid3"] & set(SENTENCES[lang])
        assert pools["test"] == set(TEST_SENTENCES[lang]) and not pools["test"] & set(SENTENCES[lang])
    assert len(VOICES["en"]["train"]) == len(VARIANTS["train"]) == 49


def test_every_voice_renders_audio_distinct_from_every_other_voice():
    # on the audio, not the names: one fixed sentence per voice at the neutral prosody. The base voices (en-us,
    # cmn, ...) are in the set too, so a variant espeak-ng ignores (it did for every en-gb+X) fails the check.
    for lang in ("en", "zh"):
        voices = [v for s in SPLITS for v in VOICES[lang][s]]
        assert len(set(voices)) == len(voices)
        bases = sorted({v.split("+")[0] for v in voices})
        renders = render_voices(voices + bases, lang)
        assert duplicate_voices(renders) == [], lang
        assert len({r.sha1 for r in renders}) == len(renders)


def test_the_voice_check_sees_ignored_variants_and_near_copies():
    en_gb = render_voices(["en-gb+f3", "en-gb+m2", "en+f3", "en+m2"], "en")
    assert en_gb[0].sha1 == en_gb[1].sha1 and en_gb[2].sha1 != en_gb[3].sha1  # espeak-ng ignores en-gb's variant
    assert [(a, b) for a, b, _ in duplicate_voices(en_gb)] == [("en-gb+f3", "en-gb+m2")]
    near = render_voices(["en-us+adam", "en-us+caleb"], "en")  # other samples, the same voice to the ear
    assert near[0].sha1 != near[1].sha1 and [(a, b) for a, b, _ in duplicate_voices(near)] == [
        ("en-us+adam", "en-us+caleb")]
    x = near[0]
    louder = VoiceRender("louder", "other", x.logmel + 6.0, x.level_db + 6, x.seconds)  # a gain is not a new voice
    other = VoiceRender("other", "other2", x.logmel + np.linspace(-3, 3, 40)[:, None], x.level_db, x.seconds)
    assert duplicate_voices([x, louder]) and not duplicate_voices([x, other])


def test_every_voice_speaks_every_emotion_about_equally_often():
    jobs = _plan(list(FOUR), per_class=150, langs=["en", "zh"], seed=0, test_per_class=60, valid_per_class=40,
                 valid2_per_class=40, valid3_per_class=40)
    for split in SPLITS:
        counts = {}
        for j in jobs:
            if j["split"] == split:
                counts.setdefault(j["voice"], {}).setdefault(j["emotion"], 0)
                counts[j["voice"]][j["emotion"]] += 1
        assert len(counts) == sum(len(VOICES[lang][split]) for lang in ("en", "zh"))
        for voice, per in counts.items():  # all four emotions, within one clip of each other
            assert set(per) == set(FOUR) and max(per.values()) - min(per.values()) <= 1, (split, voice, per)


def test_plan_balances_classes_and_languages_with_held_out_voices():
    jobs = _plan(list(FOUR), per_class=10, langs=["en", "zh"], seed=0, test_per_class=60, valid_per_class=20)
    test = [j for j in jobs if j["split"] == "test"]
    assert len(test) == 240 and all(sum(j["emotion"] == e for j in test) == 60 for e in FOUR)
    assert sum(j["lang"] == "zh" for j in test) == 120
    assert all(j["voice"] in VOICES[j["lang"]]["test"] for j in test)
    assert all(j["voice"] in VOICES[j["lang"]]["valid"] for j in jobs if j["split"] == "valid")
    assert not [j for j in jobs if j["split"] in ("valid2", "valid3")]  # valid2/3_per_class default to 0


def test_the_third_validation_split_changes_no_clip_of_the_others():
    """valid3 was added after the demo's results: turning it on must leave every other split's clips (sentence,
    voice, jitter) as they were, and its own clips use only its voices and sentences."""
    kw = dict(per_class=20, langs=["en", "zh"], seed=3, test_per_class=10, valid_per_class=8, valid2_per_class=6)
    without = _plan(list(FOUR), **kw)
    with_valid3 = _plan(list(FOUR), **kw, valid3_per_class=12)
    assert [j for j in with_valid3 if j["split"] != "valid3"] == without
    valid3 = [j for j in with_valid3 if j["split"] == "valid3"]
    assert len(valid3) == 48 and sum(j["lang"] == "zh" for j in valid3) == 24
    assert {j["voice"] for j in valid3} == {"en-us+iven3", "en+grandpa", "cmn+iven3", "cmn+grandpa"}
    assert all(j["text"] in VALID3_SENTENCES[j["lang"]] for j in valid3)


def test_the_added_training_sentences_change_no_clip_of_the_other_splits(monkeypatch):
    """MORE_TRAIN_SENTENCES came after the demo's results: with or without them, every clip of valid, valid2, valid3
    and test is the same, and a training clip differs at most in its sentence, which comes from the whole pool."""
    import c2ser.data.synthetic as synthetic

    kw = dict(per_class=30, langs=["en", "zh"], seed=5, test_per_class=10, valid_per_class=8, valid2_per_class=6,
              valid3_per_class=4)
    more = _plan(list(FOUR), **kw)
    monkeypatch.setattr(synthetic, "MORE_TRAIN_SENTENCES", {"en": [], "zh": []})
    fewer = _plan(list(FOUR), **kw)
    assert [j for j in more if j["split"] != "train"] == [j for j in fewer if j["split"] != "train"]
    assert [{**j, "text": None} for j in more] == [{**j, "text": None} for j in fewer]
    train = [j for j in more if j["split"] == "train"]
    first = {lang: set(SENTENCES[lang][:-synthetic.HELD_OUT[lang]]) for lang in ("en", "zh")}
    assert all(j["text"] in first[j["lang"]] for j in fewer if j["split"] == "train")
    added = [j for j in train if j["text"] in MORE_TRAIN_SENTENCES[j["lang"]]]
    assert 0.5 < len(added) / len(train) < 0.85   # the pool is 2/3 added sentences (56 of 84, 38 of 57)

def test_each_demo_emotion_has_its_own_style_signature():
    signatures = {e: tuple(INTENDED[e][f] for f in ("pitch_bin", "volume_bin", "pace_bin")) for e in FOUR}
    assert signatures == {"neutral": ("medium", "medium", "medium"), "happy": ("high", "medium", "high"),
                          "sad": ("low", "low", "low"), "angry": ("medium", "high", "high")}


def test_gen_ser_steps_are_chosen_by_validation_ua_ties_to_fewest():
    assert select_gen_ser_steps.select_steps({1: 0.80, 2: 0.85, 4: 0.85, 8: 0.70}) == 2
    assert select_gen_ser_steps.select_steps({8: 0.9, 1: 0.9}) == 1


def _results(d: Path, ua: float, style=None):
    d.mkdir(parents=True)
    r = {"n": 240, "UA": ua, "WA": ua, "corpus": "synthetic"}
    if style:
        r["style_accuracy"] = dict(style)  # as c2ser eval writes it
    (d / "results.json").write_text(json.dumps(r))


def test_aggregate_reports_mean_and_sample_std_per_system(tmp_path):
    for s, ua in (("0", 0.90), ("1", 0.92), ("2", 0.94)):
        d = tmp_path / f"seed{s}"
        _results(d / "eval" / "stage2-implicit", ua)
        _results(d / "eval_valid" / "stage2-implicit", ua - 0.02)
        _results(d / "eval_valid2" / "stage2-implicit", ua - 0.04)
        _results(d / "eval" / "stage1-explicit", 0.8, {"pitch": 0.9, "volume": 0.8, "pace": 0.7})
        (d / "cpu_times.txt").write_text("1m30.500s 0m9.500s\n")
        (d / "wall.json").write_text(json.dumps({"wall_s": 100, "stages": "0-12"}))
    text = aggregate_seeds.table(aggregate_seeds.collect(tmp_path, ["0", "1", "2"]))
    row = next(line for line in text.splitlines() if line.startswith("| stage 2, implicit answer"))
    assert "| 3 | 90.0 ± 2.0 | 88.0 ± 2.0 | 92.0 ± 2.0 | 240 |" in row  # valid, valid2, test (sample std of 90, 92, 94)
    s1 = next(line for line in text.splitlines() if line.startswith("| stage 1, explicit CoT answer"))
    assert "| 90.0 ± 0.0 | 80.0 ± 0.0 | 70.0 ± 0.0 |" in s1 and "| 3 | – | – | 80.0 ± 0.0 |" in s1  # no valid runs
    assert "| 0 | – | – | – | 100 | 100 | 0-12 |" in text  # 90.5 + 9.5 CPU seconds
    assert "Chat" not in text  # no chat_consistency.json: no chat line


def test_aggregate_reports_chat_consistency_over_seeds(tmp_path):
    for s, same in (("0", 0.75), ("1", 0.85)):
        d = tmp_path / f"seed{s}"
        _results(d / "eval" / "stage2-implicit", 0.9)
        rates = {"n": 80, "same_label": same, "follow_up_same_label": 0.5, "same_language": 1.0}
        zh_clips = {"n": 40, "same_label": same - 0.1, "follow_up_same_label": 0.25, "same_language": 0.5}
        (d / "chat_consistency.json").write_text(json.dumps({"overall": rates, "en": rates, "audio_zh": zh_clips,
                                                             "records": []}))
    text = aggregate_seeds.table(aggregate_seeds.collect(tmp_path, ["0", "1"]))
    assert "80 conversations per seed" in text and "over 2 seeds" in text
    assert "| all | 80 | 80.0 ± 7.1 | 50.0 ± 0.0 | 100.0 ± 0.0 |" in text  # sample std of 75, 85
    assert "| English questions | 80 | 80.0 ± 7.1 |" in text
    assert "| Chinese clips | 40 | 70.0 ± 7.1 | 25.0 ± 0.0 | 50.0 ± 0.0 |" in text
    assert "Chinese questions" not in text  # not in the files: no row


def test_aggregate_names_a_missing_seed(tmp_path):
    with pytest.raises(FileNotFoundError, match="seed7"):
        aggregate_seeds.collect(tmp_path, ["7"])
    assert aggregate_seeds.main([str(tmp_path), "--seeds", "7"]) == 1


def test_aggregate_says_why_a_head_parameter_count_is_missing(tmp_path, capsys):
    d = tmp_path / "seed0" / "head_gen_ser" / "final" / "head"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("head_stage: {gen_ser: {steps: 2}}\n")  # no weights next to it
    info = aggregate_seeds.head_info(tmp_path / "seed0", "gen_ser")
    assert info == {"steps": 2}
    err = capsys.readouterr().err
    assert "head not loadable" in err and str(d) in err


def test_aggregate_reports_robustness_per_condition_and_plots_the_means(tmp_path):
    conditions = ("clean", "noise:white:20", "noise:white:10")
    # test UA per seed: stage-2 implicit (clean, white 20, white 10) and the CE head in seed 0 only
    ua = {"0": {"stage2-implicit": (0.96, 0.90, 0.80), "head-ce": (0.95, 0.50, 0.25)},
          "1": {"stage2-implicit": (0.98, 0.94, 0.70)}}
    for s, systems in ua.items():
        d = tmp_path / f"seed{s}"
        (d / "robustness").mkdir(parents=True)
        lines = ["system,checkpoint,mode,condition,n,UA,WA,macro_F1,unparsed_rate"]
        lines += [f"{system},ck,implicit,{c},240,{v},{v},{v},0.0"
                  for system, values in systems.items() for c, v in zip(conditions, values)]
        (d / "robustness" / "robustness.csv").write_text("\n".join(lines) + "\n")
    text = aggregate_seeds.table(aggregate_seeds.collect(tmp_path, ["0", "1"]))
    assert "the 240 test clips" in text and "over 2 seeds" in text
    assert "| system | seeds | clean | noise:white:20 | noise:white:10 |" in text
    # means of (96, 98), (90, 94), (80, 70); sample std of two values = |a - b| / sqrt(2)
    assert "| stage 2, implicit answer | 2 | 97.0 ± 1.4 | 92.0 ± 2.8 | 75.0 ± 7.1 |" in text
    assert "| CE head, same conditioning | 1 | 95.0 | 50.0 | 25.0 |" in text
    assert "Gen-SER head on the stage-2 backbone | 1 |" not in text  # in no CSV: no row

    out = tmp_path / "RESULTS.md"
    assert aggregate_seeds.main([str(tmp_path), "--seeds", "0,1", "--out", str(out)]) == 0
    png = (tmp_path / "robustness.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    conditions_, means = aggregate_seeds.robustness_means(aggregate_seeds.collect(tmp_path, ["0", "1"]))
    assert conditions_ == list(conditions)
    got = {(m["system"], m["condition"]): round(100 * m["UA"], 6) for m in means}
    assert got == {("stage2-implicit", "clean"): 97.0, ("stage2-implicit", "noise:white:20"): 92.0,
                   ("stage2-implicit", "noise:white:10"): 75.0, ("head-ce", "clean"): 95.0,
                   ("head-ce", "noise:white:20"): 50.0, ("head-ce", "noise:white:10"): 25.0}


@pytest.mark.parametrize("option", ["per_class", "valid_per_class", "valid2_per_class", "valid3_per_class",
                                    "test_per_class"])
def test_a_negative_clip_count_is_refused_before_anything_is_written(tmp_path, option):
    out = tmp_path / "corpus"
    with pytest.raises(ValueError, match=re.escape(f"{out}: {option}=-1: expected a count of clips ≥ 0")):
        build_synthetic_corpus(out, FOUR, **{option: -1})
    assert not out.exists()


def test_the_corpus_script_says_a_bad_count_in_one_line(tmp_path):
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "corpus"
    r = subprocess.run([sys.executable, str(root / "data_prep" / "synthetic.py"), "--out", str(out),
                        "--valid3-per-class", "-2"], capture_output=True, text=True, cwd=root,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"synthetic.py: error: synthetic corpus {out}: valid3_per_class=-2: "
                                             "expected a count of clips ≥ 0"]
    assert not out.exists()
