"""``c2ser eval``: a checkpoint + a manifest → checked rows → predictions (resumable) → metrics → report files.

Output directory: ``predictions.jsonl`` (or ``predictions.seed{S}.jsonl`` per seed) with its
``*.fingerprint.json``, ``rejects.jsonl``, ``results.json``, ``results.md``, ``confusion.{csv,png}``, and
``stability.json`` when several seeds are run. A predictions file is resumed only when its fingerprint (what
produced it: checkpoint identity, mode, decoding, manifest content, corpus, features, overrides) matches.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from c2ser.evaluation.inference import decoding_settings, predict_manifest
from c2ser.evaluation.predictions import open_predictions
from c2ser.evaluation.report import score_predictions, write_report
from c2ser.evaluation.stability import stability

EVAL_REQUIRED = ("key", "audio", "duration", "emotion")


def file_identity(f: Path, whole_below: int = 2 << 20) -> str:
    """sha256 of a small file; of size + first and last MiB for a large one (weights differ there too)."""
    h = hashlib.sha256()
    size = f.stat().st_size
    with open(f, "rb") as fh:
        if size <= whole_below:
            h.update(fh.read())
        else:
            h.update(str(size).encode())
            h.update(fh.read(1 << 20))
            fh.seek(-(1 << 20), 2)
            h.update(fh.read())
    return h.hexdigest()[:16]


def checkpoint_identity(checkpoint: str) -> dict:
    """{relative file: identity} of a checkpoint directory (or the official ``.pt`` file)."""
    path = Path(checkpoint[len("official:"):] if checkpoint.startswith("official:") else checkpoint)
    if path.is_file():
        return {path.name: file_identity(path)}
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else []
    return {str(f.relative_to(path)): file_identity(f) for f in files}


def fingerprint(checkpoint: str, manifest: str, corpus: str, mode: str, decoding: dict | None,
                feature_dir: str | None, overrides: list[str]) -> dict:
    path = checkpoint if checkpoint.startswith("official:") else str(Path(checkpoint).resolve())
    return {"checkpoint": path, "checkpoint_files": checkpoint_identity(checkpoint), "mode": mode,
            "decoding": decoding, "manifest": str(Path(manifest).resolve()),
            "manifest_sha256": file_identity(Path(manifest), whole_below=1 << 62), "corpus": corpus,
            "feature_dir": str(Path(feature_dir).resolve()) if feature_dir else None, "overrides": list(overrides)}


def evaluate(checkpoint: str, manifest: str, corpus: str, out_dir: str, mode: str = "implicit",
             feature_dir: str | None = None, decoding: str = "greedy", seeds: list[int] = (0,),
             group_by: str | None = None, max_new_tokens: int = 128, device: str = "auto",
             limit: int | None = None, overrides: list[str] | tuple = (), ssl_checkpoint: str | None = None,
             qwen2_dir: str | None = None, overwrite: bool = False, loaded: tuple | None = None) -> dict:
    """Evaluate ``checkpoint`` on ``manifest``; ``loaded`` = a ``(model, processor)`` already loaded from it
    (several test sets, one model load)."""
    from c2ser.data.manifest import read_manifest
    from c2ser.data.validate import report, validate_rows
    from c2ser.labels import corpus_classes

    out = Path(out_dir)
    dups: list[dict] = []
    rows = read_manifest(manifest, dups)[:limit]
    # which predictions files, and what produced them: refuse a foreign file before any work
    names = ["predictions.jsonl"] if mode == "gen-ser" or len(seeds) == 1 else \
        [f"predictions.seed{s}.jsonl" for s in seeds]
    fps = [fingerprint(str(checkpoint), manifest, corpus, mode,
                       None if mode == "gen-ser" else decoding_settings(decoding, max_new_tokens, s),
                       feature_dir, list(overrides)) for s in seeds[: len(names)]]
    writers = [open_predictions(out / n, fp, overwrite) for n, fp in zip(names, fps)]
    try:
        if mode == "gen-ser":  # ``checkpoint`` is a head stage's output; it names its backbone
            from c2ser.checkpoint import load_model_config

            cfg = load_model_config(checkpoint)
        else:
            from c2ser.inference.loading import load_for_inference

            model, processor = loaded or load_for_inference(str(checkpoint), ssl_checkpoint, device, overrides,
                                                            qwen2_dir)
            cfg = model.cfg
        ssl_dir = feature_dir if cfg.ssl.enabled and cfg.ssl.checkpoint is None else None
        kept, rejects = validate_rows(rows, EVAL_REQUIRED, corpus_classes(corpus), ssl_dir,
                                      (cfg.ssl.num_tokens, cfg.ssl.dim), long_audio=cfg.whisper.long_audio)
        report(kept, dups + rejects, out / "rejects.jsonl", "c2ser eval", printed=len(dups))
        if not kept:
            raise ValueError(f"{manifest}: no usable clip (reasons in {out / 'rejects.jsonl'})")
        keys = {r["key"] for r in kept}
        for w in writers:
            w.extra = {r["key"]: {"cropped": True} for r in kept if r.get("cropped")}
        runs = []
        if mode == "gen-ser":
            from c2ser.training.head_stage import predict_with_head

            settings = predict_with_head(checkpoint, kept, writers[0], feature_dir, corpus)
            runs.append([r for r in writers[0].rows if r["key"] in keys])
        else:
            for seed, writer in zip(seeds, writers):
                settings = predict_manifest(model, processor, kept, writer, mode=mode, feature_dir=feature_dir,
                                            decoding=decoding, max_new_tokens=max_new_tokens, seed=seed)
                runs.append([r for r in writer.rows if r["key"] in keys])
    finally:
        for w in writers:
            w.close()
    result = score_predictions(runs[0], corpus, group_by=group_by)
    result.update({"checkpoint": str(checkpoint), "manifest": str(manifest), "mode": mode,
                   "rejected": len(dups) + len(rejects)})
    if len(runs) > 1:
        result["stability"] = stability(runs, corpus)
        (out / "stability.json").write_text(json.dumps(result["stability"], indent=1))
    write_report(result, out, title=f"{corpus} · {mode} · {Path(checkpoint).parent.name}", settings=settings)
    return result
