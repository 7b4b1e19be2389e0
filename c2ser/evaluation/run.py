"""``c2ser eval``: a checkpoint + a manifest → predictions (resumable) → metrics → report files.

Output directory: ``predictions.jsonl`` (or ``predictions.seed{S}.jsonl`` per seed), ``results.json``,
``results.md``, ``confusion.{csv,png}``, and ``stability.json`` when several seeds are run.
"""
from __future__ import annotations

import json
from pathlib import Path

from c2ser.evaluation.inference import predict_manifest
from c2ser.evaluation.predictions import PredictionWriter
from c2ser.evaluation.report import score_predictions, write_report
from c2ser.evaluation.stability import stability


def evaluate(checkpoint: str, manifest: str, corpus: str, out_dir: str, mode: str = "implicit",
             feature_dir: str | None = None, decoding: str = "greedy", seeds: list[int] = (0,),
             group_by: str | None = None, max_new_tokens: int = 128, device: str = "cpu",
             limit: int | None = None) -> dict:
    from c2ser.checkpoint import load_model
    from c2ser.models.processor import C2SERProcessor
    from c2ser.training.data import read_rows

    out = Path(out_dir)
    rows = read_rows(manifest)[:limit]
    keys = {r["key"] for r in rows}
    if mode == "gen-ser":  # ``checkpoint`` is a head stage's output; it names its backbone
        from c2ser.training.head_stage import predict_with_head

        with PredictionWriter(out / "predictions.jsonl") as writer:
            settings = predict_with_head(checkpoint, rows, writer, feature_dir, corpus)
            runs = [[r for r in writer.rows if r["key"] in keys]]
    else:
        model = load_model(checkpoint).to(device)
        processor = C2SERProcessor(model.tokenizer, model.whisper.dims.n_mels, model.cfg.whisper.long_audio)
        runs = []
        for seed in seeds:
            name = "predictions.jsonl" if len(seeds) == 1 else f"predictions.seed{seed}.jsonl"
            with PredictionWriter(out / name) as writer:
                settings = predict_manifest(model, processor, rows, writer, mode=mode, feature_dir=feature_dir,
                                            decoding=decoding, max_new_tokens=max_new_tokens, seed=seed)
                runs.append([r for r in writer.rows if r["key"] in keys])
    result = score_predictions(runs[0], corpus, group_by=group_by)
    result.update({"checkpoint": str(checkpoint), "manifest": str(manifest), "mode": mode})
    if len(runs) > 1:
        result["stability"] = stability(runs, corpus)
        (out / "stability.json").write_text(json.dumps(result["stability"], indent=1))
    write_report(result, out, title=f"{corpus} · {mode} · {Path(checkpoint).parent.name}", settings=settings)
    return result
