"""``c2ser score PREDICTIONS.jsonl --corpus NAME --out DIR``: score an existing predictions file."""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("predictions")
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--group-by")


def run(args):
    from c2ser.evaluation.predictions import read_predictions
    from c2ser.evaluation.report import score_predictions, write_report

    r = score_predictions(read_predictions(args.predictions), args.corpus, args.group_by)
    write_report(r, args.out)
    print(f"{args.corpus}: n={r['n']} WA={100 * r['WA']:.2f} UA={100 * r['UA']:.2f} → {args.out}")
