"""Where is the emotion information lost? Linear probes along a trained C2SER checkpoint, plus its decoded answers.

    python eval/probe.py --checkpoint exp/tiny/stage2/final --train exp/tiny/data/train.jsonl \\
        --valid exp/tiny/data/valid.jsonl --feature-dir exp/tiny/features [--test M] [--decode] [--out probe.json]

For every clip, features at each point of the model (mean-pooled over the clip's positions):
  ssl      the cached Emotion2Vec-S utterance tokens (the encoder input side; no checkpoint weights)
  adapter  the adapter output projected to the LLM width (the speech embeddings the LLM reads)
  prefix   the LLM's last-layer hidden states over ``[prompt "emotion:"][BOS S W EOS]`` (the Gen-SER conditioning)
  prefix_last  the same hidden states at the last prefix position (EOS_sp)
A logistic regression (standardised inputs) is fitted on the train split and scored on the valid (and test)
split as UA (balanced accuracy). With ``--decode`` the greedy implicit and explicit answers on the same clips are
parsed and scored too, so the numbers line up: input → adapter → LLM prefix → answer. Prints a table; ``--out``
writes the numbers as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

POINTS = ("ssl", "adapter", "prefix", "prefix_last")


def pooled_features(model, processor, rows: list[dict], feature_dir: str | None) -> dict[str, np.ndarray]:
    """{point: (N, D)} mean-pooled features of ``rows`` (see the module docstring)."""
    from c2ser.training.data import load_ssl
    from c2ser.training.head_stage import conditioning

    adapter = conditioning(model, processor, rows, feature_dir, "adapter", progress=False)
    prefix = conditioning(model, processor, rows, feature_dir, "llm", progress=False)
    out = {"adapter": np.stack([a.mean(0).numpy() for a in adapter]),
           "prefix": np.stack([p.mean(0).numpy() for p in prefix]),
           "prefix_last": np.stack([p[-1].numpy() for p in prefix])}
    if feature_dir and model.cfg.ssl.enabled:
        out["ssl"] = np.stack([load_ssl(feature_dir, r["key"]).mean(0) for r in rows])
    return out


def probe_ua(x_train: np.ndarray, y_train: list[str], x_eval: np.ndarray, y_eval: list[str]) -> float:
    """UA (balanced accuracy) of a standardised logistic regression trained on (x_train, y_train)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
    clf.fit(x_train, y_train)
    return float(balanced_accuracy_score(y_eval, clf.predict(x_eval)))


@torch.no_grad()
def decoded_ua(model, processor, rows: list[dict], feature_dir: str | None, mode: str) -> float:
    """UA of the parsed greedy answers (unparsed = wrong) for ``mode`` (implicit | explicit)."""
    from c2ser.evaluation.metrics import ser_metrics
    from c2ser.evaluation.parse import parse_emotion
    from c2ser.models.processor import to_device
    from c2ser.training.data import ManifestDataset, collate, identity
    from c2ser.training.sampler import DynamicBatchSampler

    ds = ManifestDataset(rows, processor, feature_dir, model.cfg.ssl.enabled)
    sampler = DynamicBatchSampler(ds.frames, ds.tokens, max(12000, max(ds.frames)), max(20000, max(ds.tokens)), 16,
                                  shuffle=False)
    preds: list[str | None] = [None] * len(rows)
    for items in torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=identity):
        batch = to_device(collate(processor, items, mode, with_targets=False), model.device)
        for it, text in zip(items, model.generate(batch, max_new_tokens=96)):
            preds[it["index"]] = parse_emotion(text).label
    classes = sorted({r["emotion"] for r in rows})
    return ser_metrics([r["emotion"] for r in rows], preds, classes)["UA"]


def run(checkpoint: str, train: str, valid: str, feature_dir: str | None, test: str | None = None,
        decode: bool = False, limit: int | None = None) -> dict:
    from c2ser.checkpoint import load_model
    from c2ser.data.manifest import read_manifest
    from c2ser.models.processor import C2SERProcessor

    torch.manual_seed(0)
    model = load_model(checkpoint).eval()
    processor = C2SERProcessor(model.tokenizer, model.whisper.dims.n_mels, model.cfg.whisper.long_audio)
    splits = {"train": read_manifest(train)[:limit], "valid": read_manifest(valid)[:limit]}
    if test:
        splits["test"] = read_manifest(test)[:limit]
    feats = {s: pooled_features(model, processor, rows, feature_dir) for s, rows in splits.items()}
    labels = {s: [r["emotion"] for r in rows] for s, rows in splits.items()}
    result = {"checkpoint": str(checkpoint), "n": {s: len(r) for s, r in splits.items()}, "probe": {}, "decoded": {}}
    for point in POINTS:
        if point not in feats["train"]:
            continue
        result["probe"][point] = {s: probe_ua(feats["train"][point], labels["train"], feats[s][point], labels[s])
                                  for s in splits if s != "train"}
    if decode:
        for mode in ("implicit", "explicit"):
            result["decoded"][mode] = {s: decoded_ua(model, processor, splits[s], feature_dir, mode)
                                       for s in splits if s != "train"}
    return result


def table(result: dict) -> str:
    evals = [s for s in result["n"] if s != "train"]
    lines = ["| point | " + " | ".join(f"{s} UA %" for s in evals) + " |", "|---|" + "---|" * len(evals)]
    for point, scores in result["probe"].items():
        lines.append(f"| probe: {point} | " + " | ".join(f"{100 * scores[s]:.1f}" for s in evals) + " |")
    for mode, scores in result["decoded"].items():
        lines.append(f"| decoded: {mode} answer | " + " | ".join(f"{100 * scores[s]:.1f}" for s in evals) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="probe.py", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a trained C2SER checkpoint directory (e.g. stage2/final)")
    ap.add_argument("--train", required=True, help="manifest the probes are fitted on")
    ap.add_argument("--valid", required=True, help="manifest the probes are scored on")
    ap.add_argument("--test", help="also score on this manifest")
    ap.add_argument("--feature-dir", help="cached Emotion2Vec-S features")
    ap.add_argument("--decode", action="store_true", help="also decode implicit and explicit answers (slower)")
    ap.add_argument("--limit", type=int, help="first N clips of each manifest")
    ap.add_argument("--out", help="write the numbers as JSON here")
    a = ap.parse_args(argv)
    try:
        result = run(a.checkpoint, a.train, a.valid, a.feature_dir, a.test, a.decode, a.limit)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"probe.py: error: {e}", file=sys.stderr)
        return 1
    print(table(result))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
