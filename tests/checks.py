"""Checks of command outputs that recompute what they can independently of the code under test (plain counting
and arithmetic instead of the metric and report code)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def eval_folder(out: Path, manifest: Path | None = None, seeds=("0",)) -> dict:
    """A ``c2ser eval`` folder: one prediction per manifest row that was not rejected (per seed), results.json
    scores exactly them, and its WA and UA equal those recounted from its own confusion matrix. ``manifest``
    defaults to the one results.json names."""
    out = Path(out)
    manifest = manifest or json.loads((out / "results.json").read_text())["manifest"]
    keys = [r["key"] for r in jsonl(manifest)]
    rejected = jsonl(out / "rejects.jsonl") if (out / "rejects.jsonl").is_file() else []
    names = ["predictions.jsonl"] if len(seeds) == 1 else [f"predictions.seed{s}.jsonl" for s in seeds]
    for name in names:
        got = [r["key"] for r in jsonl(out / name)]
        assert len(got) == len(set(got)) and set(got) <= set(keys), f"{out / name}: duplicate or unknown keys"
        assert len(got) + len(rejected) == len(keys) and got, f"{out / name}: {len(got)} + {len(rejected)} rejected " \
                                                               f"!= {len(keys)} manifest rows"
    result = json.loads((out / "results.json").read_text())
    m = result["confusion"]["matrix"]  # rows: reference classes; columns: the classes, then "<unparsed>"
    n = sum(map(sum, m))
    assert result["n"] == n == len(keys) - len(rejected)
    assert result["WA"] == pytest.approx(sum(m[i][i] for i in range(len(m))) / n)
    recalls = [row[i] / sum(row) for i, row in enumerate(m) if sum(row)]
    assert result["UA"] == pytest.approx(sum(recalls) / len(recalls))
    return result


def flip_rate(files: list[Path], corpus: str) -> float:
    """Fraction of clips whose parsed answer differs between runs (the parser is tested on its own)."""
    from c2ser.evaluation.parse import parse_emotion
    from c2ser.labels import corpus_classes

    runs = [{r["key"]: parse_emotion(r.get("prediction") or "", corpus_classes(corpus)).label for r in jsonl(f)}
            for f in files]
    return sum(len({run[k] for run in runs}) > 1 for k in runs[0]) / len(runs[0])
