"""``c2ser results EVAL_DIR [--out RESULTS.md]``: one table of every ``results.json`` below EVAL_DIR, plus the
answers each system gave for the first clip (a sample explicit / implicit answer)."""
from __future__ import annotations

import json
from pathlib import Path


def add_arguments(p):
    p.add_argument("eval_dir")
    p.add_argument("--out", help="write the Markdown here too")


def run(args):
    root = Path(args.eval_dir)
    files = sorted(root.rglob("results.json"))
    if not files:
        raise FileNotFoundError(f"{root}: no results.json below it")
    lines = ["| system | corpus | n | WA % | UA % | macro-F1 % | unparsed % |", "|---|---|---|---|---|---|---|"]
    samples = []
    for f in files:
        r = json.loads(f.read_text())
        name = str(f.parent.relative_to(root))
        lines.append(f"| {name} | {r['corpus']} | {r['n']} | {100 * r['WA']:.1f} | {100 * r['UA']:.1f} | "
                     f"{100 * r['macro_F1']:.1f} | {100 * r['unparsed_rate']:.1f} |")
        pred = f.parent / "predictions.jsonl"
        if pred.is_file():
            first = json.loads(pred.read_text().splitlines()[0])
            answer = first.get("prediction") or f"{first.get('label')} (scores {first.get('scores')})"
            samples.append(f"- **{name}** — clip `{first['key']}` (reference: {first.get('emotion')}): {answer}")
    text = "\n".join(["## Results", "", *lines, "", "## Sample answers", "", *samples]) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
