"""Predictions files: one JSON line per clip, appended and flushed as soon as it is known.

Opening an existing file reads the keys already done, so an interrupted run continues without duplicates;
a half-written last line (the process was killed mid-write: no newline) is dropped, reported and redone;
the fingerprint is written atomically (``c2ser.atomic``). :func:`open_predictions`
resumes a file only when the fingerprint saved next to it (``NAME.fingerprint.json``) equals the current run's.
Rows are strict JSON: a NaN/Inf value is an error naming the clip, never written.
"""
from __future__ import annotations

import json
from pathlib import Path

from c2ser.atomic import (append_line, atomic_write_json, atomic_write_text, is_write_failure, read_jsonl,
                          write_error)


class PredictionWriter:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        if self.path.exists():
            self.rows, torn = read_jsonl(self.path, "predictions file")
            if torn:  # rewrite without the torn line (atomically: a kill now keeps the old file)
                atomic_write_text(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows))
        self.done_keys = {r["key"] for r in self.rows}
        self.extra: dict[str, dict] = {}  # key → fields added to that clip's row (e.g. {"cropped": True})
        try:
            self._f = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            if is_write_failure(e):
                raise write_error(self.path, e) from None
            raise

    def write(self, row: dict) -> None:
        if row["key"] in self.done_keys:
            return
        row = {**row, **self.extra.get(row["key"], {})}
        try:
            line = json.dumps(row, ensure_ascii=False, allow_nan=False)
        except ValueError:
            raise ValueError(f"{self.path}: clip {row['key']!r}: NaN or infinite value in its prediction "
                             "(not written)") from None
        append_line(self._f, line, self.path)
        self.rows.append(row)
        self.done_keys.add(row["key"])

    def close(self) -> None:
        try:
            self._f.close()  # after a failed append the rest of that line is still buffered: it fails again
        except OSError as e:
            if is_write_failure(e):
                raise write_error(self.path, e) from None
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def fingerprint_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".fingerprint.json")


def open_predictions(path: str | Path, fingerprint: dict, overwrite: bool = False) -> PredictionWriter:
    """A writer on ``path`` that resumes it only if it was written with the same ``fingerprint`` (JSON-able);
    a foreign file is refused with one line (ValueError); ``overwrite`` starts over."""
    path, fp_path = Path(path), fingerprint_path(path)
    fingerprint = json.loads(json.dumps(fingerprint))  # the form it takes on disk
    if overwrite:
        path.unlink(missing_ok=True)
        fp_path.unlink(missing_ok=True)
    if path.exists() and path.stat().st_size > 0:
        try:
            old = json.loads(fp_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old != fingerprint:
            what = "it has no fingerprint" if not isinstance(old, dict) else \
                "different " + ", ".join(k for k in fingerprint if old.get(k) != fingerprint[k])
            raise ValueError(f"{path}: predictions from another run ({what}); pass --overwrite to start over "
                             "or choose another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(fp_path, fingerprint, indent=1)
    return PredictionWriter(path)


def read_predictions(path: str | Path) -> list[dict]:
    """The complete rows of a predictions file (a torn last line is dropped with a warning)."""
    return read_jsonl(path, "predictions file")[0]
