"""Predictions files: one JSON line per clip, appended and flushed as soon as it is known.

Opening an existing file reads the keys already done, so an interrupted run continues without duplicates;
a half-written last line (the process was killed mid-write) is dropped and reported. :func:`open_predictions`
resumes a file only when the fingerprint saved next to it (``NAME.fingerprint.json``) equals the current run's.
Rows are strict JSON: a NaN/Inf value is an error naming the clip, never written.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


class PredictionWriter:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
            good = []
            for i, line in enumerate(lines):
                try:
                    self.rows.append(json.loads(line))
                    good.append(line if line.endswith("\n") else line + "\n")
                except json.JSONDecodeError:
                    print(f"{self.path}:{i + 1}: dropped a truncated line (interrupted run)", file=sys.stderr)
            self.path.write_text("".join(good), encoding="utf-8")
        self.done_keys = {r["key"] for r in self.rows}
        self.extra: dict[str, dict] = {}  # key → fields added to that clip's row (e.g. {"cropped": True})
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        if row["key"] in self.done_keys:
            return
        row = {**row, **self.extra.get(row["key"], {})}
        try:
            line = json.dumps(row, ensure_ascii=False, allow_nan=False)
        except ValueError:
            raise ValueError(f"{self.path}: clip {row['key']!r}: NaN or infinite value in its prediction "
                             "(not written)") from None
        self._f.write(line + "\n")
        self._f.flush()
        self.rows.append(row)
        self.done_keys.add(row["key"])

    def close(self) -> None:
        self._f.close()

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
    fp_path.write_text(json.dumps(fingerprint, indent=1), encoding="utf-8")
    return PredictionWriter(path)


def read_predictions(path: str | Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ValueError(f"{path}:{i + 1}: not a JSON line") from None
    return rows
