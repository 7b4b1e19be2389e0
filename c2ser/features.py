"""Cached Emotion2Vec-S utterance features for a manifest: one ``<out_dir>/<key>.npy`` per clip.

Each file is written to a temporary name and renamed (``c2ser.atomic``: a killed run never leaves a half ``.npy``,
and its temporary leftovers are deleted on the next start); clips whose file exists are skipped (resume); rows
without key/audio, unreadable or too-short clips (and the duplicate keys the caller passes in ``earlier_rejects``)
go to ``<out_dir>/rejects.jsonl`` with the reason, one stderr line each. With ``batch_size=1`` (the default) the
cached vectors are exactly what the model computes online (it also encodes one clip at a time). With
``batch_size=N`` the clips are sorted by length (manifest ``duration``) and neighbours are batched only while the
batch's padding stays under ``max_padding`` of its samples (:func:`length_buckets`): the encoder is compute-bound on
a CPU, so padded samples cost as much as real ones and a loosely packed batch is slower than one clip at a time.
Batched vectors equal the one-clip ones within float rounding (~1e-5); each clip's file is written under its own
key, whatever the batch order.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from c2ser.atomic import atomic_save_npy, remove_leftovers
from c2ser.audio import AudioError, load_audio
from c2ser.data.manifest import Rejects
from c2ser.safe_io import load_features_npy


def feature_path(out_dir: str | Path, key: str) -> Path:
    return Path(out_dir) / f"{key}.npy"


def load_cached_features(out_dir: str | Path, key: str) -> np.ndarray:
    f = feature_path(out_dir, key)
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no cached features for clip {key!r}")
    return load_features_npy(f)


def _reject(rejects: Rejects, key, source: str, reason: str) -> None:
    print(f"c2ser extract-features: rejected: {reason}", file=sys.stderr)
    rejects.add(key, source, reason)


def length_buckets(lengths: list[float], batch_size: int, max_padding: float = 0.1) -> list[list[int]]:
    """Indices of ``lengths`` in batches of at most ``batch_size`` length-sorted neighbours; a clip joins the
    current batch only while ``longest × count ≤ (1 + max_padding) × sum of lengths``. Unknown lengths (≤ 0) get
    a batch of their own. Every index appears exactly once."""
    if batch_size < 1:
        raise ValueError(f"batch size must be ≥ 1, got {batch_size}")
    known = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: (lengths[i], i))
    batches, cur, total = [], [], 0.0
    for i in known:  # ascending: the newcomer is the longest of its batch
        if cur and (len(cur) == batch_size or lengths[i] * (len(cur) + 1) > (1 + max_padding) * (total + lengths[i])):
            batches.append(cur)
            cur, total = [], 0.0
        cur.append(i)
        total += lengths[i]
    if cur:
        batches.append(cur)
    return batches + [[i] for i, n in enumerate(lengths) if not n > 0]


def extract_features(rows: list[dict], encoder, out_dir: str | Path, mode: str = "tokens", batch_size: int = 1,
                     progress: bool = True, earlier_rejects: list[dict] = (), max_padding: float = 0.1) -> dict:
    """Write features for every row; returns counts {written, skipped, rejected}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out, "*.npy")  # half-written files of a killed run: never read, redone below
    rejects = Rejects(out / "rejects.jsonl")
    rejects.items = list(earlier_rejects)
    usable = []
    for r in rows:
        missing = [f for f in ("key", "audio") if not isinstance(r.get(f), str) or not r[f]]
        if missing:
            _reject(rejects, r.get("key"), r.get("audio") or "", f"row {r.get('key', '?')!r}: missing field "
                    f"{', '.join(missing)}")
        else:
            usable.append(r)
    todo = [r for r in usable if not feature_path(out, r["key"]).is_file()]
    durations = [r.get("duration") if isinstance(r.get("duration"), (int, float)) else 0.0 for r in todo]
    written = 0
    for batch in tqdm(length_buckets(durations, batch_size, max_padding), disable=not progress,
                      desc=f"emotion2vec[{mode}]"):
        chunk, wavs = [], []
        for r in (todo[i] for i in batch):
            try:
                wav = load_audio(r["audio"], channel=r.get("channel"), start=r.get("start"), end=r.get("end"))
            except AudioError as e:
                _reject(rejects, r["key"], r["audio"], str(e))
                continue
            if len(wav) < encoder.cfg.receptive_field + (encoder.cfg.num_extra_tokens - 1) * encoder.cfg.hop:
                _reject(rejects, r["key"], r["audio"],
                        f"{r['audio']}: too short for 10 feature frames ({len(wav)} samples)")
                continue
            chunk.append(r)
            wavs.append(wav)
        if not chunk:
            continue
        feats = encoder.utterance_features(wavs, mode=mode).cpu().numpy().astype(np.float32)
        for r, f in zip(chunk, feats):
            atomic_save_npy(feature_path(out, r["key"]), f)
            written += 1
    rejects.write()
    summary = {"written": written, "skipped": len(usable) - len(todo), "rejected": len(rejects.items)}
    print(f"features → {out}: written {summary['written']}, already there {summary['skipped']}, "
          f"rejected {summary['rejected']}" + (f" (see {rejects.path})" if rejects.items else ""))
    return summary
