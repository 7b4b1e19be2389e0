"""How long the model's answers are, in the model's own tokens, and how many a length limit would cut.

    python eval/answer_lengths.py exp/tiny/seed0/eval/stage2-explicit/predictions.jsonl [more predictions.jsonl] \\
        --tokenizer exp/tiny/seed0/models/qwen2-tiny-random [--limits 64,128,400]

For each predictions file (``c2ser eval``'s, one answer per line): the number of answers, the longest and the median
length in tokens, how many answers ``c2ser eval`` marked as cut at its limit (``truncated``), and how many are longer
than each limit in ``--limits`` (an answer that long would have lost its end, e.g. an explicit answer its
conclusion, under that limit). One Markdown table on stdout; exit 1 with one line on bad input.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def lengths(path: Path, tokenizer) -> tuple[list[int], int]:
    """Token counts of every answer in a predictions file, and how many of them were marked as truncated."""
    counts, cut = [], 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            answer = row["prediction"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a prediction row ({e})") from None
        counts.append(len(tokenizer(answer, add_special_tokens=False)["input_ids"]))
        cut += bool(row.get("truncated"))
    return counts, cut


def table(files: list[Path], tokenizer, limits: list[int]) -> str:
    head = ["predictions", "answers", "longest", "median", "marked truncated", *(f"> {k} tokens" for k in limits)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in files:
        counts, cut = lengths(f, tokenizer)
        if not counts:
            raise ValueError(f"{f}: no answers")
        cells = [str(f), len(counts), max(counts), statistics.median(counts), cut,
                 *(sum(c > k for c in counts) for k in limits)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("predictions", nargs="+", type=Path, help="c2ser eval predictions.jsonl files")
    ap.add_argument("--tokenizer", required=True, help="the model's tokenizer (its LLM directory)")
    ap.add_argument("--limits", default="64,128,400", help="comma-separated token limits to count against")
    args = ap.parse_args(argv)
    try:
        limits = [int(k) for k in args.limits.split(",")]
        for f in args.predictions:
            if not f.is_file():
                raise ValueError(f"{f}: no such file")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        print(table(args.predictions, tokenizer, limits))
    except (ValueError, OSError) as e:
        print(f"answer_lengths.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
