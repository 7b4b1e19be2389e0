"""SER metrics over a corpus's own label set, with scikit-learn doing the arithmetic.

Unparseable answers and predictions outside the corpus's classes are mapped to one extra column,
``"<unparsed>"``, that no reference carries: they count as wrong in WA, lower the recall of their true class
(UA) and never earn F1. UA = mean per-class recall over the corpus classes present in the references (= balanced accuracy);
macro-F1 averages F1 over the corpus classes (a class never predicted gets F1 = 0; a class a subset has
neither references nor predictions of is left out).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

UNPARSED = "<unparsed>"


def ser_metrics(refs: Sequence[str], preds: Sequence[str | None], classes: Sequence[str]) -> dict:
    """WA, UA, macro-F1, per-class recall, confusion matrix (classes × classes + unparsed), unparsed rate."""
    if len(refs) != len(preds):
        raise ValueError(f"{len(refs)} references but {len(preds)} predictions")
    classes = list(classes)
    unknown = sorted({r for r in refs if r not in classes})
    if unknown:
        raise ValueError(f"reference labels outside the class set {classes}: {unknown}")
    p = [x if x in classes else UNPARSED for x in preds]
    labels = classes + [UNPARSED]
    # classes a (sub)set has neither references nor predictions of are left out of the averages
    scored = [c for c in classes if c in set(refs) | set(p)]
    present = [c for c in classes if c in set(refs)]
    recalls = recall_score(refs, p, labels=present, average=None, zero_division=0) if present else []
    n = len(refs)
    return {
        "n": n,
        "WA": float(accuracy_score(refs, p)) if n else 0.0,
        "UA": float(np.mean(recalls)) if n else 0.0,
        "macro_F1": float(f1_score(refs, p, labels=scored, average="macro", zero_division=0)) if n else 0.0,
        "per_class_recall": {c: float(r) for c, r in zip(present, recalls)},
        "unparsed_rate": sum(x == UNPARSED for x in p) / n if n else 0.0,
        "confusion": {"rows": classes, "cols": labels,
                      "matrix": confusion_matrix(refs, p, labels=labels)[: len(classes)].tolist()},
    }


def mean_std(values: Sequence[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()) if a.size else 0.0, "std": float(a.std(ddof=0)) if a.size else 0.0, "n": int(a.size)}
