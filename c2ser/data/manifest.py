"""The one manifest format: JSON lines, one clip per line, the same fields for every corpus.

    key          unique id (EmoBox keys verbatim where they exist, e.g. meld-dia0_utt0-train)
    audio        path to the audio file; start / end (s) select a span, channel (1-indexed) one channel
    duration     seconds; sample_rate of the file
    emotion      canonical label (c2ser.labels.EMOTIONS); raw_emotion = the corpus's own label
    text, language ("en" | "zh"), corpus, split (train | valid | test | fold_k...), speaker
    style        measured style (pitch_hz, loudness_lufs, rate, pitch_bin, volume_bin, pace_bin) or null
    explicit_target, implicit_target   chain-of-thought targets (data_prep/cot_labels.py) or null

Readable with ``datasets.load_dataset("json", data_files=path)`` (every row has every field).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from c2ser.atomic import atomic_write_jsonl
from c2ser.labels import EMOTIONS

FIELDS = ("key", "audio", "start", "end", "channel", "duration", "sample_rate", "emotion", "raw_emotion", "text",
          "language", "corpus", "split", "speaker", "style", "explicit_target", "implicit_target")
REQUIRED = ("key", "audio", "duration", "emotion", "corpus", "split")
STYLE_KEYS = ("pitch_hz", "loudness_lufs", "rate", "pitch_bin", "volume_bin", "pace_bin")


def make_row(**fields) -> dict:
    """A manifest row with every field present (missing ones are null)."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise KeyError(f"unknown manifest fields {sorted(unknown)}")
    return {f: fields.get(f) for f in FIELDS}


def read_rows_numbered(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, row) of a JSON-lines manifest; a missing file, non-UTF-8 bytes or a malformed line raise
    one-line ``FileNotFoundError`` / ``ValueError`` naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    rows = []
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path}:{i}: not UTF-8 text (re-encode the manifest as UTF-8)") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: malformed JSON line ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{i}: a manifest line must be a JSON object")
            rows.append((i, row))
    return rows


def read_manifest(path: str | Path, rejects: list[dict] | None = None, quiet: bool = False) -> list[dict]:
    """Rows of a manifest, each key once: a repeated key keeps its first row, the others are dropped with one
    stderr line each (``PATH:LINE: rejected: duplicate key ...``) and appended to ``rejects`` ({key, source, reason}) if given.
    Malformed lines (not UTF-8, not a JSON object) stop the read with one line naming the file and line."""
    rows, first_line = [], {}
    for i, row in read_rows_numbered(path):
        key = row.get("key")
        if isinstance(key, str) and key in first_line:
            reason = f"duplicate key {key!r} (first at line {first_line[key]}; the first row is kept)"
            if not quiet:
                print(f"{path}:{i}: rejected: {reason}", file=sys.stderr)
            if rejects is not None:
                rejects.append({"key": key, "source": f"{path}:{i}", "reason": reason})
            continue
        if isinstance(key, str):
            first_line[key] = i
        rows.append(row)
    return rows


def write_manifest(rows: list[dict], path: str | Path) -> Path:
    """Write atomically (temporary file, then rename)."""
    return atomic_write_jsonl(path, (make_row(**{k: r.get(k) for k in FIELDS}) for r in rows))


def validate_manifest(rows: list[dict], check_files: bool = True, name: str = "manifest") -> list[str]:
    """Problems found (empty list = valid): missing fields, unknown labels, duplicate keys, missing files."""
    problems, seen = [], set()
    for i, r in enumerate(rows, 1):
        where = f"{name}:{i} ({r.get('key', '?')})"
        missing = [f for f in REQUIRED if r.get(f) in (None, "")]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
        if r.get("emotion") is not None and r["emotion"] not in EMOTIONS:
            problems.append(f"{where}: unknown emotion {r['emotion']!r} (expected one of {', '.join(EMOTIONS)})")
        if r.get("key") in seen:
            problems.append(f"{where}: duplicate key")
        seen.add(r.get("key"))
        if check_files and r.get("audio") and not Path(r["audio"]).is_file():
            problems.append(f"{where}: audio file not found: {r['audio']}")
        if r.get("duration") is not None and not (isinstance(r["duration"], (int, float)) and r["duration"] > 0):
            problems.append(f"{where}: duration must be a positive number")
    return problems


class Rejects:
    """Collects skipped items with reasons and writes them as ``rejects.jsonl``."""

    def __init__(self, path: str | Path):
        self.path, self.items = Path(path), []

    def add(self, key: str, source: str, reason: str) -> None:
        self.items.append({"key": key, "source": str(source), "reason": reason})

    def write(self) -> None:
        """Atomically (several processes of one run may write the same file)."""
        atomic_write_jsonl(self.path, self.items)


def summary(rows: list[dict], rejects: Rejects, name: str) -> str:
    from collections import Counter

    counts = Counter(r["emotion"] for r in rows)
    per = ", ".join(f"{e} {counts[e]}" for e in EMOTIONS if counts[e])
    return f"{name}: kept {len(rows)}, rejected {len(rejects.items)} ({rejects.path}); per label: {per}"
