"""``c2ser eval``: a checkpoint + a manifest → checked rows → predictions (resumable) → metrics → report files.

Output directory: ``predictions.jsonl`` (or ``predictions.seed{S}.jsonl`` per seed) with its
``*.fingerprint.json``, ``rejects.jsonl``, ``results.json``, ``results.md``, ``confusion.{csv,png}``, and
``stability.json`` when several seeds are run. A predictions file is resumed only when its fingerprint (what
produced it: checkpoint identity, mode, decoding, manifest content, corpus, features, overrides, condition) matches.

``condition`` (``--condition``, :func:`c2ser.data.augment.parse_condition`): each clip is degraded (noise, reverb,
telephone band) before both encoders, drawn per clip key; anything but ``clean`` needs Emotion2Vec-S online
(``--ssl-checkpoint``), as cached features are of the clean clips.

Under ``accelerate launch --num_processes N`` (not for gen-ser), process 0 opens the predictions files (the
fingerprint check, the resume) and shares their done keys; every process decodes its share of the batches
(:func:`c2ser.evaluation.inference.predict_manifest`); process 0 writes predictions, rejects, results and report,
exactly as one process does, and the other processes return None.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from c2ser.atomic import atomic_write_json
from c2ser.evaluation.inference import decoding_settings, predict_manifest, process_state
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
                feature_dir: str | None, overrides: list[str], condition: str = "clean") -> dict:
    path = checkpoint if checkpoint.startswith("official:") else str(Path(checkpoint).resolve())
    return {"checkpoint": path, "checkpoint_files": checkpoint_identity(checkpoint), "mode": mode,
            "decoding": decoding, "manifest": str(Path(manifest).resolve()),
            "manifest_sha256": file_identity(Path(manifest), whole_below=1 << 62), "corpus": corpus,
            "feature_dir": str(Path(feature_dir).resolve()) if feature_dir else None, "overrides": list(overrides),
            "condition": condition}


class _PeerWriter:
    """A process other than 0: knows which keys are done (from process 0) and writes nothing."""

    def __init__(self, done_keys: set):
        self.done_keys, self.rows, self.extra = done_keys, [], {}

    def write(self, row: dict) -> None:
        """Nothing: process 0 writes the gathered rows."""

    def close(self) -> None:
        """Nothing was opened."""


def open_writers(paths: list[Path], fps: list[dict], overwrite: bool, state) -> list:
    """The predictions writers; with several processes process 0 opens them and broadcasts their done keys (or its
    error, so that every process stops with the same one line)."""
    if state is None:
        return [open_predictions(p, fp, overwrite) for p, fp in zip(paths, fps)]
    from accelerate.utils import broadcast_object_list

    payload, writers = [None], []
    if state.is_main_process:
        try:
            writers = [open_predictions(p, fp, overwrite) for p, fp in zip(paths, fps)]
            payload = [[w.done_keys for w in writers]]
        except (ValueError, FileNotFoundError, KeyError) as e:
            payload = [f"{type(e).__name__}:{e}"]
    broadcast_object_list(payload)
    if isinstance(payload[0], str):
        kind, msg = payload[0].split(":", 1)
        raise {"FileNotFoundError": FileNotFoundError, "KeyError": KeyError}.get(kind, ValueError)(msg)
    return writers if state.is_main_process else [_PeerWriter(set(k)) for k in payload[0]]


def evaluate(checkpoint: str, manifest: str, corpus: str, out_dir: str, mode: str = "implicit",
             feature_dir: str | None = None, decoding: str = "greedy", seeds: list[int] = (0,),
             group_by: str | None = None, max_new_tokens: int | None = None, device: str = "auto",
             limit: int | None = None, overrides: list[str] | tuple = (), ssl_checkpoint: str | None = None,
             qwen2_dir: str | None = None, overwrite: bool = False, loaded: tuple | None = None,
             condition: str = "clean") -> dict:
    """Evaluate ``checkpoint`` on ``manifest``; ``loaded`` = a ``(model, processor)`` already loaded from it
    (several test sets, one model load). Several processes: the result on process 0, None on the others."""
    from c2ser.data.augment import Condition
    from c2ser.data.manifest import read_manifest
    from c2ser.data.validate import report, validate_rows
    from c2ser.labels import corpus_classes

    out = Path(out_dir)
    dups: list[dict] = []
    all_rows = read_manifest(manifest, dups)
    rows = all_rows[:limit]
    cond = Condition(condition, all_rows)  # a bad spec stops here; babble draws from the whole manifest
    # which predictions files, and what produced them: refuse a foreign file before any work
    names = ["predictions.jsonl"] if mode == "gen-ser" or len(seeds) == 1 else \
        [f"predictions.seed{s}.jsonl" for s in seeds]
    fps = [fingerprint(str(checkpoint), manifest, corpus, mode,
                       None if mode == "gen-ser" else decoding_settings(decoding, max_new_tokens, s, mode),
                       feature_dir, list(overrides), condition) for s in seeds[: len(names)]]
    state = process_state()
    if state is not None and mode == "gen-ser":
        raise ValueError("--mode gen-ser evaluates on one process: run it without accelerate launch")
    main = state is None or state.is_main_process
    if state is not None and device == "auto":
        device = str(state.device)  # one device per process
    if state is not None and main:
        print(f"c2ser eval: {state.num_processes} processes ({state.distributed_type.value}, "
              f"{state.backend or 'no'} backend)", file=sys.stderr)
    writers = open_writers([out / n for n in names], fps, overwrite, state)
    try:
        from c2ser.inference.loading import load_for_inference

        # gen-ser: ``checkpoint`` is a head stage's output, which carries its backbone (loaded the same way)
        model, processor = loaded or load_for_inference(str(checkpoint), ssl_checkpoint, device, overrides,
                                                        qwen2_dir)
        cfg = model.cfg
        if not cond.clean and cfg.ssl.enabled and model.ssl_encoder is None:
            raise ValueError(f"--condition {condition}: cached Emotion2Vec-S features are of the clean clips; pass "
                             "--ssl-checkpoint PATH to compute them online on the degraded audio")
        transform, pred_features = (None, feature_dir) if cond.clean else (cond, None)
        ssl_dir = feature_dir if cfg.ssl.enabled and cfg.ssl.checkpoint is None else None
        kept, rejects = validate_rows(rows, EVAL_REQUIRED, corpus_classes(corpus), ssl_dir,
                                      (cfg.ssl.num_tokens, cfg.ssl.dim), long_audio=cfg.whisper.long_audio)
        if main:
            report(kept, dups + rejects, out / "rejects.jsonl", "c2ser eval", printed=len(dups))
        if not kept:
            raise ValueError(f"{manifest}: no usable clip (reasons in {out / 'rejects.jsonl'})")
        keys = {r["key"] for r in kept}
        for w in writers:
            w.extra = {r["key"]: {"cropped": True} for r in kept if r.get("cropped")}
        runs = []
        if mode == "gen-ser":
            from c2ser.training.head_stage import predict_with_head

            settings = predict_with_head(checkpoint, kept, writers[0], pred_features, corpus, model=model,
                                         processor=processor, wave_transform=transform)
            runs.append([r for r in writers[0].rows if r["key"] in keys])
        else:
            for seed, writer in zip(seeds, writers):
                settings = predict_manifest(model, processor, kept, writer, mode=mode, feature_dir=pred_features,
                                            decoding=decoding, max_new_tokens=max_new_tokens, seed=seed,
                                            state=state, wave_transform=transform)
                runs.append([r for r in writer.rows if r["key"] in keys])
    finally:
        for w in writers:
            w.close()
    if not main:
        return None
    result = score_predictions(runs[0], corpus, group_by=group_by)
    result.update({"checkpoint": str(checkpoint), "manifest": str(manifest), "mode": mode,
                   "rejected": len(dups) + len(rejects), "condition": condition})
    if mode != "gen-ser":  # answers that hit the length limit (no end-of-answer token): possibly cut short
        result["truncated"] = sum(bool(r.get("truncated")) for r in runs[0])
    if len(runs) > 1:
        result["stability"] = stability(runs, corpus)
        atomic_write_json(out / "stability.json", result["stability"], indent=1)
    title = f"{corpus} · {mode} · {Path(checkpoint).parent.name}" + ("" if cond.clean else f" · {condition}")
    write_report(result, out, title=title, settings=settings)
    return result
