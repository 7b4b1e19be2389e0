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
