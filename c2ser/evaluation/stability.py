"""Stability over N runs (seeds or sampled decodings) of the same clips: mean ± std of the metrics and the
rate at which a clip's answer changes between runs."""
from __future__ import annotations

from c2ser.evaluation.metrics import mean_std
from c2ser.evaluation.parse import parse_emotion
from c2ser.evaluation.report import score_predictions
from c2ser.labels import corpus_classes


def stability(runs: list[list[dict]], corpus: str) -> dict:
    if len(runs) < 2:
        raise ValueError("stability needs at least two runs")
    keys = [r["key"] for r in runs[0]]
    for run in runs[1:]:
        if sorted(r["key"] for r in run) != sorted(keys):
            raise ValueError("all runs must cover the same clips")
    scores = [score_predictions(run, corpus) for run in runs]
    classes = corpus_classes(corpus)
    answers = [{r["key"]: parse_emotion(r.get("prediction") or "", classes).label for r in run} for run in runs]
    flips = sum(len({a[k] for a in answers}) > 1 for k in keys)
    return {"runs": len(runs), **{m: mean_std([s[m] for s in scores]) for m in ("UA", "WA", "macro_F1")},
            "flip_rate": flips / len(keys)}
