"""Predictions files: one JSON line per clip, appended and flushed as soon as it is known.

Opening an existing file reads the keys already done, so an interrupted run continues without duplicates;
a half-written last line (the process was killed mid-write) is dropped and reported.
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
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        if row["key"] in self.done_keys:
            return
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()
        self.rows.append(row)
        self.done_keys.add(row["key"])

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
