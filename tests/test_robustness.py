"""``c2ser eval --condition`` and eval/robustness.py on tiny checkpoints: every system under every condition,
Emotion2Vec-S online on the degraded audio, deterministic per clip, with a table, a CSV and a plot."""
import csv
import json
import sys
from pathlib import Path

import pytest

from c2ser.cli import main as c2ser_main
from c2ser.evaluation.predictions import read_predictions
from c2ser.testing import build_tiny_emotion2vec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from robustness import main as robustness_main  # noqa: E402

from test_head_stage import _barely_trained_gen_ser  # noqa: E402

CONDITIONS = ["clean", "noise:white:20", "noise:babble:10"]


@pytest.fixture(scope="module")
def systems(tiny_models, tmp_path_factory):
    """(gen-ser head checkpoint whose backbone is a tiny C2SER model, toy corpus, tiny Emotion2Vec-S)."""
    root = tmp_path_factory.mktemp("robust")
    head, corpus = _barely_trained_gen_ser(tiny_models, root)
    return head, corpus, build_tiny_emotion2vec(root / "e2v.pt")


@pytest.fixture(scope="module")
def scored(systems, tmp_path_factory):
    """eval/robustness.py on the first 4 clips: the backbone's implicit answers and the Gen-SER head."""
    head, corpus, e2v = systems
    out = tmp_path_factory.mktemp("rob") / "rob"
    assert robustness_main(["--checkpoint", str(head.parent.parent / "backbone"), str(head),
                            "--mode", "implicit", "gen-ser", "--name", "llm", "gen-ser head",
                            "--manifest", str(corpus["train"]), "--corpus", "synthetic", "--ssl-checkpoint", str(e2v),
                            "--feature-dir", str(corpus["features"]), "--conditions", *CONDITIONS,
                            "--out", str(out), "--max-new-tokens", "6", "--limit", "4"]) == 0
    return out


def test_robustness_scores_every_system_under_every_condition(scored):
    out = scored
    rows = list(csv.DictReader(open(out / "robustness.csv")))
    assert [(r["system"], r["condition"]) for r in rows] == [(s, c) for s in ("llm", "gen-ser head")
                                                            for c in CONDITIONS]
    assert {r["n"] for r in rows} == {"4"}
    table = (out / "robustness.md").read_text().splitlines()
    assert table[2] == "| system | clean | noise:white:20 | noise:babble:10 |"
    for r, line in zip(rows[::3], table[4:6]):  # the table holds the CSV's UA, in %
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == r["system"] and float(cells[1]) == pytest.approx(100 * float(r["UA"]), abs=0.05)
    import matplotlib.image

    assert matplotlib.image.imread(out / "robustness.png").shape[2] in (3, 4)
    run = out / "gen-ser_head" / "noise_babble_10"
    assert json.loads((run / "results.json").read_text())["condition"] == "noise:babble:10"
    assert json.loads((run / "predictions.fingerprint.json").read_text())["condition"] == "noise:babble:10"
    # the degraded audio reaches the head: its scores differ from the clean run's for some clip
    clean = {r["key"]: r["scores"] for r in read_predictions(out / "gen-ser_head" / "clean" / "predictions.jsonl")}
    noisy = {r["key"]: r["scores"] for r in read_predictions(run / "predictions.jsonl")}
    assert clean.keys() == noisy.keys() and clean != noisy


def test_a_condition_is_deterministic_per_clip_and_needs_online_ssl_features(systems, scored, tmp_path, capsys):
    """``c2ser eval --condition`` on the same clips in reverse order gives the robustness run's answers, clip by
    clip; without Emotion2Vec-S online it stops with one line."""
    head, corpus, e2v = systems
    reversed_manifest = tmp_path / "reversed.jsonl"
    reversed_manifest.write_text("".join(corpus["train"].read_text().splitlines(keepends=True)[:4][::-1]))

    def run(out, *extra):
        return c2ser_main(["eval", "--checkpoint", str(head), "--manifest", str(reversed_manifest), "--corpus",
                           "synthetic", "--out", str(tmp_path / out), "--mode", "gen-ser",
                           "--condition", "noise:white:20", *extra])

    assert run("a", "--ssl-checkpoint", str(e2v)) == 0
    a = {r["key"]: r["scores"] for r in read_predictions(tmp_path / "a" / "predictions.jsonl")}
    b = {r["key"]: r["scores"] for r in read_predictions(scored / "gen-ser_head" / "noise_white_20" /
                                                         "predictions.jsonl")}
    assert a == b and len(a) == 4
    capsys.readouterr()
    assert run("c", "--feature-dir", str(corpus["features"])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("c2ser eval: error: --condition noise:white:20: cached Emotion2Vec-S features are of the clean "
                       "clips; pass --ssl-checkpoint PATH to compute them online on the degraded audio")


def test_robustness_rejects_a_bad_condition_before_loading_anything(tmp_path, capsys):
    assert robustness_main(["--checkpoint", str(tmp_path / "nothing"), "--manifest", str(tmp_path / "m.jsonl"),
                            "--corpus", "synthetic", "--conditions", "clean", "noise:white:x",
                            "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("robustness.py: error: --condition 'noise:white:x'")


# ---- eval/search_margins.py: the number the augmentation searches compare ------------------------------------------
def _robustness_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["system,checkpoint,mode,condition,n,UA,WA,macro_F1,unparsed_rate"]
    lines += [f"{system},ck,implicit,{cond},100,{ua},{ua},{ua},0.0" for system, cond, ua in rows]
    path.write_text("\n".join(lines) + "\n")


def test_search_margins_mean_over_seeds_of_the_mean_over_splits(tmp_path, capsys):
    import search_margins  # eval/ is on sys.path (above)

    # seed 0: clean 96 / 94, white 90 / 88; seed 1: clean 99 / 97, white 92 / 90; another system is ignored
    for seed, split, clean, white in [(0, "valid", 0.96, 0.90), (0, "valid2", 0.94, 0.88),
                                      (1, "valid", 0.99, 0.92), (1, "valid2", 0.97, 0.90)]:
        _robustness_csv(tmp_path / f"seed{seed}" / split / "robustness.csv",
                        [("stage2-implicit", "clean", clean), ("stage2-implicit", "noise:white:20", white),
                         ("head-ce", "clean", 0.10)])
    targets = {"clean": 95.0, "noise:white:20": 90.0}
    ua, m = search_margins.margins(tmp_path, ["0", "1"], ["valid", "valid2"], targets)
    # by hand: clean (95 + 98) / 2 - 95 = +1.5; white (89 + 91) / 2 - 90 = 0
    assert m["clean"] == pytest.approx(1.5) and m["noise:white:20"] == pytest.approx(0.0, abs=1e-9)
    assert ua[("1", "valid2", "clean")] == pytest.approx(97.0)
    assert search_margins.main([str(tmp_path), "--seeds", "0,1", "--target", "clean=95", "noise:white:20=90"]) == 0
    out = capsys.readouterr().out
    assert "| margin | | +1.50 | +0.00 |" in out and "lowest clean UA of a seed and split: 94.0 (seed 0, valid2)" in out
    # sample std over the two seeds, by hand: valid clean 96 / 99 -> 3 / sqrt(2) = 2.12; white 90 / 92 -> 1.41
    assert "| std | valid | 2.1 | 1.4 |" in out
    # clear errors: a missing file, a missing condition, a bad target
    with pytest.raises(SystemExit, match=r"seed2/valid/robustness.csv: not found"):
        search_margins.margins(tmp_path, ["2"], ["valid"], targets)
    with pytest.raises(SystemExit, match=r"no condition 'reverb:0.6'"):
        search_margins.margins(tmp_path, ["0"], ["valid"], {"reverb:0.6": 85.0})
    with pytest.raises(SystemExit, match=r"--target clean: expected CONDITION=UA"):
        search_margins.parse_targets(["clean"])
