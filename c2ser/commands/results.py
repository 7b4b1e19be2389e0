"""``c2ser results EVAL_DIR [EVAL_DIR ...] [--out RESULTS.md]``: one table per directory of every ``results.json``
below it (e.g. ``exp/eval`` for test, ``exp/eval_valid`` for validation), plus the answers each system gave for the
first clip of the first directory (a sample explicit / implicit answer)."""
from __future__ import annotations

import json
from pathlib import Path

HEADER = ["| system | corpus | n | WA % | UA % | macro-F1 % | unparsed % |", "|---|---|---|---|---|---|---|"]


def add_arguments(p):
    p.add_argument("eval_dir", nargs="+", help="directories searched for results.json (one table each)")
    p.add_argument("--out", help="write the Markdown here too")


def table(root: Path) -> tuple[list[str], list[str]]:
    """(Markdown table rows, sample-answer lines) of every results.json below ``root``."""
    files = sorted(root.rglob("results.json"))
    if not files:
        raise FileNotFoundError(f"{root}: no results.json below it")
    lines, samples = list(HEADER), []
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
    return lines, samples


def run(args):
    roots = [Path(d) for d in args.eval_dir]
    sections, samples = [], None
    for root in roots:
        lines, first_samples = table(root)
        title = "## Results" if len(roots) == 1 else f"## Results: {root.name} ({root})"
        sections += [title, "", *lines, ""]
        samples = first_samples if samples is None else samples
    text = "\n".join([*sections, "## Sample answers", "", *samples]) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
