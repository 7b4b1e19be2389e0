"""Metrics equal scikit-learn's; reports, resumable predictions files and stability."""
import json
import random

import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from c2ser.evaluation.metrics import ser_metrics
from c2ser.evaluation.predictions import PredictionWriter, read_predictions
from c2ser.evaluation.report import score_predictions, write_report
from c2ser.evaluation.stability import stability

CLASSES = ["neutral", "happy", "sad", "angry"]


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_sklearn_on_random_cases(seed):
    rng = random.Random(seed)
    refs = [rng.choice(CLASSES) for _ in range(200)]
    preds = [rng.choice(CLASSES) for _ in range(200)]
    m = ser_metrics(refs, preds, CLASSES)
    assert m["UA"] == pytest.approx(balanced_accuracy_score(refs, preds))
    assert m["macro_F1"] == pytest.approx(f1_score(refs, preds, labels=CLASSES, average="macro"))
    assert m["WA"] == pytest.approx(sum(a == b for a, b in zip(refs, preds)) / 200)
    assert sum(map(sum, m["confusion"]["matrix"])) == 200


def test_unparsed_and_never_predicted_classes_by_hand():
    refs = ["happy", "happy", "sad", "sad", "angry", "neutral"]
    preds = ["happy", None, "sad", "happy", "fear", "happy"]  # None = unparseable, fear = outside the set
    m = ser_metrics(refs, preds, CLASSES)
    assert m["WA"] == pytest.approx(2 / 6)
    assert m["per_class_recall"] == {"neutral": 0.0, "happy": 0.5, "sad": 0.5, "angry": 0.0}
    assert m["UA"] == pytest.approx(0.25)
    # F1: happy p=1/3 r=1/2 → 0.4; sad p=1 r=0.5 → 2/3; neutral and angry 0
    assert m["macro_F1"] == pytest.approx((0.4 + 2 / 3) / 4)
    assert m["unparsed_rate"] == pytest.approx(2 / 6)
    assert m["confusion"]["matrix"][1] == [0, 1, 0, 0, 1]  # happy row: one right, one unparsed


def test_casia_scoring_excludes_disgust_and_counts_it_wrong(tmp_path):
    rows = [{"key": "a", "emotion": "angry", "prediction": "This speech is disgusting."},
            {"key": "b", "emotion": "fear", "prediction": "这条语音的情感为害怕"}]
    r = score_predictions(rows, "casia")
    assert "disgust" not in r["classes"] and r["WA"] == 0.5 and r["unparsed_reasons"] == {"out-of-set": 1}


def test_report_files_and_groups(tmp_path):
    rows = [{"key": f"k{i}", "emotion": e, "language": lang, "prediction": f"The emotion of this speech is {p}.",
             "mode": "explicit", "style": {"pitch_bin": "high", "pace_bin": "low", "volume_bin": "medium"}}
            for i, (e, p, lang) in enumerate([("happy", "happy", "en"), ("sad", "happy", "zh"), ("angry", "angry", "en")])]
    rows[0]["prediction"] = ("The speaker says, at a slow pace with a high pitch and a medium voice: \"hi\". "
                             "From these cues, the emotion is happy.")
    r = score_predictions(rows, "emo_emilia", group_by="language")
    assert r["groups"]["en"]["WA"] == 1.0 and r["groups"]["zh"]["WA"] == 0.0
    assert r["style_accuracy"]["pitch"] == pytest.approx(1 / 3)
    # a report killed while writing left half-written files (c2ser/atomic.py's NAME.tmp-PID): the next one removes
    # them; a file of another writer in the folder stays
    (tmp_path / "rep").mkdir()
    for name in ("confusion.png.tmp-4242", "results.json.tmp-77", "predictions.jsonl"):
        (tmp_path / "rep" / name).write_bytes(b"half")
    out = write_report(r, tmp_path / "rep", settings={"preset": "greedy"})
    assert sorted(p.name for p in out.iterdir()) == ["confusion.csv", "confusion.png", "predictions.jsonl",
                                                     "results.json", "results.md"]
    assert json.loads((out / "results.json").read_text())["decoding"]["preset"] == "greedy"
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| en | 2 | 100.00" in (out / "results.md").read_text()
    assert (out / "confusion.csv").read_text().splitlines()[0].startswith("reference")


def test_prediction_writer_resumes_without_duplicates(tmp_path):
    p = tmp_path / "pred.jsonl"
    with PredictionWriter(p) as w:
        w.write({"key": "a", "prediction": "happy"})
        w.write({"key": "b", "prediction": "sad"})
    with open(p, "a") as f:
        f.write('{"key": "c", "predic')  # killed mid-write
    with PredictionWriter(p) as w:
        assert w.done_keys == {"a", "b"}
        w.write({"key": "a", "prediction": "again"})  # ignored: already done
        w.write({"key": "c", "prediction": "angry"})
    assert [r["key"] for r in read_predictions(p)] == ["a", "b", "c"]


def test_stability_over_runs():
    base = [{"key": f"k{i}", "emotion": "happy", "prediction": "happy"} for i in range(4)]
    other = [dict(r) for r in base]
    other[0]["prediction"] = "sad"
    s = stability([base, other], "emo_emilia")
    assert s["flip_rate"] == 0.25 and s["UA"]["mean"] == pytest.approx((1 + 0.75) / 2)
    assert s["UA"]["std"] == pytest.approx(0.125)
